"""QGraph: the integer model that the golden executor runs and the hardware generator compiles.

A QGraph is an input spec plus an ordered list of nodes. Each node names its inputs (earlier
nodes, or ``"input"``), carries JSON-able attributes and NumPy tensors. Integer tensors are the
truth; float scales ride along only to map integers back to real values.

Tensors have no batch axis inside the graph. Feature maps are channel first: ``(C, H, W)``
for images, ``(C, L)`` for signals, ``(F,)`` for vectors; the channel is always axis 0, which
is the axis of per-channel parameters (filters of a convolution, multipliers of a requantize).
Spatial attributes (``stride``, ``padding``, ``kernel``) are lists with one entry per spatial
axis; padding is symmetric (that many zeros, the integer 0, on each side; a max pool pads
with values smaller than any input instead, so padding never wins).

Operations (tensors | attributes):

- ``dense``: weight (O, I), bias (O,), weight_bits (O,), weight_scale (O,) | none.
- ``conv2d``: weight (O, C // groups, kh, kw), bias, weight_bits, weight_scale (one per
  filter) | stride [sh, sw], padding [ph, pw], groups (1, or C for depthwise).
- ``conv1d``: weight (O, C // groups, k), bias, weight_bits, weight_scale | stride [s],
  padding [p], groups.
- ``requantize``: multiplier (C,), optional offset (C,) | shift, out_bits, out_signed,
  scale, optional rounding (``"half_up"`` when absent, or ``"half_even"``). Absent offsets
  are zeros, so files written before offsets and rounding modes existed load unchanged.
- ``maxpool2d`` / ``maxpool1d``: none | kernel, stride, optional padding (at most
  ``kernel // 2`` per axis, as PyTorch; absent means 0), floor mode.
- ``avgpool2d`` / ``avgpool1d``: none | kernel, stride; the exact window SUM.
- ``global_avgpool``: none | none; the exact SUM over all pixels of each channel, to (C,).
- ``add``: two inputs of equal shape | none; the exact sum.
- ``flatten``: none | none; C order (channel-major for (C, H, W), as ``torch.nn.Flatten``).

Average pools are sums in integers: the division by the window size belongs to the scale, and
the exporter folds it into the next ``requantize`` node's multiplier and shift. An ``add``
adds integers as they are, so both inputs must be on one scale already (the exporter puts a
``requantize`` node on each branch that needs one).

On disk a ``.qgraph`` file is one NumPy ``.npz`` archive: the entry ``header`` holds the JSON
header (schema version, input spec, nodes with their attributes), and every tensor is stored as
``<node name>/<tensor name>``.
"""

import io
import json
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from . import numerics
from .errors import GraphError, UnsupportedLayerError

__all__ = ["SCHEMA_VERSION", "OPS", "ARITY", "FILTER_OPS", "InputSpec", "Node", "QGraph",
           "dense", "conv2d", "conv1d", "requantize", "flatten", "maxpool2d", "maxpool1d",
           "avgpool2d", "avgpool1d", "global_avgpool", "add", "requantize_offset",
           "requantize_rounding", "load", "save"]

SCHEMA_VERSION = 1

#: Operations this schema version defines, with the tensors each one must carry.
OPS = {
    "dense": ("weight", "bias", "weight_bits", "weight_scale"),
    "conv2d": ("weight", "bias", "weight_bits", "weight_scale"),
    "conv1d": ("weight", "bias", "weight_bits", "weight_scale"),
    "requantize": ("multiplier",),
    "flatten": (),
    "maxpool2d": (),
    "maxpool1d": (),
    "avgpool2d": (),
    "avgpool1d": (),
    "global_avgpool": (),
    "add": (),
}

#: Number of inputs of each operation (1 unless listed).
ARITY = {"add": 2}

#: Operations with weights: one filter per output channel, each with its own bit width.
FILTER_OPS = ("dense", "conv2d", "conv1d")

#: Spatial axes of the convolution and pooling operations (their input is ``(C, *spatial)``).
SPATIAL_DIMS = {"conv2d": 2, "conv1d": 1, "maxpool2d": 2, "maxpool1d": 1, "avgpool2d": 2,
                "avgpool1d": 1}

WEIGHT_BITS_RANGE = (2, 8)
MAX_SHIFT = 48
MAX_MULTIPLIER_BITS = 24
MAX_ACT_BITS = 16
#: Widest requantize output: a network's head may keep wide signed values (rescaled
#: accumulators) for an argmax.
MAX_OUT_BITS = 32
#: Requantize offsets lie in ``±(2^OFFSET_BITS - 1)``.
OFFSET_BITS = 48


