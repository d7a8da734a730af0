"""quant.precision: FILM-QNN filter selection, count rounding and argument errors."""

import numpy as np
import pytest
import torch
from torch import nn

from quant.nn import QuantLinear
from quant.precision import (apply_precision, assign_precision, high_precision_count,
                             quantization_error)


def relative_error_by_loops(w, bits):
    """Independent reference: per-filter max-abs scale, round half up, narrow range."""
    hi = 2 ** (bits - 1) - 1
    errors = []
    for row in w:
        peak = np.abs(row).max()
        if peak == 0:
            errors.append(0.0)
            continue
        scale = peak / hi
        q = np.array([min(max(np.floor(v / scale + 0.5), -hi), hi) * scale for v in row])
        errors.append(((row - q) ** 2).sum() / (row ** 2).sum())
    return np.array(errors)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_quantization_error_matches_loops(bits):
    w = np.random.default_rng(bits).normal(size=(12, 30))
    w[3] = 0
    np.testing.assert_allclose(quantization_error(w, bits), relative_error_by_loops(w, bits),
                               rtol=1e-12)


def test_picks_the_filters_that_quantize_worst():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(40, 64))
    outliers = [5, 17, 33]
    for c in outliers:
        w[c, 7] = 40.0  # one huge weight: the 4-bit step swallows the rest of the filter
    bits = assign_precision(w, high_fraction=3 / 40)
    assert np.flatnonzero(bits == 8).tolist() == outliers
    assert set(bits.tolist()) == {4, 8}


def test_selection_equals_the_top_errors():
    rng = np.random.default_rng(1)
    w = rng.standard_t(df=3, size=(128, 50))  # heavy tails: errors vary from filter to filter
    bits = assign_precision(w, high_fraction=0.05, granularity=4)
    err = relative_error_by_loops(w, 4)
    chosen = np.flatnonzero(bits == 8)
    assert len(chosen) == 8
    assert err[chosen].min() > np.delete(err, chosen).max()


def test_shared_scale_picks_the_widest_filters():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(10, 20))
    w[6] *= 5
    w[2] *= 3
    bits = assign_precision(w, high_fraction=0.2, shared_scale=True)
    assert np.flatnonzero(bits == 8).tolist() == [2, 6]


def test_other_bit_pairs_and_ties_keep_the_lower_index():
    w = np.ones((6, 4))
    w[:, 0] = 3.0  # every filter identical: the ranking is a tie
    bits = assign_precision(w, high_fraction=0.5, low_bits=2, high_bits=6)
    assert bits.tolist() == [6, 6, 6, 2, 2, 2]


def test_convolution_shaped_weights_are_flattened_per_filter():
    w = np.random.default_rng(3).normal(size=(20, 3, 3, 3))
    assert assign_precision(w, 0.1).tolist() == \
        assign_precision(w.reshape(20, -1), 0.1).tolist()


@pytest.mark.parametrize("out_features, fraction, granularity, count", [
    (128, 0.05, 1, 6),    # 6.4 -> 6
    (128, 0.05, 4, 8),    # 1.6 multiples -> 2
    (128, 0.05, 8, 8),    # 0.8 -> 1
    (64, 0.05, 4, 4),     # 0.8 -> 1
    (64, 0.05, 8, 8),     # 0.4 -> 0, but a non-zero fraction gives at least one multiple
    (10, 0.05, 1, 1),     # 0.5 -> 1: halves round up
    (30, 0.05, 1, 2),     # 1.5 -> 2
    (50, 0.29, 1, 15),    # 14.5 -> 15, although 0.29 * 50 is 14.499999999999998 in binary
    (100, 0.25, 1, 25),
    (20, 0.5, 3, 9),      # 3.33 multiples -> 3
    (10, 0.0, 1, 0),
    (10, 1.0, 1, 10),
    (10, 1.0, 4, 8),      # at most the largest multiple that fits
    (10, 0.05, 10, 10),   # granularity == out_features: one multiple
    (10, 0.05, 16, 0),    # no multiple of 16 fits in 10 filters
])
def test_high_precision_count(out_features, fraction, granularity, count):
    assert high_precision_count(out_features, fraction, granularity) == count
    w = np.random.default_rng(out_features).normal(size=(out_features, 5))
    bits = assign_precision(w, fraction, granularity=granularity)
    assert int((bits == 8).sum()) == count


