"""quant.export of convolutional networks: exact golden == fake-quant in power-of-two mode,
residual joins, batch-norm folding, pooling scales, and error messages."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from hwgen import hardware_problems
from quant import GraphError, UnsupportedLayerError, golden
from quant.export import export
from quant.nn import (Add, QuantAdd, QuantConv1d, QuantConv2d, QuantInput, QuantLinear,
                      QuantSequential, Requantizer, Residual, fold_batchnorm)


def cnn(seed, *, power_of_two, dtype=torch.float32):
    """Every 2-D op: conv (mixed bits), maxpool, residual with identity shortcut and a depthwise
    body, residual with a strided 1x1 projection, avgpool, global avgpool, dense head."""
    torch.manual_seed(seed)
    p2 = {"power_of_two": power_of_two}

    def body(c_in, c_out, stride, depthwise=False):
        last = (QuantConv2d(c_out, c_out, 3, padding=1, groups=c_out, **p2) if depthwise
                else QuantConv2d(c_out, c_out, 3, padding=1, **p2))
        return QuantSequential(OrderedDict(
            conv1=QuantConv2d(c_in, c_out, 3, stride=stride, padding=1, **p2),
            act1=Requantizer(4, **p2), conv2=last))

    model = QuantSequential(OrderedDict(
        input=QuantInput(8, scale=2.0 ** -8 if power_of_two else 1 / 255),
        conv=QuantConv2d(1, 4, 3, padding=1, weight_bits=[2, 4, 8, 4], **p2),
        act=Requantizer(4, **p2),
        pool=nn.MaxPool2d(2),
        block1=Residual(body(4, 4, 1, depthwise=True), **p2),
        act1=Requantizer(4, **p2),
        block2=Residual(body(4, 8, 2), QuantConv2d(4, 8, 1, stride=2, **p2), add_bits=6, **p2),
        act2=Requantizer(5, **p2),
        avg=nn.AvgPool2d(2),
        act3=Requantizer(5, **p2),
        gap=nn.AdaptiveAvgPool2d(1),
        flat=nn.Flatten(),
        fc=QuantLinear(8, 5, shared_scale=True, **p2),
    )).to(dtype)
    calibrate(model, random_images(model, 256, seed)[1])
    return model


def calibrate(model, x):
    """Fit each Requantizer and join scale to the values it sees, in execution order, so that
    the tests exercise the whole integer range."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (QuantLinear, QuantConv2d, QuantConv1d)):
                module.bias.normal_(0, 0.1)
        for module in list(model.modules()):
            if not isinstance(module, Requantizer):
                continue
            seen = []
            hook = module.register_forward_hook(lambda m, args, out: seen.append(args[0]))
            model(x)
            hook.remove()
            values = torch.cat([v.flatten() for v in seen]).abs()
            lo, hi = module.int_range
            # The quantile is often a grid value itself: a factor off a simple fraction keeps
            # the ratios of consecutive scales from being dyadic, which would put many values
            # on exact rounding ties that float noise then breaks either way.
            target = float(values[values > 0].quantile(0.9)) / hi * 1.0437
            module.log2_scale.fill_(float(np.log2(target)))


def random_images(model, n, seed, shape=(1, 16, 16)):
    lo, hi = model.input.int_range
    x_int = np.random.default_rng(seed).integers(lo, hi + 1, size=(n,) + shape)
    return x_int, torch.as_tensor(x_int, dtype=model.input.scale.dtype) * model.input.scale


def scale_of(module):
    return float(module.output_scale().detach())


