"""Export a trained :mod:`quant.nn` model to a QGraph (integer weights, biases, Requantizers).

Integer view of each layer:

- ``QuantInput`` becomes the graph's :class:`~quant.graph.InputSpec` (its scale included).
- ``QuantLinear`` becomes a ``dense`` node, ``QuantConv2d`` / ``QuantConv1d`` a ``conv2d`` /
  ``conv1d`` node: ``layer.int_weight()``, the bias on the accumulator grid
  ``input_scale * weight_scale[c]`` (``layer.int_bias(input_scale)``), the per-filter
  ``weight_bits`` and ``weight_scale``; stride, padding and groups as attributes.
- A ``BatchNorm1d`` / ``BatchNorm2d`` right after such a layer is folded into its float weights
  and bias first (:func:`quant.nn.fold_batchnorm`, inference statistics), then quantized.
- ``Requantizer`` becomes a ``requantize`` node whose multipliers and shift approximate the real
  rescale ``r[c] = acc_scale[c] / scale`` (:func:`requantize_parameters`).
- ``nn.MaxPool2d`` / ``nn.MaxPool1d`` become ``maxpool2d`` / ``maxpool1d`` (the scale is kept).
- ``nn.AvgPool2d`` / ``nn.AvgPool1d`` become ``avgpool2d`` / ``avgpool1d``, and
  ``nn.AdaptiveAvgPool2d(1)`` / ``nn.AdaptiveAvgPool1d(1)`` ``global_avgpool``: their integers
  are the exact window sums, whose scale is the input scale divided by the window size. The
  division is thereby folded into the next Requantizer's ratio ``r[c]``, hence into its
  multiplier and shift (a weight layer may also read the sums directly: its bias then lives on
  the finer grid).
- A :class:`~quant.nn.Residual` block becomes its body's nodes, its shortcut's nodes, a
  ``requantize`` node per branch to the join's scale (signed, ``QuantAdd.a_bits`` wide, named
  ``<block>.requantize_body`` / ``<block>.requantize_shortcut``) and an ``add`` node
  (``<block>.add``). The rule: every branch is brought to the :class:`~quant.nn.QuantAdd`
  scale; a branch is left as it is only when it already holds integers of exactly that scale
  within that range (the requantize would be the identity). The sum is on the join's scale,
  which the Requantizer after the block rescales from.
- ``nn.Flatten`` becomes ``flatten`` (channel-major, as PyTorch); ``nn.Identity`` disappears.

How close the golden executor comes to the fake-quant forward pass: with power-of-two scales
everywhere (input, weights, Requantizers) the rescale is exact and both compute the same integers
bit for bit (as long as the float accumulator of the fake-quant pass is exact, i.e. below 2^24
steps in float32). Otherwise ``M[c] / 2^S`` equals ``r[c]`` to 16 significant bits for the
channel with the largest ratio, and to fewer for the others (one shift serves the layer, and a
4-bit filter's ratio is about 127/7 = 18 times that of an 8-bit filter of similar range). An
activation then differs by one step only where ``acc * r[c]`` falls within that error of a
rounding tie: fewer than 1 in 1,000 activations of the MNIST MLP, with no change of its test
accuracy (``tests/quant/test_export.py`` checks these bounds). The same holds for average
pools over windows that are not a power of two. Batch normalization folded at export, rather
than before quantization-aware fine-tuning, changes the rounding of each weight and is only
close.
"""


import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import graph as qgraph
from . import numerics
from .errors import GraphError, UnsupportedLayerError
from .graph import MAX_MULTIPLIER_BITS, MAX_SHIFT
from .nn import (FILTER_LAYERS, QuantAdd, QuantConv1d, QuantConv2d, QuantInput, QuantLinear,
                 Requantizer, Residual, fold_batchnorm)

__all__ = ["export", "requantize_parameters", "MULTIPLIER_BITS"]

#: Width of the largest Requantizer multiplier of a layer (one DSP operand with room to spare).
MULTIPLIER_BITS = 16

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_MAXPOOLS = (nn.MaxPool1d, nn.MaxPool2d)
_AVGPOOLS = (nn.AvgPool1d, nn.AvgPool2d)
_GLOBALPOOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)

SUPPORTED = (QuantInput, QuantLinear, QuantConv2d, QuantConv1d, Requantizer, Residual,
             nn.BatchNorm2d, nn.BatchNorm1d, nn.MaxPool2d, nn.MaxPool1d, nn.AvgPool2d,
             nn.AvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool1d, nn.Flatten, nn.Identity)