@dataclass
class InputSpec:
    """Shape and integer type of the network input (``scale`` maps integers to real values).

    Images are ``(channels, height, width)`` and signals ``(channels, length)``; there is no
    batch axis inside the graph.
    """
    shape: tuple
    bits: int
    signed: bool
    scale: float = 1.0

    @property
    def range(self):
        return numerics.int_range(self.bits, self.signed)

    def to_json(self):
        return {"shape": list(self.shape), "bits": self.bits, "signed": self.signed,
                "scale": self.scale}


@dataclass
class Node:
    """One operation: ``op`` from :data:`OPS`, the names of its ``inputs``, attributes, tensors."""
    name: str
    op: str
    inputs: list
    attrs: dict = field(default_factory=dict)
    tensors: dict = field(default_factory=dict)


def _filters(weight, bias, weight_bits, weight_scale):
    weight = np.asarray(weight)
    out_channels = weight.shape[0] if weight.ndim else 0
    if weight_scale is None:
        weight_scale = np.ones(out_channels)
    return {"weight": weight, "bias": np.asarray(bias), "weight_bits": np.asarray(weight_bits),
            "weight_scale": np.asarray(weight_scale, float)}


def _spatial(value, dims):
    """An int or a sequence as a list with one entry per spatial axis (stored as given if it
    is neither, so that validation reports it)."""
    if numerics.is_int(value):
        return [int(value)] * dims
    try:
        return [int(v) if numerics.is_int(v) else v
                for v in value]
    except TypeError:
        return value


def dense(name, weight, bias, weight_bits, weight_scale=None, inputs=None):
    """A fully connected layer: ``acc[c] = sum_i weight[c, i] * x[i] + bias[c]``.

    ``weight_bits[c]`` is filter ``c``'s precision: its weights lie in ``±(2^(b-1) - 1)``.
    """
    return Node(name, "dense", inputs, {}, _filters(weight, bias, weight_bits, weight_scale))


def conv2d(name, weight, bias, weight_bits, weight_scale=None, *, stride=1, padding=0,
           groups=1, inputs=None):
    """A 2-D convolution of a ``(C, H, W)`` input (cross-correlation, as PyTorch).

    ``weight`` is ``(out_channels, in_channels // groups, kh, kw)``; filter ``o`` has its own
    ``weight_bits[o]`` and ``weight_scale[o]``, and adds ``bias[o]``. ``padding`` zeros (the
    integer 0) are added on each side of each axis. ``groups`` is 1 or ``in_channels``
    (depthwise). See :func:`quant.numerics.conv`.
    """
    return Node(name, "conv2d", inputs,
                {"stride": _spatial(stride, 2), "padding": _spatial(padding, 2),
                 "groups": groups},
                _filters(weight, bias, weight_bits, weight_scale))


def conv1d(name, weight, bias, weight_bits, weight_scale=None, *, stride=1, padding=0,
           groups=1, inputs=None):
    """A 1-D convolution of a ``(C, L)`` input; ``weight`` is ``(out, in // groups, k)``.

    Attributes as for :func:`conv2d`, with one entry per attribute list.
    """
    return Node(name, "conv1d", inputs,
                {"stride": _spatial(stride, 1), "padding": _spatial(padding, 1),
                 "groups": groups},
                _filters(weight, bias, weight_bits, weight_scale))


def requantize(name, multiplier, shift, out_bits, out_signed=False, scale=1.0, inputs=None,
               *, offset=None, rounding="half_up"):
    """The Requantizer: ``clamp(round((acc * multiplier[c] + offset[c]) / 2^shift))`` to
    ``out_bits``.

    ``c`` is the channel: axis 0 of the input (the feature of a vector, the channel of a
    ``(C, H, W)`` or ``(C, L)`` map). ``offset`` (integers, zeros when None) is added before
    the shift; ``rounding`` decides ties, ``"half_up"`` or ``"half_even"`` (see
    :func:`quant.numerics.requantize`). Both are stored only when they are not the default.
    """
    attrs = {"shift": int(shift), "out_bits": int(out_bits), "out_signed": bool(out_signed),
             "scale": float(scale)}
    if rounding != "half_up":
        attrs["rounding"] = rounding
    tensors = {"multiplier": np.asarray(multiplier)}
    if offset is not None:
        tensors["offset"] = np.asarray(offset)
    return Node(name, "requantize", inputs, attrs, tensors)


