"""Accelerator: one streaming dataflow pipeline for a whole QGraph (one block per layer)."""

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.graph import hardware_support_problems

from .blocks._util import element_shape
from .blocks.depthwise import DepthwiseUnit
from .blocks.matvec import PIPELINE_DEPTH, MatVecUnit
from .blocks.pool import GlobalSumPool, MaxPool, SumPool
from .blocks.requantizer import Requantizer
from .blocks.stream import WidthConverter
from .blocks.window import SlidingWindow
from .errors import UnsupportedLayerError
from .folding import check_folding, is_depthwise
from .passes.stream_order import stream_columns, stream_order

__all__ = ["Accelerator", "check_hardware_support"]


def check_hardware_support(graph):
    """Raise one :class:`UnsupportedLayerError` listing everything the hardware cannot build.

    The generator builds chains: every layer reads the layer just before it, and every output
    has one consumer. Residual joins (``add``) and forks are not supported yet; kernels,
    strides and paddings must be within :func:`quant.graph.hardware_support_problems`.
    """
    graph.validate()
    problems = []
    previous = "input"
    for node in graph.nodes:
        if node.op == "add":
            problems.append(f"layer '{node.name}': add (a residual join) is not supported in "
                            f"hardware yet")
        elif node.inputs != [previous]:
            problems.append(f"layer '{node.name}': reads '{node.inputs[0]}' instead of the layer "
                            f"just before it ('{previous}'); branches are not supported in "
                            f"hardware yet")
        previous = node.name
    for name in ["input"] + [n.name for n in graph.nodes]:
        consumers = graph.consumers(name)
        if len(consumers) > 1:
            problems.append(f"layer '{name}': its output feeds {len(consumers)} layers "
                            f"({', '.join(n.name for n in consumers)}); a fork is not supported "
                            f"in hardware yet")
    if not problems:
        problems = hardware_support_problems(graph)
    if problems:
        raise UnsupportedLayerError(problems)


class _AsSigned(wiring.Component):
    """Passes an unsigned stream on as signed elements one bit wider (no register)."""

    def __init__(self, *, bits, lanes):
        self._lanes = lanes
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(element_shape(bits, False),
                                                               lanes))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(element_shape(bits + 1, True),
                                                                lanes))),
        })

    def beat_times(self, times):
        return list(times)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.o_stream.valid.eq(self.i_stream.valid),
                     self.i_stream.ready.eq(self.o_stream.ready)]
        for p in range(self._lanes):
            m.d.comb += self.o_stream.payload[p].eq(self.i_stream.payload[p])
        return m


def _conv_geometry(node):
    """Window geometry of a conv1d/conv2d node as 2-D pairs (a 1-D signal is one row)."""
    w, a = node.tensors["weight"], node.attrs
    if node.op == "conv1d":
        return (1, w.shape[2]), (1, a["stride"][0]), (0, a["padding"][0])
    return tuple(w.shape[2:]), tuple(a["stride"]), tuple(a["padding"])


def _map_size(shape):
    """``(channels, height, width)`` of a ``(C, H, W)`` or ``(C, L)`` map."""
    return (shape[0], 1, shape[1]) if len(shape) == 2 else tuple(shape)