_HINTS = (
    (nn.Linear, "use quant.nn.QuantLinear"),
    ((nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.GELU),
     "use quant.nn.Requantizer, which is the activation"),
    (nn.Conv2d, "use quant.nn.QuantConv2d"),
    (nn.Conv1d, "use quant.nn.QuantConv1d"),
    ((nn.Conv3d, nn.MaxPool3d, nn.AvgPool3d, nn.BatchNorm3d), "3-D layers are not supported"),
    (QuantAdd, "use it as the join of a quant.nn.Residual block"),
    (nn.Dropout, "remove it for export (it does nothing at inference)"),
)


def _supported_names():
    return ", ".join(t.__name__ for t in SUPPORTED)


def _leaves(module, prefix=""):
    """``(path, module)`` for every module of a Sequential, nested Sequentials expanded."""
    for name, child in module.named_children():
        if isinstance(child, nn.Sequential):
            yield from _leaves(child, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", child


def _branch_leaves(branch, path):
    """The leaves of a Residual branch: a Sequential's, or the branch itself."""
    if isinstance(branch, nn.Sequential):
        return list(_leaves(branch, f"{path}."))
    return [(path, branch)]


def _all_leaves(leaves):
    """The leaves with every Residual's branches expanded after it (for the support check)."""
    for path, module in leaves:
        yield path, module
        if isinstance(module, Residual):
            for sub in ("body", "shortcut"):
                branch = getattr(module, sub)
                if branch is not None:
                    yield from _all_leaves(_branch_leaves(branch, f"{path}.{sub}"))


def _axes(value):
    return value if isinstance(value, tuple) else (value,)


def _unsupported_reason(module):
    name = type(module).__name__
    if isinstance(module, nn.Flatten):
        if module.start_dim == 1 and module.end_dim == -1:
            return None
        return (f"Flatten must flatten dims 1..-1 (one vector per input), not "
                f"{module.start_dim}..{module.end_dim}")
    if isinstance(module, _MAXPOOLS):
        if (not any(_axes(module.padding)) and all(d == 1 for d in _axes(module.dilation))
                and not module.ceil_mode and not module.return_indices):
            return None
        return (f"{name} must have padding 0, dilation 1 and ceil_mode False, not padding "
                f"{module.padding}, dilation {module.dilation}, ceil_mode {module.ceil_mode}")
    if isinstance(module, _AVGPOOLS):
        if (not any(_axes(module.padding)) and not module.ceil_mode
                and getattr(module, "divisor_override", None) is None):
            return None
        return (f"{name} must have padding 0, ceil_mode False and no divisor_override, not "
                f"padding {module.padding}, ceil_mode {module.ceil_mode}")
    if isinstance(module, _GLOBALPOOLS):
        if all(d == 1 for d in _axes(module.output_size)):
            return None
        return (f"{name} must have output_size 1 (global average pooling), not "
                f"{module.output_size}")
    if isinstance(module, _BATCHNORMS):
        if module.track_running_stats:
            return None
        return f"{name} must track running statistics (track_running_stats=True) to be folded"
    if isinstance(module, Residual):
        if isinstance(module.add, QuantAdd):
            return None
        return (f"Residual must join its branches with a quant.nn.QuantAdd, not "
                f"{type(module.add).__name__}")
    if isinstance(module, SUPPORTED):
        return None
    for types, hint in _HINTS:
        if isinstance(module, types):
            return f"{name} is not supported; {hint}"
    return f"{name} is not supported; supported modules are {_supported_names()}"


def requantize_parameters(ratio, *, power_of_two=False, multiplier_bits=MULTIPLIER_BITS):
    """Integer ``(multiplier, shift)`` with ``multiplier[c] / 2^shift ≈ ratio[c]``.

    One ``shift`` serves the whole layer. Normally it is the largest (at most ``MAX_SHIFT``)
    that keeps the largest multiplier within ``multiplier_bits`` bits, which keeps about
    ``multiplier_bits`` significant bits of the largest ratio; multipliers are
    ``round(ratio * 2^shift)``, raised to 1 where a channel's ratio is more than
    ``2^multiplier_bits`` times smaller than the largest (such a channel is nearly silent).

    With ``power_of_two`` every ratio must be an exact power of two, and every multiplier is
    one: the shift is the smallest that makes every multiplier an integer, so channels sharing
    the smallest ratio get ``multiplier = 1`` and the rescale is a pure shift.

    Raises
    ------
    ValueError
        A ratio is not positive and finite, is not a power of two in ``power_of_two`` mode, or
        cannot be represented (multiplier beyond ``2^24`` at shift 0, or ratios too far apart).
    """
    ratio = np.atleast_1d(np.asarray(ratio, dtype=np.float64))
    if not np.all(np.isfinite(ratio) & (ratio > 0)):
        bad = np.flatnonzero(~(np.isfinite(ratio) & (ratio > 0)))[0]
        raise ValueError(f"rescale ratio must be positive and finite, not {ratio[bad]} "
                         f"(channel {bad})")
    if power_of_two:
        exponent = np.round(np.log2(ratio))
        off = np.flatnonzero(np.ldexp(1.0, exponent.astype(int)) != ratio)
        if off.size:
            raise ValueError(f"rescale ratio of channel {off[0]} is {ratio[off[0]]:.9g}, not a "
                             f"power of two ({off.size} channels)")
        exponent = exponent.astype(np.int64)
        shift = int(min(max(-exponent.min(), 0), MAX_SHIFT))
        mult_exp = exponent + shift
        if mult_exp.min() < 0:
            raise ValueError(f"rescale ratio 2^{exponent.min()} needs a shift beyond "
                             f"{MAX_SHIFT}")
        if mult_exp.max() >= multiplier_bits:
            raise ValueError(f"rescale ratios 2^{exponent.min()}..2^{exponent.max()} are too "
                             f"far apart for {multiplier_bits}-bit multipliers")
        return (np.int64(1) << mult_exp).astype(np.int64), shift

    limit = (1 << multiplier_bits) - 1
    top = float(ratio.max())

    def fits(s):
        return math.floor(math.ldexp(top, s) + 0.5) <= limit

    shift = min(max(math.floor(math.log2(limit / top)), 0), MAX_SHIFT)
    while shift > 0 and not fits(shift):
        shift -= 1
    while shift < MAX_SHIFT and fits(shift + 1):
        shift += 1
    mult = np.floor(np.ldexp(ratio, shift) + 0.5)
    if mult.max() >= 2.0 ** MAX_MULTIPLIER_BITS:
        raise ValueError(f"rescale ratio {top:.6g} needs a multiplier of "
                         f"{int(mult.max()).bit_length()} bits at shift 0, more than "
                         f"{MAX_MULTIPLIER_BITS}")
    return np.maximum(mult, 1).astype(np.int64), int(shift)


def _check_shape(input_shape):
    shape = (input_shape,) if isinstance(input_shape, int) else input_shape
    try:
        shape = tuple(shape)
    except TypeError:
        shape = None
    if (not shape or any(not numerics.is_int(d) or d < 1
                         for d in shape)):
        raise ValueError(f"input_shape must be a tuple of positive integers (one input, no "
                         f"batch axis), not {input_shape!r}")
    return tuple(int(d) for d in shape)



@dataclass
class _Value:
    """A tensor of the integer network while it is being built."""
    node: str            # the node that computes it, or "input"
    shape: tuple         # without the batch axis
    scale: np.ndarray    # float64 real value of one step: 0-d, or one per channel (or element)
    grid: object         # 0-d torch scale when a weight layer may read it (one grid), else None
    range: tuple = None  # inclusive integer bounds, when a quantizer fixed them


class _Stop(Exception):
    """A shape problem: nothing after it can be exported meaningfully."""


class _Exporter:
    def __init__(self):
        self.nodes, self.problems = [], []
        self.spec = None

    def emit(self, node, operands):
        node.inputs = [v.node for v in operands]
        problems = []
        shape = qgraph.check_node(node, [v.shape for v in operands], problems)
        self.problems += problems
        self.nodes.append(node)
        if shape is None:
            raise _Stop
        return shape

    def requantize(self, name, value, out_scale, bits, signed, power_of_two, where):
        ratio = np.broadcast_to(value.scale / np.float64(out_scale), (value.shape[0],))
        lo_hi = tuple(int(v) for v in numerics.int_range(bits, signed))
        try:
            mult, shift = requantize_parameters(ratio, power_of_two=power_of_two)
        except ValueError as e:
            hint = (" (power_of_two needs power-of-two scales before it: QuantLinear "
                    "power_of_two=True and a power-of-two QuantInput scale)"
                    if "not a power of two" in str(e) else "")
            self.problems.append(f"{where}: {e}{hint}")
            return _Value(value.node, value.shape, np.float64(out_scale), out_scale, lo_hi)
        node = qgraph.requantize(name, mult, shift, bits, signed, float(out_scale))
        shape = self.emit(node, [value])
        return _Value(name, shape, np.float64(out_scale), out_scale, lo_hi)

    def walk(self, leaves, value, top=False):
        leaves = [(name, m) for name, m in leaves if not isinstance(m, nn.Identity)]
        folded = set()
        for position, (name, m) in enumerate(leaves):
            where = f"layer '{name}' ({type(m).__name__})"
            if top and isinstance(m, QuantInput):
                if position != 0:
                    self.problems.append(f"{where} must be the first layer, since it describes "
                                         f"the network input; it is at position {position}")
                    continue
                self.spec = qgraph.InputSpec(value.shape, m.bits, m.signed, float(m.scale))
                grid = m.output_scale().detach()
                value = _Value("input", value.shape, np.float64(grid), grid,
                               tuple(int(v) for v in m.int_range))
                continue
            if top and position == 0:
                self.problems.append(f"{where}: the first layer must be a QuantInput, which "
                                     f"gives the input's integer type and scale")
                # Go on with a unit input scale so that later problems are listed too.
                grid = torch.tensor(1.0)
                value = _Value("input", value.shape, np.float64(1.0), grid)
            if position in folded:
                continue
            if isinstance(m, FILTER_LAYERS):
                if value.grid is None:
                    self.problems.append(f"{where} reads a raw accumulator; put a Requantizer "
                                         f"before it")
                if position + 1 < len(leaves) and isinstance(leaves[position + 1][1], _BATCHNORMS):
                    folded.add(position + 1)
                    try:
                        m = fold_batchnorm(m, leaves[position + 1][1])
                    except ValueError as e:
                        self.problems.append(f"layer '{leaves[position + 1][0]}': {e}")
                if value.grid is not None:
                    value = self.filter_layer(name, m, value)
            elif isinstance(m, _BATCHNORMS):
                self.problems.append(f"{where} must follow a QuantLinear, QuantConv1d or "
                                     f"QuantConv2d, whose weights it is folded into")
            elif isinstance(m, Requantizer):
                out_scale = m.output_scale().detach()
                value = self.requantize(name, value, out_scale, m.a_bits, m.signed,
                                        m.power_of_two, where)
            elif isinstance(m, nn.Flatten):
                scale = value.scale
                if scale.ndim == 1 and len(value.shape) > 1:
                    scale = np.repeat(scale, int(np.prod(value.shape[1:])))
                shape = self.emit(qgraph.flatten(name), [value])
                value = _Value(name, shape, scale, value.grid, value.range)
            elif isinstance(m, _MAXPOOLS + _AVGPOOLS):
                value = self.pool(name, m, value)
            elif isinstance(m, _GLOBALPOOLS):
                pixels = int(np.prod(value.shape[1:]))
                shape = self.emit(qgraph.global_avgpool(name), [value])
                value = self.summed(name, shape, value, pixels)
            elif isinstance(m, Residual):
                value = self.residual(name, m, value, where)
        return value

    def filter_layer(self, name, m, value):
        weight_scale = m.weight_scale().detach().cpu().numpy().astype(np.float64)
        args = (name, m.int_weight(), m.int_bias(value.grid),
                m.weight_bits.cpu().numpy().astype(np.int64), weight_scale)
        if isinstance(m, QuantLinear):
            node = qgraph.dense(*args)
        else:
            build = qgraph.conv2d if isinstance(m, QuantConv2d) else qgraph.conv1d
            node = build(*args, stride=m.stride, padding=m.padding, groups=m.groups)
        shape = self.emit(node, [value])
        return _Value(name, shape, np.float64(value.grid) * weight_scale, None)

    def pool(self, name, m, value):
        dims = 2 if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) else 1
        kernel = numerics.spatial_tuple("kernel_size", m.kernel_size, dims, minimum=1)
        stride = numerics.spatial_tuple("stride", m.stride or m.kernel_size, dims, minimum=1)
        if isinstance(m, _MAXPOOLS):
            build = qgraph.maxpool2d if dims == 2 else qgraph.maxpool1d
            shape = self.emit(build(name, kernel, stride), [value])
            return _Value(name, shape, value.scale, value.grid, value.range)
        build = qgraph.avgpool2d if dims == 2 else qgraph.avgpool1d
        shape = self.emit(build(name, kernel, stride), [value])
        return self.summed(name, shape, value, int(np.prod(kernel)))

    @staticmethod
    def summed(name, shape, value, window):
        """The value of a sum pool: the same integers' sum on a grid ``window`` times finer
        (computed as ``quant.nn`` does, so a weight layer reading it gets the same bias)."""
        grid = None if value.grid is None else value.grid / window
        bounds = None if value.range is None else (value.range[0] * window,
                                                   value.range[1] * window)
        return _Value(name, shape, value.scale / window, grid, bounds)

    def residual(self, name, m, value, where):
        add = m.add
        add_scale = add.output_scale().detach()
        body = self.walk(_branch_leaves(m.body, f"{name}.body"), value)
        shortcut = value if m.shortcut is None else \
            self.walk(_branch_leaves(m.shortcut, f"{name}.shortcut"), value)
        lo, hi = (int(v) for v in numerics.int_range(add.a_bits, True))
        operands = []
        for label, branch in (("body", body), ("shortcut", shortcut)):
            if (branch.range is not None and lo <= branch.range[0] and branch.range[1] <= hi
                    and branch.scale.ndim == 0 and branch.scale == np.float64(add_scale)):
                operands.append(branch)
            else:
                operands.append(self.requantize(f"{name}.requantize_{label}", branch, add_scale,
                                                add.a_bits, True, add.power_of_two, where))
        shape = self.emit(qgraph.add(f"{name}.add", []), operands)
        return _Value(f"{name}.add", shape, np.float64(add_scale), add_scale, (2 * lo, 2 * hi))


