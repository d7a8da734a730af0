"""quant.numerics against exact rational arithmetic and brute force."""

from fractions import Fraction
import math

import numpy as np
import pytest

from quant import numerics


@pytest.mark.parametrize("bits, signed, expected", [
    (1, False, (0, 1)), (5, False, (0, 31)), (8, False, (0, 255)),
    (2, True, (-2, 1)), (8, True, (-128, 127)), (16, True, (-32768, 32767)),
])
def test_int_range(bits, signed, expected):
    assert numerics.int_range(bits, signed) == expected


def test_int_range_rejects_zero_bits():
    with pytest.raises(ValueError, match="bit width must be at least 1, not 0"):
        numerics.int_range(0, False)


@pytest.mark.parametrize("bits, expected", [(2, (-1, 1)), (4, (-7, 7)), (8, (-127, 127))])
def test_weight_range_is_narrow_and_symmetric(bits, expected):
    assert numerics.weight_range(bits) == expected


def test_weight_range_rejects_one_bit():
    with pytest.raises(ValueError, match="weight bit width must be at least 2, not 1"):
        numerics.weight_range(1)


@pytest.mark.parametrize("lo, hi, expected", [
    (0, 0, (1, False)), (0, 1, (1, False)), (0, 255, (8, False)), (0, 256, (9, False)),
    (-1, 0, (1, True)), (-2, 1, (2, True)), (-128, 127, (8, True)), (-129, 0, (9, True)),
    (-1, 128, (9, True)), (-7, 7, (4, True)),
])
def test_bits_for_range(lo, hi, expected):
    assert numerics.bits_for_range(lo, hi) == expected


def test_bits_for_range_is_smallest_that_fits():
    rng = np.random.default_rng(0)
    for lo, hi in np.sort(rng.integers(-5000, 5000, size=(200, 2)), axis=1):
        bits, signed = numerics.bits_for_range(lo, hi)
        r_lo, r_hi = numerics.int_range(bits, signed)
        assert r_lo <= lo and hi <= r_hi, (lo, hi, bits, signed)
        if bits > 1:
            s_lo, s_hi = numerics.int_range(bits - 1, signed)
            assert lo < s_lo or hi > s_hi, (lo, hi, bits, signed)


def test_bits_for_range_rejects_empty_range():
    with pytest.raises(ValueError, match=r"empty range \[3, 2\]"):
        numerics.bits_for_range(3, 2)


def test_round_half_up_shift_matches_exact_rounding():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.integers(-10**9, 10**9, 500), np.arange(-40, 41)])
    for shift in range(0, 12):
        got = numerics.round_half_up_shift(values, shift)
        want = [math.floor(Fraction(int(v), 2 ** shift) + Fraction(1, 2)) for v in values]
        assert got.tolist() == want, f"shift {shift}"


def test_round_half_up_shift_ties_go_up():
    assert numerics.round_half_up_shift([-3, -1, 1, 3], 1).tolist() == [-1, 0, 1, 2]


def test_round_half_even_shift_matches_numpy_round():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.integers(-10**9, 10**9, 500), np.arange(-40, 41)])
    for shift in range(0, 12):
        got = numerics.round_half_even_shift(values, shift)
        want = np.round(values / float(2 ** shift)).astype(np.int64)   # exact in float64
        assert got.tolist() == want.tolist(), f"shift {shift}"


def test_round_half_even_shift_ties_go_to_even():
    assert numerics.round_half_even_shift([-5, -3, -1, 1, 3, 5], 1).tolist() == \
        [-2, -2, 0, 0, 2, 2]
    assert numerics.rounding_shift([-6, -2, 2, 6], 2, "half_even").tolist() == [-2, 0, 0, 2]
    with pytest.raises(ValueError, match=r"rounding must be one of half_up, half_even, not "
                                         r"'floor'"):
        numerics.rounding_shift([1], 1, "floor")