def requantize_offset(node):
    """A requantize node's offsets: its ``offset`` tensor, or zeros when it has none."""
    offset = node.tensors.get("offset")
    if offset is None:
        return np.zeros(np.shape(node.tensors["multiplier"]), dtype=np.int64)
    return np.asarray(offset, dtype=np.int64)


def requantize_rounding(node):
    """A requantize node's rounding mode (``"half_up"`` when the attribute is absent)."""
    return node.attrs.get("rounding", "half_up")


def flatten(name, inputs=None):
    """Reshape to a vector in C order: channel-major for ``(C, H, W)`` (index
    ``c * H * W + y * W + x``), as ``torch.nn.Flatten``."""
    return Node(name, "flatten", inputs)


def _pool(op, dims, name, kernel, stride, inputs, padding=0):
    stride = kernel if stride is None else stride
    attrs = {"kernel": _spatial(kernel, dims), "stride": _spatial(stride, dims)}
    padding = _spatial(padding, dims)
    if padding != [0] * dims:
        attrs["padding"] = padding
    return Node(name, op, inputs, attrs)


def maxpool2d(name, kernel, stride=None, padding=0, inputs=None):
    """Per-channel maximum over ``kernel`` windows of a ``(C, H, W)`` input, every ``stride``
    pixels (default: the kernel); windows that do not fit are dropped (floor mode).

    ``padding`` pixels (at most ``kernel // 2`` per axis, as ``nn.MaxPool2d``) on each side
    hold a value below every input, as PyTorch pads with ``-inf``, so they never win. The
    attribute is stored only when it is not 0. See :func:`quant.numerics.max_pool`.
    """
    return _pool("maxpool2d", 2, name, kernel, stride, inputs, padding)


def maxpool1d(name, kernel, stride=None, padding=0, inputs=None):
    """:func:`maxpool2d` for a ``(C, L)`` input."""
    return _pool("maxpool1d", 1, name, kernel, stride, inputs, padding)


def avgpool2d(name, kernel, stride=None, inputs=None):
    """Average pooling in integers: the exact per-channel SUM over each window.

    The division by the window size ``kh * kw`` is not an integer operation here: it is part
    of the scale, so the exporter folds it into the next ``requantize`` node's multiplier and
    shift (the real value of one step of the sum is the input step divided by ``kh * kw``).
    """
    return _pool("avgpool2d", 2, name, kernel, stride, inputs)


def avgpool1d(name, kernel, stride=None, inputs=None):
    """:func:`avgpool2d` for a ``(C, L)`` input."""
    return _pool("avgpool1d", 1, name, kernel, stride, inputs)


def global_avgpool(name, inputs=None):
    """Global average pooling in integers: the exact SUM over all pixels of each channel,
    ``(C, *spatial)`` to ``(C,)``; the division by the pixel count is folded into the next
    ``requantize`` node (see :func:`avgpool2d`)."""
    return Node(name, "global_avgpool", inputs)


def add(name, inputs):
    """The exact sum ``a + b`` of two earlier outputs of equal shape (a residual join).

    The integers are added as they are: both operands must already be on the same scale (the
    exporter puts a ``requantize`` node on each branch that needs one).
    """
    return Node(name, "add", list(inputs))


def _is_int_array(a):
    return isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.integer)



def _is_finite_positive(value):
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)) and bool(np.isfinite(value))
            and value > 0)


