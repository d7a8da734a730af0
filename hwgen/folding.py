"""Folding: how many filters (``pe``) and inputs (``simd``) each layer with weights handles per
cycle (dense layers and convolutions)."""

import math

import numpy as np

from quant.graph import FILTER_OPS

from .blocks._util import divisors
from .errors import FoldingError
from .ops import filter_views, op_views

__all__ = ["check_folding", "choose_folding", "fixed_order_filters", "filter_layers",
           "fold_order", "is_depthwise", "lane_bits", "layer_cycles", "precision_counts",
           "stream_lanes", "widened_filters"]


def is_depthwise(node):
    return node.op in ("conv1d", "conv2d") and node.attrs.get("groups", 1) > 1


def filter_layers(graph):
    """Dense and convolution nodes, in order."""
    return [n for n in graph.nodes if n.op in FILTER_OPS]


#: Pools: they take at most one pixel per beat.
POOL_OPS = ("maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d", "global_avgpool")
#: Layers that keep channels apart and in order: a channel permutation passes through them.
CHANNELWISE_OPS = ("requantize", "flatten", "maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d",
                   "global_avgpool")


def fixed_order_filters(graph):
    """Layers whose filter order is seen outside them, so it cannot be permuted.

    A layer's output channels pass through channel-wise layers, depthwise convolutions and
    forks until a dense layer or a convolution takes them in (and can take them in any order).
    If they reach the graph output or a residual ``add`` instead, their order is fixed: the
    output's by the user, an add's by its other operand.
    """
    consumers = {}
    for node in graph.nodes:
        for name in node.inputs:
            consumers.setdefault(name, []).append(node)

    memo = {}

    def seen(name):
        if name not in memo:
            memo[name] = name == graph.output or any(
                node.op == "add" or
                ((node.op in CHANNELWISE_OPS or is_depthwise(node)) and seen(node.name))
                for node in consumers.get(name, []))
        return memo[name]

    return {n.name for n in filter_layers(graph) if seen(n.name)}


def precision_counts(node):
    bits, counts = np.unique(node.tensors["weight_bits"], return_counts=True)
    return dict(zip(bits.tolist(), counts.tolist()))


def layer_cycles(graph, folding):
    """``{layer: clock cycles per frame}`` of each dense and convolution layer's unit."""
    return {v.name: v.cycles(*folding[v.name]) for v in filter_views(graph)}


def fold_order(weight_bits, pe):
    """Filter permutation that gives every output fold of ``pe`` lanes the same precisions.

    When each precision's filter count divides into the folds, fold ``f`` holds the ``f``-th
    share of each precision, low bits first. Otherwise the filters, widest first, are dealt
    to the folds in turn, so a precision's filters sit in as few lanes as possible (the
    first ``ceil(count / folds)``). Within a precision the original order is kept. Returns
    ``order`` with new filter ``j`` = old filter ``order[j]``.
    """
    weight_bits = np.asarray(weight_bits)
    folds = weight_bits.size // pe
    groups = [np.flatnonzero(weight_bits == b) for b in np.unique(weight_bits)]
    if all(g.size % folds == 0 for g in groups):
        return np.concatenate([g.reshape(folds, -1)[f] for f in range(folds) for g in groups])
    widest_first = np.concatenate(groups[::-1])
    return np.concatenate([widest_first[f::folds] for f in range(folds)])


def lane_bits(node, pe, fixed):
    """Weight bits of each of a layer's ``pe`` lanes: the widest filter the lane serves.

    A lane multiplies one filter per output fold, so it is as wide as the widest of them
    (narrower filters' weights fit it exactly). A layer whose order is not ``fixed`` is
    taken in :func:`fold_order` first, as ``reorder_filters`` leaves it; a depthwise layer's
    lanes serve channels, one per fold.
    """
    bits = np.asarray(node.tensors["weight_bits"])
    if not fixed and not is_depthwise(node):
        bits = bits[fold_order(bits, pe)]
    return bits.reshape(-1, pe).max(axis=0)


