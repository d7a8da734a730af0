"""Integer semantics shared by the golden model, the exporter and the hardware generator.

Everything here is plain NumPy on ``int64`` arrays. The hardware must reproduce these functions
bit for bit, so each one is written the way the RTL computes it (floor shifts, explicit clamps).
"""

import numpy as np

__all__ = [
    "is_int", "int_range", "weight_range", "bits_for_range", "ROUNDING", "round_half_up_shift",
    "round_half_even_shift", "rounding_shift", "requantize", "dense", "dense_range",
    "requantize_range",
    "spatial_tuple", "conv_output_size", "im2col", "conv", "conv_range",
    "max_pool", "sum_pool", "global_sum_pool", "add", "interleaved_order",
]

#: Largest number of im2col elements built at once by :func:`conv` (bounds its memory).
_CHUNK_ELEMENTS = 1 << 23


def is_int(value):
    """Whether ``value`` is an integer, Python's or NumPy's (a bool is not one)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


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


#: Rounding modes of :func:`requantize`: ties go up (toward +inf) or to the even neighbour.
ROUNDING = ("half_up", "half_even")


def round_half_up_shift(value, shift):
    """``floor((value + 2^(shift-1)) / 2^shift)``; a plain copy when ``shift`` is 0."""
    value = np.asarray(value, dtype=np.int64)
    if shift == 0:
        return value.copy()
    return (value + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift)


def round_half_even_shift(value, shift):
    """``value / 2^shift`` rounded to the nearest integer, ties to the even one (as
    ``numpy.round``); a plain copy when ``shift`` is 0.

    Computed the way the hardware does it: ``floor((value + 2^(shift-1) - 1 + q0) / 2^shift)``
    where ``q0`` is bit ``shift`` of ``value`` (the parity of ``floor(value / 2^shift)``): a
    tie then rounds up exactly when the floor is odd.
    """
    value = np.asarray(value, dtype=np.int64)
    if shift == 0:
        return value.copy()
    shift = np.int64(shift)
    parity = (value >> shift) & np.int64(1)
    return (value + (np.int64(1) << (shift - 1)) - 1 + parity) >> shift


def rounding_shift(value, shift, rounding="half_up"):
    """``value / 2^shift`` rounded as ``rounding`` says (one of :data:`ROUNDING`)."""
    if rounding == "half_up":
        return round_half_up_shift(value, shift)
    if rounding == "half_even":
        return round_half_even_shift(value, shift)
    raise ValueError(f"rounding must be one of {', '.join(ROUNDING)}, not {rounding!r}")


def requantize(acc, multiplier, shift, out_bits, out_signed=False, axis=-1, offset=None,
               rounding="half_up"):
    """The Requantizer: ``clamp(round((acc * M[c] + B[c]) / 2^S), lo, hi)`` per channel ``c``.

    ``multiplier`` (and ``offset``, zeros when None) have one entry per channel along ``axis``
    of ``acc``; the offset is added before the shift. ``rounding`` decides ties: ``"half_up"``
    (``floor(x + 1/2)``, the default) or ``"half_even"`` (ties to the even integer, as QONNX's
    ``Quant`` and ``numpy.round``).
    """
    acc = np.asarray(acc, dtype=np.int64)
    mult = np.asarray(multiplier, dtype=np.int64)
    shape = [1] * acc.ndim
    shape[axis] = mult.size
    scaled = acc * mult.reshape(shape)
    if offset is not None:
        scaled = scaled + np.asarray(offset, dtype=np.int64).reshape(shape)
    scaled = rounding_shift(scaled, shift, rounding)
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


def requantize_range(acc_lo, acc_hi, multiplier, shift, out_bits, out_signed, offset=None,
                     rounding="half_up"):
    """Inclusive bounds of :func:`requantize` outputs, given accumulator bounds."""
    lo = requantize(np.atleast_1d(acc_lo), multiplier, shift, out_bits, out_signed,
                    offset=offset, rounding=rounding)
    hi = requantize(np.atleast_1d(acc_hi), multiplier, shift, out_bits, out_signed,
                    offset=offset, rounding=rounding)
    return lo.min(), hi.max()


# -- convolutions and pooling --------------------------------------------------------------
#
# Layout: a feature map is (channels, *spatial): CHW for 2-D, CL for 1-D, with any number of
# leading batch axes. Spatial parameters (kernel, stride, padding) have one entry per spatial
# axis; an int stands for the same value on every axis.


def spatial_tuple(name, value, dims, *, minimum):
    """``value`` (an int, or one int per spatial axis) as a tuple of ``dims`` ints."""
    given = value
    if is_int(value):
        value = (int(value),) * dims
    try:
        value = tuple(value)
    except TypeError:
        value = None
    if (value is None or len(value) != dims
            or any(not is_int(v) or v < minimum
                   for v in value)):
        raise ValueError(f"{name} must be an integer >= {minimum} or {dims} of them (one per "
                         f"spatial axis), not {given!r}")
    return tuple(int(v) for v in value)


def conv_output_size(size, kernel, stride, padding):
    """Output length of one spatial axis: ``floor((size + 2 * padding - kernel) / stride) + 1``.

    Zero or negative when the kernel does not fit the padded input.
    """
    return (size + 2 * padding - kernel) // stride + 1


def _geometry(x, kernel, stride, padding):
    if is_int(kernel):
        dims = 2
    else:
        try:
            dims = len(kernel)
        except TypeError:
            dims = 0
        if dims not in (1, 2):
            raise ValueError(f"kernel must be an int (a square 2-D kernel) or a sequence of 1 or "
                             f"2 ints, not {kernel!r}")
    kernel = spatial_tuple("kernel", kernel, dims, minimum=1)
    stride = spatial_tuple("stride", stride, dims, minimum=1)
    padding = spatial_tuple("padding", padding, dims, minimum=0)
    if x.ndim < dims + 1:
        raise ValueError(f"input must have a channel axis and {dims} spatial axes, not shape "
                         f"{x.shape}")
    spatial = x.shape[-dims:]
    out = tuple(conv_output_size(n, k, s, p)
                for n, k, s, p in zip(spatial, kernel, stride, padding))
    if min(out) < 1:
        padded = "x".join(str(n + 2 * p) for n, p in zip(spatial, padding))
        raise ValueError(f"kernel {'x'.join(map(str, kernel))} is larger than its padded input "
                         f"{padded}")
    return dims, kernel, stride, padding, out


def im2col(x, kernel, stride=1, padding=0):
    """The convolution windows of ``x``, one row per output pixel, in hardware order.

    ``x`` has shape ``(..., C, H, W)`` (2-D) or ``(..., C, L)`` (1-D); the number of spatial
    axes is ``len(kernel)`` (an int kernel means a square 2-D kernel). The input is padded with
    the integer 0, ``padding`` pixels on each side of each spatial axis.

    Returns shape ``(..., H_out, W_out, kh * kw * C)`` (or ``(..., L_out, k * C)``): output
    pixels in raster order, and within a window the order ``(ky, kx, c)`` with the channel
    fastest, then the kernel column, then the kernel row. That is the order in which a sliding
    window over a channel-interleaved (pixel by pixel, all channels of a pixel together)
    stream presents one window: row ``ky`` of the kernel, pixel ``kx`` of that row, every
    channel of that pixel. Row ``r`` of the result is window ``(oy, ox) = divmod(r, W_out)``,
    anchored at input pixel ``(oy * sh - ph, ox * sw - pw)``.
    """
    x = np.asarray(x)
    dims, kernel, stride, padding, out = _geometry(x, kernel, stride, padding)
    pad = [(0, 0)] * (x.ndim - dims) + [(p, p) for p in padding]
    xp = np.pad(x, pad) if any(padding) else x
    windows = []
    for offset in np.ndindex(*kernel):
        index = tuple(slice(o, o + s * (n - 1) + 1, s) for o, s, n in zip(offset, stride, out))
        windows.append(xp[(Ellipsis,) + index])       # (..., C, *out)
    cols = np.stack(windows, axis=-1)                 # (..., C, *out, K)
    cols = np.moveaxis(cols, -dims - 2, -1)           # (..., *out, K, C)
    return cols.reshape(cols.shape[:-2] + (-1,))


def conv(x, weight, bias, stride=1, padding=0, groups=1):
    """Exact integer convolution (cross-correlation, as PyTorch) with zero padding and groups.

    ``x`` is ``(..., C, *spatial)``; ``weight`` is ``(O, C // groups, *kernel)`` and its number
    of spatial axes decides 1-D or 2-D; ``bias`` is ``(O,)``. Output channel ``o`` reads the
    input channels of group ``o // (O // groups)``. Returns ``(..., O, *out_spatial)``::

        acc[o, y, x] = bias[o] + sum_{c, ky, kx} weight[o, c, ky, kx]
                                                * x_padded[g * C_g + c, y * sh + ky, x * sw + kx]
    """
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(weight, dtype=np.int64)
    bias = np.asarray(bias, dtype=np.int64)
    dims = w.ndim - 2
    if dims not in (1, 2):
        raise ValueError(f"weight must have shape (out_channels, in_channels // groups, *kernel) "
                         f"with 1 or 2 kernel axes, not {w.shape}")
    out_ch, group_ch = w.shape[:2]
    kernel = w.shape[2:]
    if groups < 1 or out_ch % groups or x.shape[-dims - 1] != group_ch * groups:
        raise ValueError(f"weight {w.shape} with groups {groups} does not fit an input of "
                         f"{x.shape[-dims - 1]} channels")
    batch = x.shape[:-dims - 1]
    x = x.reshape((-1,) + x.shape[-dims - 1:])
    out_per_group = out_ch // groups
    # (G, K, O_g) with K in (ky, kx, c) order, as im2col gives.
    wk = np.moveaxis(w, 1, -1).reshape(groups, out_per_group, -1).transpose(0, 2, 1)
    pixels = int(np.prod([conv_output_size(n, k, s, p) for n, k, s, p in zip(
        x.shape[-dims:], kernel, spatial_tuple("stride", stride, dims, minimum=1),
        spatial_tuple("padding", padding, dims, minimum=0))]))
    chunk = max(1, _CHUNK_ELEMENTS // max(1, pixels * int(np.prod(kernel)) * x.shape[1]))
    outs = []
    for start in range(0, max(1, len(x)), chunk):
        cols = im2col(x[start:start + chunk], tuple(kernel), stride, padding)  # (n, *out, K*C)
        out_spatial = cols.shape[1:-1]
        cols = cols.reshape(len(cols), -1, int(np.prod(kernel)), groups, group_ch)
        cols = cols.transpose(3, 0, 1, 2, 4).reshape(groups, -1, wk.shape[1])  # (G, n*P, K)
        acc = np.matmul(cols, wk)                                              # (G, n*P, O_g)
        acc = acc.reshape(groups, len(x[start:start + chunk]), -1, out_per_group)
        acc = acc.transpose(1, 0, 3, 2).reshape((-1, out_ch) + out_spatial)
        outs.append(acc)
    acc = np.concatenate(outs) + bias.reshape((-1,) + (1,) * dims)
    return acc.reshape(batch + acc.shape[1:])


def conv_range(weight, bias, x_lo, x_hi, padded=False):
    """Per-filter inclusive accumulator bounds of :func:`conv` for inputs in ``[x_lo, x_hi]``.

    With ``padded``, windows may hold padding zeros, so the bound also covers inputs of 0.
    """
    if padded:
        x_lo, x_hi = min(int(x_lo), 0), max(int(x_hi), 0)
    w = np.asarray(weight, dtype=np.int64)
    return dense_range(w.reshape(w.shape[0], -1), bias, x_lo, x_hi)


def _pool_windows(x, kernel, stride):
    """``(..., C, *out, K)`` windows of each channel (no padding)."""
    x = np.asarray(x, dtype=np.int64)
    dims = len(kernel)
    cols = im2col(x, kernel, stride, 0)                     # (..., *out, K*C)
    channels = x.shape[-dims - 1]
    cols = cols.reshape(cols.shape[:-1] + (-1, channels))   # (..., *out, K, C)
    return np.moveaxis(cols, -1, -dims - 2)                 # (..., C, *out, K)


def max_pool(x, kernel, stride, padding=0):
    """Per-channel maximum over each window (floor mode, as ``nn.MaxPool2d``).

    ``kernel`` and ``stride`` have one entry per spatial axis of ``x`` (``(..., C, *spatial)``).
    ``padding`` (an int, or one per axis) pixels on each side hold the smallest int64, as
    PyTorch pads with ``-inf``. It must be at most ``kernel // 2`` per axis (PyTorch's rule),
    so every window holds an input pixel and the padding never wins: the output is an input
    value.
    """
    x = np.asarray(x, dtype=np.int64)
    kernel = tuple(kernel)
    padding = spatial_tuple("padding", padding, len(kernel), minimum=0)
    half = tuple(k // 2 for k in kernel)
    if any(p > h for p, h in zip(padding, half)):
        raise ValueError(f"padding must be at most kernel // 2 = {'x'.join(map(str, half))} "
                         f"for kernel {'x'.join(map(str, kernel))}, not "
                         f"{'x'.join(map(str, padding))}")
    if any(padding):
        pad = [(0, 0)] * (x.ndim - len(kernel)) + [(p, p) for p in padding]
        x = np.pad(x, pad, constant_values=np.iinfo(np.int64).min)
    return _pool_windows(x, kernel, stride).max(axis=-1)


def sum_pool(x, kernel, stride):
    """Per-channel exact SUM over each window (no padding, floor mode).

    This is the integer view of average pooling: the division by the window size is not done
    here; it belongs to the scale (the next Requantizer's multiplier and shift absorb it).
    """
    return _pool_windows(x, tuple(kernel), stride).sum(axis=-1)


def global_sum_pool(x, spatial_dims):
    """Per-channel exact SUM over the last ``spatial_dims`` axes (global average pooling times
    the number of pixels): ``(..., C, *spatial)`` to ``(..., C)``."""
    x = np.asarray(x, dtype=np.int64)
    return x.sum(axis=tuple(range(-spatial_dims, 0)))


def add(a, b):
    """Exact elementwise integer sum of two tensors of equal shape (a residual join)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if a.shape != b.shape:
        raise ValueError(f"add needs equal shapes, not {a.shape} and {b.shape}")
    return a + b


def interleaved_order(shape):
    """Stream order of a ``(C, *spatial)`` feature map sent pixel by pixel, all channels of a
    pixel together (the order :func:`im2col` windows assume), as indices into its C-order
    (channel-major) flattening: ``x.reshape(-1)[interleaved_order(x.shape)]`` is the stream,
    so a dense layer after a ``flatten`` reads stream element ``k`` with weight column
    ``interleaved_order(shape)[k]``."""
    shape = tuple(int(d) for d in shape)
    index = np.arange(int(np.prod(shape))).reshape(shape)
    return np.moveaxis(index, 0, -1).reshape(-1)