def _short(value, limit=60):
    """``repr(value)``, cut to ``limit`` characters for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _quoted(op):
    return f"'{op}'" if isinstance(op, str) else _short(op)


def _check_input(spec, problems):
    """Check the input spec; return its shape as a tuple of ints, or None when it is bad."""
    shape = spec.shape
    good_shape = None
    if not isinstance(shape, (list, tuple)) or not all(numerics.is_int(d) for d in shape):
        problems.append(f"input: shape must be a list of integers, not {_short(shape)}")
    elif not shape or any(d < 1 for d in shape):
        problems.append(f"input: shape must have positive sizes, not {tuple(shape)}")
    else:
        good_shape = tuple(int(d) for d in shape)
    if not numerics.is_int(spec.bits):
        problems.append(f"input: bits must be an integer in 1..{MAX_ACT_BITS}, not "
                        f"{_short(spec.bits)}")
    elif not 1 <= spec.bits <= MAX_ACT_BITS:
        problems.append(f"input: bits must be in 1..{MAX_ACT_BITS}, not {spec.bits}")
    if not isinstance(spec.signed, (bool, np.bool_)):
        problems.append(f"input: signed must be true or false, not {_short(spec.signed)}")
    if not _is_finite_positive(spec.scale):
        problems.append(f"input: scale must be a finite positive number, not "
                        f"{_short(spec.scale)}")
    return good_shape


def _check_weight_scale(scale, out_channels, where, problems):
    """One finite positive real scale per filter."""
    if (not isinstance(scale, np.ndarray) or scale.shape != (out_channels,)
            or not (np.issubdtype(scale.dtype, np.floating)
                    or np.issubdtype(scale.dtype, np.integer))):
        problems.append(f"{where}: weight_scale must be a number array of shape "
                        f"({out_channels},), not {getattr(scale, 'dtype', type(scale))} "
                        f"{np.shape(scale)}")
        return
    bad = np.flatnonzero(~np.isfinite(scale) | (scale <= 0))
    if bad.size:
        problems.append(f"{where}: weight_scale must be finite and positive; filter {bad[0]} "
                        f"has {scale[bad[0]]}")


class QGraph:
    """An integer network: an :class:`InputSpec` and nodes in execution order.

    A node whose ``inputs`` is ``None`` takes the previous node's output (or the graph input).
    The graph output is the last node's output.
    """

    def __init__(self, input, nodes, metadata=None):
        if not isinstance(input, InputSpec):
            raise TypeError(f"input must be an InputSpec, not {input!r}")
        self.input = input
        self.nodes = []
        for node in nodes:
            if not isinstance(node, Node):
                raise TypeError(f"nodes must be Node objects, not {node!r}")
            if node.inputs is None:
                node.inputs = [self.nodes[-1].name if self.nodes else "input"]
            self.nodes.append(node)
        self.metadata = dict(metadata or {})

    def __getitem__(self, name):
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def output(self):
        return self.nodes[-1].name

    def consumers(self, name):
        """Nodes that read ``name``'s output."""
        return [n for n in self.nodes if name in n.inputs]

    # -- validation --------------------------------------------------------------------------

    def validate(self):
        """Check every rule and raise one :class:`GraphError` listing all problems.

        Unsupported operations raise :class:`UnsupportedLayerError` (listing all of them)
        before anything else is checked, since nothing else can be trusted around them.
        """
        unsupported = [f"layer '{n.name}': operation {_quoted(n.op)} is not supported; "
                       f"supported operations are {', '.join(OPS)}"
                       for n in self.nodes if not isinstance(n.op, str) or n.op not in OPS]
        if unsupported:
            raise UnsupportedLayerError(unsupported)
        problems = []
        self._walk(problems)
        if problems:
            raise GraphError(problems)
        return self

    def _walk(self, problems):
        """Check every node, appending messages to ``problems``; return the known shapes."""
        shape = _check_input(self.input, problems)
        if not self.nodes:
            problems.append("graph has no nodes")
        seen = {"input"}
        shapes = {} if shape is None else {"input": shape}
        for node in self.nodes:
            where = f"layer '{node.name}'"
            if node.name in seen:
                problems.append(f"{where}: name is used twice")
            if (not isinstance(node.inputs, (list, tuple))
                    or not all(isinstance(src, str) for src in node.inputs)):
                problems.append(f"{where}: inputs must be a list of layer names, not "
                                f"{_short(node.inputs)}")
                seen.add(node.name)
                continue
            for src in node.inputs:
                if src not in seen:
                    problems.append(f"{where}: input '{src}' is not an earlier layer")
            missing = [t for t in OPS[node.op] if t not in node.tensors]
            if missing:
                problems.append(f"{where}: missing tensors {', '.join(missing)}")
            seen.add(node.name)
            arity = ARITY.get(node.op, 1)
            if len(node.inputs) != arity:
                count = {1: "one input", 2: "two inputs"}[arity]
                problems.append(f"{where}: {node.op} takes exactly {count}, "
                                f"not {len(node.inputs)}")
                continue
            if missing:
                continue
            # An unknown input shape (a problem upstream, already reported) skips only the
            # checks that need it.
            in_shapes = [shapes.get(src) for src in node.inputs]
            shape = check_node(node, in_shapes, problems)
            if shape is not None:
                shapes[node.name] = tuple(int(d) for d in shape)
        return shapes

    # -- derived facts -----------------------------------------------------------------------

    def shapes(self):
        """Output shape of every node (and ``"input"``), for a valid graph."""
        return self._walk([])

    def ranges(self):
        """Inclusive integer bounds ``(lo, hi)`` of every node's output, from worst cases.

        Dense and convolution bounds come from the actual weights (term by term, padding zeros
        included), so they are tight and safe; they decide accumulator widths in hardware. A
        sum pool multiplies its input bounds by the window size, an add adds its inputs' bounds.
        """
        ranges = {"input": self.input.range}
        shapes = self.shapes()
        for node in self.nodes:
            lo, hi = ranges[node.inputs[0]]
            t, a = node.tensors, node.attrs
            if node.op == "dense":
                acc_lo, acc_hi = numerics.dense_range(t["weight"], t["bias"], lo, hi)
            elif node.op in ("conv1d", "conv2d"):
                acc_lo, acc_hi = numerics.conv_range(t["weight"], t["bias"], lo, hi,
                                                     padded=any(a["padding"]))
            elif node.op == "requantize":
                acc_lo, acc_hi = numerics.int_range(a["out_bits"], a["out_signed"])
            elif node.op in ("avgpool1d", "avgpool2d"):
                window = int(np.prod(a["kernel"]))
                acc_lo, acc_hi = lo * window, hi * window
            elif node.op == "global_avgpool":
                pixels = int(np.prod(shapes[node.inputs[0]][1:]))
                acc_lo, acc_hi = lo * pixels, hi * pixels
            elif node.op == "add":
                lo_b, hi_b = ranges[node.inputs[1]]
                acc_lo, acc_hi = lo + lo_b, hi + hi_b
            else:
                acc_lo, acc_hi = lo, hi
            ranges[node.name] = (int(np.min(acc_lo)), int(np.max(acc_hi)))
        return ranges

    def macs(self):
        """Multiply-accumulates per frame of every dense and convolution node."""
        shapes = self.shapes()
        macs = {}
        for n in self.nodes:
            if n.op == "dense":
                macs[n.name] = int(n.tensors["weight"].size)
            elif n.op in ("conv1d", "conv2d"):
                pixels = int(np.prod(shapes[n.name][1:]))
                macs[n.name] = int(n.tensors["weight"].size) * pixels
        return macs

    def weight_bits(self):
        """Weight storage of every dense and convolution node: the sum over its filters of
        weights per filter times the filter's ``weight_bits`` (biases not included)."""
        return {n.name: int(n.tensors["weight"][0].size * n.tensors["weight_bits"].sum())
                for n in self.nodes if n.op in FILTER_OPS}

    def weight_bits_histogram(self):
        """``{bits: number of filters}`` over all dense and convolution layers."""
        hist = {}
        for n in self.nodes:
            if n.op in FILTER_OPS:
                for b, count in zip(*np.unique(n.tensors["weight_bits"], return_counts=True)):
                    hist[int(b)] = hist.get(int(b), 0) + int(count)
        return dict(sorted(hist.items()))

    def copy(self):
        nodes = [Node(n.name, n.op, list(n.inputs), dict(n.attrs),
                      {k: v.copy() for k, v in n.tensors.items()}) for n in self.nodes]
        return QGraph(InputSpec(**self.input.to_json() | {"shape": tuple(self.input.shape)}),
                      nodes, dict(self.metadata))


