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
