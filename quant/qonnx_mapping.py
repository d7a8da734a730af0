"""The mapping of a cleaned QONNX graph to QGraph nodes (see :mod:`quant.qonnx`).

One rule per ONNX op (``_Mapper.op_<OpType>``), a static check of each node's attributes
(run even after a problem upstream, so every problem is listed at once), and the rescaling of
the head. Values are tracked as integers with a per-channel scale, and a bias and a Relu
that wait for the next quantizer.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from . import graph as g
from . import numerics
from .errors import GraphError, UnsupportedLayerError

__all__ = ["Imported", "MAPPED_OPS", "MULTIPLIER_BITS", "map_model"]

#: Significant bits of a multiplier that approximates a float scale ratio: as many as the
#: IR allows, about float32's precision (with 16 bits, a CNN's predictions agreed with
#: qonnx's float32 executor on 99.4% of the test digits instead of all of them).
MULTIPLIER_BITS = 23

#: The standard ops the mapping takes (constant subgraphs are folded by qonnx first).
MAPPED_OPS = ("Quant", "Gemm", "MatMul", "Add", "Conv", "Relu", "MaxPool", "AveragePool",
              "GlobalAveragePool", "Flatten", "Reshape", "BatchNormalization",
              "MultiThreshold", "Identity")


# -- values ------------------------------------------------------------------------------------


@dataclass
class _Value:
    """A tensor the QGraph holds as integers: ``relu?(scale[c] * q + bias[c])`` per channel
    ``c`` (axis 0 of ``shape``; per feature for a vector). ``filter`` names the dense or
    convolution node whose accumulators ``q`` are, while nothing has been applied to them."""
    node: str
    shape: tuple
    scale: np.ndarray
    bias: np.ndarray = None
    relu: bool = False
    filter: str = None

    @property
    def clean(self):
        return self.bias is None and not self.relu

    def but(self, **changes):
        fields = {"node": self.node, "shape": self.shape, "scale": self.scale,
                  "bias": self.bias, "relu": self.relu, "filter": None}
        return _Value(**(fields | changes))


@dataclass
class _QConst:
    """A constant through a ``Quant``: integers ``q``, and per element its scale and bits."""
    q: np.ndarray
    scale: np.ndarray
    bits: np.ndarray
    signed: bool
    narrow: bool

    @property
    def real(self):
        return self.q * self.scale


@dataclass
class _Raw:
    """The float graph input, not yet quantized (``shape`` without the batch axis)."""
    shape: tuple


class _Problem(Exception):
    """One line for the list of problems: an attribute and the reason."""

@dataclass
class Imported:
    """A QGraph made from a QONNX model, and what is needed to compare the two.

    ``trace`` maps QGraph node names to ``(tensor, scale, bias)``: the model's tensor equals
    ``scale[c] * output + bias[c]`` (``bias`` None for 0), channel ``c`` on axis 1.
    """
    graph: g.QGraph
    model: object
    trace: dict
    input_name: str
    input_shape: tuple
    input_rounding: str = "ROUND"
    output_scale: np.ndarray = None
    names: dict = field(default_factory=dict)


# -- scale ratios ------------------------------------------------------------------------------


def _fixed_point(ratio, offset=None, limit=g.MAX_SHIFT):
    """``(M, S, B, exact)`` with ``M / 2^S`` = ``ratio`` and ``B / 2^S`` = ``offset`` per
    channel: exact when some shift makes every value an integer (power-of-two ratios), else
    ``MULTIPLIER_BITS`` significant bits for the largest ratio."""
    ratio = np.asarray(ratio, dtype=np.float64)
    offset = np.zeros_like(ratio) if offset is None else np.asarray(offset, np.float64)
    for shift in range(limit + 1):
        m, b = ratio * 2.0 ** shift, offset * 2.0 ** shift
        if (m == np.round(m)).all() and (b == np.round(b)).all():
            if m.max() < 2 ** g.MAX_MULTIPLIER_BITS and np.abs(b).max() < 2 ** g.OFFSET_BITS:
                return m.astype(np.int64), shift, b.astype(np.int64), True
            break
    top = math.frexp(float(ratio.max()))[1]          # ratio.max() < 2^top
    shift = int(np.clip(MULTIPLIER_BITS - top, 0, limit))
    m = np.maximum(np.round(ratio * 2.0 ** shift), 1).astype(np.int64)
    b = np.round(offset * 2.0 ** shift).astype(np.int64)
    return m, shift, b, False


def _ratio_problem(m, b):
    if m.max() >= 2 ** g.MAX_MULTIPLIER_BITS:
        return (f"the scale ratio needs a multiplier of {int(m.max())}, beyond "
                f"2^{g.MAX_MULTIPLIER_BITS}-1")
    if np.abs(b).max() >= 2 ** g.OFFSET_BITS:
        return f"the bias in output steps is too large for an offset (|{int(np.abs(b).max())}|)"
    return None

# -- the mapping -------------------------------------------------------------------------------


def _per_channel(value, channels, name):
    """A scalar or per-channel array (any shape with ``channels`` elements) as ``(channels,)``."""
    value = np.asarray(value, dtype=np.float64)
    if value.size == 1:
        return np.full(channels, float(value.reshape(-1)[0]))
    if value.size == channels:
        return value.reshape(channels)
    raise _Problem(f"{name} must have 1 or {channels} values (one per channel), not shape "
                   f"{value.shape}")


def _spread(values, shape):
    """Per-channel values of a ``(C, *spatial)`` map as one value per element, C order."""
    if len(shape) == 1 or values.size == int(np.prod(shape)):
        return values
    return np.repeat(values, int(np.prod(shape[1:])))


class _Mapper:
    def __init__(self, model, originals):
        self.model = model
        self.originals = originals
        self.env = {}
        self.nodes = []
        self.trace = {}
        self.readers = {}
        self.problems = []
        self.input_spec = None
        self.input_name = model.graph.input[0].name
        self.input_shape = None
        self.input_rounding = "ROUND"
        self.names = {}
        for node in model.graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)

    # helpers

    def where(self, node):
        original = self.originals.get(node.name, node.name)
        shown = f"; '{original}' in the file" if original not in (node.name, "") and \
            not original.startswith("#") else ""
        return f"node '{node.name}' ({node.op_type}{shown})"

    def attr(self, node, name, default=None):
        from onnx import helper
        for a in node.attribute:
            if a.name == name:
                value = helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def const(self, name):
        """An initializer as a float64 array, or None."""
        value = self.model.get_initializer(name)
        return None if value is None else np.asarray(value, dtype=np.float64)

    def append(self, node):
        self.nodes.append(node)
        return node.name

    def qname(self, node):
        name = node.name
        used = {n.name for n in self.nodes} | {"input"}
        while name in used:
            name += "_"
        return name

    def graph_so_far(self):
        return g.QGraph(self.input_spec, [g.Node(n.name, n.op, list(n.inputs), dict(n.attrs),
                                                 dict(n.tensors)) for n in self.nodes])

    def value_range(self, value):
        """Inclusive integer bounds of a value's output, from the graph so far."""
        if value.node == "input":
            return self.input_spec.range
        return self.graph_so_far().ranges()[value.node]

    # the walk

    def run(self):
        graph = self.model.graph
        dims = graph.input[0].type.tensor_type.shape.dim
        self.env[self.input_name] = _Raw(tuple(int(d.dim_value) for d in dims[1:]))
        self.onnx_input_shape = self.env[self.input_name].shape
        for node in graph.node:
            # A value, None for an initializer (or an absent optional input), or "missing".
            inputs = [self.env.get(name, None if not name or self.const(name) is not None
                                   else "missing") for name in node.input]
            try:
                # What the node's own attributes break is found even after a problem
                # upstream (already reported), so every problem is listed at once.
                self.check(node)
                if any(v is False for v in inputs):
                    outputs = [False] * len(node.output)
                else:
                    outputs = self.map(node, inputs)
            except _Problem as problem:
                self.problems.append(f"{self.where(node)}: {problem}")
                outputs = [False] * len(node.output)
            for out, value in zip(node.output, outputs):
                self.env[out] = value
        output = graph.output[0].name
        if not self.problems:
            try:
                self.head(self.env.get(output), output)
            except _Problem as problem:
                self.problems.append(f"graph output '{output}': {problem}")
        if self.problems:
            raise UnsupportedLayerError(self.problems)
        qgraph = self.graph_so_far()
        for n in qgraph.nodes:
            n.attrs, n.tensors = dict(n.attrs), dict(n.tensors)
        try:
            qgraph.validate()
        except GraphError as error:
            raise UnsupportedLayerError([f"the mapped graph breaks a QGraph rule: {p}"
                                         for p in error.problems]) from None
        return Imported(qgraph, self.model, self.trace, self.input_name,
                        self.onnx_input_shape, self.input_rounding, self.output_scale,
                        self.names)

    def check(self, node):
        """The node's op type and attributes, whatever its inputs are."""
        op = node.op_type
        if op in ("BipolarQuant",):
            raise _Problem("bipolar (±1) quantizers are not supported: the QGraph's weights "
                           "are narrow-range integers and its activations have a zero at 0")
        if op in ("Trunc", "FloatQuant", "IntQuant"):
            raise _Problem(f"{op} is not supported; quantize with Quant (integer, zero point "
                           f"0) instead")
        if getattr(self, f"op_{op}", None) is None:
            raise _Problem(f"op type {op} is not supported; supported: {', '.join(MAPPED_OPS)}")
        if op == "Quant":
            _, _, signed, _, rounding = self.quant_params(node)
            if self.const(node.input[0]) is None:
                _activation_rounding(rounding, signed)
        elif op == "Gemm":
            self.gemm_attributes(node)
        elif op == "Conv":
            self.conv_attributes(node)
        elif op in ("MaxPool", "AveragePool"):
            self.pool_attributes(node, pads_allowed=op == "MaxPool")
        elif op == "Flatten" and int(self.attr(node, "axis", 1)) != 1:
            raise _Problem(f"attribute axis must be 1 (keep the batch axis), not "
                           f"{self.attr(node, 'axis')}")

    def map(self, node, inputs):
        rule = getattr(self, f"op_{node.op_type}")
        if any(v == "missing" for v in inputs if isinstance(v, str)):
            missing = [n for n, v in zip(node.input, inputs) if isinstance(v, str)]
            raise _Problem(f"input {', '.join(missing)} has no value (no initializer)")
        return rule(node, inputs)

    # -- Quant

    def quant_params(self, node):
        """``(scale, bits, signed, narrow, rounding)`` of a Quant, checked."""
        problems = []
        scale, zero, bits = (self.const(name) for name in node.input[1:4])
        for name, value in (("scale", scale), ("zeropt", zero), ("bitwidth", bits)):
            if value is None:
                problems.append(f"input {name} must be a constant (an initializer)")
        if problems:
            raise _Problem("; ".join(problems))
        if not np.isfinite(scale).all() or (scale <= 0).any():
            problems.append(f"scale must be finite and positive, not {_short(scale)}")
        if (zero != 0).any():
            problems.append(f"zeropt must be 0, not {_short(zero)}; zero points are not "
                            f"supported (use a symmetric quantizer)")
        if (bits != np.round(bits)).any() or (bits < 1).any():
            problems.append(f"bitwidth must be a positive integer, not {_short(bits)}")
        signed, narrow = bool(self.attr(node, "signed", 1)), bool(self.attr(node, "narrow", 0))
        rounding = str(self.attr(node, "rounding_mode", "ROUND")).upper()
        if problems:
            raise _Problem("; ".join(problems))
        if signed and (bits == 1).any():
            raise _Problem("bitwidth 1 with signed=1 is a bipolar (±1) quantizer; it is not "
                           "supported")
        return scale, bits, signed, narrow, rounding

    def op_Quant(self, node, inputs):
        x = inputs[0]
        scale, bits, signed, narrow, rounding = self.quant_params(node)
        data = self.const(node.input[0])
        if data is not None:
            return [self.quant_const(node, data, scale, bits, signed, narrow, rounding)]
        if isinstance(x, _Raw):
            return [self.quant_input(node, x, scale, bits, signed, narrow, rounding)]
        if isinstance(x, _QConst):
            raise _Problem("a Quant of a quantized constant is not supported")
        return [self.requant(node, x, scale, bits, signed, narrow, rounding)]

    def quant_const(self, node, data, scale, bits, signed, narrow, rounding):
        from qonnx.custom_op.general.quant import quant
        data32 = np.asarray(self.model.get_initializer(node.input[0]))
        scale32 = np.asarray(self.model.get_initializer(node.input[1]))
        real = quant(data32, scale32, np.asarray(self.model.get_initializer(node.input[2])),
                     np.asarray(self.model.get_initializer(node.input[3])), signed, narrow,
                     rounding)
        q = np.round(np.asarray(real, np.float64) / np.broadcast_to(scale, data.shape))
        return _QConst(q.astype(np.int64), np.broadcast_to(scale, data.shape).copy(),
                       np.broadcast_to(bits, data.shape).astype(np.int64), signed, narrow)

    def quant_input(self, node, x, scale, bits, signed, narrow, rounding):
        if scale.size != 1:
            raise _Problem(f"scale of the input Quant must be one number, not shape "
                           f"{scale.shape}; the QGraph input has one scale")
        if bits.size != 1 or not 1 <= int(bits.reshape(-1)[0]) <= g.MAX_ACT_BITS:
            raise _Problem(f"bitwidth of the input Quant must be in 1..{g.MAX_ACT_BITS}, not "
                           f"{_short(bits)}")
        if len(self.readers.get(self.input_name, [])) > 1:
            raise _Problem("the graph input has readers besides its Quant; every reader must "
                           "take the quantized input")
        b = int(bits.reshape(-1)[0])
        s = float(scale.reshape(-1)[0])
        self.input_spec = g.InputSpec(tuple(x.shape), b, signed, s)
        self.input_rounding = rounding
        self.trace["input"] = (node.output[0], np.full(x.shape[0], s), None)
        return _Value("input", tuple(x.shape), np.full(x.shape[0], s))

    def requant(self, node, x, scale, bits, signed, narrow, rounding):
        channels = x.shape[0]
        s_out = _per_channel(scale, channels, "scale")
        if bits.size != 1:
            raise _Problem(f"bitwidth of an activation Quant must be one number, not shape "
                           f"{bits.shape}")
        b = int(bits.reshape(-1)[0])
        if signed and not x.relu:
            if narrow:
                raise _Problem("narrow=1 on a signed activation Quant (range ±(2^(b-1)-1)) is "
                               "not supported; use narrow=0")
            out_bits, out_signed = b, True
        elif signed:
            out_bits, out_signed = b - 1, False    # a Relu before it: 0..2^(b-1)-1
        else:
            if narrow:
                raise _Problem("narrow=1 on an unsigned activation Quant (range 0..2^b-2) is "
                               "not supported; use narrow=0")
            out_bits, out_signed = b, False
        if not 1 <= out_bits <= g.MAX_ACT_BITS:
            raise _Problem(f"bitwidth must give activations of 1..{g.MAX_ACT_BITS} bits, not "
                           f"{out_bits}")
        mode = _activation_rounding(rounding, out_signed)
        bias = None if x.bias is None else x.bias / s_out
        name = self.requantize(node, x, x.scale / s_out, bias, out_bits, out_signed, mode,
                               scale=float(s_out.max()))
        self.trace[name] = (node.output[0], s_out, None)
        return _Value(name, x.shape, s_out)

    def requantize(self, node, x, ratio, bias, out_bits, out_signed, mode, name=None,
                   scale=1.0):
        """Append ``round(ratio[c] * q + bias[c])`` clamped, rounding as ``mode`` says
        (``floor`` and ``ceil`` through the offset), whose output step is ``scale``; returns
        the node name."""
        m, shift, b, _ = _fixed_point(ratio, bias)
        problem = _ratio_problem(m, b)
        if problem:
            raise _Problem(problem)
        rounding = "half_even" if mode == "half_even" else "half_up"
        if mode == "floor" and shift:
            b = b - (1 << (shift - 1))
        elif mode == "ceil" and shift:
            b = b + (1 << shift) - 1 - (1 << (shift - 1))
        name = name or self.qname(node)
        self.append(g.requantize(name, m, shift, out_bits, out_signed, scale=scale,
                                 inputs=[x.node], offset=b if b.any() else None,
                                 rounding=rounding))
        self.names[name] = node.name
        return name

    # -- filters

    def weight(self, node, value, transpose, what="weight"):
        """A Quant-ed constant as ``(W (O, ...), bits (O,), scale (O,))``."""
        if not isinstance(value, _QConst):
            raise _Problem(f"{what} must be a constant through a Quant (integer weights with "
                           f"a scale), not {'a float constant' if value is None else 'a tensor computed from the input'}")
        q, scale, bits = value.q, value.scale, value.bits
        if transpose:
            q, scale, bits = q.T, scale.T, bits.T
        rows = q.shape[0]
        flat_scale, flat_bits = scale.reshape(rows, -1), bits.reshape(rows, -1)
        if (flat_scale != flat_scale[:, :1]).any():
            raise _Problem(f"{what} scale must be one per output channel (per tensor or per "
                           f"filter), not per element")
        if (flat_bits != flat_bits[:, :1]).any():
            raise _Problem(f"{what} bitwidth must be one per output channel")
        s, b = flat_scale[:, 0], flat_bits[:, 0].astype(np.int64)
        if value.signed and not value.narrow:
            # [-2^(b-1), 2^(b-1) - 1]: narrow b bits unless a weight is -2^(b-1).
            b = np.where((q.reshape(rows, -1) == -(1 << (b - 1))[:, None]).any(axis=1), b + 1, b)
        elif not value.signed:
            b = b + 1
        if (b > g.WEIGHT_BITS_RANGE[1]).any():
            c = int(np.argmax(b > g.WEIGHT_BITS_RANGE[1]))
            raise _Problem(f"{what} bitwidth of filter {c} is {int(flat_bits[c, 0])}"
                           f"{' (unsigned or wide range: one more as narrow signed)' if b[c] != flat_bits[c, 0] else ''}"
                           f"; weights of 2..{g.WEIGHT_BITS_RANGE[1]} bits are supported")
        return q, np.maximum(b, 2), s

    def filter_input(self, node, x):
        if not isinstance(x, _Value):
            raise _Problem("its input must come through a Quant (the QGraph input or an "
                           "activation quantizer), not a float tensor")
        if not x.clean:
            raise _Problem("its input still carries a bias or a Relu; put a Quant between")
        if not np.allclose(x.scale, x.scale[0], rtol=1e-6, atol=0):
            raise _Problem("its input has a scale per channel; a Quant with one scale must "
                           "come first")
        return float(x.scale[0])

    def gemm_attributes(self, node):
        problems = []
        if self.attr(node, "transA", 0):
            problems.append("attribute transA must be 0, not 1")
        alpha, beta = float(self.attr(node, "alpha", 1.0)), float(self.attr(node, "beta", 1.0))
        if alpha <= 0:
            problems.append(f"attribute alpha must be positive, not {alpha}")
        if problems:
            raise _Problem("; ".join(problems))
        return alpha, beta

    def op_Gemm(self, node, inputs):
        alpha, beta = self.gemm_attributes(node)
        x = inputs[0]
        s_in = self.filter_input(node, x)
        if len(x.shape) != 1:
            raise _Problem(f"its input must be a vector, not shape {x.shape}; add a Flatten")
        w, bits, s_w = self.weight(node, inputs[1], transpose=not self.attr(node, "transB", 0))
        value = self.dense(node, x, w, bits, s_w * alpha, s_in)
        if len(node.input) > 2 and node.input[2]:
            value = self.with_bias(node, value, inputs[2], node.input[2], beta)
        self.retrace(value, node.output[0])
        return [value]

    def op_MatMul(self, node, inputs):
        x = inputs[0]
        s_in = self.filter_input(node, x)
        if len(x.shape) != 1:
            raise _Problem(f"its input must be a vector, not shape {x.shape}; add a Flatten")
        w, bits, s_w = self.weight(node, inputs[1], transpose=True)
        value = self.dense(node, x, w, bits, s_w, s_in)
        self.retrace(value, node.output[0])
        return [value]

    def dense(self, node, x, w, bits, s_w, s_in):
        if w.shape[1] != x.shape[0]:
            raise _Problem(f"weight has {w.shape[1]} inputs but its input has {x.shape[0]}")
        name = self.qname(node)
        self.append(g.dense(name, w, np.zeros(w.shape[0], np.int64), bits, s_w,
                            inputs=[x.node]))
        self.names[name] = node.name
        return _Value(name, (w.shape[0],), s_in * s_w, filter=name)

    def retrace(self, value, tensor):
        """Record that ``tensor`` is ``value`` (when no Relu is pending)."""
        if not value.relu:
            self.trace[value.node] = (tensor, value.scale, value.bias)

    def with_bias(self, node, value, bias, tensor, factor=1.0):
        """``value + bias`` (a constant): into the filter's integer bias when it is quantized
        on the accumulator's scale (Int32Bias), else a real per-channel bias that waits."""
        channels = value.shape[0]
        if isinstance(bias, _QConst):
            real = bias.real * factor
            scale = bias.scale * factor
            if (value.filter is not None and value.bias is None and scale.size
                    and np.allclose(_per_channel_any(scale, channels), value.scale,
                                    rtol=1e-6, atol=0)):
                q = bias.q.reshape(-1) if bias.q.size == channels else \
                    np.full(channels, int(bias.q.reshape(-1)[0]))
                filt = self._node(value.filter)
                filt.tensors["bias"] = filt.tensors["bias"] + q
                return value.but(filter=value.filter)
        else:
            real = self.const(tensor)
            if real is None:
                raise _Problem(f"bias '{tensor}' must be a constant")
            real = real * factor
        real = _per_channel(real, channels, "bias")
        return value.but(bias=real if value.bias is None else value.bias + real)

    def _node(self, name):
        return next(n for n in self.nodes if n.name == name)

    def conv_attributes(self, node):
        problems = []
        dilations = self.attr(node, "dilations")
        if dilations and any(d != 1 for d in dilations):
            problems.append(f"attribute dilations must be all 1, not {list(dilations)}")
        auto_pad = self.attr(node, "auto_pad", "NOTSET")
        if auto_pad not in ("NOTSET", "VALID"):
            problems.append(f"attribute auto_pad must be NOTSET or VALID, not {auto_pad}")
        pads = list(self.attr(node, "pads", []) or [])
        half = len(pads) // 2
        if pads and pads[:half] != pads[half:]:
            problems.append(f"attribute pads must be symmetric (begin = end), not {pads}")
        if problems:
            raise _Problem("; ".join(problems))
        return pads, half

    def op_Conv(self, node, inputs):
        pads, half = self.conv_attributes(node)
        kernel_dims = len(self.attr(node, "kernel_shape", []) or []) or None
        x = inputs[0]
        s_in = self.filter_input(node, x)
        w, bits, s_w = self.weight(node, inputs[1], transpose=False)
        dims = w.ndim - 2
        if dims not in (1, 2) or (kernel_dims and kernel_dims != dims):
            raise _Problem(f"only 1-D and 2-D convolutions are supported, not a weight of "
                           f"shape {w.shape}")
        if len(x.shape) != dims + 1:
            raise _Problem(f"its input must be a (channels, *spatial) map with {dims} spatial "
                           f"axes, not shape {x.shape}")
        groups = int(self.attr(node, "group", 1))
        channels = x.shape[0]
        strides = list(self.attr(node, "strides", []) or [1] * dims)
        padding = pads[:half] if pads else [0] * dims
        out = w.shape[0]
        if groups != 1 and not (groups == channels and w.shape[1] == 1):
            # A grouped convolution is a dense one whose weights are 0 outside the groups.
            per_in, per_out = channels // groups, out // groups
            full = np.zeros((out, channels) + w.shape[2:], np.int64)
            for o in range(out):
                k = o // per_out
                full[o, k * per_in:(k + 1) * per_in] = w[o]
            w, groups = full, 1
        name = self.qname(node)
        make = g.conv2d if dims == 2 else g.conv1d
        self.append(make(name, w, np.zeros(out, np.int64), bits, s_w, stride=strides,
                         padding=padding, groups=groups, inputs=[x.node]))
        self.names[name] = node.name
        shapes = self.graph_so_far().shapes() if self.input_spec else None
        if shapes is None or name not in shapes:
            raise _Problem(f"the convolution does not fit its input of shape {x.shape}")
        value = _Value(name, shapes[name], s_in * s_w, filter=name)
        if len(node.input) > 2 and node.input[2]:
            value = self.with_bias(node, value, inputs[2], node.input[2])
        self.retrace(value, node.output[0])
        return [value]

    # -- elementwise, pools, shapes

    def op_Add(self, node, inputs):
        a, b = inputs
        consts = [isinstance(v, _QConst) or v is None or isinstance(v, str) for v in (a, b)]
        if consts[0] and consts[1]:
            raise _Problem("both inputs are constants")
        if consts[0] or consts[1]:
            value, bias, tensor = (b, a, node.input[0]) if consts[0] else (a, b, node.input[1])
            if not isinstance(value, _Value):
                raise _Problem("its input must come through a Quant, not a float tensor")
            value = self.with_bias(node, value, bias, tensor)
            self.retrace(value, node.output[0])
            return [value]
        for v, name in ((a, node.input[0]), (b, node.input[1])):
            if not isinstance(v, _Value):
                raise _Problem(f"input '{name}' must come through a Quant, not a float tensor")
            if not v.clean:
                raise _Problem(f"input '{name}' still carries a bias or a Relu; a residual add "
                               f"needs both inputs quantized (a Quant on each)")
        if a.shape != b.shape:
            raise _Problem(f"inputs have shapes {a.shape} and {b.shape}; broadcasting is not "
                           f"supported")
        if not np.allclose(a.scale, b.scale, rtol=1e-6, atol=0):
            raise _Problem(f"inputs have different scales ({_short(a.scale)} and "
                           f"{_short(b.scale)}); quantize both with one shared quantizer")
        name = self.qname(node)
        self.append(g.add(name, [a.node, b.node]))
        self.names[name] = node.name
        value = _Value(name, a.shape, a.scale)
        self.retrace(value, node.output[0])
        return [value]

    def op_Relu(self, node, inputs):
        x = inputs[0]
        if not isinstance(x, _Value):
            raise _Problem("its input must come through a Quant, not a float tensor")
        return [x.but(relu=True)]

    def op_Identity(self, node, inputs):
        return [inputs[0]]

    def pool_geometry(self, node, x, pads_allowed):
        kernel, strides, pads = self.pool_attributes(node, pads_allowed)
        if not isinstance(x, _Value):
            raise _Problem("its input must come through a Quant, not a float tensor")
        if len(kernel) not in (1, 2) or len(x.shape) != len(kernel) + 1:
            raise _Problem(f"kernel_shape {kernel} does not fit an input of shape {x.shape}")
        return kernel, strides, pads

    def pool_attributes(self, node, pads_allowed):
        problems = []
        kernel = list(self.attr(node, "kernel_shape", []) or [])
        strides = list(self.attr(node, "strides", []) or [1] * len(kernel))
        pads = list(self.attr(node, "pads", []) or [0] * 2 * len(kernel))
        half = len(pads) // 2
        if self.attr(node, "ceil_mode", 0):
            problems.append("attribute ceil_mode must be 0, not 1")
        dilations = self.attr(node, "dilations")
        if dilations and any(d != 1 for d in dilations):
            problems.append(f"attribute dilations must be all 1, not {list(dilations)}")
        if self.attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            problems.append(f"attribute auto_pad must be NOTSET or VALID, not "
                            f"{self.attr(node, 'auto_pad')}")
        if pads[:half] != pads[half:]:
            problems.append(f"attribute pads must be symmetric (begin = end), not {pads}")
        elif any(pads) and not pads_allowed:
            problems.append(f"attribute pads must be all 0, not {pads}")
        if problems:
            raise _Problem("; ".join(problems))
        return kernel, strides, pads[:half]

    def op_MaxPool(self, node, inputs):
        x = inputs[0]
        kernel, strides, padding = self.pool_geometry(node, x, pads_allowed=True)
        if len(node.output) > 1 and node.output[1]:
            raise _Problem("the Indices output is not supported")
        make = g.maxpool2d if len(kernel) == 2 else g.maxpool1d
        name = self.qname(node)
        self.append(make(name, kernel, strides, padding, inputs=[x.node]))
        self.names[name] = node.name
        value = x.but(node=name, shape=self.shape_of(name))
        self.retrace(value, node.output[0])
        return [value]

    def op_AveragePool(self, node, inputs):
        x = inputs[0]
        kernel, strides, _ = self.pool_geometry(node, x, pads_allowed=False)
        if x.relu:
            raise _Problem("its input still carries a Relu; put a Quant between")
        make = g.avgpool2d if len(kernel) == 2 else g.avgpool1d
        name = self.qname(node)
        self.append(make(name, kernel, strides, inputs=[x.node]))
        self.names[name] = node.name
        value = x.but(node=name, shape=self.shape_of(name),
                      scale=x.scale / int(np.prod(kernel)))
        self.retrace(value, node.output[0])
        return [value]

    def op_GlobalAveragePool(self, node, inputs):
        x = inputs[0]
        if not isinstance(x, _Value) or len(x.shape) < 2:
            raise _Problem("its input must be a quantized (channels, *spatial) map")
        if x.relu:
            raise _Problem("its input still carries a Relu; put a Quant between")
        name = self.qname(node)
        self.append(g.global_avgpool(name, inputs=[x.node]))
        self.names[name] = node.name
        value = x.but(node=name, shape=(x.shape[0],),
                      scale=x.scale / int(np.prod(x.shape[1:])))
        self.retrace(value, node.output[0])
        return [value]

    def shape_of(self, name):
        shapes = self.graph_so_far().shapes()
        if name not in shapes:
            raise _Problem("it does not fit its input")
        return shapes[name]

    def flatten(self, node, x):
        if isinstance(x, _Raw):
            # Before the input Quant: the QGraph input is the flattened vector.
            return _Raw((int(np.prod(x.shape)),))
        if not isinstance(x, _Value):
            raise _Problem("its input must be the graph input or a quantized tensor")
        if len(x.shape) == 1:
            return x.but(filter=x.filter)
        name = self.qname(node)
        self.append(g.flatten(name, inputs=[x.node]))
        self.names[name] = node.name
        size = int(np.prod(x.shape))
        bias = None if x.bias is None else _spread(x.bias, x.shape)
        return x.but(node=name, shape=(size,), scale=_spread(x.scale, x.shape), bias=bias)

    def op_Flatten(self, node, inputs):
        axis = int(self.attr(node, "axis", 1))
        if axis != 1:
            raise _Problem(f"attribute axis must be 1 (keep the batch axis), not {axis}")
        return [self.flatten(node, inputs[0])]

    def op_Reshape(self, node, inputs):
        shape = self.const(node.input[1])
        x = inputs[0]
        size = int(np.prod(x.shape)) if isinstance(x, (_Value, _Raw)) else None
        if shape is None:
            raise _Problem("input shape must be a constant")
        shape = [int(v) for v in shape]
        if len(shape) != 2 or shape[1] not in (-1, size) or shape[0] not in (-1, 0, 1):
            raise _Problem(f"only a reshape to (batch, features) is supported, not {shape}")
        return [self.flatten(node, x)]

    def op_BatchNormalization(self, node, inputs):
        x = inputs[0]
        params = [self.const(name) for name in node.input[1:5]]
        if any(p is None for p in params):
            raise _Problem("scale, B, input_mean and input_var must be constants")
        if not isinstance(x, _Value):
            raise _Problem("its input must come through a Quant, not a float tensor")
        if x.relu:
            raise _Problem("its input still carries a Relu; put a Quant between")
        gamma, beta, mean, var = (_per_channel(p, x.shape[0], n) for p, n in zip(
            params, ("scale", "B", "input_mean", "input_var")))
        a = gamma / np.sqrt(var + float(self.attr(node, "epsilon", 1e-5)))
        if (a == 0).any():
            raise _Problem(f"scale is 0 for channel {int(np.argmax(a == 0))}")
        bias = np.zeros(x.shape[0]) if x.bias is None else x.bias
        scale = x.scale * _spread(a, x.shape) if len(x.shape) == 1 else x.scale * a
        bias = bias * a + (beta - mean * a)
        if (a < 0).any():
            if x.filter is None or len(self.readers.get(node.input[0], [])) > 1:
                raise _Problem("a negative scale needs the filters right before it (read by "
                               "nothing else) to negate")
            filt = self._node(x.filter)
            flip = np.where(a < 0, -1, 1)
            for key in ("weight", "bias"):
                t = filt.tensors[key]
                filt.tensors[key] = t * flip.reshape((-1,) + (1,) * (t.ndim - 1))
            scale = np.abs(scale)
            self.trace.pop(x.filter, None)
        value = x.but(scale=scale, bias=bias)
        self.retrace(value, node.output[0])
        return [value]

    def op_MultiThreshold(self, node, inputs):
        x = inputs[0]
        thresholds = self.const(node.input[1])
        if thresholds is None:
            raise _Problem("thresholds must be a constant")
        problems = []
        out_bias = float(self.attr(node, "out_bias", 0.0))
        out_scale = float(self.attr(node, "out_scale", 1.0))
        layout = self.attr(node, "data_layout", "") or "NCHW"
        if out_bias != 0:
            problems.append(f"attribute out_bias must be 0, not {out_bias}")
        if out_scale <= 0:
            problems.append(f"attribute out_scale must be positive, not {out_scale}")
        if layout not in ("NCHW", "NCW", "NC"):
            problems.append(f"attribute data_layout must be channels first, not {layout}")
        if problems:
            raise _Problem("; ".join(problems))
        if not isinstance(x, _Value):
            raise _Problem("its input must come through a Quant, not a float tensor")
        if x.relu:
            raise _Problem("its input still carries a Relu; put a Quant between")
        channels = x.shape[0]
        if thresholds.ndim != 2 or thresholds.shape[0] not in (1, channels):
            raise _Problem(f"thresholds must have shape (1 or {channels}, steps), not "
                           f"{thresholds.shape}")
        steps = thresholds.shape[1]
        out_bits = int(steps + 1).bit_length() - 1
        if steps < 1 or (1 << out_bits) != steps + 1:
            raise _Problem(f"thresholds must number 2^b - 1 per channel, not {steps}")
        t = np.broadcast_to(thresholds, (channels, steps))
        t0 = t[:, 0]
        step = t[:, 1] - t[:, 0] if steps > 1 else np.ones(channels)
        if steps > 1 and (not np.allclose(np.diff(t, axis=1), step[:, None], rtol=1e-6,
                                          atol=0) or (step <= 0).any()):
            raise _Problem("thresholds must be evenly spaced and increasing in every channel")
        # count = clamp(floor((scale * q + bias - t0) / step) + 1, 0, 2^b - 1)
        bias = np.zeros(channels) if x.bias is None else x.bias
        name = self.requantize(node, x, x.scale / step, (bias - t0) / step + 1, out_bits,
                               False, "floor", scale=out_scale)
        value = _Value(name, x.shape, np.full(channels, out_scale))
        self.retrace(value, node.output[0])
        return [value]

    # -- the head

    def head(self, value, tensor):
        """Make the graph output the model's output on one scale, for an argmax."""
        if not isinstance(value, _Value):
            raise _Problem("the output must be computed from the quantized input")
        if value.node == "input":
            raise _Problem("the model has no layer")
        uniform = np.allclose(value.scale, value.scale[0], rtol=1e-6, atol=0)
        if value.clean and uniform:
            self.output_scale = value.scale
            self.move_last(value.node)
            return
        s_out = float(value.scale.min())
        ratio = value.scale / s_out
        bias = None if value.bias is None else value.bias / s_out
        lo, hi = self.value_range(value)
        m, shift, b, _ = _fixed_point(ratio, bias)
        reach = (max(-lo, hi) * int(m.max()) + int(np.abs(b).max()) >> shift) + 1
        bits = numerics.bits_for_range(-reach, reach)[0]
        if bits > g.MAX_OUT_BITS:
            raise _Problem(f"rescaling the output onto one scale needs {bits} bits, more than "
                           f"{g.MAX_OUT_BITS}")
        name = f"{value.node}_rescale"
        rescale = _Dummy(name)
        name = self.requantize(rescale, value, ratio, bias, bits, not value.relu,
                               "half_even", name=name, scale=s_out)
        self.trace[name] = (tensor, np.full(value.shape[0], s_out), None)
        self.output_scale = np.full(value.shape[0], s_out)

    def move_last(self, name):
        if self.nodes[-1].name != name:
            raise _Problem(f"the output layer '{name}' must be the last one computed")