def _check_filter_tensors(node, where, problems):
    """Bias, weight_bits and per-filter weight ranges of a dense or convolution node."""
    t = node.tensors
    w, bias, bits = t["weight"], t["bias"], t["weight_bits"]
    out_channels = w.shape[0]
    if not _is_int_array(bias) or bias.shape != (out_channels,):
        problems.append(f"{where}: bias must be an integer array of shape ({out_channels},), "
                        f"not {getattr(bias, 'dtype', type(bias))} {np.shape(bias)}")
    _check_weight_scale(t["weight_scale"], out_channels, where, problems)
    if not _is_int_array(bits) or bits.shape != (out_channels,):
        problems.append(f"{where}: weight_bits must be an integer array of shape "
                        f"({out_channels},), not {np.shape(bits)}")
        return
    lo_b, hi_b = WEIGHT_BITS_RANGE
    bad = np.flatnonzero((bits < lo_b) | (bits > hi_b))
    if bad.size:
        problems.append(f"{where}: weight_bits must be in {lo_b}..{hi_b}; filter {bad[0]} "
                        f"has {bits[bad[0]]}")
        return
    limit = (np.int64(1) << (bits.astype(np.int64) - 1)) - 1
    over = np.abs(w.astype(np.int64)) > limit.reshape((-1,) + (1,) * (w.ndim - 1))
    if over.any():
        index = tuple(int(i) for i in np.argwhere(over)[0])
        c = index[0]
        problems.append(f"{where}: weight[{', '.join(map(str, index))}] = {w[index]} is "
                        f"outside filter {c}'s {bits[c]}-bit range ±{limit[c]} "
                        f"({int(over.sum())} weights out of range)")


