"""Quantization-aware PyTorch layers whose integer view is exported to a QGraph.

The layers train with fake quantization: every forward pass rounds to the integer grid and
multiplies back by the scale, so the float network sees exactly the values the integer network
computes (up to float rounding). Rounding uses a straight-through estimator (STE): the forward
pass rounds, the backward pass treats rounding as the identity, and scales receive gradients as
in LSQ (Esser et al., 2020).

A network is ``QuantInput -> QuantLinear -> Requantizer -> ... -> QuantLinear``; the last
``QuantLinear`` outputs the raw accumulator (times its scale), used for argmax. Build it as a
:class:`QuantSequential` so that each ``QuantLinear`` learns a bias on its accumulator grid;
a plain ``nn.Sequential`` works too, with the bias quantized only at export.

Scales are parameters in the log2 domain: always positive, updated multiplicatively by the
optimizer, and rounded to a power of two in ``power_of_two`` mode.
"""

import math
import numbers

import numpy as np
import torch
from torch import nn

from . import numerics

__all__ = ["round_half_up", "QuantInput", "QuantLinear", "Requantizer", "QuantSequential"]

#: Weight bit widths a filter may have (the QGraph's rule).
WEIGHT_BITS_RANGE = (2, 8)
#: Activation widths a Requantizer or the input may have (the QGraph's rule).
ACT_BITS_RANGE = (1, 16)


def round_half_up(x):
    """``floor(x + 1/2)``: ties go towards +inf, as in :func:`quant.numerics.requantize`."""
    return torch.floor(x + 0.5)


def _ste(x, q):
    """``q`` in the forward pass, gradient of ``x`` in the backward pass.

    Written as ``q + (x - x)`` rather than ``x + (q - x)`` so the forward value is exactly ``q``.
    """
    return q.detach() + (x - x.detach())


def _scale_from_log2(log2_scale, power_of_two):
    if power_of_two:
        log2_scale = _ste(log2_scale, torch.round(log2_scale))
    return torch.exp2(log2_scale)


def _check_bits(name, bits, lo, hi):
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not lo <= bits <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {bits!r}")
    return int(bits)


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def _check_scale(name, value):
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value <= 0):
        raise ValueError(f"{name} must be a positive finite number, not {value!r}")
    return float(value)


class QuantInput(nn.Module):
    """Quantizes the network input to integers ``clamp(round(x / scale))`` (fake-quant).

    The returned tensor is the integer grid times ``scale``. For MNIST the raw uint8 pixel is
    the integer: feed ``pixel * scale`` with the default ``scale = 1/255``.

    Parameters
    ----------
    bits : int
        Width of the input integers, 1..16.
    signed : bool
        Two's complement input (a signal) rather than unsigned (pixels).
    scale : float
        Real value of one integer step; fixed, since it describes the data.
    """

    def __init__(self, bits=8, *, signed=False, scale=1 / 255):
        super().__init__()
        self.bits = _check_bits("QuantInput bits", bits, *ACT_BITS_RANGE)
        if signed and self.bits < 2:
            raise ValueError(f"QuantInput bits must be at least 2 when signed, not {bits}")
        self.signed = bool(signed)
        self.register_buffer("scale", torch.tensor(_check_scale("QuantInput scale", scale)))

    @property
    def int_range(self):
        """Inclusive ``(lo, hi)`` of the input integers."""
        return numerics.int_range(self.bits, self.signed)

    def output_scale(self):
        """Real value of one integer step of the output (a 0-d tensor)."""
        return self.scale

    def int_input(self, x):
        """The integers this layer sees for the float input ``x`` (an int64 NumPy array)."""
        with torch.no_grad():
            return self._quantize(torch.as_tensor(x, dtype=self.scale.dtype)).numpy() \
                .astype(np.int64)

    def _quantize(self, x):
        lo, hi = self.int_range
        v = torch.clamp(x / self.scale, lo, hi)
        return _ste(v, round_half_up(v))

    def forward(self, x):
        return self._quantize(x) * self.scale

    def extra_repr(self):
        return f"bits={self.bits}, signed={self.signed}, scale={float(self.scale):.6g}"


