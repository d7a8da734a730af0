"""A second reference of the QGraph's integer semantics, written from the documentation with
plain Python loops and ints (no NumPy arithmetic), to check the golden executor against.

Each function takes one input frame (nested lists, channel first) and returns one output
frame; :func:`run` follows a graph node by node.
"""

import numpy as np

__all__ = ["run"]


def _pad(value, lo, hi):
    return max(lo, min(hi, value))


def _dense(x, node):
    w, b = node.tensors["weight"].tolist(), node.tensors["bias"].tolist()
    return [b[o] + sum(w[o][i] * x[i] for i in range(len(x))) for o in range(len(w))]


def _at(x, c, y, xx, padding_value=0):
    """``x[c][y][xx]`` of a (C, H, W) map, ``padding_value`` outside it."""
    if 0 <= y < len(x[c]) and 0 <= xx < len(x[c][0]):
        return x[c][y][xx]
    return padding_value


def _as_2d(x):
    """A (C, L) signal as a (C, 1, L) map."""
    return [[row] for row in x]


def _conv(x, node):
    one_d = node.op == "conv1d"
    w = node.tensors["weight"]
    if one_d:
        x, w = _as_2d(x), w[:, :, None, :]
    stride = [1] + list(node.attrs["stride"]) if one_d else list(node.attrs["stride"])
    padding = [0] + list(node.attrs["padding"]) if one_d else list(node.attrs["padding"])
    groups = node.attrs["groups"]
    w, b = w.tolist(), node.tensors["bias"].tolist()
    out_c, group_c, kh, kw = len(w), len(w[0]), len(w[0][0]), len(w[0][0][0])
    height, width = len(x[0]), len(x[0][0])
    out_h = (height + 2 * padding[0] - kh) // stride[0] + 1
    out_w = (width + 2 * padding[1] - kw) // stride[1] + 1
    per_group = out_c // groups
    out = []
    for o in range(out_c):
        g = o // per_group
        plane = []
        for oy in range(out_h):
            row = []
            for ox in range(out_w):
                acc = b[o]
                for c in range(group_c):
                    for ky in range(kh):
                        for kx in range(kw):
                            acc += w[o][c][ky][kx] * _at(
                                x, g * group_c + c, oy * stride[0] - padding[0] + ky,
                                ox * stride[1] - padding[1] + kx)
                row.append(acc)
            plane.append(row)
        out.append(plane)
    return [plane[0] for plane in out] if one_d else out


def _pool(x, node):
    one_d = node.op.endswith("1d")
    if one_d:
        x = _as_2d(x)

    def pair(key, default):
        value = list(node.attrs.get(key, [default] * (1 if one_d else 2)))
        return ([1 if key == "kernel" else (1 if key == "stride" else 0)] + value) if one_d \
            else value

    kernel, stride, padding = pair("kernel", 1), pair("stride", 1), pair("padding", 0)
    is_max = node.op.startswith("max")
    below = None   # padding of a max pool: below every input, it never wins
    height, width = len(x[0]), len(x[0][0])
    out_h = (height + 2 * padding[0] - kernel[0]) // stride[0] + 1
    out_w = (width + 2 * padding[1] - kernel[1]) // stride[1] + 1
    out = []
    for c in range(len(x)):
        plane = []
        for oy in range(out_h):
            row = []
            for ox in range(out_w):
                values = [_at(x, c, oy * stride[0] - padding[0] + ky,
                              ox * stride[1] - padding[1] + kx, below)
                          for ky in range(kernel[0]) for kx in range(kernel[1])]
                values = [v for v in values if v is not None]
                row.append(max(values) if is_max else sum(values))
            plane.append(row)
        out.append(plane)
    return [plane[0] for plane in out] if one_d else out


def _flat(x):
    if isinstance(x, list):
        return [v for item in x for v in _flat(item)]
    return [x]


def _global_pool(x, node):
    return [sum(_flat(channel)) for channel in x]


def _requantize(x, node):
    a = node.attrs
    mult = node.tensors["multiplier"].tolist()
    offset = node.tensors["offset"].tolist() if "offset" in node.tensors else [0] * len(mult)
    bits, signed, shift = a["out_bits"], a["out_signed"], a["shift"]
    even = a.get("rounding", "half_up") == "half_even"
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)

    def one(value, m, b):
        scaled = value * m + b
        if shift:
            step = 1 << shift
            floor, rest = scaled // step, scaled % step
            if 2 * rest > step or (2 * rest == step and (not even or floor % 2 == 1)):
                floor += 1                       # above half, or a tie rounded up
            scaled = floor
        return _pad(scaled, lo, hi)

    def apply(item, m, b):
        return [apply(v, m, b) for v in item] if isinstance(item, list) else one(item, m, b)

    return [apply(channel, mult[c], offset[c]) for c, channel in enumerate(x)]


def _add(x, y):
    if isinstance(x, list):
        return [_add(a, b) for a, b in zip(x, y)]
    return x + y


def run_frame(graph, frame):
    """The graph output for one input frame (a nested list), by the loop semantics."""
    values = {"input": frame}
    for node in graph.nodes:
        x = values[node.inputs[0]]
        if node.op == "dense":
            out = _dense(x, node)
        elif node.op in ("conv1d", "conv2d"):
            out = _conv(x, node)
        elif node.op.startswith(("maxpool", "avgpool")):
            out = _pool(x, node)
        elif node.op == "global_avgpool":
            out = _global_pool(x, node)
        elif node.op == "requantize":
            out = _requantize(x, node)
        elif node.op == "flatten":
            out = _flat(x)
        elif node.op == "add":
            out = _add(x, values[node.inputs[1]])
        else:
            raise ValueError(f"no loop rule for {node.op}")
        values[node.name] = out
    return values[graph.output]


def run(graph, frames):
    """``(N, *output shape)`` int64 outputs of ``frames`` (``(N, *input shape)``)."""
    return np.array([run_frame(graph, frame.tolist()) for frame in np.asarray(frames)],
                    dtype=np.int64)
