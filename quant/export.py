"""Export a trained :mod:`quant.nn` model to a QGraph (integer weights, biases, Requantizers).

Integer view of each layer:

- ``QuantInput`` becomes the graph's :class:`~quant.graph.InputSpec` (its scale included).
- ``QuantLinear`` becomes a ``dense`` node: ``layer.int_weight()``, the bias on the accumulator
  grid ``input_scale * weight_scale[c]`` (``layer.int_bias(input_scale)``), the per-filter
  ``weight_bits`` and ``weight_scale``.
- ``Requantizer`` becomes a ``requantize`` node whose multipliers and shift approximate the real
  rescale ``r[c] = acc_scale[c] / scale`` (:func:`requantize_parameters`).
- ``nn.Flatten`` becomes ``flatten``; ``nn.Identity`` disappears.

How close the golden executor comes to the fake-quant forward pass: with power-of-two scales
everywhere (input, weights, Requantizers) the rescale is exact and both compute the same integers
bit for bit (as long as the float accumulator of the fake-quant pass is exact, i.e. below 2^24
steps in float32). Otherwise ``M[c] / 2^S`` equals ``r[c]`` to 16 significant bits for the
channel with the largest ratio, and to fewer for the others (one shift serves the layer, and a
4-bit filter's ratio is about 127/7 = 18 times that of an 8-bit filter of similar range). An
activation then differs by one step only where ``acc * r[c]`` falls within that error of a
rounding tie: fewer than 1 in 1,000 activations of the MNIST MLP, with no change of its test
accuracy (``tests/quant/test_export.py`` checks these bounds).
"""

import math

import numpy as np
import torch
from torch import nn

from . import graph as qgraph
from .errors import GraphError, UnsupportedLayerError
from .graph import MAX_MULTIPLIER_BITS, MAX_SHIFT
from .nn import QuantInput, QuantLinear, Requantizer

__all__ = ["export", "requantize_parameters", "MULTIPLIER_BITS"]

#: Width of the largest Requantizer multiplier of a layer (one DSP operand with room to spare).
MULTIPLIER_BITS = 16

SUPPORTED = (QuantInput, QuantLinear, Requantizer, nn.Flatten, nn.Identity)

_HINTS = (
    (nn.Linear, "use quant.nn.QuantLinear"),
    ((nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.GELU),
     "use quant.nn.Requantizer, which is the activation"),
    ((nn.Conv1d, nn.Conv2d, nn.Conv3d), "convolutions have no quant.nn layer yet"),
    ((nn.BatchNorm1d, nn.BatchNorm2d), "fold batch normalization into the QuantLinear before "
                                       "export"),
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


def _unsupported_reason(module):
    if isinstance(module, nn.Flatten):
        if module.start_dim == 1 and module.end_dim == -1:
            return None
        return (f"Flatten must flatten dims 1..-1 (one vector per input), not "
                f"{module.start_dim}..{module.end_dim}")
    if isinstance(module, SUPPORTED):
        return None
    for types, hint in _HINTS:
        if isinstance(module, types):
            return f"{type(module).__name__} is not supported; {hint}"
    return (f"{type(module).__name__} is not supported; supported modules are "
            f"{_supported_names()}")


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
    if (not shape or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1
                         for d in shape)):
        raise ValueError(f"input_shape must be a tuple of positive integers (one input, no "
                         f"batch axis), not {input_shape!r}")
    return tuple(int(d) for d in shape)