def module_outputs(model, x):
    outputs = {}
    hooks = [m.register_forward_hook(lambda m, a, out, name=name: outputs.__setitem__(name, out))
             for name, m in model.named_modules() if name]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return outputs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_power_of_two_cnn_golden_equals_fake_quant_bit_for_bit(seed, dtype):
    model = cnn(seed, power_of_two=True, dtype=dtype)
    graph = export(model, (1, 16, 16))
    x_int, x = random_images(model, 500, seed + 10)
    want = golden.run(graph, x_int)
    got = module_outputs(model, x)
    compared = []
    for node in graph.nodes:
        module = model.get_submodule(node.name) if node.name in got else None
        if isinstance(module, (Requantizer, QuantAdd)):
            scale = scale_of(module)
        elif node.op in ("maxpool2d",):
            scale = scale_of(model.act)
        else:
            continue
        ints = got[node.name].double().numpy() / scale
        assert np.array_equal(ints, want[node.name]), \
            f"seed {seed}, layer {node.name}: first mismatch at " \
            f"{np.argwhere(ints != want[node.name])[:1].tolist()}"
        compared.append(node.name)
    assert compared == ["act", "pool", "block1.body.act1", "block1.add", "act1",
                        "block2.body.act1", "block2.add", "act2", "act3"]
    out = got["fc"].double().numpy() / np.asarray(graph.metadata["output_scale"])
    assert np.array_equal(out, want["fc"])
    for name in ("act", "act1", "act2"):
        assert want[name].max() == 2 ** graph[name].attrs["out_bits"] - 1, name
    for node in graph.nodes:
        if node.op == "requantize":
            mult = node.tensors["multiplier"]
            assert ((mult & (mult - 1)) == 0).all(), node.name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_free_scales_cnn_golden_agrees_with_fake_quant(seed):
    """M[c] / 2^S approximates each rescale; the channel with the smallest ratio (here the
    8-bit filter next to 2-bit ones, ratios 2^7 apart) keeps the fewest significant bits, so
    the first layer differs by one step in a few activations per thousand. Each such
    difference reaches the 9 * C outputs of the next convolution, so the rate grows with depth
    (measured over seeds 0..3: first Requantizer at most 0.14%, deepest at most 2.1%), while
    the argmax agrees on at least 99.8% of the inputs."""
    model = cnn(seed, power_of_two=False)
    graph = export(model, (1, 16, 16))
    x_int, x = random_images(model, 1000, seed + 20)
    want = golden.run(graph, x_int)
    got = module_outputs(model, x)
    act = np.round(got["act"].double().numpy() / scale_of(model.act))
    assert np.abs(act - want["act"]).max() <= 1
    assert np.mean(act != want["act"]) <= 3e-3
    for name in ("act1", "act2", "act3"):
        ints = np.round(got[name].double().numpy() / scale_of(model.get_submodule(name)))
        differ = np.mean(ints != want[name])
        assert differ <= 0.04, f"seed {seed}, {name}: {differ:.2%} of activations differ"
    agree = np.mean(got["fc"].numpy().argmax(axis=1) == want["fc"].argmax(axis=1))
    assert agree >= 0.99, f"seed {seed}: argmax agrees on only {agree:.2%} of inputs"


def test_residual_nodes_are_named_after_the_block():
    graph = export(cnn(0, power_of_two=False), (1, 16, 16))
    names = [(n.name, n.op, n.inputs) for n in graph.nodes]
    assert names[3:13] == [
        ("block1.body.conv1", "conv2d", ["pool"]),
        ("block1.body.act1", "requantize", ["block1.body.conv1"]),
        ("block1.body.conv2", "conv2d", ["block1.body.act1"]),
        ("block1.requantize_body", "requantize", ["block1.body.conv2"]),
        ("block1.requantize_shortcut", "requantize", ["pool"]),
        ("block1.add", "add", ["block1.requantize_body", "block1.requantize_shortcut"]),
        ("act1", "requantize", ["block1.add"]),
        ("block2.body.conv1", "conv2d", ["act1"]),
        ("block2.body.act1", "requantize", ["block2.body.conv1"]),
        ("block2.body.conv2", "conv2d", ["block2.body.act1"]),
    ]
    assert [n for n, _, _ in names[13:17]] == ["block2.shortcut", "block2.requantize_body",
                                               "block2.requantize_shortcut", "block2.add"]
    assert graph["block1.body.conv2"].attrs["groups"] == 4
    assert graph["block2.shortcut"].attrs == {"stride": [2, 2], "padding": [0, 0], "groups": 1}
    join = graph["block2.requantize_body"].attrs
    assert (join["out_bits"], join["out_signed"]) == (6, True)
    assert graph.ranges()["block2.add"] == (-64, 62)


