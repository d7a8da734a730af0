"""The golden executor: runs a QGraph on integer inputs with NumPy, exactly.

Hardware is correct when it equals this, bit for bit, on every output.
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
    """
    values = {"input": check_inputs(graph, x)}
    for node in graph.nodes:
        src = values[node.inputs[0]]
        t, a = node.tensors, node.attrs
        if node.op == "dense":
            values[node.name] = numerics.dense(src, t["weight"], t["bias"])
        elif node.op == "requantize":
            values[node.name] = numerics.requantize(src, t["multiplier"], a["shift"],
                                                    a["out_bits"], a["out_signed"])
        elif node.op == "flatten":
            values[node.name] = src.reshape(len(src), -1)
        else:
            raise ValueError(f"layer '{node.name}': golden has no rule for '{node.op}'")
    return values
