"""Lowering: a folded graph to a netlist of blocks and the links between their streams.

Each op kind has one rule (:data:`RULES`) that appends the blocks of a node, reading the node
through its view (:mod:`hwgen.ops`). Nothing is built: a block is a :class:`BlockSpec` (its
class and keyword arguments), so the scheduler can time a design, and the search price it,
without elaborating hardware; :class:`~hwgen.accelerator.Accelerator` builds the blocks.

Streams carry feature maps in HWC order (pixels in raster order, the channels of a pixel
together) and vectors in C order. A flattened map keeps its HWC stream (a flatten lowers to
nothing): the lowering tracks, for each value, the map its stream comes from (``End.map``),
so the dense layer or per-feature requantizer after a flatten takes its columns or
multipliers in stream order, and the output's stream format says how the output is ordered.
"""

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from quant import numerics
from quant.graph import requantize_offset, requantize_rounding

from .blocks import (Add, AsSigned, Broadcast, DepthwiseUnit, GlobalSumPool, MatVecLanes,
                     MatVecUnit, MaxPool, ParallelMapWindow, ParallelWindow, Reorder, Requantizer,
                     SlidingWindow, StreamFifo, SumPool, WidthConverter)
from .blocks._util import accumulator_bits, element_shape
from .blocks.timing import Gather
from .folding import fixed_order_filters, lane_bits, stream_lanes
from .ops import op_views

__all__ = ["BlockSpec", "End", "Netlist", "RULES", "lower"]


@dataclass
class BlockSpec:
    """A block to build: its class and keyword arguments; its timing without building it."""
    cls: type
    params: dict

    @cached_property
    def timing(self):
        return self.cls.timing_of(**self.params)

    def build(self, **changes):
        return self.cls(**(self.params | changes))


@dataclass(frozen=True)
class End:
    """Where a value's stream comes out: a port ``(block, member, index)`` (block ``None`` for
    the accelerator's own ports), its element type, elements per beat and per frame, and the
    ``(C, *spatial)`` map whose HWC stream it is (``None`` for a vector in C order)."""
    port: tuple
    bits: int
    signed: bool
    lanes: int
    elements: int
    map: tuple = None

    @property
    def shape(self):
        return element_shape(self.bits, self.signed)

    def moved(self, port, **changes):
        return End(port, **({"bits": self.bits, "signed": self.signed, "lanes": self.lanes,
                             "elements": self.elements, "map": self.map} | changes))


@dataclass
class Netlist:
    """Blocks (in dependency order) and the links between their ports.

    ``links`` are ``(producer port, consumer port)`` pairs; ``joins`` maps each add to the
    FIFOs on its operands (their depths are the scheduler's to choose); ``input`` and
    ``output`` are the ends of the accelerator's streams.
    """
    graph: object
    folding: dict
    device: object
    blocks: dict = field(default_factory=dict)
    links: list = field(default_factory=list)
    joins: dict = field(default_factory=dict)
    input: End = None
    output: End = None

    @cached_property
    def feeds(self):
        """``{consumer port: producer port}``."""
        return {consumer: producer for producer, consumer in self.links}

    @cached_property
    def readers(self):
        """``{producer port: [consumer block names]}``."""
        readers = {}
        for producer, (name, _, _) in self.links:
            readers.setdefault(producer, []).append(name)
        return readers


