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

Convolutional networks use :class:`QuantConv2d` / :class:`QuantConv1d` the same way (batches
are ``(N, C, H, W)`` / ``(N, C, L)``), with ``nn.MaxPool2d``/``nn.MaxPool1d``,
``nn.AvgPool2d``/``nn.AvgPool1d`` and ``nn.AdaptiveAvgPool2d(1)``/``nn.AdaptiveAvgPool1d(1)``
(global average pooling) between them, and :class:`Residual` blocks::

    QuantInput -> QuantConv2d -> Requantizer -> MaxPool2d -> Residual(body, shortcut)
      -> Requantizer -> AdaptiveAvgPool2d(1) -> Requantizer -> Flatten -> QuantLinear

A convolution may be followed by batch normalization (``QuantConv2d -> BatchNorm2d ->
Requantizer``): :func:`fold_batchnorm` merges the normalization into the convolution's float
weights and bias, and the exporter does the same before quantizing. To make the trained
fake-quant network and the exported integers agree closely, fold before quantization-aware
fine-tuning (:func:`fold_batchnorms` does it for a whole model).

Scales are parameters in the log2 domain: always positive, updated multiplicatively by the
optimizer, and rounded to a power of two in ``power_of_two`` mode.
"""

import copy
import math
import numbers

import numpy as np
import torch
from torch import nn

from . import numerics

__all__ = ["round_half_up", "QuantInput", "QuantLinear", "QuantConv2d", "QuantConv1d",
           "Requantizer", "QuantAdd", "Add", "Residual", "QuantSequential", "fold_batchnorm",
           "fold_batchnorms", "FILTER_LAYERS"]

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
    if not numerics.is_int(bits) or not lo <= bits <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {bits!r}")
    return int(bits)


def _check_positive_int(name, value):
    if not numerics.is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def _spatial(name, value, dims, minimum):
    """An int or a tuple of ``dims`` ints as a tuple (kernel sizes, strides, paddings)."""
    given = value
    if numerics.is_int(value):
        value = (value,) * dims
    try:
        value = tuple(value)
    except TypeError:
        value = None
    if (value is None or len(value) != dims
            or any(not numerics.is_int(v) or v < minimum
                   for v in value)):
        raise ValueError(f"{name} must be an integer >= {minimum} or a tuple of {dims}, "
                         f"not {given!r}")
    return tuple(int(v) for v in value)


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


class _FilterLayer(nn.Module):
    """Per-filter weight bits and learned per-filter scales, shared by the weight layers.

    A subclass sets ``weight`` (filters on axis 0), ``bias``, ``log2_scale`` and
    ``weight_bits`` through :meth:`_init_filters` and computes the raw product in
    :meth:`_accumulate`.
    """

    def _init_filters(self, ref, weight_bits, shared_scale, power_of_two):
        self.shared_scale = bool(shared_scale)
        self.power_of_two = bool(power_of_two)
        # Same initialization as the float layer, so a float model and this one start alike.
        self.weight = nn.Parameter(ref.weight.detach().clone())
        self.bias = nn.Parameter(ref.bias.detach().clone()) if ref.bias is not None else None
        filters = self.weight.shape[0]
        self.log2_scale = nn.Parameter(torch.zeros(1 if shared_scale else filters))
        self.register_buffer("weight_bits", torch.zeros(filters, dtype=torch.int64))
        self.set_weight_bits(weight_bits)

    @property
    def num_filters(self):
        """Number of filters (output features or output channels)."""
        return self.weight.shape[0]

    def _per_filter(self, v):
        """``v`` (one value per filter) shaped to broadcast against the weight."""
        return v.reshape((-1,) + (1,) * (self.weight.ndim - 1))

    # -- precision and scales ----------------------------------------------------------------

    def set_weight_bits(self, weight_bits, *, reset_scale=True):
        """Set the per-filter widths (an int or one int per filter) and, by default, re-derive
        the scales from the weights, since a scale fitted to 4 bits is wrong for 8."""
        filters = self.num_filters
        if numerics.is_int(weight_bits):
            bits = np.full(filters, int(weight_bits))
        else:
            bits = np.asarray(weight_bits.detach().cpu() if torch.is_tensor(weight_bits)
                              else weight_bits)
            if bits.shape != (filters,) or not (
                    np.issubdtype(bits.dtype, np.integer)
                    or (np.issubdtype(bits.dtype, np.floating) and (bits == np.round(bits)).all())):
                raise ValueError(f"weight_bits must be an integer or {filters} integers "
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
            per_filter = self.weight.abs().flatten(1).amax(dim=1) / self.weight_max()
            scale = per_filter.amax(dim=0, keepdim=True) if self.shared_scale else per_filter
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
            self.log2_scale.copy_(torch.log2(scale))

    def weight_scale(self):
        """Real value of one integer step of each filter, shape ``(num_filters,)``."""
        scale = _scale_from_log2(self.log2_scale, self.power_of_two)
        return scale.expand(self.num_filters)

    def _int_weight(self):
        scale = self.weight_scale()
        limit = self._per_filter(self.weight_max())
        v = torch.clamp(self.weight / self._per_filter(scale), -limit, limit)
        return _ste(v, round_half_up(v)), scale

    def quantized_weight(self):
        """Fake-quantized weights: the integer weights times their filter's scale."""
        q, scale = self._int_weight()
        return q * self._per_filter(scale)

    def int_weight(self):
        """Integer weights, an int64 NumPy array of the weight's shape."""
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
            return np.zeros(self.num_filters, dtype=np.int64)
        input_scale = torch.as_tensor(input_scale, dtype=self.weight.dtype)
        with torch.no_grad():
            return self._int_bias(input_scale)[0].cpu().numpy().astype(np.int64)

    # -- forward -----------------------------------------------------------------------------

    def _channels(self, v):
        """``v`` (one value per filter) shaped to broadcast against the output."""
        return v

    def forward(self, x, input_scale=None):
        """The layer with fake-quantized weights; the bias is on the accumulator grid when
        ``input_scale`` (the previous layer's ``output_scale()``) is given, else float."""
        q, scale = self._int_weight()
        # (x * q) * scale rounds once per output instead of once per product.
        acc = self._accumulate(x, q)
        if self.bias is None:
            return acc * self._channels(scale)
        if input_scale is None:
            return acc * self._channels(scale) + self._channels(self.bias)
        # The bias grid follows the scales, but its gradient goes to the bias alone.
        q_bias, acc_scale = self._int_bias(input_scale)
        return acc * self._channels(scale) + self._channels(q_bias * acc_scale)

    def _bits_repr(self):
        bits, counts = torch.unique(self.weight_bits, return_counts=True)
        return ", ".join(f"{int(c)}x{int(b)}b" for b, c in zip(bits, counts))