def test_an_identity_shortcut_on_the_join_grid_needs_no_requantize():
    """The rule: a branch already holding integers of the join's scale, within its range,
    is added as it is."""
    model = cnn(0, power_of_two=True)
    with torch.no_grad():
        model.block1.add.quantize.log2_scale.copy_(model.act.log2_scale)
    graph = export(model, (1, 16, 16))
    assert graph["block1.add"].inputs == ["block1.requantize_body", "pool"]
    assert "block1.requantize_shortcut" not in [n.name for n in graph.nodes]
    x_int, x = random_images(model, 200, 3)
    got = module_outputs(model, x)["block1.add"].numpy() / scale_of(model.block1)
    assert np.array_equal(got, golden.run(graph, x_int)["block1.add"])


def test_average_pool_division_is_in_the_next_requantize():
    model = cnn(1, power_of_two=False)
    graph = export(model, (1, 16, 16))
    node = graph["act3"]
    ratio = scale_of(model.act2) / 4 / scale_of(model.act3)
    approx = node.tensors["multiplier"] / 2.0 ** node.attrs["shift"]
    np.testing.assert_allclose(approx, ratio, rtol=2 ** -15)
    # The dense head reads the global sums: its bias is on the grid act3 / 4 (2x2 pixels).
    assert graph.shapes()["act3"] == (8, 2, 2)
    grid = model.act3.output_scale().detach() / 4
    assert np.array_equal(graph["fc"].tensors["bias"], model.fc.int_bias(grid))


def test_batchnorm_is_folded_at_export():
    torch.manual_seed(4)
    model = QuantSequential(OrderedDict(
        input=QuantInput(), conv=QuantConv2d(1, 6, 3, padding=1), bn=nn.BatchNorm2d(6),
        act=Requantizer(5), pool=nn.MaxPool2d(2), flat=nn.Flatten(),
        fc=QuantLinear(6 * 16, 4, shared_scale=True), bn_fc=nn.BatchNorm1d(4)))
    with torch.no_grad():
        for bn in (model.bn, model.bn_fc):
            bn.running_mean.normal_(0, 0.2)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.normal_(1, 0.3)
    model.eval()
    calibrate(model, random_images(model, 200, 5, (1, 8, 8))[1])
    graph = export(model, (1, 8, 8))
    assert [n.op for n in graph.nodes] == ["conv2d", "requantize", "maxpool2d", "flatten",
                                           "dense"]
    folded = fold_batchnorm(model.conv, model.bn)
    assert np.array_equal(graph["conv"].tensors["weight"], folded.int_weight())
    x_int, x = random_images(model, 1000, 6, (1, 8, 8))
    with torch.no_grad():
        want = model(x).numpy().argmax(axis=1)
    got = golden.run(graph, x_int)["fc"].argmax(axis=1)
    assert np.mean(got == want) >= 0.97


def test_conv1d_network_is_exact_in_power_of_two_mode():
    torch.manual_seed(8)
    p2 = {"power_of_two": True}
    model = QuantSequential(OrderedDict(
        input=QuantInput(8, signed=True, scale=2.0 ** -6),
        conv1=QuantConv1d(1, 4, 7, padding=3, weight_bits=[2, 3, 4, 4], **p2),
        act1=Requantizer(4, **p2),
        conv2=QuantConv1d(4, 6, 5, stride=2, padding=2, weight_bits=3, **p2),
        act2=Requantizer(4, **p2),
        pool=nn.MaxPool1d(2),
        avg=nn.AvgPool1d(2),
        act3=Requantizer(4, **p2),
        head=QuantConv1d(6, 3, 1, shared_scale=True, **p2)))
    calibrate(model, random_images(model, 100, 9, (1, 64))[1])
    graph = export(model, (1, 64))
    assert graph.shapes()["head"] == (3, 8)
    assert len(graph.metadata["output_scale"]) == 3
    x_int, x = random_images(model, 300, 10, (1, 64))
    with torch.no_grad():
        got = model(x).double().numpy() / graph.metadata["output_scale"][0]
    assert np.array_equal(got, golden.run(graph, x_int)["head"])
    assert hardware_problems(graph) == []


