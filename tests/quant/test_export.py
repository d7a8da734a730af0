"""quant.export: valid graphs, golden == fake-quant, Requantizer parameters, error messages."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from quant import GraphError, UnsupportedLayerError, golden, graph as qgraph
from quant.export import MULTIPLIER_BITS, export, requantize_parameters
from quant.nn import QuantInput, QuantLinear, QuantSequential, Requantizer


def random_model(seed, *, power_of_two, signed_input=False, dtype=torch.float32):
    """QuantInput -> Flatten -> QuantLinear (2..8-bit filters) -> Requantizer -> Identity ->
    QuantLinear (4/8-bit) -> Requantizer -> QuantLinear (shared scale, raw output), with
    Requantizer scales fitted to the activations so that their whole range is used."""
    torch.manual_seed(seed)
    scale = 2.0 ** -7 if power_of_two else 1 / 127 if signed_input else 1 / 255
    model = QuantSequential(OrderedDict(
        input=QuantInput(8, signed=signed_input, scale=scale),
        flat=nn.Flatten(),
        fc1=QuantLinear(16, 12, weight_bits=[2, 3, 4, 5, 6, 7, 8, 4, 4, 4, 8, 2],
                        power_of_two=power_of_two),
        act1=Requantizer(4, power_of_two=power_of_two),
        skip=nn.Identity(),
        fc2=QuantLinear(12, 8, weight_bits=[4, 8] * 4, power_of_two=power_of_two),
        act2=Requantizer(5, power_of_two=power_of_two),
        fc3=QuantLinear(8, 5, shared_scale=True, power_of_two=power_of_two),
    )).to(dtype)
    x = random_inputs(model, 256, seed)[1]
    with torch.no_grad():
        for name, m in model.named_children():
            if isinstance(m, QuantLinear):
                m.bias.normal_(0, 0.2)
            if isinstance(m, Requantizer):
                before = model[:list(model._modules).index(name)](x)
                positive = before[before > 0]
                m.log2_scale.fill_(float(torch.log2(positive.quantile(0.8) / m.int_range[1])))
    return model


def random_inputs(model, n, seed):
    lo, hi = model.input.int_range
    x_int = np.random.default_rng(seed).integers(lo, hi + 1, size=(n, 4, 4))
    return x_int, torch.as_tensor(x_int, dtype=model.input.scale.dtype) * model.input.scale


def fake_quant_integers(model, graph, x):
    """Every node's fake-quant output divided by its scale (the integers it stands for)."""
    out, scale = {}, None
    with torch.no_grad():
        for index, (name, m) in enumerate(model.named_children()):
            value = model[:index + 1](x)
            if isinstance(m, QuantLinear):
                scale = graph[name].tensors["weight_scale"] * float(scale)
            elif isinstance(m, (QuantInput, Requantizer)):
                scale = m.output_scale()
            if name in {n.name for n in graph.nodes}:
                out[name] = value.double().numpy() / np.asarray(scale, dtype=np.float64)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("signed_input", [False, True], ids=["uint8", "int8"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_power_of_two_golden_equals_fake_quant_bit_for_bit(seed, signed_input, dtype):
    """With power-of-two scales every fake-quant value is exactly an integer times its scale,
    and the integer graph computes the same integers: every node, every input."""
    model = random_model(seed, power_of_two=True, signed_input=signed_input, dtype=dtype)
    graph = export(model, (4, 4))
    x_int, x = random_inputs(model, 2000, seed + 100)
    want = golden.run(graph, x_int)
    got = fake_quant_integers(model, graph, x)
    for node in graph.nodes:
        if node.op == "flatten":
            continue
        assert np.array_equal(got[node.name], want[node.name]), \
            f"seed {seed}, layer {node.name}: first mismatch at " \
            f"{np.argwhere(got[node.name] != want[node.name])[:1].tolist()}"
    # The activations are not degenerate: the test exercises the whole range.
    for name in ("act1", "act2"):
        hi = graph[name].attrs["out_bits"]
        assert want[name].max() == 2 ** hi - 1 and (want[name] == 0).any(), name
    for node in graph.nodes:
        if node.op == "requantize":
            mult = node.tensors["multiplier"]
            assert ((mult & (mult - 1)) == 0).all() and mult.min() == 1, node.name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_free_scales_golden_is_within_one_step_of_fake_quant(seed):
    """With arbitrary scales M[c] / 2^S approximates the real rescale r[c] to 16 significant
    bits for the largest channel and fewer for channels with smaller ratios (one shift per
    layer; here filters of 2..8 bits, so ratios span 2^6). An activation can then differ by
    one step only where acc * r[c] is that close to a rounding tie: the first Requantizer is
    never off by more than one step, and few activations differ at all (measured: at most
    0.09% over seeds 0..5)."""
    model = random_model(seed, power_of_two=False, dtype=torch.float32)
    graph = export(model, (4, 4))
    x_int, x = random_inputs(model, 4000, seed + 100)
    want = golden.run(graph, x_int)
    got = fake_quant_integers(model, graph, x)
    act1 = np.round(got["act1"])
    assert np.abs(act1 - want["act1"]).max() <= 1
    for name in ("act1", "act2"):
        differ = np.mean(np.round(got[name]) != want[name])
        assert differ <= 2e-3, f"seed {seed}, {name}: {differ:.2%} of activations differ"
    agree = np.mean(got["fc3"].argmax(axis=1) == want["fc3"].argmax(axis=1))
    assert agree >= 0.995, f"seed {seed}: argmax agrees on only {agree:.2%} of inputs"


def test_export_produces_a_valid_graph_named_after_the_modules(tmp_path):
    model = random_model(0, power_of_two=False)
    graph = export(model, (4, 4), metadata={"dataset": "random"})
    assert [(n.name, n.op) for n in graph.nodes] == [
        ("flat", "flatten"), ("fc1", "dense"), ("act1", "requantize"), ("fc2", "dense"),
        ("act2", "requantize"), ("fc3", "dense")]
    assert graph.input == qgraph.InputSpec((4, 4), 8, False, float(model.input.scale))
    assert graph["fc1"].tensors["weight_bits"].tolist() == [2, 3, 4, 5, 6, 7, 8, 4, 4, 4, 8, 2]
    assert np.array_equal(graph["fc2"].tensors["weight"], model.fc2.int_weight())
    assert graph["act2"].attrs["out_bits"] == 5 and graph["act2"].attrs["out_signed"] is False
    assert graph.metadata["dataset"] == "random"
    out_scale = float(model.act2.output_scale().detach()) * model.fc3.weight_scale().detach()
    np.testing.assert_allclose(graph.metadata["output_scale"], out_scale.numpy(), rtol=1e-6)
    path = tmp_path / "model.qgraph"
    qgraph.save(graph, path)
    x_int, _ = random_inputs(model, 50, 3)
    assert np.array_equal(golden.run(qgraph.load(path), x_int)["fc3"],
                          golden.run(graph, x_int)["fc3"])


def test_requantize_multipliers_use_16_bits_and_match_the_ratio():
    model = random_model(1, power_of_two=False)
    graph = export(model, (4, 4))
    for act, fc, in_scale in (("act1", "fc1", float(model.input.scale)),
                              ("act2", "fc2", float(model.act1.output_scale().detach()))):
        node = graph[act]
        mult, shift = node.tensors["multiplier"], node.attrs["shift"]
        assert 2 ** (MULTIPLIER_BITS - 1) <= mult.max() < 2 ** MULTIPLIER_BITS
        assert mult.min() >= 1
        ratio = in_scale * graph[fc].tensors["weight_scale"] / node.attrs["scale"]
        assert np.abs(mult / 2.0 ** shift - ratio).max() <= 2.0 ** -(shift + 1)


@pytest.mark.parametrize("ratio, expected", [
    ([0.5], ([32768], 16)),
    ([1.0, 0.25], ([32768, 8192], 15)),
    ([3.0], ([49152], 14)),
    ([0.001], ([33554], 25)),      # 0.001 * 2^25 = 33554.4; 2^26 would need 17 bits
    ([1e-20], ([1], 48)),          # shift capped at 48; the multiplier keeps what it can
    ([70000.0], ([70000], 0)),     # above 16 bits at shift 0 (still below 24)
])
def test_requantize_parameters_examples(ratio, expected):
    mult, shift = requantize_parameters(ratio)
    assert (mult.tolist(), shift) == (list(map(int, expected[0])), expected[1])


def test_requantize_parameters_tiny_channel_gets_one():
    mult, shift = requantize_parameters([0.5, 1e-9])
    assert mult.tolist() == [32768, 1] and shift == 16


def test_requantize_parameters_random_ratios_are_close():
    rng = np.random.default_rng(0)
    for _ in range(200):
        ratio = 10.0 ** rng.uniform(-6, 1, size=rng.integers(1, 20))
        mult, shift = requantize_parameters(ratio)
        assert mult.max() < 2 ** 16 and mult.min() >= 1 and 0 <= shift <= 48
        assert mult.max() >= 2 ** 15 or shift == 48
        approx = mult / 2.0 ** shift
        close = ratio * 2.0 ** shift >= 0.5
        assert np.all(np.abs(approx - ratio)[close] <= 2.0 ** -(shift + 1))


def test_requantize_parameters_power_of_two():
    mult, shift = requantize_parameters([2.0 ** -9, 2.0 ** -7, 2.0 ** -9], power_of_two=True)
    assert (mult.tolist(), shift) == ([1, 4, 1], 9)
    mult, shift = requantize_parameters([4.0], power_of_two=True)
    assert (mult.tolist(), shift) == ([4], 0)


@pytest.mark.parametrize("ratio, kwargs, message", [
    ([0.3], {"power_of_two": True}, r"rescale ratio of channel 0 is 0.3, not a power of two "
                                    r"\(1 channels\)"),
    ([2.0 ** -3, 2.0 ** -20], {"power_of_two": True},
     r"rescale ratios 2\^-20..2\^-3 are too far apart for 16-bit multipliers"),
    ([2.0 ** -50], {"power_of_two": True}, r"rescale ratio 2\^-50 needs a shift beyond 48"),
    ([1e9], {}, r"rescale ratio 1e\+09 needs a multiplier of 30 bits at shift 0, more than 24"),
    ([0.5, -1.0], {}, r"rescale ratio must be positive and finite, not -1.0 \(channel 1\)"),
])
def test_requantize_parameters_errors(ratio, kwargs, message):
    with pytest.raises(ValueError, match=message):
        requantize_parameters(ratio, **kwargs)


def test_unsupported_modules_are_all_listed_before_export():
    model = nn.Sequential(OrderedDict(
        input=QuantInput(), conv=nn.Conv2d(1, 4, 3), flat=nn.Flatten(), relu=nn.ReLU(),
        fc=nn.Linear(10, 10), head=QuantLinear(10, 10)))
    with pytest.raises(UnsupportedLayerError) as info:
        export(model, (1, 5, 5))
    assert info.value.problems == [
        "module 'conv' (position 1, Conv2d): Conv2d is not supported; use quant.nn.QuantConv2d",
        "module 'relu' (position 3, ReLU): ReLU is not supported; use quant.nn.Requantizer, "
        "which is the activation",
        "module 'fc' (position 4, Linear): Linear is not supported; use quant.nn.QuantLinear",
    ]
    assert str(info.value).count("\n") == 2


def test_unsupported_modules_in_nested_sequentials_are_named_by_path():
    model = nn.Sequential(QuantInput(), nn.Sequential(nn.Flatten(start_dim=0), nn.Softmax(1)))
    with pytest.raises(UnsupportedLayerError, match=(
            r"module '1.0' \(position 1, Flatten\): Flatten must flatten dims 1..-1 \(one vector "
            r"per input\), not 0..-1\n"
            r"module '1.1' \(position 2, Softmax\): Softmax is not supported; supported modules "
            r"are QuantInput, QuantLinear, QuantConv2d, QuantConv1d, Requantizer, Residual, "
            r"BatchNorm2d, BatchNorm1d, MaxPool2d, MaxPool1d, AvgPool2d, AvgPool1d, "
            r"AdaptiveAvgPool2d, AdaptiveAvgPool1d, Flatten, Identity$")):
        export(model, (784,))


def test_model_must_be_a_sequential():
    with pytest.raises(TypeError, match="model must be an nn.Sequential, not QuantLinear"):
        export(QuantLinear(4, 2), (4,))


@pytest.mark.parametrize("shape", [(), (0, 4), "784", (4.0,)])
def test_input_shape_errors(shape):
    with pytest.raises(ValueError, match=r"input_shape must be a tuple of positive integers "
                                         r"\(one input, no batch axis\), not"):
        export(random_model(0, power_of_two=False), shape)


def test_layer_order_problems_are_all_listed():
    model = nn.Sequential(OrderedDict(
        fc1=QuantLinear(8, 8), act1=Requantizer(4), input=QuantInput(),
        fc2=QuantLinear(8, 8), fc3=QuantLinear(8, 4)))
    with pytest.raises(GraphError) as info:
        export(model, (8,))
    assert info.value.problems == [
        "layer 'fc1' (QuantLinear): the first layer must be a QuantInput, which gives the "
        "input's integer type and scale",
        "layer 'input' (QuantInput) must be the first layer, since it describes the network "
        "input; it is at position 2",
        "layer 'fc3' (QuantLinear) reads a raw accumulator; put a Requantizer before it",
    ]


def test_power_of_two_requantizer_needs_power_of_two_scales_before_it():
    model = nn.Sequential(OrderedDict(
        input=QuantInput(scale=1 / 255), fc1=QuantLinear(8, 8, power_of_two=True),
        act1=Requantizer(4, power_of_two=True), fc2=QuantLinear(8, 4)))
    with pytest.raises(GraphError, match=(
            r"^layer 'act1' \(Requantizer\): rescale ratio of channel 0 is [0-9.e-]+, not a power "
            r"of two \(8 channels\) \(power_of_two needs power-of-two scales before it: "
            r"QuantLinear power_of_two=True and a power-of-two QuantInput scale\)$")):
        export(model, (8,))


def test_export_of_a_plain_sequential_quantizes_the_bias_at_export():
    torch.manual_seed(0)
    model = QuantSequential(QuantInput(), QuantLinear(6, 3))
    plain = nn.Sequential(*model)
    graph = export(plain, (6,))
    assert np.array_equal(graph["1"].tensors["bias"], model[1].int_bias(model[0].scale))
    x_int = np.random.default_rng(0).integers(0, 256, size=(100, 6))
    x = torch.as_tensor(x_int, dtype=torch.float32) * model[0].scale
    with torch.no_grad():
        fq = model(x).numpy() / np.asarray(graph.metadata["output_scale"])
    np.testing.assert_allclose(fq, golden.run(graph, x_int)["1"], atol=1e-2)