@pytest.mark.parametrize("rounding", numerics.ROUNDING)
def test_requantize_adds_the_offset_before_the_shift(rounding):
    rng = np.random.default_rng(4)
    acc = rng.integers(-5000, 5000, size=(60, 3))
    mult, offset, shift = np.array([3, 7, 1]), np.array([-1000, 0, 333]), 6
    got = numerics.requantize(acc, mult, shift, 8, True, offset=offset, rounding=rounding)
    for (n, c), value in np.ndenumerate(got):
        exact = Fraction(int(acc[n, c]) * int(mult[c]) + int(offset[c]), 2 ** shift)
        rounded = math.floor(exact + Fraction(1, 2))
        if rounding == "half_even" and exact - math.floor(exact) == Fraction(1, 2):
            rounded = round(exact)        # Python rounds a Fraction's ties to even
        assert value == min(max(rounded, -128), 127), f"acc[{n}, {c}] = {acc[n, c]}"


@pytest.mark.parametrize("out_bits, out_signed", [(5, False), (4, True), (8, False)])
def test_requantize_matches_exact_reference(out_bits, out_signed):
    rng = np.random.default_rng(2)
    acc = rng.integers(-200000, 200000, size=(40, 6))
    mult = rng.integers(1, 1 << 16, size=6)
    shift = 22
    got = numerics.requantize(acc, mult, shift, out_bits, out_signed)
    lo, hi = numerics.int_range(out_bits, out_signed)
    for (n, c), value in np.ndenumerate(got):
        exact = math.floor(Fraction(int(acc[n, c]) * int(mult[c]), 2 ** shift) + Fraction(1, 2))
        assert value == min(max(exact, lo), hi), f"acc[{n}, {c}] = {acc[n, c]}"


def test_requantize_uses_the_given_channel_axis():
    acc = np.arange(12).reshape(3, 4)
    got = numerics.requantize(acc, [1, 2, 4], 0, 16, axis=0)
    assert got.tolist() == (acc * np.array([[1], [2], [4]])).tolist()


def test_dense_matches_loops():
    rng = np.random.default_rng(3)
    w = rng.integers(-7, 8, size=(5, 9))
    b = rng.integers(-100, 100, size=5)
    x = rng.integers(0, 32, size=(4, 9))
    got = numerics.dense(x, w, b)
    for n in range(4):
        for c in range(5):
            assert got[n, c] == sum(int(w[c, i]) * int(x[n, i]) for i in range(9)) + b[c]


@pytest.mark.parametrize("x_lo, x_hi", [(0, 31), (-128, 127), (0, 255)])
def test_dense_range_is_safe_and_tight(x_lo, x_hi):
    rng = np.random.default_rng(4)
    w = rng.integers(-127, 128, size=(6, 20))
    b = rng.integers(-1000, 1000, size=6)
    lo, hi = numerics.dense_range(w, b, x_lo, x_hi)
    x = rng.integers(x_lo, x_hi + 1, size=(500, 20))
    acc = numerics.dense(x, w, b)
    assert (acc >= lo).all() and (acc <= hi).all()
    # The extremes are reached by the input that picks the worst end for every weight.
    x_max = np.where(w > 0, x_hi, x_lo)
    x_min = np.where(w > 0, x_lo, x_hi)
    assert (np.einsum("ci,ci->c", w, x_max) + b).tolist() == hi.tolist()
    assert (np.einsum("ci,ci->c", w, x_min) + b).tolist() == lo.tolist()


def test_requantize_range_bounds_outputs():
    lo, hi = numerics.requantize_range(-5000, 70000, np.array([3, 5]), 10, 5, False)
    assert (lo, hi) == (0, 31)
    lo, hi = numerics.requantize_range(-2000, 2000, np.array([1, 2]), 8, 8, True)
    assert (lo, hi) == (-16, 16)


# -- convolutions and pooling ------------------------------------------------------------------

torch = pytest.importorskip("torch")


