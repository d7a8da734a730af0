"""quant.nn convolutions, batch-norm folding and residual blocks against quant.numerics."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from quant import numerics
from quant.nn import (Add, QuantAdd, QuantConv1d, QuantConv2d, QuantInput, QuantLinear,
                      QuantSequential, Requantizer, Residual, fold_batchnorm, fold_batchnorms)


def mixed_conv(kind=QuantConv2d, seed=0, power_of_two=False, groups=1, **kwargs):
    torch.manual_seed(seed)
    channels = 4
    layer = kind(channels, 8, 3, stride=2, padding=1, groups=groups,
                 weight_bits=[2, 3, 4, 4, 5, 6, 8, 8], power_of_two=power_of_two, **kwargs)
    with torch.no_grad():
        layer.bias.normal_(0, 0.3)
    return layer.double()


@pytest.mark.parametrize("kind", [QuantConv2d, QuantConv1d], ids=["2d", "1d"])
@pytest.mark.parametrize("groups", [1, 4], ids=["dense", "depthwise"])
@pytest.mark.parametrize("power_of_two", [False, True], ids=["free", "pow2"])
def test_quant_conv_is_integer_conv_times_scales(kind, groups, power_of_two):
    layer = mixed_conv(kind, power_of_two=power_of_two, groups=groups)
    in_scale = torch.tensor(2.0 ** -5 if power_of_two else 0.0371, dtype=torch.float64)
    spatial = (9, 7) if kind is QuantConv2d else (11,)
    x_int = np.random.default_rng(1).integers(0, 32, size=(5, 4) + spatial)
    x = torch.as_tensor(x_int, dtype=torch.float64) * in_scale
    out = layer(x, input_scale=in_scale).detach().numpy()
    acc = numerics.conv(x_int, layer.int_weight(), layer.int_bias(in_scale), layer.stride,
                        layer.padding, groups)
    acc_scale = float(in_scale) * layer.weight_scale().detach().numpy()
    want = acc * acc_scale.reshape((-1,) + (1,) * len(spatial))
    if power_of_two:
        assert np.array_equal(out, want)
    else:
        np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)


def test_conv_filters_keep_their_own_bits_and_scales():
    layer = mixed_conv()
    w = layer.int_weight()
    assert w.shape == (8, 4, 3, 3) and w.dtype == np.int64
    limit = 2 ** (np.array([2, 3, 4, 4, 5, 6, 8, 8]) - 1) - 1
    assert (np.abs(w).reshape(8, -1).max(axis=1) == limit).all()   # max-abs scale per filter
    per_filter = layer.weight.detach().abs().flatten(1).amax(dim=1) / torch.as_tensor(
        limit, dtype=torch.float64)
    assert torch.allclose(layer.weight_scale().detach(), per_filter)


def test_depthwise_conv_has_one_input_channel_per_filter():
    layer = QuantConv2d(6, 12, 3, groups=6)
    assert layer.weight.shape == (12, 1, 3, 3)
    assert "groups=6" in repr(layer)


def test_gradients_reach_conv_weights_bias_and_scales():
    layer = mixed_conv().float()
    layer(torch.rand(2, 4, 6, 6), input_scale=torch.tensor(1 / 255)).pow(2).sum().backward()
    for name in ("weight", "bias", "log2_scale"):
        grad = getattr(layer, name).grad
        assert grad is not None and grad.abs().sum() > 0, name


@pytest.mark.parametrize("args, kwargs, message", [
    ((0, 4, 3), {}, r"QuantConv2d in_channels must be a positive integer, not 0"),
    ((4, 4, 0), {}, r"QuantConv2d kernel_size must be an integer >= 1 or a tuple of 2, not 0"),
    ((4, 4, (3, 3, 3)), {}, r"QuantConv2d kernel_size must be an integer >= 1 or a tuple of 2, "
                            r"not \(3, 3, 3\)"),
    ((4, 4, 3), {"stride": 0}, r"QuantConv2d stride must be an integer >= 1"),
    ((4, 4, 3), {"padding": -1}, r"QuantConv2d padding must be an integer >= 0"),
    ((4, 4, 3), {"groups": 2}, r"QuantConv2d groups must be 1 or in_channels \(4, depthwise\), "
                               r"not 2"),
    ((4, 6, 3), {"groups": 4}, r"QuantConv2d out_channels must be a multiple of groups \(4\), "
                               r"not 6"),
    ((4, 4, 3), {"weight_bits": [4] * 3}, r"weight_bits must be an integer or 4 integers \(one "
                                          r"per filter\)"),
])
def test_quant_conv_argument_errors(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        QuantConv2d(*args, **kwargs)


def test_quant_conv1d_argument_errors():
    with pytest.raises(ValueError, match=r"QuantConv1d kernel_size must be an integer >= 1 or a "
                                         r"tuple of 1, not \(3, 3\)"):
        QuantConv1d(2, 2, (3, 3))


# -- batch normalization ---------------------------------------------------------------------

def trained_bn(features, seed, dims=2):
    torch.manual_seed(seed)
    bn = (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(features).double()
    with torch.no_grad():
        bn.running_mean.normal_(0, 0.5)
        bn.running_var.uniform_(0.2, 2.0)
        bn.weight.normal_(1, 0.5)
        bn.weight[0] = -0.7        # a negative gain flips the filter
        bn.bias.normal_(0, 0.3)
    return bn.eval()


@pytest.mark.parametrize("make", [
    lambda: nn.Conv2d(3, 5, 3, padding=1).double(),
    lambda: nn.Conv1d(3, 5, 3, bias=False).double(),
    lambda: nn.Linear(3, 5).double(),
], ids=["conv2d", "conv1d-no-bias", "linear"])
def test_fold_batchnorm_of_float_layers_computes_the_same(make):
    torch.manual_seed(0)
    layer = make()
    dims = 2 if isinstance(layer, nn.Conv2d) else 1
    bn = trained_bn(5, 1, dims)
    x = torch.randn((4, 3, 6, 6) if dims == 2 else (4, 3, 9) if isinstance(layer, nn.Conv1d)
                    else (4, 3), dtype=torch.float64)
    folded = fold_batchnorm(layer, bn)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), bn(layer(x)))
    assert folded is not layer and folded.bias is not None


def test_fold_batchnorm_keeps_the_integer_weights_of_a_quant_conv():
    layer = mixed_conv()
    bn = trained_bn(8, 2)
    folded = fold_batchnorm(layer, bn)
    sign = np.sign(bn.weight.detach().numpy()).reshape(-1, 1, 1, 1)
    # The scales absorb |gain| per filter, so the integers stay (negated where gain < 0).
    assert np.array_equal(folded.int_weight(), layer.int_weight() * sign.astype(np.int64))
    x = torch.randn(3, 4, 7, 7, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), bn(layer(x)))


def test_fold_batchnorm_of_a_shared_scale_layer_rederives_the_scale():
    torch.manual_seed(3)
    layer = QuantLinear(6, 4, shared_scale=True).double()
    folded = fold_batchnorm(layer, trained_bn(4, 4, dims=1))
    scale = folded.weight_scale().detach()
    assert torch.all(scale == scale[0])
    assert int(np.abs(folded.int_weight()).max()) == 7


@pytest.mark.parametrize("layer, bn, error, message", [
    (nn.ReLU(), nn.BatchNorm2d(4), TypeError,
     r"layer must be a QuantLinear, QuantConv1d, QuantConv2d or a float Linear/Conv1d/Conv2d, "
     r"not ReLU"),
    (nn.Conv2d(2, 4, 3), nn.LayerNorm(4), TypeError,
     r"bn must be a BatchNorm1d or BatchNorm2d, not LayerNorm"),
    (nn.Conv2d(2, 4, 3), nn.BatchNorm2d(3), ValueError,
     r"BatchNorm2d has 3 features but Conv2d has 4 filters"),
    (nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4, track_running_stats=False), ValueError,
     r"BatchNorm2d must track running statistics to be folded \(track_running_stats=True\)"),
])
def test_fold_batchnorm_errors(layer, bn, error, message):
    with pytest.raises(error, match=message):
        fold_batchnorm(layer, bn)


def test_fold_batchnorms_replaces_every_pair_in_place():
    torch.manual_seed(5)
    body = QuantSequential(OrderedDict(conv=QuantConv2d(4, 4, 3, padding=1),
                                       bn=nn.BatchNorm2d(4), act=Requantizer(4)))
    model = QuantSequential(OrderedDict(
        input=QuantInput(), conv=QuantConv2d(1, 4, 3, padding=1), bn=nn.BatchNorm2d(4),
        act=Requantizer(4), block=Residual(body), pool=nn.MaxPool2d(2),
        bn_alone=nn.BatchNorm2d(4)))
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            with torch.no_grad():
                module.running_var.fill_(4.0)
    model.eval()
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        before = model(x)
    assert fold_batchnorms(model) is model
    kinds = {name: type(m).__name__ for name, m in model.named_modules()}
    assert kinds["bn"] == kinds["block.body.bn"] == "Identity"
    assert kinds["bn_alone"] == "BatchNorm2d"       # no weight layer right before it
    with torch.no_grad():
        after = model(x)
    # Only the bias rounding to its grid may move an activation by one step.
    assert (after - before).abs().max() <= float(model.block.output_scale().detach()) + 1e-6


# -- residual blocks ---------------------------------------------------------------------------

def test_quant_add_quantizes_each_branch_then_adds():
    add = QuantAdd(4, init_scale=0.5)
    a = torch.tensor([0.2, 0.3, 10.0, -0.74])
    b = torch.tensor([0.3, -9.0, 0.25, -0.76])
    # q(a) = [0, 0.5, 3.5, -0.5] (clamped at 7 steps); q(b) = [0.5, -4.0, 0.5, -1.0]
    assert add(a, b).tolist() == [0.5, -3.5, 4.0, -1.5]
    assert add.a_bits == 4 and float(add.output_scale().detach()) == 0.5


@pytest.mark.parametrize("kwargs, message", [
    ({"a_bits": 1}, r"QuantAdd a_bits must be an integer in 2..16, not 1"),
    ({"a_bits": 17}, r"QuantAdd a_bits must be an integer in 2..16, not 17"),
])
def test_quant_add_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QuantAdd(**kwargs)


def test_residual_adds_body_and_shortcut():
    torch.manual_seed(6)
    body = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1))
    block = Residual(body, add=Add())
    x = torch.randn(1, 2, 5, 5)
    torch.testing.assert_close(block(x), body(x) + x)
    proj = nn.Conv2d(2, 3, 1, stride=2)
    block = Residual(nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1)), proj, add=Add())
    torch.testing.assert_close(block(x), block.body(x) + proj(x))


def test_residual_argument_errors():
    with pytest.raises(TypeError, match=r"body must be an nn.Module, not list"):
        Residual([nn.Identity()])
    with pytest.raises(TypeError, match=r"shortcut must be an nn.Module or None, not int"):
        Residual(nn.Identity(), 3)


def test_quant_sequential_hands_input_scales_to_every_weight_layer():
    torch.manual_seed(7)
    body = QuantSequential(OrderedDict(conv1=QuantConv2d(4, 4, 3, padding=1),
                                       act1=Requantizer(4), conv2=QuantConv2d(4, 4, 3, padding=1)))
    shortcut = QuantConv2d(4, 4, 1)
    model = QuantSequential(OrderedDict(
        input=QuantInput(), conv=QuantConv2d(1, 4, 3, padding=1), act=Requantizer(5),
        pool=nn.MaxPool2d(2), block=Residual(body, shortcut), act2=Requantizer(4),
        avg=nn.AvgPool2d(2), conv3=QuantConv2d(4, 4, 1), act3=Requantizer(4),
        gap=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=QuantLinear(4, 3)))
    seen = {}

    def record(module, args, kwargs, out):
        seen[module] = kwargs.get("input_scale")

    for layer in (model.conv, body.conv1, body.conv2, shortcut, model.conv3, model.fc):
        layer.register_forward_hook(record, with_kwargs=True)
    with torch.no_grad():
        model(torch.rand(2, 1, 8, 8))
        act = float(model.act.output_scale())
        assert seen[model.conv] is model.input.scale
        assert float(seen[body.conv1]) == act and float(seen[shortcut]) == act  # via the pool
        assert float(seen[body.conv2]) == float(body.act1.output_scale())
        assert float(seen[model.conv3]) == float(model.act2.output_scale()) / 4   # 2x2 sum
        assert float(seen[model.fc]) == float(model.act3.output_scale()) / 4      # 2x2 pixels
