"""Accelerator: one streaming dataflow pipeline for a whole QGraph (one block per layer)."""

import math

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.graph import hardware_support_problems

from .blocks._util import element_shape
from .blocks.add import Add
from .blocks.depthwise import DepthwiseUnit
from .blocks.fifo import StreamFifo
from .blocks.fork import Broadcast
from .blocks.matvec import PIPELINE_DEPTH, ROM_STYLES, MatVecUnit
from .blocks.pool import GlobalSumPool, MaxPool, SumPool
from .blocks.requantizer import Requantizer
from .blocks.stream import WidthConverter
from .blocks.window import SlidingWindow
from .errors import UnsupportedLayerError
from .folding import FILTER_OPS, check_folding, is_depthwise, lane_bits, stream_lanes
from .passes.stream_order import stream_columns, stream_order

__all__ = ["Accelerator", "check_hardware_support"]


def check_hardware_support(graph):
    """Raise one :class:`UnsupportedLayerError` listing everything the hardware cannot build.

    Kernels, strides and paddings must be within :func:`quant.graph.hardware_support_problems`.
    Forks and residual joins (``add``) are built; every layer's filter order that reaches an
    add is kept (see :func:`~hwgen.folding.fixed_order_filters`).
    """
    graph.validate()
    problems = hardware_support_problems(graph)
    filters = [i for i, n in enumerate(graph.nodes) if n.op in FILTER_OPS]
    for node in graph.nodes[:filters[0] if filters else len(graph.nodes)]:
        if node.op == "requantize":
            problems.append(f"layer '{node.name}': requantize must follow a dense layer or a "
                            f"convolution in hardware")
    if not filters:
        problems.append("the model has no dense or convolution layer; there is nothing to "
                        "accelerate")
    if problems:
        raise UnsupportedLayerError(problems)


def _check_rom_styles(graph, rom_styles):
    """Every named layer is a dense layer or a non-depthwise convolution, and every style is
    one a :class:`MatVecUnit` takes."""
    layers = {n.name for n in graph.nodes if n.op in FILTER_OPS and not is_depthwise(n)}
    problems = [f"layer '{name}': rom_styles names a layer that has no weight ROMs of a "
                f"matrix-vector unit (dense layers and convolutions: "
                f"{', '.join(sorted(layers))})" for name in rom_styles if name not in layers]
    problems += [f"layer '{name}': rom_style must be one of "
                 f"{', '.join(map(repr, ROM_STYLES))}, not {style!r}"
                 for name, style in rom_styles.items() if style not in ROM_STYLES]
    if problems:
        raise ValueError("; ".join(problems))


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


