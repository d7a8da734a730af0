"""Folding: how many filters (``pe``) and inputs (``simd``) each layer with weights handles per
cycle (dense layers and convolutions)."""

import math

import numpy as np

from .blocks._util import divisors
from .errors import FoldingError

__all__ = ["check_folding", "choose_folding", "final_denses", "final_filters",
           "filter_layers", "layer_cycles", "precision_counts"]

FILTER_OPS = ("dense", "conv1d", "conv2d")


def is_depthwise(node):
    return node.op in ("conv1d", "conv2d") and node.attrs.get("groups", 1) > 1


def filter_layers(graph):
    """Dense and convolution nodes, in order."""
    return [n for n in graph.nodes if n.op in FILTER_OPS]


def final_filters(graph):
    """Layers whose filter order reaches the graph output: the last layer with weights, and
    the layers before it while only depthwise (channel-wise) layers stand in between."""
    finals = set()
    for node in reversed(filter_layers(graph)):
        finals.add(node.name)
        if not is_depthwise(node):
            break
    return finals


final_denses = final_filters


def precision_counts(node):
    bits, counts = np.unique(node.tensors["weight_bits"], return_counts=True)
    return dict(zip(bits.tolist(), counts.tolist()))


class _Layer:
    """What folding needs to know of one dense or convolution layer."""

    def __init__(self, node, shapes):
        w = node.tensors["weight"]
        self.node, self.name = node, node.name
        self.out = int(w.shape[0])
        self.depthwise = is_depthwise(node)
        if node.op == "dense":
            self.in_count, self.in_name, self.out_name = int(w.shape[1]), "in_features", \
                "out_features"
            self.window, self.pixels = 1, 1
        else:
            self.in_count = int(shapes[node.inputs[0]][0])
            self.in_name, self.out_name = "in_channels", "out_channels"
            self.window = int(np.prod(w.shape[2:]))
            self.pixels = int(np.prod(shapes[node.name][1:]))

    def cycles(self, pe, simd):
        """Clock cycles per frame of the layer's arithmetic unit."""
        if self.depthwise:
            return self.pixels * self.window * (self.in_count // simd)
        return self.pixels * (self.out // pe) * (self.window * self.in_count // simd)

    @property
    def macs(self):
        if self.depthwise:
            return self.pixels * self.window * self.in_count
        return self.pixels * self.out * self.window * self.in_count


def layer_cycles(graph, folding):
    """``{layer: clock cycles per frame}`` of each dense and convolution layer's unit."""
    shapes = graph.shapes()
    return {n.name: _Layer(n, shapes).cycles(*folding[n.name]) for n in filter_layers(graph)}


def _precision_problem(node, pe, final):
    """Why ``pe`` cannot give every fold the same precision pattern, or None."""
    if is_depthwise(node):
        return None  # each depthwise lane is as wide as the widest channel it serves
    out_features = node.tensors["weight"].shape[0]
    folds = out_features // pe
    what = "out_features" if node.op == "dense" else "out_channels"
    if final:
        # The output order is fixed, so the pattern must already repeat fold after fold.
        lanes = node.tensors["weight_bits"].reshape(folds, pe)
        if (lanes != lanes[0]).any():
            return (f"layer '{node.name}': PE {pe} gives folds with different precision patterns, "
                    f"and as the output layer its filters cannot be reordered; choose PE "
                    f"{out_features} (one fold) or a precision pattern that repeats every PE "
                    f"filters")
        return None
    uneven = {b: c for b, c in precision_counts(node).items() if c % folds}
    if uneven:
        counts = ", ".join(f"{c} filters of {b} bits" for b, c in uneven.items())
        return (f"layer '{node.name}': PE {pe} makes {folds} output folds, which cannot share "
                f"{counts} evenly; choose a PE that makes {what} / PE divide each "
                f"precision's filter count")
    return None


def _is_count(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def check_folding(graph, folding):
    """Raise one :class:`FoldingError` listing every problem of ``folding`` for ``graph``.

    Rules: ``pe`` divides out_features (out_channels), ``simd`` divides in_features
    (in_channels for a convolution, whose window brings ``simd`` channels per beat), a
    depthwise convolution has ``pe == simd``, every fold repeats the precision pattern (see
    :func:`_precision_problem`), and the ``simd`` of a layer and the elements per beat of the
    stream before it divide one another.
    """
    problems = []
    finals = final_filters(graph)
    shapes = graph.shapes()
    lanes = None
    for node in filter_layers(graph):
        if node.name not in folding:
            problems.append(f"layer '{node.name}': folding gives no PE and SIMD")
            lanes = None
            continue
        pe, simd = folding[node.name]
        layer = _Layer(node, shapes)
        ok = True
        for what, count, value, feature in (("PE", layer.out, pe, layer.out_name),
                                            ("SIMD", layer.in_count, simd, layer.in_name)):
            if not _is_count(value) or count % value:
                problems.append(f"layer '{node.name}': {what} {value} does not divide {feature} "
                                f"{count}; choose one of {', '.join(map(str, divisors(count)))}")
                ok = False
        if ok and layer.depthwise and pe != simd:
            problems.append(f"layer '{node.name}': PE {pe} must equal SIMD {simd} in a "
                            f"depthwise convolution (it outputs the channels it takes in)")
            ok = False
        if ok:
            problem = _precision_problem(node, pe, node.name in finals)
            if problem:
                problems.append(problem)
            if lanes is not None and max(lanes, simd) % min(lanes, simd):
                problems.append(f"layer '{node.name}': SIMD {simd} and the {lanes} elements per "
                                f"beat of the layer before it must divide one another")
        lanes = pe if ok else None
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
    PEs (smaller accumulator and output logic) win. Layers in ``fixed`` (``{name: (pe,
    simd)}``) keep their folding. A convolution's cycles per frame are
    ``pixels * (out_channels / pe) * (kh * kw * in_channels / simd)``; a depthwise one's
    ``pixels * kh * kw * channels / simd`` with ``pe == simd``.
    """
    fixed = fixed or {}
    if mac_budget < 1:
        raise ValueError(f"mac_budget must be at least 1, not {mac_budget}")
    shapes = graph.shapes()
    layers = [_Layer(n, shapes) for n in filter_layers(graph)]
    if not layers:
        return {}
    target = max(math.ceil(layer.macs / mac_budget) for layer in layers)
    finals = final_filters(graph)
    folding, lanes = {}, None
    for layer in layers:
        if layer.name in fixed:
            folding[layer.name] = tuple(fixed[layer.name])
            lanes = folding[layer.name][0]
            continue
        options = []
        for pe in divisors(layer.out):
            if _precision_problem(layer.node, pe, layer.name in finals):
                continue
            for simd in divisors(layer.in_count):
                if layer.depthwise and simd != pe:
                    continue
                if lanes is not None and max(lanes, simd) % min(lanes, simd):
                    continue
                cycles = layer.cycles(pe, simd)
                macs = simd if layer.depthwise else pe * simd
                options.append((max(cycles, target), macs, pe, simd))
        _, _, pe, simd = min(options)
        folding[layer.name] = (pe, simd)
        lanes = pe
    return folding
