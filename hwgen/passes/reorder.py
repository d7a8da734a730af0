"""reorder_filters: give every output fold of a layer the same precision pattern."""

import numpy as np

from ..errors import UnsupportedLayerError
from ..folding import filter_layers, final_filters, is_depthwise

__all__ = ["reorder_filters", "fold_order"]

#: Operations that keep channels apart and in order: a channel permutation passes through.
CHANNELWISE_OPS = ("maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d", "global_avgpool")


def fold_order(weight_bits, pe):
    """Filter permutation so fold ``f`` holds the ``f``-th share of each precision, low bits first.

    Returns ``order`` with new filter ``j`` = old filter ``order[j]``; within a precision the
    original order is kept.
    """
    weight_bits = np.asarray(weight_bits)
    folds = weight_bits.size // pe
    groups = [np.flatnonzero(weight_bits == b) for b in np.unique(weight_bits)]
    return np.concatenate([g.reshape(folds, -1)[f] for f in range(folds) for g in groups])


def _permute_filters(node, order):
    for key in ("weight", "bias", "weight_bits", "weight_scale"):
        node.tensors[key] = node.tensors[key][order]


def reorder_filters(graph, folding):
    """Permute the filters of each hidden dense or convolution layer into fold order.

    The consumers are permuted to match, so the graph computes exactly the same outputs and
    the hardware needs no run-time reordering: requantize multipliers; pools (channel-wise,
    order-preserving) pass the permutation on; a depthwise convolution permutes its channels
    and passes it on; a flatten of a ``(C, *spatial)`` map permutes the next dense layer's
    columns in blocks of one channel (C-order index ``c * pixels + p``); the next dense layer's
    columns or the next convolution's input channels end it. The output layers (see
    :func:`~hwgen.folding.final_filters`) keep the user's order, and depthwise layers need no
    order. Returns a new graph.
    """
    graph = graph.copy()
    finals = final_filters(graph)
    shapes = graph.shapes()
    for node in filter_layers(graph):
        if node.name in finals or is_depthwise(node):
            continue
        order = fold_order(node.tensors["weight_bits"], folding[node.name][0])
        if (order == np.arange(order.size)).all():
            continue
        _permute_filters(node, order)
        index = graph.nodes.index(node)
        pixels = 1
        for later in graph.nodes[index + 1:]:
            if later.op == "requantize":
                later.tensors["multiplier"] = later.tensors["multiplier"][order]
            elif later.op in CHANNELWISE_OPS:
                continue
            elif later.op == "flatten":
                shape = shapes[later.inputs[0]]
                pixels = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            elif later.op == "dense":
                w = later.tensors["weight"]
                later.tensors["weight"] = w.reshape(w.shape[0], order.size, pixels)[:, order] \
                    .reshape(w.shape)
                break
            elif is_depthwise(later):
                _permute_filters(later, order)
            elif later.op in ("conv1d", "conv2d"):
                later.tensors["weight"] = later.tensors["weight"][:, order]
                break
            else:
                raise UnsupportedLayerError(
                    f"layer '{later.name}': reorder_filters cannot carry a filter permutation "
                    f"through '{later.op}'")
    return graph