def test_im2col_order_is_ky_kx_c():
    """Each row is one window, read row by row of the kernel, pixel by pixel, channels fastest:
    the order a sliding window over a pixel-interleaved stream presents."""
    x = np.arange(2 * 3 * 4).reshape(2, 3, 4)          # (C, H, W), x[c, y, x] = 12c + 4y + x
    cols = numerics.im2col(x, (2, 2), stride=1, padding=0)
    assert cols.shape == (2, 3, 8)
    assert cols[0, 0].tolist() == [0, 12, 1, 13, 4, 16, 5, 17]
    assert cols[1, 2].tolist() == [6, 18, 7, 19, 10, 22, 11, 23]


def test_im2col_pads_with_zeros_and_strides():
    x = np.arange(1, 10).reshape(1, 3, 3)
    cols = numerics.im2col(x, (3, 3), stride=2, padding=1)
    assert cols.shape == (2, 2, 9)
    assert cols[0, 0].tolist() == [0, 0, 0, 0, 1, 2, 0, 4, 5]   # anchored at (-1, -1)
    assert cols[1, 1].tolist() == [5, 6, 0, 8, 9, 0, 0, 0, 0]   # anchored at (1, 1)


def test_im2col_kernel_as_large_as_the_padded_input():
    x = np.ones((1, 3, 3), dtype=np.int64)
    cols = numerics.im2col(x, (5, 5), 1, 1)
    assert cols.shape == (1, 1, 25) and cols.sum() == 9


def test_im2col_1d_and_batches():
    x = np.arange(2 * 2 * 5).reshape(2, 2, 5)              # (N, C, L)
    cols = numerics.im2col(x, (3,), stride=2, padding=1)
    assert cols.shape == (2, 3, 6)
    assert cols[1, 0].tolist() == [0, 0, 10, 15, 11, 16]    # (k, c): sample -1, 0, 1


def test_im2col_matches_a_loop_over_windows():
    rng = np.random.default_rng(0)
    x = rng.integers(-9, 10, size=(3, 7, 6))
    kh, kw, sh, sw, ph, pw = 3, 2, 2, 1, 1, 0
    cols = numerics.im2col(x, (kh, kw), (sh, sw), (ph, pw))
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw)))
    for oy in range(cols.shape[0]):
        for ox in range(cols.shape[1]):
            want = [xp[c, oy * sh + ky, ox * sw + kx]
                    for ky in range(kh) for kx in range(kw) for c in range(3)]
            assert cols[oy, ox].tolist() == want, (oy, ox)


@pytest.mark.parametrize("kernel, stride, padding, message", [
    ((5, 5), 1, 0, r"kernel 5x5 is larger than its padded input 3x3"),
    ((3, 3), 0, 0, r"stride must be an integer >= 1 or 2 of them \(one per spatial axis\), "
                   r"not 0"),
    ((3, 3), 1, -1, r"padding must be an integer >= 0 or 2 of them"),
    ((3, 3, 3), 1, 0, r"kernel must be an int \(a square 2-D kernel\) or a sequence of 1 or 2 "
                      r"ints, not \(3, 3, 3\)"),
])
def test_im2col_errors(kernel, stride, padding, message):
    x = np.zeros((1, 3, 3), dtype=np.int64)
    with pytest.raises(ValueError, match=message):
        numerics.im2col(x, kernel, stride, padding)


def _torch_conv(x, w, b, stride, padding, groups):
    f = torch.nn.functional.conv2d if w.ndim == 4 else torch.nn.functional.conv1d
    t = [torch.as_tensor(a, dtype=torch.float64) for a in (x, w, b)]
    return f(*t, stride=stride, padding=padding, groups=groups).numpy()


@pytest.mark.parametrize("dims", [1, 2], ids=["1d", "2d"])
@pytest.mark.parametrize("groups, channels, out", [(1, 3, 5), (4, 4, 4), (3, 3, 6)],
                         ids=["dense", "depthwise", "depthwise-x2"])