class QuantLinear(_FilterLayer):
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
        ref = nn.Linear(self.in_features, self.out_features, bias=bias)
        self._init_filters(ref, weight_bits, shared_scale, power_of_two)

    def _accumulate(self, x, q):
        return torch.nn.functional.linear(x, q)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"weight_bits=[{self._bits_repr()}], bias={self.bias is not None}, "
                f"shared_scale={self.shared_scale}, power_of_two={self.power_of_two}")


class _QuantConv(_FilterLayer):
    _dims = 2
    _float = nn.Conv2d
    _function = staticmethod(torch.nn.functional.conv2d)

    def __init__(self, in_channels, out_channels, kernel_size, *, stride=1, padding=0,
                 groups=1, weight_bits=4, bias=True, shared_scale=False, power_of_two=False):
        super().__init__()
        kind = type(self).__name__
        self.in_channels = _check_positive_int(f"{kind} in_channels", in_channels)
        self.out_channels = _check_positive_int(f"{kind} out_channels", out_channels)
        self.kernel_size = _spatial(f"{kind} kernel_size", kernel_size, self._dims, 1)
        self.stride = _spatial(f"{kind} stride", stride, self._dims, 1)
        self.padding = _spatial(f"{kind} padding", padding, self._dims, 0)
        self.groups = _check_positive_int(f"{kind} groups", groups)
        if self.groups not in (1, self.in_channels):
            raise ValueError(f"{kind} groups must be 1 or in_channels ({self.in_channels}, "
                             f"depthwise), not {groups}")
        if self.out_channels % self.groups:
            raise ValueError(f"{kind} out_channels must be a multiple of groups "
                             f"({self.groups}), not {out_channels}")
        ref = self._float(self.in_channels, self.out_channels, self.kernel_size,
                          stride=self.stride, padding=self.padding, groups=self.groups,
                          bias=bias)
        self._init_filters(ref, weight_bits, shared_scale, power_of_two)

    def _accumulate(self, x, q):
        return self._function(x, q, None, self.stride, self.padding, 1, self.groups)

    def _channels(self, v):
        return v.reshape((-1,) + (1,) * self._dims)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups}, "
                f"weight_bits=[{self._bits_repr()}], bias={self.bias is not None}, "
                f"shared_scale={self.shared_scale}, power_of_two={self.power_of_two}")