class QuantLinear(nn.Module):
    """A fully connected layer with per-filter weight bit widths and learned per-filter scales.

    Filter ``c`` (output ``c``) holds integers in the narrow symmetric range
    ``±(2^(b_c - 1) - 1)`` with ``b_c = weight_bits[c]``; its real weights are those integers
    times ``weight_scale()[c]``. The output is the accumulator times its scale,
    ``input_scale * weight_scale[c]``.

    Parameters
    ----------
    in_features, out_features : int
        Shape, as in ``nn.Linear``.
    weight_bits : int or sequence of int
        One width for every filter, or one per filter; each 2..8. Change it later with
        :meth:`set_weight_bits` (FILM-QNN assignment: :func:`quant.precision.apply_precision`).
    bias : bool
        Learn a bias. It lives on the accumulator grid (``input_scale * weight_scale[c]``): in
        training when the layer runs inside a :class:`QuantSequential`, always at export.
    shared_scale : bool
        One scale for all filters instead of one per filter. Use it for a layer whose raw
        accumulators are compared with each other, such as an argmax head: per-filter scales
        would make ``argmax(acc)`` differ from ``argmax(acc * scale)``.
    power_of_two : bool
        Round the weight scales to powers of two (STE), for a shift-only Requantizer.

    Attributes
    ----------
    weight : Parameter
        Float shadow weights, shape ``(out_features, in_features)``.
    log2_scale : Parameter
        ``log2`` of the weight scales, shape ``(out_features,)`` or ``(1,)`` when shared.
    weight_bits : buffer
        int64 widths, shape ``(out_features,)``.
    """

    def __init__(self, in_features, out_features, *, weight_bits=4, bias=True,
                 shared_scale=False, power_of_two=False):
        super().__init__()
        self.in_features = _check_positive_int("QuantLinear in_features", in_features)
        self.out_features = _check_positive_int("QuantLinear out_features", out_features)
        self.shared_scale = bool(shared_scale)
        self.power_of_two = bool(power_of_two)
        # Same initialization as nn.Linear, so a float model and this one start alike.
        ref = nn.Linear(self.in_features, self.out_features, bias=bias)
        self.weight = nn.Parameter(ref.weight.detach().clone())
        self.bias = nn.Parameter(ref.bias.detach().clone()) if bias else None
        self.log2_scale = nn.Parameter(torch.zeros(1 if shared_scale else self.out_features))
        self.register_buffer("weight_bits", torch.zeros(self.out_features, dtype=torch.int64))
        self.set_weight_bits(weight_bits)

    # -- precision and scales ----------------------------------------------------------------

    def set_weight_bits(self, weight_bits, *, reset_scale=True):
        """Set the per-filter widths (an int or one int per filter) and, by default, re-derive
        the scales from the weights, since a scale fitted to 4 bits is wrong for 8."""
        if isinstance(weight_bits, numbers.Integral) and not isinstance(weight_bits, bool):
            bits = np.full(self.out_features, int(weight_bits))
        else:
            bits = np.asarray(weight_bits.detach().cpu() if torch.is_tensor(weight_bits)
                              else weight_bits)
            if bits.shape != (self.out_features,) or not (
                    np.issubdtype(bits.dtype, np.integer)
                    or (np.issubdtype(bits.dtype, np.floating) and (bits == np.round(bits)).all())):
                raise ValueError(f"weight_bits must be an integer or {self.out_features} integers "
                                 f"(one per filter), not {weight_bits!r}")
        lo, hi = WEIGHT_BITS_RANGE
        bad = np.flatnonzero((bits < lo) | (bits > hi))
        if bad.size:
            raise ValueError(f"weight_bits must be in {lo}..{hi}, not {int(bits[bad[0]])} "
                             f"(filter {bad[0]})")
        with torch.no_grad():
            self.weight_bits.copy_(torch.as_tensor(bits.astype(np.int64)))
        if reset_scale:
            self.reset_scale()

    def weight_max(self):
        """Largest integer magnitude of each filter, ``2^(b-1) - 1``, as a float tensor."""
        return (torch.pow(2, self.weight_bits - 1) - 1).to(self.weight.dtype)

    def reset_scale(self):
        """Set the scales to ``max|w_c| / (2^(b_c-1) - 1)``, so no weight is clipped.

        A shared scale takes the largest of these, which is set by the widest low-precision
        filter; high-precision filters then keep their extra range.
        """
        with torch.no_grad():
            per_filter = self.weight.abs().amax(dim=1) / self.weight_max()
            scale = per_filter.amax(dim=0, keepdim=True) if self.shared_scale else per_filter
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
            self.log2_scale.copy_(torch.log2(scale))

    def weight_scale(self):
        """Real value of one integer step of each filter, shape ``(out_features,)``."""
        scale = _scale_from_log2(self.log2_scale, self.power_of_two)
        return scale.expand(self.out_features)

    def _int_weight(self):
        scale = self.weight_scale()
        limit = self.weight_max()[:, None]
        v = torch.clamp(self.weight / scale[:, None], -limit, limit)
        return _ste(v, round_half_up(v)), scale

    def quantized_weight(self):
        """Fake-quantized weights: the integer weights times their filter's scale."""
        q, scale = self._int_weight()
        return q * scale[:, None]

    def int_weight(self):
        """Integer weights, int64 NumPy array ``(out_features, in_features)``."""
        with torch.no_grad():
            return self._int_weight()[0].cpu().numpy().astype(np.int64)

    def _int_bias(self, input_scale):
        acc_scale = (input_scale.detach() * self.weight_scale().detach())
        v = self.bias / acc_scale
        return _ste(v, round_half_up(v)), acc_scale

    def int_bias(self, input_scale):
        """Integer bias on the accumulator grid ``input_scale * weight_scale[c]`` (int64).

        ``input_scale`` is the scale of this layer's input (a float or a 0-d tensor, the
        ``output_scale()`` of the layer before).
        """
        if self.bias is None:
            return np.zeros(self.out_features, dtype=np.int64)
        input_scale = torch.as_tensor(input_scale, dtype=self.weight.dtype)
        with torch.no_grad():
            return self._int_bias(input_scale)[0].cpu().numpy().astype(np.int64)

    # -- forward -----------------------------------------------------------------------------

    def forward(self, x, input_scale=None):
        """``x @ W_q.T + b`` with ``W_q`` fake-quantized; ``b`` is on the accumulator grid when
        ``input_scale`` (the previous layer's ``output_scale()``) is given, else float."""
        q, scale = self._int_weight()
        # (x @ q.T) * scale rounds once per output instead of once per product.
        acc = torch.nn.functional.linear(x, q)
        if self.bias is None:
            return acc * scale
        if input_scale is None:
            return acc * scale + self.bias
        # The bias grid follows the scales, but its gradient goes to the bias alone.
        q_bias, acc_scale = self._int_bias(input_scale)
        return acc * scale + q_bias * acc_scale

    def extra_repr(self):
        bits, counts = torch.unique(self.weight_bits, return_counts=True)
        hist = ", ".join(f"{int(c)}x{int(b)}b" for b, c in zip(bits, counts))
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"weight_bits=[{hist}], bias={self.bias is not None}, "
                f"shared_scale={self.shared_scale}, power_of_two={self.power_of_two}")