def _activation_rounding(rounding, out_signed):
    """The requantize rounding of an activation Quant's ``rounding_mode``."""
    modes = {"ROUND": "half_even", "HALF_EVEN": "half_even", "FLOOR": "floor", "CEIL": "ceil"}
    if rounding == "HALF_UP" and not out_signed:
        return "half_up"     # away from zero = up, where negative values clamp to 0
    if rounding in modes:
        return modes[rounding]
    raise _Problem(f"rounding_mode {rounding} is not supported on activations; use ROUND (or "
                   f"HALF_EVEN, FLOOR, CEIL; HALF_UP on unsigned outputs)")


@dataclass
class _Dummy:
    name: str
    op_type: str = "Rescale"


def _per_channel_any(scale, channels):
    scale = np.asarray(scale, np.float64).reshape(-1)
    if scale.size == channels:
        return scale
    return np.full(channels, scale[0]) if np.all(scale == scale[0]) else scale[:channels]


def _short(values, limit=6):
    values = np.asarray(values).reshape(-1)
    shown = ", ".join(f"{v:g}" for v in values[:limit])
    return f"[{shown}{', ...' if values.size > limit else ''}]" if values.size > 1 else shown


def map_model(model, originals):
    """The :class:`Imported` QGraph of a cleaned qonnx ``ModelWrapper``; ``originals`` maps
    node names to the names the file gave them (for the messages)."""
    return _Mapper(model, originals).run()
