"""Accelerator: one streaming dataflow pipeline for a whole QGraph (one block per layer)."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .blocks._util import element_shape
from .blocks.matvec import MatVecUnit
from .blocks.requantizer import Requantizer
from .blocks.stream import WidthConverter
from .errors import UnsupportedLayerError
from .folding import check_folding

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """The dataflow accelerator for ``graph`` folded as ``folding``: stream in, stream out.

    Parameters
    ----------
    graph : QGraph
        A validated graph whose filters are in fold order (see ``reorder_filters``).
    folding : dict
        ``{dense layer name: (pe, simd)}``.
    device : str or None
        Multiplier family (``"xc7"``, ``"xcup"``, ``"ecp5"``, see :mod:`hwgen.packing`): MAC
        lanes are packed onto its hardware multipliers and requantizer products split to fit
        them. ``None`` builds every MAC lane from LUTs (requantizers keep the xc7 geometry).
    lut_lanes : dict, optional
        ``{dense layer name: {weight bits: lanes}}``: lanes built from LUTs instead of DSPs.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(input shape, in_elements)))
        The input frame in C order, ``in_elements`` per beat.
    o_stream : Out(stream.Signature(ArrayLayout(output shape, out_elements)))
        The output frame in C order.
    cycle_count : Out(32)
        Clock cycles since reset.
    frame_count : Out(32)
        Output frames completed since reset.
    """

    def __init__(self, graph, folding, device="xc7", lut_lanes=None):
        graph.validate()
        check_folding(graph, folding)
        lut_lanes = dict(lut_lanes or {})
        self._graph = graph
        self._folding = dict(folding)
        self._device = device
        self._blocks = []  # (layer name, component), in stream order
        spec = graph.input
        bits, is_signed, lanes = spec.bits, spec.signed, None
        self._in_elements = None
        unsupported = []
        for node in graph.nodes:
            if node.op == "flatten":
                continue  # C-order streams are already flat
            if node.op == "dense":
                pe, simd = folding[node.name]
                if lanes is None:
                    self._in_elements = lanes = simd
                elif lanes != simd:
                    self._blocks.append((f"{node.name}_in", WidthConverter(
                        shape=element_shape(bits, is_signed), in_count=lanes, out_count=simd,
                        name=node.name)))
                t = node.tensors
                block = MatVecUnit(weight=t["weight"], bias=t["bias"],
                                   weight_bits=t["weight_bits"], in_bits=bits,
                                   in_signed=is_signed, pe=pe, simd=simd, multiplier=device,
                                   lut_lanes=lut_lanes.get(node.name), name=node.name)
                bits, is_signed, lanes = block.acc_bits, True, pe
            elif node.op == "requantize" and lanes is not None:
                a = node.attrs
                block = Requantizer(multiplier=node.tensors["multiplier"], shift=a["shift"],
                                    in_bits=bits, lanes=lanes, out_bits=a["out_bits"],
                                    out_signed=a["out_signed"], geometry=device or "xc7",
                                    name=node.name)
                bits, is_signed = a["out_bits"], a["out_signed"]
            else:
                unsupported.append(f"layer '{node.name}': {node.op} must follow a dense layer "
                                   f"in hardware")
                continue
            self._blocks.append((node.name, block))
        if not any(isinstance(b, MatVecUnit) for _, b in self._blocks):
            unsupported.append("the model has no dense layer; there is nothing to accelerate")
        if unsupported:
            raise UnsupportedLayerError(unsupported)
        self._out_elements, self._out_bits, self._out_signed = lanes, bits, is_signed
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(
                element_shape(spec.bits, spec.signed), self._in_elements))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(
                element_shape(bits, is_signed), lanes))),
            "cycle_count": Out(32),
            "frame_count": Out(32),
        })

    graph = property(lambda self: self._graph)
    device = property(lambda self: self._device)
    folding = property(lambda self: dict(self._folding))
    blocks = property(lambda self: list(self._blocks))
    in_elements = property(lambda self: self._in_elements)
    out_elements = property(lambda self: self._out_elements)
    out_bits = property(lambda self: self._out_bits)
    out_signed = property(lambda self: self._out_signed)

    @property
    def in_beats(self):
        """Input beats per frame."""
        return self._size("input") // self._in_elements

    @property
    def out_beats(self):
        """Output beats per frame."""
        return self._size(self._graph.output) // self._out_elements

    def _size(self, name):
        size = 1
        for d in self._graph.shapes()[name]:
            size *= d
        return size

    @property
    def cycles_per_frame(self):
        """Steady-state cycles between frames: the slowest stage sets the pace.

        Each MatVecUnit needs ``(out_features / pe) * (in_features / simd)`` cycles per frame;
        the input and output ports move one beat per cycle. Double-buffered inputs let the
        units overlap, so the frame interval is the largest of these.
        """
        units = [b.cycles_per_frame for _, b in self._blocks if isinstance(b, MatVecUnit)]
        return max(units + [self.in_beats, self.out_beats])

    @property
    def dsp_count(self):
        """Hardware multipliers: packed MAC lanes plus requantizer products."""
        return sum(b.dsp_count for _, b in self._blocks if hasattr(b, "dsp_count"))

    @property
    def latency(self):
        """Cycles from a frame's first input beat to its last output beat, pipeline empty.

        Beat timing is followed block by block: a MatVecUnit starts one cycle after its last
        input beat and sends fold ``f`` at ``SF * (f + 1) + PIPELINE_DEPTH`` cycles after it;
        register stages (Requantizer, gathering converter) add one cycle; a splitting converter
        sends its parts on consecutive cycles. The output is taken whenever valid.
        """
        beats = list(range(self.in_beats))
        for _, block in self._blocks:
            beats = block.beat_times(beats)
        return beats[-1]

    def elaborate(self, platform):
        m = Module()
        upstream = self.i_stream
        for name, block in self._blocks:
            m.submodules[name] = block
            if upstream is self.i_stream:
                wiring.connect(m, wiring.flipped(self.i_stream), block.i_stream)
            else:
                wiring.connect(m, producer=upstream, consumer=block.i_stream)
            upstream = block.o_stream
        wiring.connect(m, producer=upstream, consumer=wiring.flipped(self.o_stream))

        beat = Signal(range(self.out_beats))
        m.d.sync += self.cycle_count.eq(self.cycle_count + 1)
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += beat.eq(beat + 1)
            with m.If(beat == self.out_beats - 1):
                m.d.sync += [beat.eq(0), self.frame_count.eq(self.frame_count + 1)]
        return m