def test_count_is_always_a_multiple_of_granularity():
    rng = np.random.default_rng(4)
    for _ in range(500):
        out_features = int(rng.integers(1, 300))
        granularity = int(rng.integers(1, 40))
        fraction = float(rng.uniform(0, 1))
        count = high_precision_count(out_features, fraction, granularity)
        assert count % granularity == 0 and 0 <= count <= out_features
        if granularity <= out_features:
            assert count >= granularity
            assert abs(count - fraction * out_features) <= granularity / 2 + 1e-9 \
                or count == granularity or count == out_features // granularity * granularity


def test_absolute_criterion_weighs_the_filter_magnitude():
    rng = np.random.default_rng(6)
    w = rng.normal(size=(8, 50))
    w[2] *= 10    # large but evenly spread: big absolute error, ordinary relative error
    w[5, 0] = 30  # an outlier: the worst relative error
    assert np.flatnonzero(assign_precision(w, 1 / 8) == 8).tolist() == [5]
    assert np.flatnonzero(assign_precision(w, 1 / 8, criterion="absolute") == 8).tolist() == [2]
    np.testing.assert_allclose(quantization_error(w, 4, relative=False),
                               relative_error_by_loops(w, 4) * (w ** 2).sum(axis=1))


@pytest.mark.parametrize("kwargs, message", [
    ({"criterion": "mse"}, r"criterion must be 'relative' or 'absolute', not 'mse'"),
    ({"high_fraction": 1.5}, r"high_fraction must be in \[0, 1\], not 1.5"),
    ({"high_fraction": -0.1}, r"high_fraction must be in \[0, 1\], not -0.1"),
    ({"high_fraction": float("nan")}, r"high_fraction must be in \[0, 1\], not nan"),
    ({"high_fraction": "5%"}, r"high_fraction must be in \[0, 1\], not '5%'"),
    ({"low_bits": 1}, r"low_bits must be an integer in 2..8, not 1"),
    ({"high_bits": 16}, r"high_bits must be an integer in 2..8, not 16"),
    ({"low_bits": 4, "high_bits": 4}, r"high_bits must be greater than low_bits \(4\), not 4"),
    ({"granularity": 0}, r"granularity must be a positive integer, not 0"),
    ({"granularity": 2.0}, r"granularity must be a positive integer, not 2.0"),
])
def test_argument_errors(kwargs, message):
    w = np.random.default_rng(5).normal(size=(16, 8))
    with pytest.raises(ValueError, match=message):
        assign_precision(w, **kwargs)


@pytest.mark.parametrize("weight, message", [
    (np.ones(8), r"weight must be an array of shape \(out_features, in_features, ...\), not "
                 r"shape \(8,\)"),
    (np.ones((0, 8)), r"weight must be an array of shape .*, not shape \(0, 8\)"),
    (np.array([[1.0, np.nan]]), r"weight must be finite, not containing NaN or inf"),
])
def test_weight_errors(weight, message):
    with pytest.raises(ValueError, match=message):
        assign_precision(weight)


def test_count_argument_errors():
    with pytest.raises(ValueError, match=r"out_features must be a positive integer, not 0"):
        high_precision_count(0, 0.05)


def test_apply_precision_sets_bits_and_rescales():
    torch.manual_seed(0)
    layer = QuantLinear(32, 40)
    with torch.no_grad():
        layer.weight[[4, 9], 3] = 1.0  # outliers: the rest of those filters rounds to zero
    bits = apply_precision(layer, 0.05)
    assert np.flatnonzero(bits == 8).tolist() == [4, 9]
    assert layer.weight_bits.tolist() == bits.tolist()
    # Scales were re-derived for the new widths: each filter's largest weight hits its limit.
    assert (np.abs(layer.int_weight()).max(axis=1) == 2 ** (bits - 1) - 1).all()


def test_apply_precision_needs_a_quant_linear():
    with pytest.raises(TypeError, match="layer must be a quant.nn.QuantLinear, QuantConv2d or "
                                        "QuantConv1d, not Linear"):
        apply_precision(nn.Linear(4, 4))


def test_apply_precision_on_convolutions_is_per_output_filter():
    from quant.nn import QuantConv1d, QuantConv2d

    torch.manual_seed(1)
    conv = QuantConv2d(4, 40, 3)
    with torch.no_grad():
        conv.weight[[3, 30], 1, 0, 2] = 2.0   # outliers in two filters
    bits = apply_precision(conv, 0.05)
    assert np.flatnonzero(bits == 8).tolist() == [3, 30]
    assert conv.weight_bits.tolist() == bits.tolist()
    assert (np.abs(conv.int_weight()).reshape(40, -1).max(axis=1) == 2 ** (bits - 1) - 1).all()
    depthwise = QuantConv1d(8, 8, 5, groups=8)
    assert int((apply_precision(depthwise, 0.25, 2, 4) == 4).sum()) == 2
