"""quant.nn layers against quant.numerics: the fake-quant values are the integers times scales."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from quant import numerics
from quant.nn import QuantInput, QuantLinear, QuantSequential, Requantizer, round_half_up


def test_round_half_up_matches_numerics():
    x = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49, -0.51])
    assert round_half_up(x).tolist() == [-2, -1, 0, 1, 2, 3, 0, -1]
    # numerics rounds (v + 2^(s-1)) >> s the same way: halves go up.
    assert numerics.round_half_up_shift(np.array([-5, -3, -1, 1, 3, 5]), 1).tolist() == \
        [-2, -1, 0, 1, 2, 3]


def test_quant_input_recovers_raw_pixels():
    pixels = np.arange(256)
    layer = QuantInput()
    x = torch.as_tensor(pixels, dtype=torch.float32) * layer.scale
    assert np.array_equal(layer.int_input(x), pixels)
    assert torch.equal(layer(x), torch.as_tensor(pixels, dtype=torch.float32) * layer.scale)


def test_quant_input_clamps_to_its_range():
    layer = QuantInput(4, signed=True, scale=0.5)
    x = torch.tensor([-10.0, -4.2, 0.26, 3.4, 10.0])
    assert layer.int_input(x).tolist() == [-8, -8, 1, 7, 7]
    assert layer(x).tolist() == [-4.0, -4.0, 0.5, 3.5, 3.5]


@pytest.mark.parametrize("kwargs, message", [
    ({"bits": 0}, r"QuantInput bits must be an integer in 1..16, not 0"),
    ({"bits": 17}, r"QuantInput bits must be an integer in 1..16, not 17"),
    ({"bits": 1, "signed": True}, r"QuantInput bits must be at least 2 when signed, not 1"),
    ({"scale": -0.1}, r"QuantInput scale must be a positive finite number, not -0.1"),
    ({"scale": float("nan")}, r"QuantInput scale must be a positive finite number, not nan"),
])
def test_quant_input_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QuantInput(**kwargs)


def mixed_linear(seed=0, power_of_two=False, shared_scale=False):
    torch.manual_seed(seed)
    bits = [2, 3, 4, 4, 5, 6, 8, 8]
    layer = QuantLinear(12, 8, weight_bits=bits, power_of_two=power_of_two,
                        shared_scale=shared_scale)
    with torch.no_grad():
        layer.bias.normal_(0, 0.3)
    return layer, np.array(bits)


@pytest.mark.parametrize("shared_scale", [False, True], ids=["per-filter", "shared"])
def test_int_weights_respect_each_filters_bits(shared_scale):
    layer, bits = mixed_linear(shared_scale=shared_scale)
    w = layer.int_weight()
    assert w.dtype == np.int64 and w.shape == (8, 12)
    limit = 2 ** (bits - 1) - 1
    assert (np.abs(w) <= limit[:, None]).all()
    if not shared_scale:
        # A max-abs scale puts every filter's largest weight on the edge of its range.
        assert (np.abs(w).max(axis=1) == limit).all()


def test_reset_scale_is_max_abs_per_filter_or_shared():
    layer, bits = mixed_linear()
    expected = layer.weight.detach().abs().amax(dim=1) / torch.tensor(2.0 ** (bits - 1) - 1,
                                                                  dtype=torch.float32)
    assert torch.allclose(layer.weight_scale().detach(), expected, rtol=1e-6)
    shared, _ = mixed_linear(shared_scale=True)
    scale = shared.weight_scale().detach()
    assert torch.all(scale == scale[0]) and torch.isclose(scale[0], expected.max(), rtol=1e-6)


def test_fake_quant_weight_is_int_weight_times_scale():
    layer, _ = mixed_linear()
    w = torch.as_tensor(layer.int_weight(), dtype=torch.float32)
    scale = layer.weight_scale().detach()
    assert torch.equal(layer.quantized_weight().detach(), w * scale[:, None])


@pytest.mark.parametrize("power_of_two", [False, True], ids=["free", "pow2"])
def test_quant_linear_is_integer_dense_times_scales(power_of_two):
    layer, _ = mixed_linear(power_of_two=power_of_two)
    layer = layer.double()
    in_scale = torch.tensor(2.0 ** -5 if power_of_two else 0.0371, dtype=torch.float64)
    x_int = np.random.default_rng(1).integers(0, 32, size=(50, 12))
    x = torch.as_tensor(x_int, dtype=torch.float64) * in_scale
    out = layer(x, input_scale=in_scale).detach().numpy()
    acc = numerics.dense(x_int, layer.int_weight(), layer.int_bias(in_scale))
    acc_scale = float(in_scale) * layer.weight_scale().detach().numpy()
    if power_of_two:
        assert np.array_equal(out, acc * acc_scale)  # every step is exact in binary
    else:
        np.testing.assert_allclose(out, acc * acc_scale, rtol=1e-12, atol=1e-12)


def test_bias_sits_on_the_accumulator_grid():
    layer, _ = mixed_linear()
    in_scale = torch.tensor(0.25)
    b = layer.int_bias(in_scale)
    acc_scale = 0.25 * layer.weight_scale().detach().numpy()
    np.testing.assert_allclose(b * acc_scale, layer.bias.detach().numpy(),
                               atol=float(acc_scale.max()) / 2 + 1e-7)


def test_power_of_two_weight_scales_are_powers_of_two():
    layer, _ = mixed_linear(power_of_two=True)
    mantissa, _ = np.frexp(layer.weight_scale().detach().numpy())
    assert (mantissa == 0.5).all()


def test_gradients_reach_weights_bias_and_scales():
    layer, _ = mixed_linear()
    x = torch.rand(32, 12)
    layer(x, input_scale=torch.tensor(1 / 255)).pow(2).sum().backward()
    for name in ("weight", "bias", "log2_scale"):
        grad = getattr(layer, name).grad
        assert grad is not None and grad.abs().sum() > 0, name


@pytest.mark.parametrize("weight_bits, message", [
    (9, r"weight_bits must be in 2..8, not 9 \(filter 0\)"),
    ([4, 4, 4, 1, 4], r"weight_bits must be in 2..8, not 1 \(filter 3\)"),
    ([4, 4], r"weight_bits must be an integer or 5 integers \(one per filter\), not \[4, 4\]"),
    ([4.5] * 5, r"weight_bits must be an integer or 5 integers"),
])
def test_weight_bits_errors(weight_bits, message):
    with pytest.raises(ValueError, match=message):
        QuantLinear(3, 5, weight_bits=weight_bits)


def test_set_weight_bits_resets_the_scales():
    layer, _ = mixed_linear()
    layer.set_weight_bits(8)
    assert layer.weight_bits.tolist() == [8] * 8
    assert (np.abs(layer.int_weight()).max(axis=1) == 127).all()


@pytest.mark.parametrize("args, message", [
    ((0, 4), r"QuantLinear in_features must be a positive integer, not 0"),
    ((4, -1), r"QuantLinear out_features must be a positive integer, not -1"),
])
def test_quant_linear_shape_errors(args, message):
    with pytest.raises(ValueError, match=message):
        QuantLinear(*args)


@pytest.mark.parametrize("a_bits, signed", [(5, False), (3, False), (4, True), (8, False)])
def test_requantizer_equals_numerics_requantize(a_bits, signed):
    """With power-of-two scales the rescale is an exact shift: the fake-quant Requantizer and
    numerics.requantize compute the same integers, ties and clamps included."""
    rng = np.random.default_rng(a_bits)
    acc = np.concatenate([rng.integers(-3000, 3000, size=(64, 6)),
                          np.arange(-24, 24).reshape(8, 6) * 64 + 32])  # exact ties
    acc_scale = 2.0 ** -9  # input_scale * weight_scale
    layer = Requantizer(a_bits, signed=signed, power_of_two=True, init_scale=2.0 ** -3)
    out = layer(torch.as_tensor(acc * acc_scale, dtype=torch.float32))
    got = (out / layer.output_scale()).detach().numpy()
    # ratio 2^-9 / 2^-3 = 2^-6 = M / 2^S with M = 1, S = 6
    want = numerics.requantize(acc, np.ones(6, dtype=np.int64), 6, a_bits, signed)
    assert np.array_equal(got, want)


def test_requantizer_clamps_and_rounds_half_up():
    layer = Requantizer(2, init_scale=1.0)
    x = torch.tensor([-3.0, -0.5, 0.49, 0.5, 1.5, 2.5, 2.6, 9.0])
    assert layer(x).tolist() == [0, 0, 0, 1, 2, 3, 3, 3]


def test_requantizer_scale_gets_the_lsq_gradient():
    layer = Requantizer(2, init_scale=1.0)
    x = torch.tensor([0.4, 1.3, 5.0], requires_grad=True)
    layer(x).sum().backward()
    # d/ds of clamp(round(x/s))*s: round(v) - v inside the range, the bound outside.
    expected_ds = (0 - 0.4) + (1 - 1.3) + 3
    assert layer.log2_scale.grad.item() == pytest.approx(expected_ds * np.log(2), rel=1e-5)
    assert x.grad.tolist() == [1, 1, 0]


def test_requantizer_power_of_two_scale():
    layer = Requantizer(5, power_of_two=True, init_scale=0.1)
    assert float(layer.output_scale().detach()) == 0.125
    layer(torch.rand(10) * 4).sum().backward()
    assert layer.log2_scale.grad is not None


@pytest.mark.parametrize("args, kwargs, message", [
    ((0,), {}, r"Requantizer a_bits must be an integer in 1..16, not 0"),
    ((5.0,), {}, r"Requantizer a_bits must be an integer in 1..16, not 5.0"),
    ((1,), {"signed": True}, r"Requantizer a_bits must be at least 2 when signed, not 1"),
    ((5,), {"init_scale": 0}, r"Requantizer init_scale must be a positive finite number, not 0"),
])
def test_requantizer_argument_errors(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Requantizer(*args, **kwargs)


def test_quant_sequential_passes_input_scales():
    torch.manual_seed(0)
    model = QuantSequential(OrderedDict(
        input=QuantInput(), flat=nn.Flatten(), fc1=QuantLinear(16, 6), act1=Requantizer(5),
        fc2=QuantLinear(6, 3)))
    seen = {}

    def record(module, args, kwargs, out):
        seen[module] = kwargs.get("input_scale")

    for name in ("fc1", "fc2"):
        model.get_submodule(name).register_forward_hook(record, with_kwargs=True)
    model(torch.rand(4, 4, 4))
    assert seen[model.fc1] is model.input.scale
    assert float(seen[model.fc2].detach()) == float(model.act1.output_scale().detach())
    # A plain Sequential gives no input scale: the bias stays float until export.
    plain = nn.Sequential(*model)
    out_plain, out_quant = plain(torch.zeros(1, 4, 4)), model(torch.zeros(1, 4, 4))
    assert out_plain.shape == out_quant.shape == (1, 3)