def export(model, input_shape, *, metadata=None):
    """Convert a trained ``nn.Sequential`` of :mod:`quant.nn` layers to a validated QGraph.

    Parameters
    ----------
    model : nn.Sequential
        ``QuantInput`` first, then ``QuantLinear``, ``Requantizer``, ``nn.Flatten`` and
        ``nn.Identity`` modules (nested Sequentials are expanded). A ``QuantLinear`` must read
        the input or a Requantizer's output, since its bias lives on its input's grid.
    input_shape : tuple of int
        Shape of one input, without the batch axis, e.g. ``(784,)``.
    metadata : dict, optional
        Extra JSON-able facts stored in the graph.

    Returns
    -------
    QGraph
        Node names are the module names in ``model`` (``"fc1"``, or ``"2"`` by position).
        ``metadata["output_scale"]`` holds the real value of one step of each output.

    Raises
    ------
    TypeError
        ``model`` is not an ``nn.Sequential``.
    UnsupportedLayerError
        Some modules have no integer equivalent; all of them are listed, one per line, before
        anything is exported.
    GraphError
        The layers are in an order the QGraph cannot express, or a Requantizer's rescale cannot
        be represented; every problem is listed.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, not {type(model).__name__}")
    input_shape = _check_shape(input_shape)
    layers = list(_leaves(model))
    unsupported = []
    for position, (name, module) in enumerate(layers):
        reason = _unsupported_reason(module)
        if reason:
            unsupported.append(f"module '{name}' (position {position}, "
                               f"{type(module).__name__}): {reason}")
    if unsupported:
        raise UnsupportedLayerError(unsupported)

    layers = [(name, m) for name, m in layers if not isinstance(m, nn.Identity)]
    problems, nodes = [], []
    spec = None
    shape = input_shape
    act_scale = None   # 0-d tensor: scale of an activation that a QuantLinear may read
    acc_scale = None   # float64 per-channel (or scalar) scale of the current values
    with torch.no_grad():
        for position, (name, m) in enumerate(layers):
            where = f"layer '{name}' ({type(m).__name__})"
            if isinstance(m, QuantInput):
                if position != 0:
                    problems.append(f"{where} must be the first layer, since it describes the "
                                    f"network input; it is at position {position}")
                    continue
                spec = qgraph.InputSpec(input_shape, m.bits, m.signed, float(m.scale))
                act_scale = m.output_scale().detach()
                acc_scale = np.float64(act_scale)
                continue
            if position == 0:
                problems.append(f"{where}: the first layer must be a QuantInput, which gives the "
                                f"input's integer type and scale")
                # Go on with a unit input scale so that later problems are listed too.
                act_scale = torch.tensor(1.0)
                acc_scale = np.float64(1.0)
            if isinstance(m, nn.Flatten):
                nodes.append(qgraph.flatten(name))
                shape = (int(np.prod(shape)),)
            elif isinstance(m, QuantLinear):
                if act_scale is None:
                    problems.append(f"{where} reads a raw accumulator; put a Requantizer "
                                    f"before it")
                    continue
                weight_scale = m.weight_scale().detach().cpu().numpy().astype(np.float64)
                nodes.append(qgraph.dense(name, m.int_weight(), m.int_bias(act_scale),
                                          m.weight_bits.cpu().numpy().astype(np.int64),
                                          weight_scale))
                acc_scale = np.float64(act_scale) * weight_scale
                act_scale = None
                shape = (m.out_features,)
            elif isinstance(m, Requantizer):
                out_scale = m.output_scale().detach()
                channels = shape[0] if len(shape) == 1 else 1
                ratio = np.broadcast_to(acc_scale / np.float64(out_scale), (channels,))
                try:
                    mult, shift = requantize_parameters(ratio, power_of_two=m.power_of_two)
                except ValueError as e:
                    hint = (" (power_of_two needs power-of-two scales before it: QuantLinear "
                            "power_of_two=True and a power-of-two QuantInput scale)"
                            if "not a power of two" in str(e) else "")
                    problems.append(f"{where}: {e}{hint}")
                else:
                    nodes.append(qgraph.requantize(name, mult, shift, m.a_bits, m.signed,
                                                   float(out_scale)))
                act_scale = out_scale
                acc_scale = np.float64(out_scale)
    if not layers:
        problems.append("model has no layers; it must start with a QuantInput")
    if problems:
        raise GraphError(problems)
    output_scale = np.broadcast_to(acc_scale, (shape[0] if len(shape) == 1 else 1,))
    meta = {"source": "quant.export", "output_scale": [float(s) for s in output_scale]}
    meta.update(metadata or {})
    return qgraph.QGraph(spec, nodes, meta).validate()