class Requantizer(nn.Module):
    """The trainable Requantizer (Pistellato et al., 2023): activation and rescaler in one.

    ``y = clamp(round(x / scale), lo, hi) * scale`` with ``[lo, hi]`` the ``a_bits`` range
    (``[0, 2^a_bits - 1]`` unsigned, which is a clipped ReLU). The scale is learned with the
    network, so no calibration data is needed. In the integer network this becomes
    ``clamp((acc * M[c] + 2^(S-1)) >> S)`` with ``M[c] / 2^S = acc_scale[c] / scale``
    (see :func:`quant.export.requantize_parameters`).

    Parameters
    ----------
    a_bits : int
        Output width, 1..16 (the next layer's input width).
    signed : bool
        Signed output (no ReLU); needs ``a_bits >= 2``.
    power_of_two : bool
        Round the scale to a power of two. With power-of-two input and weight scales the
        integer rescale is a pure shift, and fake-quant equals the integer network bit for bit.
    init_scale : float, optional
        Starting scale; by default the output range is about ``[0, 4)`` (``±4`` when
        signed), the typical span of ReLU activations in a network with unit-range inputs.
    """

    def __init__(self, a_bits=5, *, signed=False, power_of_two=False, init_scale=None):
        super().__init__()
        self.a_bits = _check_bits("Requantizer a_bits", a_bits, *ACT_BITS_RANGE)
        if signed and self.a_bits < 2:
            raise ValueError(f"Requantizer a_bits must be at least 2 when signed, not {a_bits}")
        self.signed = bool(signed)
        self.power_of_two = bool(power_of_two)
        if init_scale is None:
            init_scale = 4.0 / 2 ** (self.a_bits - self.signed)
        init_scale = _check_scale("Requantizer init_scale", init_scale)
        self.log2_scale = nn.Parameter(torch.tensor(math.log2(init_scale)))

    @property
    def int_range(self):
        """Inclusive ``(lo, hi)`` of the output integers."""
        return numerics.int_range(self.a_bits, self.signed)

    def output_scale(self):
        """Real value of one integer step of the output (a 0-d tensor, with gradient)."""
        return _scale_from_log2(self.log2_scale, self.power_of_two)

    def forward(self, x):
        scale = self.output_scale()
        lo, hi = self.int_range
        # Clamping before rounding equals rounding before clamping (the bounds are integers)
        # and gives the LSQ gradients: x gets 1 inside the range and 0 outside; the scale gets
        # round(v) - v inside and the bound outside.
        v = torch.clamp(x / scale, lo, hi)
        return _ste(v, round_half_up(v)) * scale

    def extra_repr(self):
        scale = float(self.output_scale().detach())
        return (f"a_bits={self.a_bits}, signed={self.signed}, "
                f"power_of_two={self.power_of_two}, scale={scale:.6g}")


class QuantSequential(nn.Sequential):
    """An ``nn.Sequential`` that hands each :class:`QuantLinear` its input scale.

    With the input scale known, the bias trains on the accumulator grid, so the fake-quant
    forward pass matches the exported integer network more closely.
    """

    def forward(self, x):
        scale = None
        for module in self:
            if isinstance(module, QuantLinear):
                x = module(x, input_scale=scale)
                scale = None  # per-filter accumulator scales; only a Requantizer follows
            else:
                x = module(x)
                if isinstance(module, (QuantInput, Requantizer)):
                    scale = module.output_scale()
                elif not isinstance(module, (nn.Flatten, nn.Identity)):
                    scale = None
        return x
