"""Prices of a graph's layers for the folding search: the cost model (:mod:`hwgen.model`)
applied to each layer's view (:mod:`hwgen.ops`) under an option, and to the blocks streamed
at its beat (requantizers, pools, joins)."""

import math

import numpy as np

from quant import numerics

from . import packing
from .folding import fixed_order_filters, lane_bits
from .blocks import (Add, Broadcast, MaxPool, SlidingWindow, StreamFifo, SumPool,
                     WidthConverter)
from .model import Layer, Resources, costs
from .model.layers import layer_cost
from .ops import op_views

__all__ = ["Network", "join_costs", "stream_glue"]

#: Views that take at most one pixel per beat.
POOL_KINDS = ("maxpool", "avgpool", "global_avgpool")


def _type(lo, hi):
    return numerics.bits_for_range(min(int(lo), 0), max(int(hi), 0))


class Network:
    """What the search needs of a graph: views, value types, elements, the values streamed at
    each layer's beat, and the cost model applied to them."""

    def __init__(self, graph, family):
        graph.validate()
        self.graph, self.family = graph, family
        self._values = {}
        self.views = op_views(graph)
        ranges = graph.ranges()
        self.types = {"input": (graph.input.bits, graph.input.signed)}
        for name, view in self.views.items():
            a = view.node.attrs
            self.types[name] = (a["out_bits"], a["out_signed"]) if view.kind == "requantize" \
                else _type(*ranges[name])
        self.fixed = fixed_order_filters(graph)
        self.filters = [v for v in self.views.values() if v.has_weights]
        self.elements = {"input": int(np.prod(graph.input.shape))}
        self.elements |= {name: view.out_elements for name, view in self.views.items()}
        # Values whose stream carries a filter layer's beat: through requantize, pools,
        # flatten and adds (first operand).
        self.stream_of = {}
        for name, view in self.views.items():
            self.stream_of[name] = name if view.has_weights else \
                self.stream_of.get(view.node.inputs[0])
        self.carried = {}   # filter layer: values streamed at its beat
        for value, owner in self.stream_of.items():
            if owner is not None:
                self.carried.setdefault(owner, []).append(value)
        self._followers = {}

    def lane_pattern(self, view, pe):
        """``{bits: lanes}`` of each fold (see :func:`~hwgen.folding.lane_bits`)."""
        values, counts = np.unique(lane_bits(view.node, pe, view.name in self.fixed),
                                   return_counts=True)
        return dict(zip(values.tolist(), counts.tolist()))

    def layer(self, view, option):
        """The :class:`~hwgen.model.Layer` of a layer with weights built as ``option``."""
        in_bits, in_signed = self.types[view.node.inputs[0]]
        bits = view.weight_bits
        if view.depthwise:
            hist = dict(zip(*[a.tolist() for a in np.unique(bits, return_counts=True)]))
        else:
            # Filters as the lanes hold them: one in a widened lane counts at the lane's bits.
            folds = bits.size // option.pe
            hist = {b: n * folds for b, n in self.lane_pattern(view, option.pe).items()}
        g = view.geometry
        in_shape = (view.in_elements,) if view.kind == "dense" else view.in_shape
        return Layer(view.kind, in_shape, in_bits, in_signed, out_channels=view.out_channels,
                     kernel=g.kernel, stride=g.stride, padding=g.padding, pe=option.pe,
                     simd=option.simd, weight_bits=hist, lut_lanes=option.lut_lanes,
                     multiplier=self.family, acc_bits=self.types[view.name][0],
                     rom_style=option.style, weight_values=self.weight_values(view),
                     name=view.name)

    def weight_values(self, view):
        """:attr:`~hwgen.model.Layer.weight_values` of a layer: each width's value counts."""
        if view.name not in self._values:
            matrix = view.matrix.reshape(view.out_channels, -1)
            bits = view.weight_bits
            self._values[view.name] = tuple(
                (int(b), tuple(zip(*(a.tolist() for a in np.unique(matrix[bits == b],
                                                                   return_counts=True)))))
                for b in np.unique(bits))
        return self._values[view.name]

    def beat_lanes(self, owner, lanes):
        """``{value: (elements per input beat, per output beat)}`` of the values streamed at
        layer ``owner``'s beat of ``lanes`` elements: a pool takes several whole pixels per beat
        where its windows tile the rows, else at most one pixel (the lowering regroups a
        wider stream to it; :class:`~hwgen.ops.PoolView`), and what follows it keeps the
        pool's output beat."""
        out = {}
        for value in self.carried.get(owner, []):
            view = self.views[value]
            if view.kind in POOL_KINDS:
                out[value] = (view.in_lanes(lanes), view.out_lanes(lanes))
                lanes = out[value][1]
            else:
                out[value] = (lanes, lanes)
        return out

    def streamed(self, owner, lanes):
        """Cycles per frame of the blocks streamed at layer ``owner``'s beat of ``lanes``
        elements: the most beats any of them takes in or gives out."""
        beats = self.beat_lanes(owner, lanes)
        return max(max(self.elements[v] // out,
                       self.elements[self.views[v].node.inputs[0]] // n if v != owner else 0)
                   for v, (n, out) in beats.items())

    def follower_cost(self, view, lanes):
        """Blocks streamed at the layer's beat: requantizers, pools and joins after it."""
        key = (view.name, lanes)
        if key not in self._followers:
            self._followers[key] = sum(
                (self.value_cost(self.views[v], n)
                 for v, (n, _) in self.beat_lanes(view.name, lanes).items() if v != view.name),
                Resources())
        return self._followers[key]

    def value_cost(self, view, lanes):
        """The cost of a node without weights streamed ``lanes`` elements per beat."""
        in_bits, in_signed = self.types[view.node.inputs[0]]
        a = view.node.attrs
        common = dict(in_shape=view.in_shape, simd=lanes, name=view.name)
        if view.kind == "requantize":
            mult = view.node.tensors["multiplier"]
            power = len(set(mult.tolist())) == 1 and (int(mult[0]) & (int(mult[0]) - 1)) == 0
            offset = view.node.tensors.get("offset")
            offset_bits = 0 if offset is None or not offset.any() else \
                numerics.bits_for_range(min(int(offset.min()), -1), max(int(offset.max()), 0))[0]
            layer = Layer("requantize", in_bits=in_bits, in_signed=True, out_bits=a["out_bits"],
                          out_signed=a["out_signed"], offset_bits=offset_bits,
                          scale="power_of_two" if power else "per_channel", **common)
        elif view.kind in POOL_KINDS:
            g = view.geometry
            layer = Layer(view.kind, in_bits=in_bits, in_signed=in_signed, kernel=g.kernel,
                          stride=g.stride, padding=g.padding, **common)
        elif view.kind == "add":
            skip_bits, skip_signed = self.types[view.node.inputs[1]]
            layer = Layer("add", in_bits=in_bits, in_signed=in_signed, skip_bits=skip_bits,
                          skip_signed=skip_signed, fifo_depth=self.skip_depth(view, lanes),
                          **common)
        else:
            return Resources()
        return layer_cost(layer, self.family)

    def skip_depth(self, view, lanes):
        """Beats the skip operand of an add waits for the body: the pixels each window on
        the body needs before its first output, plus a few per block (an estimate; the
        scheduler sizes a built design's FIFOs exactly)."""
        skip = view.node.inputs[1]
        stop = set(self._ancestors(skip))
        value, pixels = view.node.inputs[0], 0
        while value not in stop and value != "input":
            body = self.views[value]
            if body.kind in ("conv", "depthwise"):
                g = body.geometry
                pixels += max(g.kernel[0] - g.padding[0] - 1, 0) * g.width \
                    + max(g.kernel[1] - g.padding[1], 1) + 2
            value = body.node.inputs[0]
        shape = self.views[view.name].in_shapes[1]
        channels = shape[0] if len(shape) > 1 else 1
        return max(1, math.ceil(pixels * channels / lanes))

    def _ancestors(self, value):
        seen = [value]
        while value != "input":
            value = self.views[value].node.inputs[0]
            seen.append(value)
        return seen

    def lut_choices(self, view, pe):
        """LUT-lane choices for the lowest precision: none, half of its packs, all of its
        lanes (as ``((bits, lanes),)`` tuples)."""
        if view.depthwise:
            return [()]
        pattern = self.lane_pattern(view, pe)
        low = min(pattern)
        in_bits, in_signed = self.types[view.node.inputs[0]]
        plan = packing.plan_group(self.family, low, in_bits, in_signed)
        if plan is None:
            return [((low, pattern[low]),)]
        lanes = pattern[low]
        packs = -(-lanes // plan.lanes)
        counts = sorted({0, min(lanes, (packs // 2) * plan.lanes), lanes})
        return [((low, n),) if n else () for n in counts]


def stream_glue(netlist, family):
    """``[(name, kind, Resources)]``: what a layer-by-layer estimate leaves out of the
    accelerator the lowering builds (``netlist``, scheduled): width converters where a
    stream's beat changes, forks of values with several readers, line buffers the schedule
    made deeper than a window's own (:func:`~hwgen.schedule.schedule` deepens a window fed
    faster than it reads its rows, so that it takes every beat as offered), the FIFOs that
    queue a pool's bursts for a converter, and the accelerator's counters. The joins' FIFOs
    are priced with their adds."""
    glue = []
    join_fifos = {fifo for fifos in netlist.joins.values() for fifo in fifos}
    for name, spec in netlist.blocks.items():
        params = spec.params
        if issubclass(spec.cls, (SlidingWindow, MaxPool, SumPool)) and \
                params.get("buffer_rows") is not None:
            own = {k: v for k, v in params.items() if k != "buffer_rows"}
            glue.append((f"{name}_buffer", "line buffer", _line_buffer(family, spec.cls, params)
                         - _line_buffer(family, spec.cls, own)))
        elif spec.cls is WidthConverter:
            glue.append((name, "width converter", costs.width_converter_cost(
                family, element_bits=params["shape"].width, in_count=params["in_count"],
                out_count=params["out_count"])))
        elif spec.cls is Broadcast:
            glue.append((name, "fork", costs.broadcast_cost(family, outputs=params["outputs"])))
        elif spec.cls is StreamFifo and name not in join_fifos:
            glue.append((name, "FIFO", costs.fifo_cost(
                family, width=params["shape"].width * params["lanes"], depth=params["depth"])))
    out = netlist.output
    glue.append(("accelerator", "counters",
                 costs.accelerator_cost(family, out_beats=out.elements // out.lanes)))
    return glue


def join_costs(netlist, family, fifo_depths):
    """``{add: [(name, kind, Resources)]}``: each residual add and the FIFOs on its operands
    at the depths the schedule gave them (``fifo_depths``), in place of the add's estimate
    (which guesses the skip FIFO's depth)."""
    joins = {}
    for add, fifos in netlist.joins.items():
        params = netlist.blocks[add].params
        shape, skip = params["shape"], params["skip_shape"]
        rows = [(add, "add", costs.add_cost(
            family, lanes=params["lanes"], x_bits=shape.width, skip_bits=skip.width,
            out_bits=Add.out_shape_of(shape, skip).width))]
        for fifo in fifos:
            p = netlist.blocks[fifo].params
            rows.append((fifo, "FIFO", costs.fifo_cost(
                family, width=p["shape"].width * p["lanes"], depth=fifo_depths[fifo])))
        joins[add] = rows
    return joins


def _line_buffer(family, cls, params):
    """The line buffer and counters of a window (or a pool's) built from ``params``."""
    timing = cls.timing_of(**params)
    timing = getattr(timing, "inner", timing)
    g = timing.geometry
    return costs.window_cost(
        family, height=g.height, width=g.width, folds=g.folds, kernel=(g.kh, g.kw),
        stride=(g.sh, g.sw), padding=(g.ph, g.pw), out_height=g.out_h, out_width=g.out_w,
        element_bits=params["shape"].width, lanes=params["simd"],
        buffer_rows=timing.buffer_rows, taps=g.taps)