@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), (1, 2)])
def test_conv_matches_torch(dims, groups, channels, out, stride, padding):
    rng = np.random.default_rng(dims * 100 + groups)
    spatial = (9, 8) if dims == 2 else (13,)
    kernel = (3, 2) if dims == 2 else (3,)
    x = rng.integers(-128, 128, size=(4, channels) + spatial)
    w = rng.integers(-127, 128, size=(out, channels // groups) + kernel)
    b = rng.integers(-5000, 5000, size=out)
    got = numerics.conv(x, w, b, stride, padding, groups)
    assert got.dtype == np.int64
    assert np.array_equal(got, _torch_conv(x, w, b, stride, padding, groups))


def test_conv_of_one_image_and_in_chunks(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 32, size=(7, 2, 6, 6))
    w = rng.integers(-7, 8, size=(3, 2, 3, 3))
    b = rng.integers(-50, 50, size=3)
    whole = numerics.conv(x, w, b, 1, 1)
    assert np.array_equal(numerics.conv(x[3], w, b, 1, 1), whole[3])
    monkeypatch.setattr(numerics, "_CHUNK_ELEMENTS", 500)   # a few images per chunk
    assert np.array_equal(numerics.conv(x, w, b, 1, 1), whole)


def test_conv_is_exact_beyond_float_precision():
    x = np.full((1, 64, 3, 3), 65535)
    w = np.full((1, 64, 3, 3), 127)
    acc = numerics.conv(x, w, [2 ** 40], 1, 0)
    assert int(acc[0, 0, 0, 0]) == 64 * 9 * 65535 * 127 + 2 ** 40


def test_conv_rejects_a_weight_that_does_not_fit():
    with pytest.raises(ValueError, match=r"weight \(4, 3, 3, 3\) with groups 1 does not fit an "
                                         r"input of 2 channels"):
        numerics.conv(np.zeros((2, 5, 5)), np.zeros((4, 3, 3, 3)), np.zeros(4))


@pytest.mark.parametrize("padded", [False, True])
def test_conv_range_is_safe(padded):
    rng = np.random.default_rng(2)
    w = rng.integers(-7, 8, size=(4, 2, 3, 3))
    b = rng.integers(-20, 20, size=4)
    x_lo, x_hi = (3, 31)       # an input range without 0: padding zeros widen the bound
    lo, hi = numerics.conv_range(w, b, x_lo, x_hi, padded)
    x = rng.integers(x_lo, x_hi + 1, size=(300, 2, 5, 5))
    acc = numerics.conv(x, w, b, 1, 1 if padded else 0)
    per_filter = acc.transpose(1, 0, 2, 3).reshape(4, -1)
    assert (per_filter.min(axis=1) >= lo).all() and (per_filter.max(axis=1) <= hi).all()
    if padded:  # a corner window holds five zeros: below the no-padding bound
        assert (lo <= numerics.conv_range(w, b, x_lo, x_hi)[0]).all()


def test_pools_match_torch():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 32, size=(3, 4, 9, 7))
    t = torch.as_tensor(x, dtype=torch.float64)
    assert np.array_equal(numerics.max_pool(x, (2, 2), (2, 2)),
                          torch.nn.functional.max_pool2d(t, 2).numpy())
    assert np.array_equal(numerics.max_pool(x, (3, 3), (1, 2)),
                          torch.nn.functional.max_pool2d(t, 3, (1, 2)).numpy())
    assert np.array_equal(numerics.sum_pool(x, (3, 2), (2, 2)),
                          torch.nn.functional.avg_pool2d(t, (3, 2), 2).numpy() * 6)
    assert np.array_equal(numerics.global_sum_pool(x, 2), x.sum(axis=(2, 3)))
    s = x[:, :, 0]                                     # (N, C, L)
    ts = torch.as_tensor(s, dtype=torch.float64)
    assert np.array_equal(numerics.max_pool(s, (3,), (2,)),
                          torch.nn.functional.max_pool1d(ts, 3, 2).numpy())
    assert np.array_equal(numerics.sum_pool(s, (2,), (2,)),
                          torch.nn.functional.avg_pool1d(ts, 2).numpy() * 2)
    assert np.array_equal(numerics.global_sum_pool(s, 1), s.sum(axis=2))


@pytest.mark.parametrize("kernel, stride, padding", [
    ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 2), (1, 0)), ((5, 3), (2, 1), (2, 1)),
    ((2, 2), (2, 2), (1, 0)), ((3,), (2,), (1,)), ((4,), (1,), (2,)),
], ids=["resnet-stem", "rows", "wide", "even-kernel", "1d", "1d-even"])
def test_max_pool_padding_matches_torch(kernel, stride, padding):
    """Negative inputs: padding with 0 would win; PyTorch's -inf never does."""
    rng = np.random.default_rng(4)
    spatial = (9, 7)[:len(kernel)]
    x = rng.integers(-128, 0, size=(3, 4) + spatial)
    x[0, 0] = -128                                     # a channel at the smallest value
    f = torch.nn.functional.max_pool2d if len(kernel) == 2 else torch.nn.functional.max_pool1d
    want = f(torch.as_tensor(x, dtype=torch.float64), kernel, stride, padding).numpy()
    got = numerics.max_pool(x, kernel, stride, padding)
    assert got.dtype == np.int64 and np.array_equal(got, want)
    assert got.max() < 0


