"""Integer semantics shared by the golden model, the exporter and the hardware generator.

Everything here is plain NumPy on ``int64`` arrays. The hardware must reproduce these functions
bit for bit, so each one is written the way the RTL computes it (floor shifts, explicit clamps).
"""

import numpy as np

__all__ = [
    "int_range", "weight_range", "bits_for_range", "round_half_up_shift",
    "requantize", "dense", "dense_range", "requantize_range",
]


def int_range(bits, signed):
    """Inclusive ``(lo, hi)`` of a ``bits``-wide two's complement or unsigned integer."""
    if bits < 1:
        raise ValueError(f"bit width must be at least 1, not {bits}")
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def weight_range(bits):
    """Inclusive ``(lo, hi)`` of a narrow-range symmetric signed weight: ``±(2^(b-1) - 1)``.

    Narrow range keeps the weight grid symmetric, so a per-filter scale needs no zero point.
    """
    if bits < 2:
        raise ValueError(f"weight bit width must be at least 2, not {bits}")
    hi = (1 << (bits - 1)) - 1
    return -hi, hi


def bits_for_range(lo, hi):
    """Smallest ``(bits, signed)`` that holds every integer in ``[lo, hi]``."""
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    if lo >= 0:
        return max(1, hi.bit_length()), False
    # Signed: need -2^(b-1) <= lo and hi <= 2^(b-1) - 1.
    bits = max((-lo - 1).bit_length(), hi.bit_length()) + 1
    return bits, True


def round_half_up_shift(value, shift):
    """``floor((value + 2^(shift-1)) / 2^shift)``; a plain copy when ``shift`` is 0."""
    value = np.asarray(value, dtype=np.int64)
    if shift == 0:
        return value.copy()
    return (value + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift)


def requantize(acc, multiplier, shift, out_bits, out_signed=False, axis=-1):
    """The Requantizer: ``clamp((acc * M[c] + 2^(S-1)) >> S, lo, hi)`` per channel ``c``.

    ``multiplier`` has one entry per channel along ``axis`` of ``acc``.
    """
    acc = np.asarray(acc, dtype=np.int64)
    mult = np.asarray(multiplier, dtype=np.int64)
    shape = [1] * acc.ndim
    shape[axis] = mult.size
    scaled = round_half_up_shift(acc * mult.reshape(shape), shift)
    lo, hi = int_range(out_bits, out_signed)
    return np.clip(scaled, lo, hi)


def dense(x, weight, bias):
    """Exact integer ``weight @ x + bias`` for one vector ``x`` (or a batch, last axis)."""
    x = np.asarray(x, dtype=np.int64)
    return x @ np.asarray(weight, dtype=np.int64).T + np.asarray(bias, dtype=np.int64)


def dense_range(weight, bias, x_lo, x_hi):
    """Per-filter inclusive accumulator bounds for inputs in ``[x_lo, x_hi]``.

    The weights are constants, so the worst case is taken term by term: each product reaches its
    extreme at one end of the input range. The accumulator width derived from these bounds can
    never overflow.
    """
    w = np.asarray(weight, dtype=np.int64)
    a, b = w * np.int64(x_lo), w * np.int64(x_hi)
    bias = np.asarray(bias, dtype=np.int64)
    return np.minimum(a, b).sum(axis=1) + bias, np.maximum(a, b).sum(axis=1) + bias


def requantize_range(acc_lo, acc_hi, multiplier, shift, out_bits, out_signed):
    """Inclusive bounds of :func:`requantize` outputs, given accumulator bounds."""
    lo = requantize(np.atleast_1d(acc_lo), multiplier, shift, out_bits, out_signed)
    hi = requantize(np.atleast_1d(acc_hi), multiplier, shift, out_bits, out_signed)
    return lo.min(), hi.max()
