"""reorder_filters: give every output fold of a layer the same precision pattern."""

import numpy as np

from ..errors import UnsupportedLayerError
from ..folding import final_denses

__all__ = ["reorder_filters", "fold_order"]


def fold_order(weight_bits, pe):
    """Filter permutation so fold ``f`` holds the ``f``-th share of each precision, low bits first.

    Returns ``order`` with new filter ``j`` = old filter ``order[j]``; within a precision the
    original order is kept.
    """
    weight_bits = np.asarray(weight_bits)
    folds = weight_bits.size // pe
    groups = [np.flatnonzero(weight_bits == b) for b in np.unique(weight_bits)]
    return np.concatenate([g.reshape(folds, -1)[f] for f in range(folds) for g in groups])


def reorder_filters(graph, folding):
    """Permute the filters of each hidden dense layer into fold order, at compile time.

    The consumers are permuted to match (requantize multipliers; the next dense layer's input
    columns), so the graph computes exactly the same outputs and the hardware needs no run-time
    reordering. The output layer is left alone (its order is the user's). Returns a new graph.
    """
    graph = graph.copy()
    finals = final_denses(graph)
    for index, node in enumerate(graph.nodes):
        if node.op != "dense" or node.name in finals:
            continue
        order = fold_order(node.tensors["weight_bits"], folding[node.name][0])
        if (order == np.arange(order.size)).all():
            continue
        for key in ("weight", "bias", "weight_bits", "weight_scale"):
            node.tensors[key] = node.tensors[key][order]
        for later in graph.nodes[index + 1:]:
            if later.op == "requantize":
                later.tensors["multiplier"] = later.tensors["multiplier"][order]
            elif later.op == "dense":
                later.tensors["weight"] = later.tensors["weight"][:, order]
                break
            elif later.op != "flatten":
                raise UnsupportedLayerError(
                    f"layer '{later.name}': reorder_filters cannot carry a filter permutation "
                    f"through '{later.op}'")
    return graph
