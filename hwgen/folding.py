"""Folding: how many filters (``pe``) and inputs (``simd``) each dense layer handles per cycle."""

import math

import numpy as np

from .blocks._util import divisors
from .errors import FoldingError

__all__ = ["check_folding", "choose_folding", "final_denses", "precision_counts"]


def final_denses(graph):
    """Dense layers whose filter order reaches the graph output (no dense after them)."""
    denses = [n.name for n in graph.nodes if n.op == "dense"]
    return set(denses[-1:])


def precision_counts(node):
    bits, counts = np.unique(node.tensors["weight_bits"], return_counts=True)
    return dict(zip(bits.tolist(), counts.tolist()))


def _precision_problem(node, pe, final):
    """Why ``pe`` cannot give every fold the same precision pattern, or None."""
    out_features = node.tensors["weight"].shape[0]
    folds = out_features // pe
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
                f"{counts} evenly; choose a PE that makes out_features / PE divide each "
                f"precision's filter count")
    return None


def check_folding(graph, folding):
    """Raise one :class:`FoldingError` listing every problem of ``folding`` for ``graph``."""
    problems = []
    finals = final_denses(graph)
    lanes = None
    for node in graph.nodes:
        if node.op != "dense":
            continue
        if node.name not in folding:
            problems.append(f"layer '{node.name}': folding gives no PE and SIMD")
            continue
        pe, simd = folding[node.name]
        out_features, in_features = node.tensors["weight"].shape
        ok = True
        for what, count, value, feature in (("PE", out_features, pe, "out_features"),
                                            ("SIMD", in_features, simd, "in_features")):
            if not isinstance(value, (int, np.integer)) or value < 1 or count % value:
                problems.append(f"layer '{node.name}': {what} {value} does not divide {feature} "
                                f"{count}; choose one of {', '.join(map(str, divisors(count)))}")
                ok = False
        if ok:
            problem = _precision_problem(node, pe, node.name in finals)
            if problem:
                problems.append(problem)
            if lanes is not None and max(lanes, simd) % min(lanes, simd):
                problems.append(f"layer '{node.name}': SIMD {simd} and the {lanes} elements per "
                                f"beat of the layer before it must divide one another")
        lanes = pe
    unknown = sorted(set(folding) - {n.name for n in graph.nodes if n.op == "dense"})
    if unknown:
        problems.append(f"folding names layers that are not dense layers of the model: "
                        f"{', '.join(unknown)}")
    if problems:
        raise FoldingError("\n".join(problems))


def choose_folding(graph, mac_budget=64, fixed=None):
    """A simple balanced folding: every layer finishes within the slowest layer's cycles.

    The largest layer gets ``mac_budget`` multiply-accumulates per cycle; every layer then takes
    the fewest MACs per cycle (``pe * simd``) that keeps it within that layer's cycle count, so
    no layer waits on another more than it must. Among equals, fewer PEs (smaller accumulator
    and output logic) win. Layers in ``fixed`` (``{name: (pe, simd)}``) keep their folding.
    """
    fixed = fixed or {}
    if mac_budget < 1:
        raise ValueError(f"mac_budget must be at least 1, not {mac_budget}")
    denses = [n for n in graph.nodes if n.op == "dense"]
    target = max(math.ceil(n.tensors["weight"].size / mac_budget) for n in denses)
    finals = final_denses(graph)
    folding, lanes = {}, None
    for node in denses:
        if node.name in fixed:
            folding[node.name] = tuple(fixed[node.name])
            lanes = folding[node.name][0]
            continue
        out_features, in_features = node.tensors["weight"].shape
        options = []
        for pe in divisors(out_features):
            if _precision_problem(node, pe, node.name in finals):
                continue
            for simd in divisors(in_features):
                if lanes is not None and max(lanes, simd) % min(lanes, simd):
                    continue
                cycles = (out_features // pe) * (in_features // simd)
                options.append((max(cycles, target), pe * simd, pe, simd))
        _, _, pe, simd = min(options)
        folding[node.name] = (pe, simd)
        lanes = pe
    return folding
