"""The golden executor: runs a QGraph on integer inputs with NumPy, exactly.

Hardware is correct when it equals this, bit for bit, on every output. Every value carries a
leading batch axis, so a node's output is ``(N, *shape)``: the channel axis is axis 1.
"""

import numpy as np

from . import numerics

__all__ = ["run", "check_inputs"]


def check_inputs(graph, x):
    """Return ``x`` as a batch ``(N, *input.shape)`` of int64, or raise a clear ``ValueError``."""
    spec = graph.input
    x = np.asarray(x)
    shape = tuple(spec.shape)
    if x.shape == shape:
        x = x[None]
    if x.shape[1:] != shape:
        raise ValueError(f"inputs must have shape {shape} or (N, {', '.join(map(str, shape))}), "
                         f"not {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"inputs must be integers, not {x.dtype}")
    lo, hi = spec.range
    if x.size and (x.min() < lo or x.max() > hi):
        bad = tuple(int(i) for i in np.unravel_index(np.argmax((x < lo) | (x > hi)), x.shape))
        kind = "signed" if spec.signed else "unsigned"
        raise ValueError(f"inputs must lie in the {spec.bits}-bit {kind} range {lo}..{hi}; "
                         f"input {bad[0]} has {x[bad]} at {bad[1:]}")
    return x.astype(np.int64)


def run(graph, x):
    """Run ``graph`` on ``x`` and return ``{name: output}`` for ``"input"`` and every node.

    ``x`` is one input (``input.shape``) or a batch; outputs always carry the batch axis.

    Integer rules per operation (see :mod:`quant.numerics`): ``dense`` and ``conv1d``/``conv2d``
    are exact int64 sums plus the bias (convolutions through :func:`~quant.numerics.im2col`,
    zero padding, groups); ``requantize`` rescales along the channel axis (per-channel
    multiplier and offset, then the shift with its rounding mode); ``maxpool*`` takes
    the per-channel maximum of each window (its padding never wins); ``avgpool*`` and
    ``global_avgpool`` give the exact per-channel SUM (the division lives in the next
    requantize's multiplier and shift); ``add`` is the exact sum of its two inputs;
    ``flatten`` is C order (channel-major).
    """
    values = {"input": check_inputs(graph, x)}
    for node in graph.nodes:
        src = values[node.inputs[0]]
        t, a = node.tensors, node.attrs
        if node.op == "dense":
            out = numerics.dense(src, t["weight"], t["bias"])
        elif node.op in ("conv1d", "conv2d"):
            out = numerics.conv(src, t["weight"], t["bias"], a["stride"], a["padding"],
                                a["groups"])
        elif node.op == "requantize":
            out = numerics.requantize(src, t["multiplier"], a["shift"], a["out_bits"],
                                      a["out_signed"], axis=1, offset=t.get("offset"),
                                      rounding=a.get("rounding", "half_up"))
        elif node.op == "flatten":
            out = src.reshape(len(src), -1)
        elif node.op in ("maxpool1d", "maxpool2d"):
            out = numerics.max_pool(src, a["kernel"], a["stride"], a.get("padding", 0))
        elif node.op in ("avgpool1d", "avgpool2d"):
            out = numerics.sum_pool(src, a["kernel"], a["stride"])
        elif node.op == "global_avgpool":
            out = numerics.global_sum_pool(src, src.ndim - 2)
        elif node.op == "add":
            out = numerics.add(src, values[node.inputs[1]])
        else:
            raise ValueError(f"layer '{node.name}': golden has no rule for '{node.op}'")
        values[node.name] = out
    return values