class QuantConv2d(_QuantConv):
    """A 2-D convolution with per-filter weight bit widths and learned per-filter scales.

    The quantization is that of :class:`QuantLinear`, filter by filter: output channel ``o``
    holds integers in ``±(2^(b_o - 1) - 1)`` times ``weight_scale()[o]``. Inputs are
    ``(N, C, H, W)``; padding adds zeros, which are the integer 0 of the input grid.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding : int or tuple
        As in ``nn.Conv2d`` (``padding`` as numbers of pixels on each side).
    groups : int
        1, or ``in_channels`` for a depthwise convolution (``out_channels`` a multiple of it).
    weight_bits, bias, shared_scale, power_of_two
        As in :class:`QuantLinear`.

    Attributes
    ----------
    weight : Parameter
        Float shadow weights, ``(out_channels, in_channels // groups, kh, kw)``.
    log2_scale, weight_bits
        As in :class:`QuantLinear`, one entry per output channel.
    """


class QuantConv1d(_QuantConv):
    """A 1-D convolution of ``(N, C, L)`` inputs, otherwise as :class:`QuantConv2d`.

    ``weight`` has shape ``(out_channels, in_channels // groups, k)``.
    """
    _dims = 1
    _float = nn.Conv1d
    _function = staticmethod(torch.nn.functional.conv1d)


#: The layers with weights (one filter per output channel).
FILTER_LAYERS = (QuantLinear, QuantConv2d, QuantConv1d)


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


class QuantAdd(nn.Module):
    """The residual join: both branches quantized to one grid, then added exactly.

    ``y = q(a) + q(b)`` with ``q(x) = clamp(round(x / scale), lo, hi) * scale`` on the signed
    ``a_bits`` range and a learned ``scale``. In the integer network each branch becomes a
    ``requantize`` node to this scale (left out where a branch already holds integers of this
    exact scale and range) followed by an exact ``add`` node, so the sum of two ``a_bits``
    operands is an ``a_bits + 1``-bit integer on the grid ``scale``. A :class:`Requantizer`
    after the join (the block's activation) brings it back to the activation width.

    Parameters
    ----------
    a_bits : int
        Width of each quantized operand, 2..16 (signed).
    power_of_two : bool
        Round the scale to a power of two.
    init_scale : float, optional
        Starting scale; by default the operands span about ``±4``.
    """

    def __init__(self, a_bits=8, *, power_of_two=False, init_scale=None):
        super().__init__()
        self.quantize = Requantizer(_check_bits("QuantAdd a_bits", a_bits, 2, 16), signed=True,
                                    power_of_two=power_of_two, init_scale=init_scale)

    @property
    def a_bits(self):
        return self.quantize.a_bits

    @property
    def power_of_two(self):
        return self.quantize.power_of_two

    def output_scale(self):
        """Real value of one integer step of the sum (a 0-d tensor, with gradient)."""
        return self.quantize.output_scale()

    def forward(self, a, b):
        return self.quantize(a) + self.quantize(b)