def export(model, input_shape, *, metadata=None):
    """Convert a trained ``nn.Sequential`` of :mod:`quant.nn` layers to a validated QGraph.

    Parameters
    ----------
    model : nn.Sequential
        ``QuantInput`` first, then weight layers (``QuantLinear``, ``QuantConv2d``,
        ``QuantConv1d``, each optionally followed by a ``BatchNorm``), ``Requantizer``,
        pooling (``MaxPool``, ``AvgPool``, ``AdaptiveAvgPool(1)``), ``Residual``,
        ``nn.Flatten`` and ``nn.Identity`` modules (nested Sequentials are expanded). A weight
        layer must read the input, a Requantizer's output, a residual join or a pool of those,
        since its bias lives on its input's grid.
    input_shape : tuple of int
        Shape of one input, without the batch axis: ``(784,)``, ``(1, 28, 28)`` for an image
        (channels, height, width), ``(1, 256)`` for a signal (channels, length).
    metadata : dict, optional
        Extra JSON-able facts stored in the graph.

    Returns
    -------
    QGraph
        Node names are the module paths in ``model`` (``"fc1"``, ``"block1.body.conv1"``, or
        ``"2"`` by position). ``metadata["output_scale"]`` holds the real value of one step of
        each output channel.

    Raises
    ------
    TypeError
        ``model`` is not an ``nn.Sequential``.
    UnsupportedLayerError
        Some modules have no integer equivalent; all of them are listed, one per line, before
        anything is exported.
    GraphError
        The layers are in an order the QGraph cannot express, shapes do not fit, or a
        Requantizer's rescale cannot be represented; every problem is listed (shapes are
        checked in order, and the first shape that does not fit ends the list).
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, not {type(model).__name__}")
    input_shape = _check_shape(input_shape)
    layers = list(_leaves(model))
    unsupported = []
    for position, (name, module) in enumerate(_all_leaves(layers)):
        reason = _unsupported_reason(module)
        if reason:
            unsupported.append(f"module '{name}' (position {position}, "
                               f"{type(module).__name__}): {reason}")
    if unsupported:
        raise UnsupportedLayerError(unsupported)

    exporter = _Exporter()
    value = _Value("input", input_shape, np.float64(1.0), None)
    with torch.no_grad():
        try:
            value = exporter.walk(layers, value, top=True)
        except _Stop:
            pass
    problems = exporter.problems
    if not [m for _, m in layers if not isinstance(m, nn.Identity)]:
        problems.append("model has no layers; it must start with a QuantInput")
    if problems:
        raise GraphError(problems)
    scale = np.asarray(value.scale, dtype=np.float64)
    if scale.ndim == 0 or scale.size == value.shape[0]:
        scale = np.broadcast_to(scale, (value.shape[0],))
    meta = {"source": "quant.export", "output_scale": [float(s) for s in scale.ravel()]}
    meta.update(metadata or {})
    return qgraph.QGraph(exporter.spec, exporter.nodes, meta).validate()