def test_unsupported_modules_inside_residual_blocks_are_listed_by_path():
    body = nn.Sequential(nn.Conv2d(4, 4, 3), nn.ReLU())
    model = nn.Sequential(OrderedDict(
        input=QuantInput(), pool=nn.MaxPool2d(2, padding=1), gap=nn.AdaptiveAvgPool2d(2),
        bn=nn.BatchNorm2d(4, track_running_stats=False), block=Residual(body, add=Add()),
        add=QuantAdd(), conv3=nn.Conv3d(1, 1, 1), conv1=nn.Conv1d(1, 1, 1)))
    with pytest.raises(UnsupportedLayerError) as info:
        export(model, (4, 8, 8))
    assert info.value.problems == [
        "module 'pool' (position 1, MaxPool2d): MaxPool2d must have padding 0, dilation 1 and "
        "ceil_mode False, not padding 1, dilation 1, ceil_mode False",
        "module 'gap' (position 2, AdaptiveAvgPool2d): AdaptiveAvgPool2d must have output_size "
        "1 (global average pooling), not 2",
        "module 'bn' (position 3, BatchNorm2d): BatchNorm2d must track running statistics "
        "(track_running_stats=True) to be folded",
        "module 'block' (position 4, Residual): Residual must join its branches with a "
        "quant.nn.QuantAdd, not Add",
        "module 'block.body.0' (position 5, Conv2d): Conv2d is not supported; use "
        "quant.nn.QuantConv2d",
        "module 'block.body.1' (position 6, ReLU): ReLU is not supported; use "
        "quant.nn.Requantizer, which is the activation",
        "module 'add' (position 7, QuantAdd): QuantAdd is not supported; use it as the join of "
        "a quant.nn.Residual block",
        "module 'conv3' (position 8, Conv3d): Conv3d is not supported; 3-D layers are not "
        "supported",
        "module 'conv1' (position 9, Conv1d): Conv1d is not supported; use quant.nn.QuantConv1d",
    ]


def test_layer_order_problems_in_conv_networks():
    model = nn.Sequential(OrderedDict(
        input=QuantInput(), bn=nn.BatchNorm2d(1), conv=QuantConv2d(1, 4, 3),
        conv2=QuantConv2d(4, 4, 3), bn2=nn.BatchNorm2d(5), act=Requantizer(4)))
    with pytest.raises(GraphError) as info:
        export(model, (1, 9, 9))
    assert info.value.problems == [
        "layer 'bn' (BatchNorm2d) must follow a QuantLinear, QuantConv1d or QuantConv2d, whose "
        "weights it is folded into",
        "layer 'conv2' (QuantConv2d) reads a raw accumulator; put a Requantizer before it",
        "layer 'bn2': BatchNorm2d has 5 features but QuantConv2d has 4 filters",
    ]


@pytest.mark.parametrize("layers, shape, message", [
    ([QuantConv2d(3, 4, 3)], (1, 8, 8),
     r"^layer '1': weight has 3 input channels but its input has 1$"),
    ([QuantConv2d(1, 4, 3), Requantizer(4), QuantLinear(36, 2)], (1, 5, 5),
     r"^layer '3': dense needs a vector input, not shape \(4, 3, 3\); add a flatten layer "
     r"before it$"),
    ([QuantConv2d(1, 4, 5)], (1, 3, 3),
     r"^layer '1': kernel 5x5 is larger than its padded input 3x3$"),
    ([QuantConv1d(1, 4, 3)], (1, 4, 4),
     r"^layer '1': conv1d needs a \(channels, length\) input, not shape \(1, 4, 4\)$"),
    ([QuantConv2d(1, 4, 1), Requantizer(4), nn.MaxPool2d(3)], (1, 2, 2),
     r"^layer '3': kernel 3x3 is larger than its input 2x2$"),
    ([QuantConv2d(1, 4, 3, stride=2), Requantizer(4),
      Residual(QuantSequential(QuantConv2d(4, 4, 3, stride=2, padding=1)))], (1, 9, 9),
     r"^layer '3.add': inputs have shapes \(4, 2, 2\) and \(4, 4, 4\); an add needs equal "
     r"shapes$"),
])
def test_shape_problems_at_export_name_the_layer(layers, shape, message):
    model = nn.Sequential(QuantInput(), *layers)
    with pytest.raises(GraphError, match=message):
        export(model, shape)