class Accelerator(wiring.Component):
    """The dataflow accelerator for ``graph`` folded as ``folding``: stream in, stream out.

    Feature maps stream in HWC order: pixels in raster order, the channels of a pixel
    together, ``lanes`` channels per beat; vectors stream in order. The graph (CHW, the golden
    semantics) is lowered without changing it: a dense layer after a ``flatten`` of a map gets
    its weight columns in stream order (:func:`~hwgen.passes.stream_columns`).

    Lowering: ``dense`` -> :class:`MatVecUnit`; ``conv1d``/``conv2d`` -> :class:`SlidingWindow`
    + :class:`MatVecUnit` (weights in ``(ky, kx, c)`` order, one window per vector, the same
    ``simd``) or, depthwise, + :class:`DepthwiseUnit`; ``maxpool*`` -> :class:`MaxPool`;
    ``avgpool*`` -> :class:`SumPool`; ``global_avgpool`` -> :class:`GlobalSumPool`;
    ``requantize`` -> :class:`Requantizer`; ``flatten`` -> nothing. A :class:`WidthConverter`
    goes wherever the elements per beat change. 1-D layers are one-row 2-D ones.

    Parameters
    ----------
    graph : QGraph
        A validated chain whose filters are in fold order (see ``reorder_filters``).
    folding : dict
        ``{dense or convolution layer name: (pe, simd)}``.
    device : str or None
        Multiplier family (``"xc7"``, ``"xcup"``, ``"ecp5"``, see :mod:`hwgen.packing`): MAC
        lanes are packed onto its hardware multipliers and requantizer products split to fit
        them. ``None`` builds every MAC lane from LUTs (requantizers keep the xc7 geometry).
    lut_lanes : dict, optional
        ``{dense layer name: {weight bits: lanes}}``: lanes built from LUTs instead of DSPs.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(input shape, in_elements)))
        The input frame in stream order (``in_order``), ``in_elements`` per beat.
    o_stream : Out(stream.Signature(ArrayLayout(output shape, out_elements)))
        The output frame in stream order (``out_order``).
    cycle_count : Out(32)
        Clock cycles since reset.
    frame_count : Out(32)
        Output frames completed since reset.
    """

    def __init__(self, graph, folding, device="xc7", lut_lanes=None):
        check_hardware_support(graph)
        check_folding(graph, folding)
        lut_lanes = dict(lut_lanes or {})
        self._graph = graph
        self._folding = dict(folding)
        self._device = device
        self._blocks = []   # (name, component), in stream order
        self._vectors = {}  # MatVecUnit name: vectors (windows) per frame
        shapes = graph.shapes()
        columns = stream_columns(graph)
        spec = graph.input
        state = {"bits": spec.bits, "signed": spec.signed, "lanes": None}
        self._in_elements = None
        unsupported = []

        def regroup(name, lanes):
            """Make the stream ``lanes`` elements per beat (the first block sets the input's)."""
            if state["lanes"] is None:
                self._in_elements = state["lanes"] = lanes
            elif state["lanes"] != lanes:
                self._blocks.append((f"{name}_in", WidthConverter(
                    shape=element_shape(state["bits"], state["signed"]),
                    in_count=state["lanes"], out_count=lanes, name=name)))
                state["lanes"] = lanes

        def add(name, block, bits, is_signed):
            self._blocks.append((name, block))
            state["bits"], state["signed"] = bits, is_signed

        shape_of = element_shape
        has_filters = False
        for node in graph.nodes:
            in_shape = shapes[node.inputs[0]]
            t, a = node.tensors, node.attrs
            bits, is_signed = state["bits"], state["signed"]
            if node.op == "flatten":
                continue  # a stream is already flat; dense columns follow the stream order
            if node.op == "dense":
                pe, simd = folding[node.name]
                regroup(node.name, simd)
                weight = t["weight"]
                if node.name in columns:
                    weight = weight[:, columns[node.name]]
                block = MatVecUnit(weight=weight, bias=t["bias"], weight_bits=t["weight_bits"],
                                   in_bits=bits, in_signed=is_signed, pe=pe, simd=simd,
                                   multiplier=device, lut_lanes=lut_lanes.get(node.name),
                                   name=node.name)
                self._vectors[node.name] = 1
                add(node.name, block, block.acc_bits, True)
                state["lanes"] = pe
                has_filters = True
            elif node.op in ("conv1d", "conv2d"):
                pe, simd = folding[node.name]
                channels, height, width = _map_size(in_shape)
                kernel, stride, padding = _conv_geometry(node)
                regroup(node.name, simd)
                window = SlidingWindow(channels=channels, height=height, width=width,
                                       kernel=kernel, stride=stride, padding=padding,
                                       shape=shape_of(bits, is_signed), simd=simd,
                                       name=f"{node.name}_window")
                self._blocks.append((f"{node.name}_window", window))
                pixels = window.out_height * window.out_width
                if is_depthwise(node):
                    block = DepthwiseUnit(weight=t["weight"].reshape(channels, *kernel),
                                          bias=t["bias"], weight_bits=t["weight_bits"],
                                          in_bits=bits, in_signed=is_signed, simd=simd,
                                          pixels=pixels, name=node.name)
                else:
                    w = t["weight"].reshape(t["weight"].shape[0], channels, *kernel)
                    weight = np.moveaxis(w, 1, -1).reshape(w.shape[0], -1)   # (ky, kx, c)
                    block = MatVecUnit(weight=weight, bias=t["bias"],
                                       weight_bits=t["weight_bits"], in_bits=bits,
                                       in_signed=is_signed, pe=pe, simd=simd,
                                       multiplier=device, lut_lanes=lut_lanes.get(node.name),
                                       name=node.name)
                    self._vectors[node.name] = pixels
                add(node.name, block, block.acc_bits, True)
                state["lanes"] = pe
                has_filters = True
            elif node.op in ("maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d"):
                channels, height, width = _map_size(in_shape)
                kernel, stride = a["kernel"], a["stride"]
                if len(kernel) == 1:
                    kernel, stride = (1, kernel[0]), (1, stride[0])
                regroup(node.name, state["lanes"] or 1)
                cls = MaxPool if node.op.startswith("max") else SumPool
                block = cls(channels=channels, height=height, width=width, kernel=tuple(kernel),
                            stride=tuple(stride), shape=shape_of(bits, is_signed),
                            simd=state["lanes"], name=node.name)
                add(node.name, block, block.out_shape.width, block.out_shape.signed)
            elif node.op == "global_avgpool":
                channels, height, width = _map_size(in_shape)
                regroup(node.name, state["lanes"] or 1)
                block = GlobalSumPool(channels=channels, height=height, width=width,
                                      shape=shape_of(bits, is_signed), simd=state["lanes"],
                                      name=node.name)
                add(node.name, block, block.out_bits, block.out_signed)
            elif node.op == "requantize" and has_filters:
                if not is_signed:
                    self._blocks.append((f"{node.name}_signed",
                                         _AsSigned(bits=bits, lanes=state["lanes"])))
                    bits += 1
                block = Requantizer(multiplier=t["multiplier"], shift=a["shift"], in_bits=bits,
                                    lanes=state["lanes"], out_bits=a["out_bits"],
                                    out_signed=a["out_signed"], geometry=device or "xc7",
                                    name=node.name)
                add(node.name, block, a["out_bits"], a["out_signed"])
            else:
                unsupported.append(f"layer '{node.name}': {node.op} must follow a dense layer "
                                   f"or a convolution in hardware")
        if not has_filters:
            unsupported.append("the model has no dense or convolution layer; there is nothing "
                               "to accelerate")
        if unsupported:
            raise UnsupportedLayerError(unsupported)
        lanes = state["lanes"]
        self._out_elements = lanes
        self._out_bits, self._out_signed = state["bits"], state["signed"]
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(
                element_shape(spec.bits, spec.signed), self._in_elements))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(
                element_shape(self._out_bits, self._out_signed), lanes))),
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
    def in_order(self):
        """Stream order of the input: ``"HWC"`` for a feature map, ``"C"`` for a vector."""
        return stream_order(self._graph.input.shape)

    @property
    def out_order(self):
        """Stream order of the output: ``"HWC"`` for a feature map, ``"C"`` for a vector."""
        return stream_order(self._graph.shapes()[self._graph.output])

    @property
    def in_beats(self):
        """Input beats per frame."""
        return self._size("input") // self._in_elements

    @property
    def out_beats(self):
        """Output beats per frame."""
        return self._size(self._graph.output) // self._out_elements

    def _size(self, name):
        return int(np.prod(self._graph.shapes()[name]))

    @property
    def has_windows(self):
        """Whether any block is built around a line buffer (a convolution or a pool)."""
        return any(isinstance(b, (SlidingWindow, MaxPool, SumPool)) for _, b in self._blocks)

    def block_cycles(self):
        """``{block name: steady-state cycles per frame}`` of the blocks with a rate of their own.

        A MatVecUnit needs ``vectors * (out / pe) * (in / simd)`` cycles (``vectors`` is the
        number of output pixels after a window, else 1); windows and pools report their own
        (a window can need more cycles than its input beats); the others move one beat per
        cycle.
        """
        cycles = {}
        for name, block in self._blocks:
            if isinstance(block, MatVecUnit):
                cycles[name] = self._vectors[name] * block.cycles_per_frame
            elif hasattr(block, "cycles_per_frame"):
                cycles[name] = block.cycles_per_frame
        return cycles

    @property
    def cycles_per_frame(self):
        """Steady-state cycles between frames: the slowest stage sets the pace.

        The largest of :meth:`block_cycles`, the input beats and the output beats: every block
        holds at least a frame's worth of double buffering or line buffers, so they overlap.
        """
        return max(list(self.block_cycles().values()) + [self.in_beats, self.out_beats])

    @property
    def dsp_count(self):
        """Hardware multipliers: packed MAC lanes plus requantizer products."""
        return sum(b.dsp_count for _, b in self._blocks if hasattr(b, "dsp_count"))

    @property
    def latency(self):
        """Cycles from a frame's first input beat to its last output beat, pipeline empty.

        Beat timing is followed block by block (each block's ``beat_times``): a MatVecUnit
        starts a vector one cycle after its last input beat, or when the vector before it is
        done, and sends fold ``f`` at ``SF * (f + 1) + PIPELINE_DEPTH`` cycles after the start;
        register stages (Requantizer, gathering converter) add one cycle; a splitting converter
        sends its parts on consecutive cycles. The output is taken whenever valid.

        Exact for dense chains. With line buffers (:attr:`has_windows`) it is an estimate:
        a block that is slower than its producer pushes back on it, which delays beats the
        estimate takes as offered (the frame interval, :attr:`cycles_per_frame`, is exact).
        """
        beats = list(range(self.in_beats))
        for name, block in self._blocks:
            if isinstance(block, MatVecUnit):
                beats = self._matvec_times(block, self._vectors[name], beats)
            else:
                beats = block.beat_times(beats)
        return int(beats[-1])

    @staticmethod
    def _matvec_times(block, vectors, times):
        """Output beat cycles of a MatVecUnit fed ``vectors`` vectors at ``times``."""
        sf, nf = block.input_folds, block.output_folds
        out, free = [], 0
        for v in range(vectors):
            start = max(times[(v + 1) * sf - 1] + 1, free)
            out.extend(start + sf * (f + 1) + PIPELINE_DEPTH - 1 for f in range(nf))
            free = start + sf * nf
        return out

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
