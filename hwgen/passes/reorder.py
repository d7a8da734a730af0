"""reorder_filters: give every output fold of a layer the same precision pattern (as far as
the filter counts allow)."""

import numpy as np

from ..errors import UnsupportedLayerError
from ..folding import (CHANNELWISE_OPS, filter_layers, fixed_order_filters, fold_order,
                       is_depthwise)

__all__ = ["reorder_filters", "fold_order"]


def _permute_filters(node, order):
    for key in ("weight", "bias", "weight_bits", "weight_scale"):
        node.tensors[key] = node.tensors[key][order]


def reorder_filters(graph, folding):
    """Permute the filters of each hidden dense or convolution layer into fold order.

    The consumers are permuted to match, so the graph computes exactly the same outputs and
    the hardware needs no run-time reordering: requantize multipliers and offsets; pools
    (channel-wise, order-preserving) pass the permutation on; a depthwise convolution permutes
    its channels and passes it on; a flatten of a ``(C, *spatial)`` map permutes the next
    dense layer's columns in blocks of one channel (C-order index ``c * pixels + p``); the next dense layer's
    columns or the next convolution's input channels end it; a fork passes it on along every
    branch. Layers whose order is seen at the output or at a residual add (see
    :func:`~hwgen.folding.fixed_order_filters`) keep the user's order, and depthwise layers
    need no order. Returns a new graph.
    """
    graph = graph.copy()
    fixed = fixed_order_filters(graph)
    shapes = graph.shapes()
    for node in filter_layers(graph):
        if node.name in fixed or is_depthwise(node):
            continue
        order = fold_order(node.tensors["weight_bits"], folding[node.name][0])
        if (order != np.arange(order.size)).any():
            _permute_filters(node, order)
            _carry(graph, node.name, order, shapes, pixels=1)
    return graph


def _carry(graph, name, order, shapes, pixels):
    """Permute the channels of every layer that reads ``name``, as far as the order reaches."""
    for later in graph.consumers(name):
        if later.op == "requantize":
            # One multiplier per channel, or per feature of a flattened map (channel-major).
            for key in ("multiplier", "offset"):
                if key in later.tensors:
                    m = later.tensors[key]
                    later.tensors[key] = m.reshape(order.size, -1)[order].reshape(-1)
            _carry(graph, later.name, order, shapes, pixels)
        elif later.op == "flatten":
            shape = shapes[later.inputs[0]]
            _carry(graph, later.name, order, shapes,
                   int(np.prod(shape[1:])) if len(shape) > 1 else pixels)
        elif later.op in CHANNELWISE_OPS:
            _carry(graph, later.name, order, shapes, pixels)
        elif later.op == "dense":
            w = later.tensors["weight"]
            later.tensors["weight"] = w.reshape(w.shape[0], order.size, pixels)[:, order] \
                .reshape(w.shape)
        elif is_depthwise(later):
            _permute_filters(later, order)
            _carry(graph, later.name, order, shapes, pixels)
        elif later.op in ("conv1d", "conv2d"):
            later.tensors["weight"] = later.tensors["weight"][:, order]
        else:
            raise UnsupportedLayerError(
                f"layer '{later.name}': reorder_filters cannot carry a filter permutation "
                f"through '{later.op}'")