class _Lowering:
    def __init__(self, graph, folding, device, lut_lanes, rom_styles):
        self.graph, self.folding, self.device = graph, dict(folding), device
        self.lut_lanes, self.rom_styles = dict(lut_lanes or {}), dict(rom_styles or {})
        self.views = op_views(graph)
        self.fixed = fixed_order_filters(graph)
        self.net = Netlist(graph, self.folding, device)

    def append(self, name, cls, params, end, port="i_stream"):
        """Add a block fed by ``end``; returns the end of its ``o_stream``."""
        self.net.blocks[name] = BlockSpec(cls, params | {"name": name})
        self.net.links.append((end.port, (name, port, None)))
        return end.moved((name, "o_stream", None))

    def share(self, name, end):
        """One end per reader of value ``name`` (the output counts as one): a fork if many."""
        readers = len(self.graph.consumers(name)) + (name == self.graph.output)
        if readers <= 1:
            return [end]
        fork = f"{name}_fork"
        self.append(fork, Broadcast, {"shape": end.shape, "lanes": end.lanes,
                                      "outputs": readers}, end)
        return [end.moved((fork, "o_streams", n)) for n in range(readers)]

    def regroup(self, name, end, lanes):
        """``end`` regrouped to ``lanes`` elements per beat. When neither count divides the
        other, the beats are gathered to their least common multiple and split again, which
        keeps the rate of the narrower side (through the gcd instead, when the frame is not a
        whole number of lcm beats: a beat a cycle of the gcd)."""
        if end.lanes == lanes:
            return end
        end = self._queued(name, end, lanes)
        step = lanes
        if max(lanes, end.lanes) % min(lanes, end.lanes):
            step = math.lcm(lanes, end.lanes)
            if end.elements % step:
                step = math.gcd(lanes, end.lanes)
        for suffix, count in (("in", step), ("in2", lanes)):
            if end.lanes == count:
                break
            block = f"{name}_{suffix}"
            end = self.append(block, WidthConverter, {
                "shape": end.shape, "in_count": end.lanes, "out_count": count,
                "elements": end.elements}, end).moved((block, "o_stream", None), lanes=count)
        return end

    def _queued(self, name, end, lanes):
        """``end`` through a FIFO of one group's beats when a pool or depthwise unit sends them
        back to back (one per channel fold) into a converter that splits each beat over
        several cycles: it would otherwise refuse the burst and stall its producer, which the
        cycle model (output always taken) does not follow."""
        producer = self.net.blocks.get(end.port[0])
        timing = producer.timing if producer is not None else None
        if lanes >= end.lanes or not isinstance(timing, Gather) or timing.folds == 1:
            return end
        block = f"{name}_queue"
        return self.append(block, StreamFifo, {"shape": end.shape, "lanes": end.lanes,
                                               "depth": timing.folds}, end)

    def signed(self, name, end):
        """``end`` as signed elements (a wider type for an unsigned stream)."""
        if end.signed:
            return end
        block = f"{name}_signed"
        return self.append(block, AsSigned, {"bits": end.bits, "lanes": end.lanes}, end) \
            .moved((block, "o_stream", None), bits=end.bits + 1, signed=True)

    def lane_widths(self, view, pe):
        """Per filter, the bits of the lane that computes it (the graph is in fold order)."""
        return np.tile(lane_bits(view.node, pe, fixed=True), view.out_channels // pe)


def _dense(low, view, ends):
    end = ends[0]
    pe, simd = low.folding[view.name]
    end = low.regroup(view.name, end, simd)
    weight = view.matrix
    if end.map is not None:
        # A flattened map streams in HWC order: stream element k meets the weight column of
        # the C-order element interleaved_order(map)[k], so the dot products are unchanged.
        weight = weight[:, numerics.interleaved_order(end.map)]
    return _matvec(low, view, end, weight, pe, simd, vectors=1, map=None)


def _matvec(low, view, end, weight, pe, simd, vectors, map, positions=1):
    """The layer's matrix-vector unit, or with several ``positions`` per beat one unfolded
    unit per position."""
    t = view.node.tensors
    params = {
        "weight": weight, "bias": t["bias"], "weight_bits": low.lane_widths(view, pe),
        "in_bits": end.bits, "in_signed": end.signed, "pe": pe, "simd": simd,
        "multiplier": low.device, "lut_lanes": low.lut_lanes.get(view.name),
        "rom_style": low.rom_styles.get(view.name), "vectors": vectors}
    if positions > 1:
        out = low.append(view.name, MatVecLanes, params | {
            "positions": positions, "simd": simd // positions}, end)
    else:
        out = low.append(view.name, MatVecUnit, params, end)
    acc_bits = accumulator_bits(weight, t["bias"], end.bits, end.signed)
    return out.moved(out.port, bits=acc_bits, signed=True, lanes=pe * positions,
                     elements=view.out_elements, map=map)


def _window(low, view, end, simd, pad_value=0):
    """The window of a layer folded ``simd``: ``simd`` channels of one position per beat, or,
    with ``simd`` above the channels, ``simd / channels`` whole positions per beat from a
    stream of one pixel per beat; or, when no window beat is ``simd`` elements, a larger one
    that the window splits into beats of ``simd`` (:meth:`~hwgen.ops.FilterView.window_lanes`)."""
    g = view.geometry
    lanes = view.in_lanes(simd)
    beat = view.window_lanes(simd)
    end = low.regroup(view.name, end, lanes)
    params = {"channels": g.channels, "height": g.height, "width": g.width,
              "kernel": g.kernel, "stride": g.stride, "padding": g.padding,
              "shape": end.shape, "simd": lanes, "pad_value": pad_value}
    if beat > lanes:
        params["taps"] = beat // lanes
    if beat > simd:
        params["split"] = beat // simd
    out = low.append(f"{view.name}_window", SlidingWindow, params, end)
    return out.moved(out.port, lanes=simd)


def _parallel_window(low, view, end, positions):
    """The whole windows of ``positions`` consecutive output positions per beat (a layer whose
    windows tile its input's rows), from a stream of ``positions * stride`` whole pixels per
    beat: a shift register for a 1-D signal, line buffers of pixel groups for a map."""
    g = view.geometry
    end = low.regroup(view.name, end, positions * g.stride[1] * g.channels)
    if not view.signal and g.kernel == g.stride == (1, 1):
        return end.moved(end.port, lanes=positions * view.fan_in)  # each pixel is a window
    cls = ParallelWindow if view.signal else ParallelMapWindow
    out = low.append(f"{view.name}_window", cls, {
        "channels": g.channels, "height": g.height, "width": g.width, "kernel": g.kernel,
        "stride": g.stride, "padding": g.padding, "shape": end.shape,
        "positions": positions}, end)
    return out.moved(out.port, lanes=positions * view.fan_in)


def _conv(low, view, ends):
    pe, simd = low.folding[view.name]
    positions = view.positions(simd)
    if view.whole_windows(simd):
        end = _parallel_window(low, view, ends[0], positions)
    else:
        end = _window(low, view, ends[0], simd)
    return _matvec(low, view, end, view.matrix, pe, simd, vectors=view.pixels,
                   map=view.out_shape, positions=positions)


def _depthwise(low, view, ends):
    pe, simd = low.folding[view.name]
    end = _window(low, view, ends[0], simd)
    t = view.node.tensors
    lanes = view.in_lanes(simd)   # channels per beat; simd / lanes window positions
    params = {"weight": view.matrix, "bias": t["bias"], "weight_bits": t["weight_bits"],
              "in_bits": end.bits, "in_signed": end.signed, "simd": lanes,
              "pixels": view.pixels}
    if simd > lanes:
        params["taps"] = simd // lanes
    out = low.append(view.name, DepthwiseUnit, params, end)
    acc_bits = accumulator_bits(view.matrix, t["bias"], end.bits, end.signed)
    return out.moved(out.port, bits=acc_bits, signed=True, lanes=lanes,
                     elements=view.out_elements, map=view.out_shape)


def _pixels(low, view, end):
    """``end`` as the pool takes it: several whole pixels per beat where its windows tile the
    rows (:meth:`~hwgen.ops.PoolView.positions`), else at most one pixel per beat."""
    return low.regroup(view.name, end, view.in_lanes(end.lanes))


def _pool(low, view, ends):
    end = _pixels(low, view, ends[0])
    g = view.geometry
    cls = MaxPool if view.kind == "maxpool" else SumPool
    params = {"channels": g.channels, "height": g.height, "width": g.width, "kernel": g.kernel,
              "stride": g.stride, "shape": end.shape, "simd": end.lanes}
    positions = view.positions(end.lanes)
    if positions:
        params |= {"simd": g.channels, "positions": positions}
    if any(g.padding):
        params["padding"] = g.padding
    out = low.append(view.name, cls, params, end)
    shape = cls.out_shape_of(end.shape, g.window)
    return out.moved(out.port, bits=shape.width, signed=shape.signed,
                     lanes=view.out_lanes(end.lanes), elements=view.out_elements,
                     map=view.out_shape)


def _global_pool(low, view, ends):
    end = _pixels(low, view, ends[0])
    g = view.geometry
    out = low.append(view.name, GlobalSumPool, {
        "channels": g.channels, "height": g.height, "width": g.width, "shape": end.shape,
        "simd": end.lanes}, end)
    shape = SumPool.out_shape_of(end.shape, g.pixels)
    return out.moved(out.port, bits=shape.width, signed=shape.signed,
                     elements=view.out_elements, map=None)


def _requantize(low, view, ends):
    end = low.signed(view.name, ends[0])
    node = view.node
    a = node.attrs
    multiplier = _stream_period(node.tensors["multiplier"], view, end)
    # Offsets follow the multipliers: one per channel, in the same stream order.
    offset = _stream_period(requantize_offset(node), view, end)
    out = low.append(view.name, Requantizer, {
        "multiplier": multiplier, "shift": a["shift"], "in_bits": end.bits,
        "lanes": end.lanes, "out_bits": a["out_bits"], "out_signed": a["out_signed"],
        "offset": offset, "rounding": requantize_rounding(node),
        "geometry": low.device or "xc7"}, end)
    return out.moved(out.port, bits=a["out_bits"], signed=a["out_signed"])


def _stream_period(multiplier, view, end):
    """A requantizer's multipliers (or offsets) in stream order over one period of its
    stream, a multiple of the beat: per channel for a map, per feature (in the stream's order)
    for a vector."""
    multiplier = np.asarray(multiplier)
    if len(view.in_shape) == 1 and end.map is not None:
        multiplier = multiplier[numerics.interleaved_order(end.map)]
    period = math.lcm(multiplier.size, end.lanes)
    return np.tile(multiplier, period // multiplier.size)


def _stream_positions(end):
    """C-order element of each stream position of ``end``'s frame."""
    if end.map is None:
        return np.arange(end.elements)
    return numerics.interleaved_order(end.map)


def _add(low, view, ends):
    lanes = ends[0].lanes
    ends = list(ends)
    if ends[1].map != ends[0].map:
        # The operands stream in different orders (a flattened map and a vector): the second
        # is put in the first one's order.
        name = f"{view.name}_order"
        end = low.regroup(f"{name}1", ends[1], 1)
        order = np.argsort(_stream_positions(ends[1]))[_stream_positions(ends[0])]
        end = low.append(name, Reorder, {"order": order, "shape": end.shape}, end)
        ends[1] = end.moved(end.port, map=ends[0].map)
    operands = [low.regroup(f"{view.name}_{i}", e, lanes) for i, e in enumerate(ends)]
    fifos = []
    for i, e in enumerate(operands):
        fifos.append(f"{view.name}_fifo{i}")
        # The depth is the scheduler's to choose; 1 stands for "a register stage" until then.
        operands[i] = low.append(fifos[-1], StreamFifo, {"shape": e.shape, "lanes": lanes,
                                                         "depth": 1}, e)
    low.net.joins[view.name] = fifos
    out = low.append(view.name, Add, {"elements": view.out_elements, "lanes": lanes,
                                      "shape": operands[0].shape,
                                      "skip_shape": operands[1].shape}, operands[0])
    low.net.links.append((operands[1].port, (view.name, "i_skip", None)))
    shape = Add.out_shape_of(operands[0].shape, operands[1].shape)
    return out.moved(out.port, bits=shape.width, signed=shape.signed, map=ends[0].map)


def _flatten(low, view, ends):
    # The stream is already flat; what reads it follows the map's HWC order.
    return ends[0]


#: The lowering rule of each op kind (see :class:`hwgen.ops.OpView`).
RULES = {"dense": _dense, "conv": _conv, "depthwise": _depthwise, "maxpool": _pool,
         "avgpool": _pool, "global_avgpool": _global_pool, "requantize": _requantize,
         "add": _add, "flatten": _flatten}


def lower(graph, folding, device="xc7", lut_lanes=None, rom_styles=None):
    """The :class:`Netlist` of ``graph`` (valid, supported, in fold order) folded as
    ``folding``; see :class:`~hwgen.accelerator.Accelerator` for the parameters."""
    low = _Lowering(graph, folding, device, lut_lanes, rom_styles)
    spec = graph.input
    shape = tuple(spec.shape)
    net = low.net
    net.input = End((None, "i_stream", None), spec.bits, spec.signed,
                    stream_lanes(graph, folding)["input"], int(np.prod(shape)),
                    shape if len(shape) > 1 else None)
    ends = {"input": low.share("input", net.input)}
    for name, view in low.views.items():
        end = RULES[view.kind](low, view, [ends[v].pop(0) for v in view.node.inputs])
        ends[name] = low.share(name, end)
    net.output = ends[graph.output].pop(0)
    net.links.append((net.output.port, (None, "o_stream", None)))
    return net