def _check_dense(node, where, in_shapes, problems):
    in_shape = in_shapes[0]
    w = node.tensors["weight"]
    if in_shape is not None and len(in_shape) != 1:
        problems.append(f"{where}: dense needs a vector input, not shape {in_shape}; "
                        f"add a flatten layer before it")
    if not _is_int_array(w) or w.ndim != 2:
        problems.append(f"{where}: weight must be a 2-D integer array, not "
                        f"{getattr(w, 'dtype', type(w))} of shape {np.shape(w)}")
        return None
    out_features, in_features = w.shape
    if in_shape is not None and len(in_shape) == 1 and in_shape[0] != in_features:
        problems.append(f"{where}: weight has in_features {in_features} but its input has "
                        f"{in_shape[0]} features")
    _check_filter_tensors(node, where, problems)
    return (out_features,)


def _spatial_attr(node, where, name, dims, minimum, problems):
    value = node.attrs.get(name)
    if (not isinstance(value, (list, tuple)) or len(value) != dims
            or any(not numerics.is_int(v) or v < minimum
                   for v in value)):
        kind = "positive" if minimum == 1 else "non-negative"
        problems.append(f"{where}: {name} must be a list of {dims} {kind} integers (one per "
                        f"spatial axis), not {value!r}")
        return None
    return tuple(int(v) for v in value)


def _check_layout(node, where, in_shape, dims, problems):
    if in_shape is None:
        return False
    if len(in_shape) == dims + 1:
        return True
    layout = "(channels, height, width)" if dims == 2 else "(channels, length)"
    problems.append(f"{where}: {node.op} needs a {layout} input, not shape {in_shape}")
    return False


def _check_conv(node, where, in_shapes, problems):
    dims = SPATIAL_DIMS[node.op]
    in_shape = in_shapes[0]
    w = node.tensors["weight"]
    layout_ok = _check_layout(node, where, in_shape, dims, problems)
    stride = _spatial_attr(node, where, "stride", dims, 1, problems)
    padding = _spatial_attr(node, where, "padding", dims, 0, problems)
    groups = node.attrs.get("groups")
    if not numerics.is_int(groups) or groups < 1:
        problems.append(f"{where}: groups must be a positive integer, not {groups!r}")
        groups = None
    if not _is_int_array(w) or w.ndim != dims + 2:
        axes = "kh, kw" if dims == 2 else "k"
        problems.append(f"{where}: weight must be a {dims + 2}-D integer array (out_channels, "
                        f"in_channels // groups, {axes}), not "
                        f"{getattr(w, 'dtype', type(w))} of shape {np.shape(w)}")
        return None
    _check_filter_tensors(node, where, problems)
    out_channels, group_channels = (int(d) for d in w.shape[:2])
    kernel = tuple(int(d) for d in w.shape[2:])
    if not layout_ok or stride is None or padding is None or groups is None:
        return None
    channels = in_shape[0]
    if groups == 1:
        if group_channels != channels:
            problems.append(f"{where}: weight has {group_channels} input channels but its "
                            f"input has {channels}")
    elif groups == channels:
        if group_channels != 1:
            problems.append(f"{where}: a depthwise weight (groups {groups}) needs 1 input "
                            f"channel per filter, not {group_channels}")
        if out_channels % groups:
            problems.append(f"{where}: depthwise out_channels {out_channels} must be a "
                            f"multiple of in_channels {channels}")
    else:
        problems.append(f"{where}: groups {groups} is not supported; use 1 (a dense "
                        f"convolution) or in_channels {channels} (depthwise)")
    out = tuple(numerics.conv_output_size(n, k, s, p)
                for n, k, s, p in zip(in_shape[1:], kernel, stride, padding))
    if min(out) < 1:
        padded = tuple(n + 2 * p for n, p in zip(in_shape[1:], padding))
        problems.append(f"{where}: kernel {_fmt(kernel)} is larger than its padded input "
                        f"{_fmt(padded)}")
        return None
    return (out_channels, *out)