class Add(nn.Module):
    """A float residual join, ``a + b`` (the float twin of :class:`QuantAdd`; not exportable)."""

    def forward(self, a, b):
        return a + b


class Residual(nn.Module):
    """A residual block: ``add(body(x), shortcut(x))``, the shortcut being the identity when
    ``shortcut`` is ``None``.

    ``body`` is typically ``QuantConv2d -> Requantizer -> QuantConv2d`` (raw accumulators at
    its end) and ``shortcut`` a strided 1x1 ``QuantConv2d`` projection when the block changes
    the shape. Follow the block with a :class:`Requantizer` (its activation). Both branches read
    the block's input, so inside a :class:`QuantSequential` both learn their biases on its
    grid.

    The exporter emits the body's nodes, the shortcut's nodes, a ``requantize`` node on each
    branch to the join's scale (see :class:`QuantAdd`) and an ``add`` node, named
    ``<block>.body...``, ``<block>.shortcut...``, ``<block>.requantize_body``,
    ``<block>.requantize_shortcut`` and ``<block>.add``.

    Parameters
    ----------
    body : nn.Module
        The main branch (an ``nn.Sequential`` / :class:`QuantSequential` or one layer).
    shortcut : nn.Module, optional
        The projection branch; ``None`` for the identity.
    add_bits : int
        Operand width of the join (:class:`QuantAdd` ``a_bits``).
    power_of_two : bool
        Power-of-two join scale.
    add : nn.Module, optional
        The join module instead of ``QuantAdd(add_bits, power_of_two=power_of_two)``; float
        twins use :class:`Add`.
    """

    def __init__(self, body, shortcut=None, *, add_bits=8, power_of_two=False, add=None):
        super().__init__()
        if not isinstance(body, nn.Module):
            raise TypeError(f"body must be an nn.Module, not {type(body).__name__}")
        if shortcut is not None and not isinstance(shortcut, nn.Module):
            raise TypeError(f"shortcut must be an nn.Module or None, not "
                            f"{type(shortcut).__name__}")
        self.body = body
        self.shortcut = shortcut
        self.add = QuantAdd(add_bits, power_of_two=power_of_two) if add is None else add

    def output_scale(self):
        """Scale of the join's output (the :class:`QuantAdd` scale)."""
        return self.add.output_scale()

    def forward(self, x, input_scale=None):
        body, _ = _run(self.body, x, input_scale)
        shortcut = x if self.shortcut is None else _run(self.shortcut, x, input_scale)[0]
        return self.add(body, shortcut)


def _pixels(value):
    return int(np.prod(value)) if isinstance(value, tuple) else int(value)