def widened_filters(node, pe, fixed):
    """Filters that ``pe`` puts in a lane wider than their own bits."""
    bits = np.asarray(node.tensors["weight_bits"])
    if not fixed and not is_depthwise(node):
        bits = bits[fold_order(bits, pe)]
    return int((np.tile(lane_bits(node, pe, fixed), bits.size // pe) > bits).sum())


def check_folding(graph, folding):
    """Raise one :class:`FoldingError` listing every problem of ``folding`` for ``graph``.

    Rules: ``pe`` divides out_features (out_channels), ``simd`` divides in_features
    (in_channels for a convolution, whose window brings ``simd`` channels of one position per
    beat), and a depthwise convolution has ``pe == simd``. A convolution (depthwise or not)
    may also take ``simd = taps * in_channels`` for ``taps`` dividing ``kh * kw`` (a depthwise
    one then with ``pe == in_channels``): its window then brings ``taps`` whole positions per
    beat from an input stream of one pixel per beat; a convolution (not depthwise) any other
    divisor of ``kh * kw * in_channels``, its window splitting a larger beat; a convolution
    whose windows tile its input's rows may take ``simd = positions * kh * kw * in_channels``
    with ``pe == out_channels``: whole windows of ``positions`` output positions per beat
    (:attr:`~hwgen.ops.FilterView.simd_options`). Any ``pe`` suits any mix of precisions: a
    lane is as wide as the widest filter it serves (:func:`lane_bits`). Any ``simd`` can follow
    any stream: where the elements per beat change the accelerator regroups the stream (see
    :func:`stream_lanes`).
    """
    problems = []
    for view in filter_views(graph):
        if view.name not in folding:
            problems.append(f"layer '{view.name}': folding gives no PE and SIMD")
            continue
        problems += view.folding_problems(*folding[view.name])
    unknown = sorted(set(folding) - {n.name for n in filter_layers(graph)})
    if unknown:
        problems.append(f"folding names layers that are not dense layers of the model: "
                        f"{', '.join(unknown)}; only dense layers and convolutions are folded")
    if problems:
        raise FoldingError("\n".join(problems))


def choose_folding(graph, mac_budget=64, fixed=None):
    """A simple balanced folding: every layer finishes within the slowest layer's cycles.

    The layer with the most multiply-accumulates per frame gets ``mac_budget`` MACs per cycle;
    every layer then takes the fewest MACs per cycle (``pe * simd``) that keeps it within that
    layer's cycle count, so no layer waits on another more than it must. Among equals, fewer
    filters in widened lanes (see :func:`lane_bits`), then fewer MACs per cycle, then fewer PEs
    (smaller accumulator and output logic) win. Layers in ``fixed`` (``{name: (pe,
    simd)}``) keep their folding. A convolution's cycles per frame are
    ``pixels * (out_channels / pe) * (kh * kw * in_channels / simd)``, ``simd`` any of
    :attr:`~hwgen.ops.FilterView.simd_options` (several window positions per beat when it is
    above in_channels); a depthwise one's ``pixels * kh * kw * channels / simd`` with
    ``pe == simd``, or ``pe == channels`` when ``simd`` spans several positions.
    """
    fixed = fixed or {}
    if mac_budget < 1:
        raise ValueError(f"mac_budget must be at least 1, not {mac_budget}")
    layers = filter_views(graph)
    if not layers:
        return {}
    target = max(math.ceil(layer.macs / mac_budget) for layer in layers)
    finals = fixed_order_filters(graph)
    folding = {}
    for layer in layers:
        if layer.name in fixed:
            folding[layer.name] = tuple(fixed[layer.name])
            continue
        lanes = stream_lanes(graph, folding).get(layer.node.inputs[0])
        options, others = [], []
        for pe in divisors(layer.out_channels):
            widened = widened_filters(layer.node, pe, layer.name in finals)
            for simd in layer.simd_options:
                if layer.depthwise and pe != layer.in_lanes(simd) or \
                        layer.positions(simd) > 1 and pe != layer.out_channels:
                    continue
                cycles = layer.cycles(pe, simd)
                macs = simd if layer.depthwise else pe * simd
                # A SIMD that divides or is divided by the stream's beat needs one converter.
                beat = layer.in_lanes(simd)
                fits = lanes is None or max(lanes, beat) % min(lanes, beat) == 0
                (options if fits else others).append(
                    (max(cycles, target), widened, macs, pe, simd))
        *_, pe, simd = min(options or others)
        folding[layer.name] = (pe, simd)
    return folding


def stream_lanes(graph, folding):
    """``{value: elements per beat}`` of the accelerator's streams for ``folding``.

    A dense layer or convolution sends ``pe`` channels of each output position per beat
    (:meth:`~hwgen.ops.FilterView.out_lanes`); requantize, flatten and forks keep their
    input's beat; a pool takes several whole pixels a beat where its windows tile the rows,
    and splits any other beat wider than a pixel (:meth:`~hwgen.ops.PoolView.out_lanes`); an ``add`` sends its first
    operand's (the other operand is regrouped to it). The input takes the beat of its first
    consumer with weights (:meth:`~hwgen.ops.FilterView.in_lanes`), or one element per beat.
    Values after a layer missing from ``folding`` map to None.
    """
    lanes = {}
    views = op_views(graph)

    def passed(node):
        """The beat a node without weights sends: its input's, or a pool's own
        (:meth:`~hwgen.ops.PoolView.out_lanes`)."""
        beat = lanes.get(node.inputs[0])
        if beat is not None and node.op in POOL_OPS:
            beat = views[node.name].out_lanes(beat)
        return beat

    for node in graph.nodes:
        if node.op in FILTER_OPS:
            lanes[node.name] = views[node.name].out_lanes(*folding[node.name]) \
                if node.name in folding else None
        else:
            lanes[node.name] = passed(node)
    first = next((n for n in graph.consumers("input") if n.op in FILTER_OPS), None)
    if first is None:
        lanes["input"] = 1
    else:
        # Above the input's channels (or features), a window brings several positions per
        # beat from a stream of whole pixels (FilterView.in_lanes).
        simd = folding.get(first.name, (None, None))[1]
        lanes["input"] = simd if simd is None else views[first.name].in_lanes(simd)
    for node in graph.nodes:   # again, now that the input is known
        if node.op not in FILTER_OPS:
            lanes[node.name] = passed(node)
    return lanes
