"""stream_columns: dense weights for feature maps streamed pixel by pixel (HWC order)."""

from quant import numerics

__all__ = ["stream_columns", "stream_order"]


def stream_order(shape):
    """``"HWC"`` for a feature map ``(C, *spatial)``, ``"C"`` for a vector ``(F,)``.

    The hardware streams feature maps pixel by pixel in raster order, the channels of a pixel
    together (the order :func:`quant.numerics.im2col` windows assume); the IR keeps them
    channel first. A vector is streamed as it is.
    """
    return "HWC" if len(shape) >= 2 else "C"


def stream_columns(graph):
    """``{dense layer: column order}`` for dense layers that read a flattened feature map.

    The IR's ``flatten`` is C order (channel-major for ``(C, H, W)``), the stream is HWC, so
    the hardware uses ``weight[:, order]``: stream element ``k`` meets the weight column of
    C-order element ``order[k]`` and the dot products are unchanged. The permutation is done
    once, at compile time; the graph itself (its golden semantics) is left as it is. Dense
    layers that read a vector map to no entry.
    """
    shapes = graph.shapes()
    columns, flat_of = {}, {}
    for node in graph.nodes:
        if node.op == "flatten":
            shape = shapes[node.inputs[0]]
            source = flat_of.get(node.inputs[0], shape)
            flat_of[node.name] = source
        elif node.op == "dense" and node.inputs[0] in flat_of:
            shape = flat_of[node.inputs[0]]
            if stream_order(shape) == "HWC":
                columns[node.name] = numerics.interleaved_order(shape)
    return columns