def _run(module, x, scale):
    """Run ``module`` on ``x`` whose integer grid is ``scale`` (``None`` when it is not on one
    grid); return the output and its scale.

    Weight layers get ``input_scale`` so their bias trains on the accumulator grid. Max pools,
    flattens and identities keep the scale; an average pool divides it by the window size
    (its output is the window sum on a finer grid); everything else loses it.
    """
    if isinstance(module, _FilterLayer):
        return module(x, input_scale=scale), None
    if isinstance(module, Residual):
        out = module(x, input_scale=scale)
        return out, module.output_scale() if isinstance(module.add, QuantAdd) else None
    if isinstance(module, nn.Sequential):
        for child in module:
            x, scale = _run(child, x, scale)
        return x, scale
    out = module(x)
    if isinstance(module, (QuantInput, Requantizer, QuantAdd)):
        return out, module.output_scale()
    if scale is None:
        return out, None
    if isinstance(module, (nn.Flatten, nn.Identity, nn.MaxPool1d, nn.MaxPool2d)):
        return out, scale
    if isinstance(module, nn.AvgPool2d):
        kernel = module.kernel_size
        return out, scale / (_pixels(kernel) if isinstance(kernel, tuple) else kernel ** 2)
    if isinstance(module, nn.AvgPool1d):
        return out, scale / _pixels(module.kernel_size)
    if isinstance(module, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        return out, scale / int(np.prod(x.shape[2:]))
    return out, None


class QuantSequential(nn.Sequential):
    """An ``nn.Sequential`` that hands each weight layer (:class:`QuantLinear`,
    :class:`QuantConv2d`, :class:`QuantConv1d`, and those inside :class:`Residual` blocks and
    nested Sequentials) its input scale.

    With the input scale known, the bias trains on the accumulator grid, so the fake-quant
    forward pass matches the exported integer network more closely.
    """

    def forward(self, x, input_scale=None):
        return _run(self, x, input_scale)[0]


def fold_batchnorm(layer, bn):
    """A copy of ``layer`` with the batch normalization ``bn`` that follows it folded in.

    With ``f = gamma / sqrt(running_var + eps)`` per channel, the folded layer has weights
    ``w * f`` (filter by filter) and bias ``(b - running_mean) * f + beta``, so it computes
    ``bn(layer(x))`` of the inference-mode normalization. For a quantized layer with
    per-filter (non power-of-two) scales the scales are multiplied by ``|f|``, which keeps its
    integer weights (the signs flip where ``f < 0``); otherwise the scales are re-derived from
    the folded weights.

    Parameters
    ----------
    layer : QuantLinear, QuantConv1d, QuantConv2d, nn.Linear, nn.Conv1d or nn.Conv2d
    bn : nn.BatchNorm1d or nn.BatchNorm2d
        With running statistics; one feature per filter of ``layer``.
    """
    floats = (nn.Linear, nn.Conv1d, nn.Conv2d)
    if not isinstance(layer, FILTER_LAYERS + floats):
        raise TypeError(f"layer must be a QuantLinear, QuantConv1d, QuantConv2d or a float "
                        f"Linear/Conv1d/Conv2d, not {type(layer).__name__}")
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm):
        raise TypeError(f"bn must be a BatchNorm1d or BatchNorm2d, not {type(bn).__name__}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"{type(bn).__name__} must track running statistics to be folded "
                         f"(track_running_stats=True)")
    filters = layer.weight.shape[0]
    if bn.num_features != filters:
        raise ValueError(f"{type(bn).__name__} has {bn.num_features} features but "
                         f"{type(layer).__name__} has {filters} filters")
    folded = copy.deepcopy(layer)
    with torch.no_grad():
        dtype = folded.weight.dtype
        mean = bn.running_mean.to(dtype)
        factor = torch.rsqrt(bn.running_var.to(dtype) + bn.eps)
        if bn.weight is not None:
            factor = factor * bn.weight.to(dtype)
        beta = bn.bias.to(dtype) if bn.bias is not None else torch.zeros_like(mean)
        bias = folded.bias if folded.bias is not None else torch.zeros_like(mean)
        folded.weight.mul_(factor.reshape((-1,) + (1,) * (folded.weight.ndim - 1)))
        new_bias = (bias - mean) * factor + beta
        if folded.bias is None:
            folded.bias = nn.Parameter(new_bias)
        else:
            folded.bias.copy_(new_bias)
        if isinstance(folded, _FilterLayer):
            if folded.shared_scale or folded.power_of_two:
                folded.reset_scale()
            else:
                magnitude = factor.abs()
                folded.log2_scale.add_(torch.where(magnitude > 0, torch.log2(magnitude),
                                                   torch.zeros_like(magnitude)))
    return folded


def fold_batchnorms(model):
    """Fold every batch normalization that directly follows a weight layer inside the
    Sequentials of ``model`` (Residual bodies and shortcuts included) into that layer, in
    place, replacing it with ``nn.Identity``; returns ``model``."""
    for module in list(model.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            layer, bn = module._modules[first], module._modules[second]
            if (isinstance(layer, FILTER_LAYERS + (nn.Linear, nn.Conv1d, nn.Conv2d))
                    and isinstance(bn, nn.modules.batchnorm._BatchNorm)):
                module._modules[first] = fold_batchnorm(layer, bn)
                module._modules[second] = nn.Identity()
    return model