def _check_pool(node, where, in_shapes, problems):
    dims = SPATIAL_DIMS[node.op]
    in_shape = in_shapes[0]
    layout_ok = _check_layout(node, where, in_shape, dims, problems)
    kernel = _spatial_attr(node, where, "kernel", dims, 1, problems)
    stride = _spatial_attr(node, where, "stride", dims, 1, problems)
    padding = (0,) * dims
    if "padding" in node.attrs:
        padding = _spatial_attr(node, where, "padding", dims, 0, problems)
        if padding is not None and any(padding) and not node.op.startswith("max"):
            problems.append(f"{where}: {node.op} takes no padding, not {_fmt(padding)}")
            padding = None
    if kernel is not None and padding is not None:
        half = tuple(k // 2 for k in kernel)
        if any(p > h for p, h in zip(padding, half)):
            problems.append(f"{where}: padding must be at most kernel // 2 = {_fmt(half)} for "
                            f"kernel {_fmt(kernel)} (as PyTorch), not {_fmt(padding)}")
            padding = None
    if not layout_ok or kernel is None or stride is None or padding is None:
        return None
    out = tuple(numerics.conv_output_size(n, k, s, p)
                for n, k, s, p in zip(in_shape[1:], kernel, stride, padding))
    if min(out) < 1:
        padded = tuple(n + 2 * p for n, p in zip(in_shape[1:], padding))
        problems.append(f"{where}: kernel {_fmt(kernel)} is larger than its "
                        f"{'padded ' if any(padding) else ''}input {_fmt(padded)}")
        return None
    return (in_shape[0], *out)


def _check_global_avgpool(node, where, in_shapes, problems):
    in_shape = in_shapes[0]
    if in_shape is None:
        return None
    if len(in_shape) < 2:
        problems.append(f"{where}: global_avgpool needs a (channels, *spatial) input, not "
                        f"shape {in_shape}")
        return None
    return (in_shape[0],)


def _check_add(node, where, in_shapes, problems):
    a, b = in_shapes
    if a is None or b is None:
        return None
    if a != b:
        problems.append(f"{where}: inputs have shapes {a} and {b}; an add needs equal "
                        f"shapes")
        return None
    return a


def _check_requantize(node, where, in_shapes, problems):
    in_shape = in_shapes[0]
    mult, a = node.tensors["multiplier"], node.attrs
    channels = in_shape[0] if in_shape else 0
    if not _is_int_array(mult) or (in_shape is not None and mult.shape != (channels,)):
        problems.append(f"{where}: multiplier must be an integer array with one entry per "
                        f"channel ({channels}), not {np.shape(mult)}")
    elif (mult < 1).any() or (mult >= (1 << MAX_MULTIPLIER_BITS)).any():
        problems.append(f"{where}: multiplier must be in 1..2^{MAX_MULTIPLIER_BITS}-1, not "
                        f"{int(mult.min())}..{int(mult.max())}")
    offset = node.tensors.get("offset")
    if offset is not None:
        limit = (1 << OFFSET_BITS) - 1
        if not _is_int_array(offset) or (in_shape is not None and offset.shape != (channels,)):
            problems.append(f"{where}: offset must be an integer array with one entry per "
                            f"channel ({channels}), not {np.shape(offset)}")
        elif offset.size and (np.abs(offset) > limit).any():
            problems.append(f"{where}: offset must be in ±(2^{OFFSET_BITS}-1), not "
                            f"{int(offset.min())}..{int(offset.max())}")
    rounding = a.get("rounding", "half_up")
    if rounding not in numerics.ROUNDING:
        problems.append(f"{where}: rounding must be one of {', '.join(numerics.ROUNDING)}, not "
                        f"{_short(rounding)}")
    for name, lo, hi in (("shift", 0, MAX_SHIFT), ("out_bits", 1, MAX_OUT_BITS)):
        value = a.get(name)
        if not numerics.is_int(value):
            problems.append(f"{where}: {name} must be an integer in {lo}..{hi}, not "
                            f"{_short(value)}")
        elif not lo <= value <= hi:
            problems.append(f"{where}: {name} must be in {lo}..{hi}, not {value}")
    if not isinstance(a.get("out_signed"), (bool, np.bool_)):
        problems.append(f"{where}: out_signed must be true or false, not "
                        f"{_short(a.get('out_signed'))}")
    if "scale" in a and not _is_finite_positive(a["scale"]):
        problems.append(f"{where}: scale must be a finite positive number, not "
                        f"{_short(a['scale'])}")
    return in_shape


def _check_flatten(node, where, in_shapes, problems):
    return None if in_shapes[0] is None else (int(np.prod(in_shapes[0])),)


_CHECKS = {"dense": _check_dense, "conv1d": _check_conv, "conv2d": _check_conv,
           "maxpool1d": _check_pool, "maxpool2d": _check_pool, "avgpool1d": _check_pool,
           "avgpool2d": _check_pool, "global_avgpool": _check_global_avgpool, "add": _check_add,
           "requantize": _check_requantize, "flatten": _check_flatten}


def check_node(node, in_shapes, problems):
    """Check one node of a known op against its input shapes; return its output shape, or
    ``None`` when it cannot be known. Messages go to ``problems``."""
    return _CHECKS[node.op](node, f"layer '{node.name}'", in_shapes, problems)


def _fmt(sizes):
    """``(5, 5)`` as ``5x5``, ``(7,)`` as ``7``."""
    return "x".join(str(int(s)) for s in sizes)


def save(graph, path):
    """Write ``graph`` to a ``.qgraph`` file (validated first, so no broken file is written)."""
    graph.validate()
    _write(graph, path)


def _write(graph, path):
    header = {
        "schema_version": SCHEMA_VERSION,
        "input": graph.input.to_json(),
        "nodes": [{"name": n.name, "op": n.op, "inputs": n.inputs, "attrs": n.attrs,
                   "tensors": sorted(n.tensors)} for n in graph.nodes],
        "metadata": graph.metadata,
    }
    arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    for n in graph.nodes:
        for key, value in n.tensors.items():
            arrays[f"{n.name}/{key}"] = np.asarray(value)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    with open(path, "wb") as f:
        f.write(buffer.getvalue())


def load(path):
    """Read and validate a ``.qgraph`` file; a missing or corrupt file raises a clear error.

    A header whose structure is wrong (a field of the wrong JSON type, a tensor missing from
    the archive) raises one :class:`GraphError` listing every such problem; the values are
    then checked by :meth:`QGraph.validate`.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise GraphError(f"{path} is not a valid .qgraph file (not an npz archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(bytes(archive["header"]).decode())
            tensors = {key: archive[key] for key in archive.files if key != "header"}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise GraphError(f"{path} is not a valid .qgraph file ({e})") from None
    if not isinstance(header, dict):
        raise GraphError(f"{path}: header must be a JSON object, not {_short(header)}")
    version = header.get("schema_version")
    if not numerics.is_int(version) or version != SCHEMA_VERSION:
        raise GraphError(f"{path}: schema_version must be {SCHEMA_VERSION}, not "
                         f"{_short(version)}")
    problems = []
    input = _read_input(header.get("input"), problems)
    nodes = _read_nodes(header.get("nodes"), tensors, problems)
    metadata = header.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        problems.append(f"header: metadata must be an object, not {_short(metadata)}")
    if problems:
        raise GraphError([f"{path}: {problem}" for problem in problems])
    return QGraph(input, nodes, metadata).validate()


def _read_input(spec, problems):
    """The header's input spec as an :class:`InputSpec` (its values unchecked), or None."""
    keys = ("shape", "bits", "signed")
    if not isinstance(spec, dict) or any(k not in spec for k in keys):
        problems.append(f"header: input must be an object with shape, bits, signed and "
                        f"scale, not {_short(spec)}")
        return None
    shape = spec["shape"]
    return InputSpec(tuple(shape) if isinstance(shape, list) else shape, spec["bits"],
                     spec["signed"], spec.get("scale", 1.0))


def _read_nodes(entries, tensors, problems):
    """The header's nodes with their tensors from the archive (values unchecked)."""
    if not isinstance(entries, list):
        problems.append(f"header: nodes must be a list, not {_short(entries)}")
        return []
    nodes = []
    # inputs are checked by QGraph.validate, as for a graph built in Python.
    fields = {"name": str, "op": str, "attrs": dict, "tensors": list}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or any(k not in entry for k in (*fields, "inputs")):
            problems.append(f"header: node {i} must be an object with name, op, inputs, attrs "
                            f"and tensors, not {_short(entry)}")
            continue
        where = f"layer '{entry['name']}'" if isinstance(entry["name"], str) else f"node {i}"
        bad = [f"{where}: {key} must be {_JSON_KINDS[kind]}, not {_short(entry[key])}"
               for key, kind in fields.items() if not isinstance(entry[key], kind)]
        if not bad and not all(isinstance(t, str) for t in entry["tensors"]):
            bad.append(f"{where}: tensors must be a list of tensor names, not "
                       f"{_short(entry['tensors'])}")
        if bad:
            problems.extend(bad)
            continue
        missing = [t for t in entry["tensors"] if f"{entry['name']}/{t}" not in tensors]
        if missing:
            problems.append(f"{where}: tensor {', '.join(missing)} is not in the archive "
                            f"(no entry {', '.join(entry['name'] + '/' + t for t in missing)})")
            continue
        inputs = entry["inputs"]
        nodes.append(Node(entry["name"], entry["op"],
                          list(inputs) if isinstance(inputs, list) else inputs,
                          dict(entry["attrs"]),
                          {t: tensors[f"{entry['name']}/{t}"] for t in entry["tensors"]}))
    return nodes


_JSON_KINDS = {str: "a string", list: "a list", dict: "an object"}