def test_max_pool_without_padding_is_unchanged():
    x = np.random.default_rng(5).integers(-8, 8, size=(2, 3, 6, 6))
    assert np.array_equal(numerics.max_pool(x, (3, 3), (2, 2), 0),
                          numerics.max_pool(x, (3, 3), (2, 2)))


@pytest.mark.parametrize("kernel, padding, message", [
    ((3, 3), 2, r"padding must be at most kernel // 2 = 1x1 for kernel 3x3, not 2x2"),
    ((2, 3), (1, 2), r"padding must be at most kernel // 2 = 1x1 for kernel 2x3, not 1x2"),
    ((1,), 1, r"padding must be at most kernel // 2 = 0 for kernel 1, not 1"),
    ((3, 3), -1, r"padding must be an integer >= 0 or 2 of them"),
])
def test_max_pool_padding_errors(kernel, padding, message):
    x = np.zeros((1, 6, 6)[:len(kernel) + 1], dtype=np.int64)
    with pytest.raises(ValueError, match=message):
        numerics.max_pool(x, kernel, 1, padding)


def test_add_is_exact_and_needs_equal_shapes():
    a = np.array([[2 ** 40, -3]])
    assert numerics.add(a, a).tolist() == [[2 ** 41, -6]]
    with pytest.raises(ValueError, match=r"add needs equal shapes, not \(1, 2\) and \(2,\)"):
        numerics.add(a, [1, 2])


def test_requantize_per_channel_of_feature_maps():
    acc = np.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2) * 10
    got = numerics.requantize(acc, [1, 2, 3], 2, 8, axis=1)
    want = np.clip((acc * np.array([1, 2, 3])[None, :, None, None] + 2) >> 2, 0, 255)
    assert np.array_equal(got, want)


def test_interleaved_order_lists_pixels_with_their_channels():
    x = np.arange(2 * 2 * 3).reshape(2, 2, 3)          # x[c, y, x] = 6c + 3y + x
    order = numerics.interleaved_order(x.shape)
    assert x.reshape(-1)[order].tolist() == [0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11]
    # A dense layer reading the stream gets the same result with its columns permuted.
    w = np.arange(5 * 12).reshape(5, 12) % 7 - 3
    assert np.array_equal(w[:, order] @ x.reshape(-1)[order], w @ x.reshape(-1))