def _lane_widths(node, pe):
    """Per filter, the bits of the lane that computes it: the widest filter of the lane (the
    graph is in fold order already, so the order is taken as it is)."""
    bits = node.tensors["weight_bits"]
    return np.tile(lane_bits(node, pe, fixed=True), bits.size // pe)


def _map_size(shape):
    """``(channels, height, width)`` of a ``(C, H, W)`` or ``(C, L)`` map."""
    return (shape[0], 1, shape[1]) if len(shape) == 2 else tuple(shape)


class _End:
    """Where a value's stream comes out: a port (block name, member, index; the block name
    ``None`` for the accelerator's input), its element type and its elements per beat."""

    def __init__(self, port, bits, signed, lanes, elements):
        self.port, self.bits, self.signed = port, bits, signed
        self.lanes, self.elements = lanes, elements

    @property
    def shape(self):
        return element_shape(self.bits, self.signed)

    def moved(self, port, bits=None, signed=None, lanes=None):
        return _End(port, self.bits if bits is None else bits,
                    self.signed if signed is None else signed,
                    self.lanes if lanes is None else lanes, self.elements)


def _fifo_occupancy(arrivals, departures, interval):
    """Most beats a FIFO holds when frames follow every ``interval`` cycles.

    A beat taken in at cycle ``arrivals[k]`` and passed on at cycle ``departures[k]`` is held
    in the cycles between (the first excluded, the last included); the frames overlap
    whenever a beat waits longer than a frame interval.
    """
    arrivals, departures = np.asarray(arrivals), np.asarray(departures)
    frames = int((departures.max() - arrivals.min()) // interval) + 2
    offsets = np.arange(frames)[:, None] * interval
    events = np.concatenate([(arrivals + offsets).ravel() + 1, (departures + offsets).ravel() + 1])
    steps = np.concatenate([np.ones(arrivals.size * frames, dtype=np.int64),
                            -np.ones(departures.size * frames, dtype=np.int64)])
    order = np.lexsort((steps, events))   # a departure before an arrival in the same cycle
    return int(max(0, np.cumsum(steps[order]).max()))


class _PendingFifo:
    """A join's FIFO before its depth is known: a one-cycle stage in the beat schedule (as a
    :class:`StreamFifo` of any depth is, until it fills)."""

    def __init__(self, shape, lanes):
        self.shape, self.lanes = shape, lanes

    def beat_times(self, times):
        return [t + 1 for t in times]


class Accelerator(wiring.Component):
    """The dataflow accelerator for ``graph`` folded as ``folding``: stream in, stream out.

    Feature maps stream in HWC order: pixels in raster order, the channels of a pixel
    together, ``lanes`` channels per beat; vectors stream in order. The graph (CHW, the golden
    semantics) is lowered without changing it: a dense layer after a ``flatten`` of a map gets
    its weight columns in stream order (:func:`~hwgen.passes.stream_columns`).

    Lowering: ``dense`` -> :class:`MatVecUnit` (a lane as wide as the widest filter it
    serves, see :func:`~hwgen.folding.lane_bits`); ``conv1d``/``conv2d`` -> :class:`SlidingWindow`
    + :class:`MatVecUnit` (weights in ``(ky, kx, c)`` order, one window per vector, the same
    ``simd``) or, depthwise, + :class:`DepthwiseUnit`; ``maxpool*`` -> :class:`MaxPool`;
    ``avgpool*`` -> :class:`SumPool`; ``global_avgpool`` -> :class:`GlobalSumPool`;
    ``requantize`` -> :class:`Requantizer`; ``flatten`` -> nothing; a value read by several
    layers -> :class:`Broadcast`; ``add`` -> a :class:`StreamFifo` on each operand and
    :class:`Add`. A :class:`WidthConverter` goes wherever the elements per beat change (two,
    through the greatest common divisor, when neither count divides the other). 1-D layers are
    one-row 2-D ones.

    The FIFOs of a residual join are sized from the beat schedule (:meth:`beat_schedule`): an
    operand's FIFO holds the most beats that wait there for the other operand when frames
    follow each other at the frame interval. So the fork never waits for the join, no
    back-pressure pattern can deadlock it (a branch never needs more of the fork's beats than
    the FIFO of the other one holds), and the pipeline keeps its throughput. The depths are in
    :attr:`fifo_depths`.

    Parameters
    ----------
    graph : QGraph
        A validated graph whose filters are in fold order (see ``reorder_filters``).
    folding : dict
        ``{dense or convolution layer name: (pe, simd)}``.
    device : str or None
        Multiplier family (``"xc7"``, ``"xcup"``, ``"ecp5"``, see :mod:`hwgen.packing`): MAC
        lanes are packed onto its hardware multipliers and requantizer products split to fit
        them. ``None`` builds every MAC lane from LUTs (requantizers keep the xc7 geometry).
    lut_lanes : dict, optional
        ``{dense layer name: {weight bits: lanes}}``: lanes built from LUTs instead of DSPs.
    fifo_depths : dict, optional
        ``{FIFO name: depth}``: depths to use instead of the computed ones (to study a
        design; a shallower FIFO can cost throughput or deadlock).
    rom_styles : dict, optional
        ``{dense or convolution layer name: "block" | "logic"}``: where its weight ROMs go
        (block RAM or logic); synthesis chooses for the others.

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

    def __init__(self, graph, folding, device="xc7", lut_lanes=None, fifo_depths=None,
                 rom_styles=None):
        check_hardware_support(graph)
        check_folding(graph, folding)
        self._rom_styles = dict(rom_styles or {})
        _check_rom_styles(graph, self._rom_styles)
        self._graph = graph
        self._folding = dict(folding)
        self._device = device
        self._lut_lanes = dict(lut_lanes or {})
        self._blocks = {}      # name: component, in dependency order
        self._links = []       # (producer port, consumer port)
        self._vectors = {}     # MatVecUnit name: vectors (windows) per frame
        self._converter_cycles = {}
        self._joins = {}       # add name: (fifo names)
        self._fifo_depths = {}
        spec = graph.input
        size = int(np.prod(spec.shape))
        self._in_elements = stream_lanes(graph, folding)["input"]
        ends = {"input": self._share("input", _End((None, "i_stream", None), spec.bits,
                                                   spec.signed, self._in_elements, size))}
        for node in graph.nodes:
            end = self._lower(node, [ends[name].pop(0) for name in node.inputs])
            ends[node.name] = self._share(node.name, end)
        out = ends[graph.output].pop(0)
        self._links.append((out.port, (None, "o_stream", None)))
        self._out_elements = out.lanes
        self._out_bits, self._out_signed = out.bits, out.signed
        self._size_fifos(dict(fifo_depths or {}))
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(
                element_shape(spec.bits, spec.signed), self._in_elements))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(
                element_shape(self._out_bits, self._out_signed), out.lanes))),
            "cycle_count": Out(32),
            "frame_count": Out(32),
        })

    # -- lowering ----------------------------------------------------------------------------

    def _append(self, name, block, end, port="i_stream"):
        """Add ``block`` fed by ``end``; returns the end of its ``o_stream``."""
        self._blocks[name] = block
        self._links.append((end.port, (name, port, None)))
        return end.moved((name, "o_stream", None))

    def _share(self, name, end):
        """One end per reader of value ``name`` (the output counts as one): a fork if many."""
        readers = len(self._graph.consumers(name)) + (name == self._graph.output)
        if readers <= 1:
            return [end]
        fork = f"{name}_fork"
        self._append(fork, Broadcast(shape=end.shape, lanes=end.lanes, outputs=readers,
                                     name=fork), end)
        return [end.moved((fork, "o_streams", n)) for n in range(readers)]

    def _regroup(self, name, end, lanes):
        """``end`` regrouped to ``lanes`` elements per beat."""
        if end.lanes == lanes:
            return end
        step = lanes if max(lanes, end.lanes) % min(lanes, end.lanes) == 0 else \
            math.gcd(lanes, end.lanes)
        for suffix, count in (("in", step), ("in2", lanes)):
            if end.lanes == count:
                break
            block_name = f"{name}_{suffix}"
            block = WidthConverter(shape=end.shape, in_count=end.lanes, out_count=count,
                                   name=block_name)
            self._converter_cycles[block_name] = end.elements // min(end.lanes, count)
            end = self._append(block_name, block, end).moved(
                (block_name, "o_stream", None), lanes=count)
        return end

    def _lower(self, node, inputs):
        """Append the blocks of ``node``; returns the end of its output stream."""
        end = inputs[0]
        t, a, name = node.tensors, node.attrs, node.name
        shape = self._graph.shapes()[name]
        elements = int(np.prod(shape))
        in_shape = self._graph.shapes()[node.inputs[0]]
        if node.op == "flatten":
            return end   # a stream is already flat; dense columns follow the stream order
        if node.op == "dense":
            pe, simd = self._folding[name]
            end = self._regroup(name, end, simd)
            weight = t["weight"]
            columns = stream_columns(self._graph)
            if name in columns:
                weight = weight[:, columns[name]]
            block = MatVecUnit(weight=weight, bias=t["bias"], weight_bits=_lane_widths(node, pe),
                               in_bits=end.bits, in_signed=end.signed, pe=pe, simd=simd,
                               multiplier=self._device, lut_lanes=self._lut_lanes.get(name),
                               rom_style=self._rom_styles.get(name), name=name)
            self._vectors[name] = 1
            return self._produce(name, block, end, block.acc_bits, True, pe, elements)
        if node.op in ("conv1d", "conv2d"):
            pe, simd = self._folding[name]
            channels, height, width = _map_size(in_shape)
            kernel, stride, padding = _conv_geometry(node)
            end = self._regroup(name, end, simd)
            window = SlidingWindow(channels=channels, height=height, width=width, kernel=kernel,
                                   stride=stride, padding=padding, shape=end.shape, simd=simd,
                                   name=f"{name}_window")
            end = self._append(f"{name}_window", window, end)
            pixels = window.out_height * window.out_width
            if is_depthwise(node):
                block = DepthwiseUnit(weight=t["weight"].reshape(channels, *kernel),
                                      bias=t["bias"], weight_bits=t["weight_bits"],
                                      in_bits=end.bits, in_signed=end.signed, simd=simd,
                                      pixels=pixels, name=name)
            else:
                w = t["weight"].reshape(t["weight"].shape[0], channels, *kernel)
                weight = np.moveaxis(w, 1, -1).reshape(w.shape[0], -1)   # (ky, kx, c)
                block = MatVecUnit(weight=weight, bias=t["bias"],
                                   weight_bits=_lane_widths(node, pe), in_bits=end.bits,
                                   in_signed=end.signed, pe=pe, simd=simd,
                                   multiplier=self._device,
                                   lut_lanes=self._lut_lanes.get(name),
                                   rom_style=self._rom_styles.get(name), name=name)
                self._vectors[name] = pixels
            return self._produce(name, block, end, block.acc_bits, True, pe, elements)
        if node.op in ("maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d"):
            channels, height, width = _map_size(in_shape)
            kernel, stride = a["kernel"], a["stride"]
            if len(kernel) == 1:
                kernel, stride = (1, kernel[0]), (1, stride[0])
            cls = MaxPool if node.op.startswith("max") else SumPool
            block = cls(channels=channels, height=height, width=width, kernel=tuple(kernel),
                        stride=tuple(stride), shape=end.shape, simd=end.lanes, name=name)
            return self._produce(name, block, end, block.out_shape.width,
                                 block.out_shape.signed, end.lanes, elements)
        if node.op == "global_avgpool":
            channels, height, width = _map_size(in_shape)
            block = GlobalSumPool(channels=channels, height=height, width=width,
                                  shape=end.shape, simd=end.lanes, name=name)
            return self._produce(name, block, end, block.out_bits, block.out_signed, end.lanes,
                                 elements)
        if node.op == "requantize":
            if not end.signed:
                end = self._append(f"{name}_signed", _AsSigned(bits=end.bits, lanes=end.lanes),
                                   end).moved((f"{name}_signed", "o_stream", None),
                                              bits=end.bits + 1, signed=True)
            block = Requantizer(multiplier=t["multiplier"], shift=a["shift"], in_bits=end.bits,
                                lanes=end.lanes, out_bits=a["out_bits"],
                                out_signed=a["out_signed"], geometry=self._device or "xc7",
                                name=name)
            return self._produce(name, block, end, a["out_bits"], a["out_signed"], end.lanes,
                                 elements)
        if node.op == "add":
            lanes = end.lanes
            operands = [self._regroup(f"{name}_{i}", e, lanes) for i, e in enumerate(inputs)]
            fifos = []
            for i, e in enumerate(operands):
                fifos.append(f"{name}_fifo{i}")
                operands[i] = self._append(fifos[-1], _PendingFifo(e.shape, lanes), e)
            self._joins[name] = fifos
            block = Add(elements=elements, lanes=lanes, shape=operands[0].shape,
                        skip_shape=operands[1].shape, name=name)
            self._links.append((operands[1].port, (name, "i_skip", None)))
            return self._produce(name, block, operands[0], block.out_bits, block.out_signed,
                                 lanes, elements)
        raise UnsupportedLayerError([f"layer '{name}': {node.op} has no hardware block"])

    def _produce(self, name, block, end, bits, is_signed, lanes, elements):
        out = self._append(name, block, end)
        return _End(out.port, bits, is_signed, lanes, elements)

    def _size_fifos(self, chosen):
        """Give each residual join's FIFOs the depth its beat schedule needs (or ``chosen``)."""
        unknown = sorted(set(chosen) - {f for fifos in self._joins.values() for f in fifos})
        if unknown:
            raise ValueError(f"fifo_depths names {', '.join(unknown)}, which are not FIFOs of "
                             f"this design; its FIFOs are "
                             f"{', '.join(f for fs in self._joins.values() for f in fs) or 'none'}")
        times = self.beat_schedule()
        interval = self.cycles_per_frame
        feeds = {consumer: producer for producer, consumer in self._links}
        for add, fifos in self._joins.items():
            departures = [t - 1 for t in times[(add, "o_stream", None)]]
            for fifo in fifos:
                arrivals = times[feeds[(fifo, "i_stream", None)]]
                old = self._blocks[fifo]
                depth = chosen.get(fifo, max(1, _fifo_occupancy(arrivals, departures, interval)))
                self._blocks[fifo] = StreamFifo(shape=old.shape, lanes=old.lanes, depth=depth,
                                                name=fifo)
                self._fifo_depths[fifo] = depth

    # -- models ------------------------------------------------------------------------------

    graph = property(lambda self: self._graph)
    device = property(lambda self: self._device)
    folding = property(lambda self: dict(self._folding))
    blocks = property(lambda self: list(self._blocks.items()))
    links = property(lambda self: list(self._links))
    fifo_depths = property(lambda self: dict(self._fifo_depths))
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
        return any(isinstance(b, (SlidingWindow, MaxPool, SumPool))
                   for b in self._blocks.values())

    def block_cycles(self):
        """``{block name: steady-state cycles per frame}`` of the blocks with a rate of their own.

        A MatVecUnit needs ``vectors * (out / pe) * (in / simd)`` cycles (``vectors`` is the
        number of output pixels after a window, else 1); windows, pools and joins report their
        own (a window can need more cycles than its input beats); a width converter moves one
        narrow beat per cycle; the others pass one beat per cycle.
        """
        cycles = dict(self._converter_cycles)
        for name, block in self._blocks.items():
            if isinstance(block, MatVecUnit):
                cycles[name] = self._vectors[name] * block.cycles_per_frame
            elif hasattr(block, "cycles_per_frame"):
                cycles[name] = block.cycles_per_frame
        return cycles

    @property
    def cycles_per_frame(self):
        """Steady-state cycles between frames: the slowest stage sets the pace.

        The largest of :meth:`block_cycles`, the input beats and the output beats: every block
        holds at least a frame's worth of double buffering or line buffers, and the joins'
        FIFOs are sized for it, so they overlap.
        """
        return max(list(self.block_cycles().values()) + [self.in_beats, self.out_beats])

    @property
    def dsp_count(self):
        """Hardware multipliers: packed MAC lanes plus requantizer products."""
        return sum(b.dsp_count for b in self._blocks.values() if hasattr(b, "dsp_count"))

    def beat_schedule(self):
        """``{output port: beat cycles}`` of one frame through the empty pipeline.

        Input beat ``k`` is offered at cycle ``k``; the output is taken whenever valid. Beat
        timing is followed block by block (each block's ``beat_times``): a MatVecUnit starts a
        vector one cycle after its last input beat, or when the vector before it is done, and
        sends fold ``f`` at ``SF * (f + 1) + PIPELINE_DEPTH`` cycles after the start; a fork
        passes a beat on when every reader takes it (a line buffer may refuse it for a while);
        a join sends a beat one cycle after both operands have theirs.
        """
        feeds = {consumer: producer for producer, consumer in self._links}
        times = {(None, "i_stream", None): list(range(self.in_beats))}
        readers = {}
        for producer, (name, _, _) in self._links:
            readers.setdefault(producer, []).append(name)
        for name, block in self._blocks.items():
            beats = times[feeds[(name, "i_stream", None)]]
            if isinstance(block, MatVecUnit):
                times[(name, "o_stream", None)] = self._matvec_times(block, self._vectors[name],
                                                                     beats)
            elif isinstance(block, Add):
                times[(name, "o_stream", None)] = block.beat_times(
                    beats, times[feeds[(name, "i_skip", None)]])
            elif isinstance(block, Broadcast):
                taken = np.asarray(beats)
                for n in range(block.outputs):
                    reader = self._blocks.get(readers[(name, "o_streams", n)][0])
                    if hasattr(reader, "input_times"):
                        taken = np.maximum(taken, reader.input_times(beats))
                for n in range(block.outputs):
                    times[(name, "o_streams", n)] = taken.tolist()
            else:
                times[(name, "o_stream", None)] = block.beat_times(beats)
        return times

    @property
    def latency(self):
        """Cycles from a frame's first input beat to its last output beat, pipeline empty.

        The last output beat of :meth:`beat_schedule`. Exact for dense chains. With line
        buffers (:attr:`has_windows`) it is an estimate: a block that is slower than its
        producer pushes back on it, which delays beats the estimate takes as offered (the
        frame interval, :attr:`cycles_per_frame`, is exact).
        """
        feeds = {consumer: producer for producer, consumer in self._links}
        return int(self.beat_schedule()[feeds[(None, "o_stream", None)]][-1])

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

    def _port(self, port):
        name, member, index = port
        if name is None:
            return wiring.flipped(getattr(self, member))
        stream_ = getattr(self._blocks[name], member)
        return stream_ if index is None else stream_[index]

    def elaborate(self, platform):
        m = Module()
        for name, block in self._blocks.items():
            m.submodules[name] = block
        for producer, consumer in self._links:
            wiring.connect(m, producer=self._port(producer), consumer=self._port(consumer))

        beat = Signal(range(self.out_beats))
        m.d.sync += self.cycle_count.eq(self.cycle_count + 1)
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += beat.eq(beat + 1)
            with m.If(beat == self.out_beats - 1):
                m.d.sync += [beat.eq(0), self.frame_count.eq(self.frame_count + 1)]
        return m
