"""QGraph convolutional ops: building, validation messages, shapes/ranges/MACs, the golden
executor, save/load, and the hardware support check."""

import numpy as np
import pytest

from quant import GraphError, golden, graph as qgraph, numerics


def rand_filters(rng, shape, bits):
    bits = np.asarray(bits)
    limit = 2 ** (bits - 1) - 1
    w = rng.integers(-127, 128, size=shape)
    return np.clip(w, -limit.reshape((-1,) + (1,) * (len(shape) - 1)),
                   limit.reshape((-1,) + (1,) * (len(shape) - 1)))


def conv_graph(seed=0):
    """(1, 12, 12) uint8 -> conv 3x3 (4 filters, mixed bits) -> requantize -> maxpool 2 ->
    residual block (conv, requantize, depthwise conv | identity via requantize) -> add ->
    requantize -> avgpool 2 -> requantize -> conv 1x1 stride 2 -> global avgpool -> requantize
    -> flatten -> dense 3."""
    rng = np.random.default_rng(seed)

    def requant(name, channels, shift, bits=4, signed=False, inputs=None):
        return qgraph.requantize(name, rng.integers(1 << 10, 1 << 12, size=channels), shift,
                                 bits, signed, inputs=inputs)

    bits1 = np.array([2, 4, 8, 4])
    nodes = [
        qgraph.conv2d("conv1", rand_filters(rng, (4, 1, 3, 3), bits1),
                      rng.integers(-300, 300, size=4), bits1, padding=1),
        requant("act1", 4, 18),
        qgraph.maxpool2d("pool1", 2),
        qgraph.conv2d("body1", rand_filters(rng, (4, 4, 3, 3), [4] * 4),
                      rng.integers(-50, 50, size=4), np.full(4, 4), padding=1),
        requant("body_act", 4, 16),
        qgraph.conv2d("body2", rand_filters(rng, (4, 1, 3, 3), [4] * 4),
                      rng.integers(-50, 50, size=4), np.full(4, 4), padding=1, groups=4),
        requant("rq_body", 4, 14, bits=8, signed=True),
        requant("rq_short", 4, 10, bits=8, signed=True, inputs=["pool1"]),
        qgraph.add("add1", ["rq_body", "rq_short"]),
        requant("act2", 4, 12),
        qgraph.avgpool2d("pool2", 2),
        requant("act3", 4, 13),
        qgraph.conv2d("proj", rand_filters(rng, (6, 4, 1, 1), [8] * 6),
                      rng.integers(-50, 50, size=6), np.full(6, 8), stride=2),
        qgraph.global_avgpool("gap"),
        requant("act4", 6, 14),
        qgraph.flatten("flat"),
        qgraph.dense("fc", rand_filters(rng, (3, 6), [4] * 3), rng.integers(-9, 9, size=3),
                     np.full(3, 4)),
    ]
    return qgraph.QGraph(qgraph.InputSpec((1, 12, 12), 8, False, 1 / 255), nodes)


def signal_graph(seed=0):
    """(2, 20) int8 -> conv1d k5 stride 2 -> requantize -> maxpool1d 2 -> avgpool1d 2."""
    rng = np.random.default_rng(seed)
    return qgraph.QGraph(qgraph.InputSpec((2, 20), 8, True), [
        qgraph.conv1d("conv", rand_filters(rng, (3, 2, 5), [3, 4, 2]),
                      rng.integers(-40, 40, size=3), np.array([3, 4, 2]), stride=2, padding=2),
        qgraph.requantize("act", np.array([300, 400, 500]), 12, 4),
        qgraph.maxpool1d("pool", 2),
        qgraph.avgpool1d("avg", 2, 1),
    ])


def test_conv_graph_is_valid_with_the_expected_shapes():
    g = conv_graph().validate()
    shapes = g.shapes()
    assert shapes["conv1"] == (4, 12, 12) and shapes["pool1"] == (4, 6, 6)
    assert shapes["add1"] == (4, 6, 6) and shapes["pool2"] == (4, 3, 3)
    assert shapes["proj"] == (6, 2, 2) and shapes["gap"] == (6,) and shapes["fc"] == (3,)
    assert g["conv1"].attrs == {"stride": [1, 1], "padding": [1, 1], "groups": 1}
    assert g["pool1"].attrs == {"kernel": [2, 2], "stride": [2, 2]}
    assert g.weight_bits_histogram() == {2: 1, 4: 13, 8: 7}
    s = signal_graph().validate().shapes()
    assert s == {"input": (2, 20), "conv": (3, 10), "act": (3, 10), "pool": (3, 5),
                 "avg": (3, 4)}


def test_macs_count_every_output_pixel():
    g = conv_graph()
    macs = g.macs()
    assert macs["conv1"] == 4 * 9 * 144
    assert macs["body1"] == 4 * 36 * 36
    assert macs["body2"] == 4 * 9 * 36           # depthwise: one channel per filter
    assert macs["proj"] == 6 * 4 * 4
    assert macs["fc"] == 18
    assert signal_graph().macs() == {"conv": 3 * 10 * 10}


def test_weight_bits_sum_weights_times_bits_per_filter():
    bits = conv_graph().weight_bits()
    assert list(bits) == ["conv1", "body1", "body2", "proj", "fc"]
    assert bits["conv1"] == 9 * (2 + 4 + 8 + 4)
    assert bits["body1"] == 4 * 36 * 4 and bits["body2"] == 4 * 9 * 4
    assert bits["proj"] == 6 * 4 * 8 and bits["fc"] == 3 * 6 * 4
    assert signal_graph().weight_bits() == {"conv": 10 * (3 + 4 + 2)}


def test_golden_follows_numerics_node_by_node():
    g = conv_graph()
    x = np.random.default_rng(1).integers(0, 256, size=(6, 1, 12, 12))
    out = golden.run(g, x)

    def rq(name, value):
        a = g[name].attrs
        return numerics.requantize(value, g[name].tensors["multiplier"], a["shift"],
                                   a["out_bits"], a["out_signed"], axis=1)

    t = {n.name: n.tensors for n in g.nodes}
    conv1 = numerics.conv(x, t["conv1"]["weight"], t["conv1"]["bias"], 1, 1)
    pool1 = numerics.max_pool(rq("act1", conv1), (2, 2), (2, 2))
    body = numerics.conv(rq("body_act", numerics.conv(pool1, t["body1"]["weight"],
                                                      t["body1"]["bias"], 1, 1)),
                         t["body2"]["weight"], t["body2"]["bias"], 1, 1, groups=4)
    add1 = rq("rq_body", body) + rq("rq_short", pool1)
    pool2 = numerics.sum_pool(rq("act2", add1), (2, 2), (2, 2))
    proj = numerics.conv(rq("act3", pool2), t["proj"]["weight"], t["proj"]["bias"], 2, 0)
    gap = proj.sum(axis=(2, 3))
    fc = rq("act4", gap) @ t["fc"]["weight"].T + t["fc"]["bias"]
    for name, want in (("conv1", conv1), ("pool1", pool1), ("body2", body), ("add1", add1),
                       ("pool2", pool2), ("proj", proj), ("gap", gap), ("fc", fc)):
        assert np.array_equal(out[name], want), name
    # flatten of a feature map is channel-major (C order), as torch.nn.Flatten
    flat = golden.run(qgraph.QGraph(g.input, [qgraph.flatten("f")]), x)["f"]
    assert np.array_equal(flat, x.reshape(6, -1))


def test_ranges_bound_every_output():
    for g, lo, hi, shape in ((conv_graph(), 0, 255, (1, 12, 12)),
                             (signal_graph(), -128, 127, (2, 20))):
        x = np.random.default_rng(2).integers(lo, hi + 1, size=(400,) + shape)
        x[0], x[1] = lo, hi
        ranges = g.ranges()
        for name, value in golden.run(g, x).items():
            r_lo, r_hi = ranges[name]
            assert r_lo <= value.min() and value.max() <= r_hi, name
    ranges = conv_graph().ranges()
    assert ranges["add1"] == (-256, 254)
    assert ranges["pool2"] == (0, 60)          # four 4-bit activations
    assert ranges["gap"][1] == 4 * conv_graph().ranges()["proj"][1]


def test_save_load_round_trip_keeps_conv_attributes(tmp_path):
    g = conv_graph()
    qgraph.save(g, tmp_path / "cnn.qgraph")
    h = qgraph.load(tmp_path / "cnn.qgraph")
    assert [(n.name, n.op, n.inputs, n.attrs) for n in h.nodes] == \
        [(n.name, n.op, n.inputs, n.attrs) for n in g.nodes]
    x = np.random.default_rng(3).integers(0, 256, size=(4, 1, 12, 12))
    assert np.array_equal(golden.run(g, x)["fc"], golden.run(h, x)["fc"])


def test_validate_lists_every_convolution_problem_at_once():
    """Problems downstream of a node whose shape cannot be known are still listed, as far as
    they do not depend on that shape."""
    g = conv_graph()
    g["conv1"].tensors["weight"][0, 0, 1, 1] = 3          # filter 0 is 2-bit: ±1
    g["body2"].attrs["groups"] = 2                         # neither 1 nor in_channels
    g["proj"].attrs["stride"] = [1]                        # one entry for two axes
    g["fc"].tensors["bias"] = np.zeros(5, dtype=np.int64)
    with pytest.raises(GraphError) as info:
        g.validate()
    assert info.value.problems == [
        "layer 'conv1': weight[0, 0, 1, 1] = 3 is outside filter 0's 2-bit range ±1 "
        "(1 weights out of range)",
        "layer 'body2': groups 2 is not supported; use 1 (a dense convolution) or in_channels 4 "
        "(depthwise)",
        "layer 'proj': stride must be a list of 2 positive integers (one per spatial axis), "
        "not [1]",
        "layer 'fc': bias must be an integer array of shape (3,), not int64 (5,)",
    ]
    assert str(info.value).count("\n") == 3


def test_a_small_input_breaks_a_later_pool():
    g = conv_graph()
    g.input = qgraph.InputSpec((1, 2, 2), 8, False)
    with pytest.raises(GraphError, match=r"^layer 'pool2': kernel 2x2 is larger than its input "
                                         r"1x1$"):
        g.validate()


def test_kernel_larger_than_padded_input():
    g = qgraph.QGraph(qgraph.InputSpec((1, 3, 3), 8, False), [
        qgraph.conv2d("conv1", np.ones((2, 1, 5, 5), np.int64), np.zeros(2, np.int64),
                      np.full(2, 4))])
    with pytest.raises(GraphError, match=r"^layer 'conv1': kernel 5x5 is larger than its padded "
                                         r"input 3x3$"):
        g.validate()
    g.nodes[0].attrs["padding"] = [1, 0]
    with pytest.raises(GraphError, match=r"kernel 5x5 is larger than its padded input 5x3"):
        g.validate()


def test_pool_kernel_larger_than_input():
    g = qgraph.QGraph(qgraph.InputSpec((2, 3, 1), 4, False), [qgraph.maxpool2d("pool", 2)])
    with pytest.raises(GraphError, match=r"^layer 'pool': kernel 2x2 is larger than its input "
                                         r"3x1$"):
        g.validate()


# -- max pool padding --------------------------------------------------------------------------

def padded_pool_graph(padding=1):
    """(2, 9, 9) int4 -> maxpool 3x3 stride 2 (padding) -> requantize: a ResNet stem pool on
    signed inputs, where padding with 0 would change the result."""
    return qgraph.QGraph(qgraph.InputSpec((2, 9, 9), 4, True), [
        qgraph.maxpool2d("pool", 3, 2, padding),
        qgraph.requantize("act", np.array([3, 5]), 1, 4, True),
    ])


def torch_max_pool2d(x, kernel, stride, padding):
    torch = pytest.importorskip("torch")
    return torch.nn.functional.max_pool2d(torch.as_tensor(x, dtype=torch.float64), kernel,
                                          stride, padding).numpy()


def test_maxpool_padding_attribute_is_stored_only_when_not_zero():
    assert qgraph.maxpool2d("p", 3, 2, 1).attrs == {"kernel": [3, 3], "stride": [2, 2],
                                                     "padding": [1, 1]}
    assert qgraph.maxpool2d("p", 3, 2, (1, 0)).attrs["padding"] == [1, 0]
    assert qgraph.maxpool1d("p", 3, 1, 1).attrs == {"kernel": [3], "stride": [1],
                                                     "padding": [1]}
    assert qgraph.maxpool2d("p", 3, 2, 0).attrs == {"kernel": [3, 3], "stride": [2, 2]}
    assert qgraph.maxpool2d("p", 3, 2, (0, 0)).attrs == qgraph.maxpool2d("p", 3, 2).attrs


def test_maxpool_padding_shapes_golden_and_ranges():
    g = padded_pool_graph().validate()
    assert g.shapes()["pool"] == (2, 5, 5)              # 9 -> 4 without padding
    assert padded_pool_graph(0).validate().shapes()["pool"] == (2, 4, 4)
    x = np.random.default_rng(7).integers(-8, 8, size=(50, 2, 9, 9))
    x[0] = -8
    out = golden.run(g, x)
    assert np.array_equal(out["pool"], torch_max_pool2d(x, 3, 2, 1))
    assert (out["pool"][0] == -8).all()                 # padding never wins
    lo, hi = g.ranges()["pool"]
    assert (lo, hi) == (-8, 7) and lo <= out["pool"].min() and out["pool"].max() <= hi


def test_maxpool_padding_save_load_round_trip(tmp_path):
    for padding in (0, 1, (1, 0)):
        g = padded_pool_graph(padding)
        qgraph.save(g, tmp_path / "pool.qgraph")
        h = qgraph.load(tmp_path / "pool.qgraph")
        assert h["pool"].attrs == g["pool"].attrs, padding
        assert ("padding" in h["pool"].attrs) == (padding != 0)
        x = np.random.default_rng(8).integers(-8, 8, size=(4, 2, 9, 9))
        assert np.array_equal(golden.run(g, x)["act"], golden.run(h, x)["act"])


@pytest.mark.parametrize("node, message", [
    (qgraph.maxpool2d("p", 3, 2, 2),
     r"^layer 'p': padding must be at most kernel // 2 = 1x1 for kernel 3x3 \(as PyTorch\), "
     r"not 2x2$"),
    (qgraph.maxpool2d("p", (2, 5), 1, (1, 3)),
     r"^layer 'p': padding must be at most kernel // 2 = 1x2 for kernel 2x5 \(as PyTorch\), "
     r"not 1x3$"),
    (qgraph.maxpool2d("p", 3, 2, -1),
     r"^layer 'p': padding must be a list of 2 non-negative integers \(one per spatial "
     r"axis\), not \[-1, -1\]$"),
    (qgraph.maxpool2d("p", 3, 2, (1,)),
     r"^layer 'p': padding must be a list of 2 non-negative integers"),
    (qgraph.Node("p", "avgpool2d", None, {"kernel": [3, 3], "stride": [1, 1],
                                           "padding": [1, 1]}),
     r"^layer 'p': avgpool2d takes no padding, not 1x1$"),
])
def test_maxpool_padding_problems(node, message):
    g = qgraph.QGraph(qgraph.InputSpec((1, 9, 9), 8, False), [node])
    with pytest.raises(GraphError, match=message):
        g.validate()


def test_pool_kernel_larger_than_padded_input():
    g = qgraph.QGraph(qgraph.InputSpec((1, 1, 6), 8, False), [qgraph.maxpool2d("p", 4, 1, 1)])
    with pytest.raises(GraphError, match=r"^layer 'p': kernel 4x4 is larger than its padded "
                                         r"input 3x8$"):
        g.validate()


def test_add_needs_equal_shapes_and_two_inputs():
    rng = np.random.default_rng(4)
    spec = qgraph.InputSpec((8, 14, 14), 4, False)
    down = qgraph.conv2d("down", rand_filters(rng, (16, 8, 1, 1), [4] * 16),
                         np.zeros(16, np.int64), np.full(16, 4), stride=2, inputs=["input"])
    g = qgraph.QGraph(spec, [down, qgraph.add("add1", ["input", "down"]),
                             qgraph.add("add2", ["input"])])
    with pytest.raises(GraphError) as info:
        g.validate()
    assert info.value.problems == [
        "layer 'add1': inputs have shapes (8, 14, 14) and (16, 7, 7); an add needs equal "
        "shapes",
        "layer 'add2': add takes exactly two inputs, not 1",
    ]


@pytest.mark.parametrize("node, message", [
    (qgraph.conv2d("c", np.ones((2, 1, 3, 3), np.int64), np.zeros(2, np.int64),
                   np.full(2, 4)),
     r"layer 'c': conv2d needs a \(channels, height, width\) input, not shape \(1, 16\)"),
    (qgraph.maxpool2d("p", 2),
     r"layer 'p': maxpool2d needs a \(channels, height, width\) input, not shape \(1, 16\)"),
    (qgraph.conv1d("c", np.ones((2, 3, 3), np.int64), np.zeros(2, np.int64), np.full(2, 4)),
     r"layer 'c': weight has 3 input channels but its input has 1"),
    (qgraph.conv1d("c", np.ones((2, 1, 3, 3), np.int64), np.zeros(2, np.int64),
                   np.full(2, 4)),
     r"layer 'c': weight must be a 3-D integer array \(out_channels, in_channels // groups, "
     r"k\), not int64 of shape \(2, 1, 3, 3\)"),
    (qgraph.conv1d("c", np.ones((2, 1, 3), np.int64), np.zeros(2, np.int64), np.full(2, 4),
                   stride=0),
     r"layer 'c': stride must be a list of 1 positive integers \(one per spatial axis\), "
     r"not \[0\]"),
    (qgraph.conv1d("c", np.ones((2, 1, 3), np.int64), np.zeros(2, np.int64), np.full(2, 4),
                   padding=-1),
     r"layer 'c': padding must be a list of 1 non-negative integers"),
    (qgraph.conv1d("c", np.ones((2, 1, 3), np.int64), np.zeros(2, np.int64), np.full(2, 4),
                   groups=0),
     r"layer 'c': groups must be a positive integer, not 0"),
    (qgraph.global_avgpool("g"), None),
    (qgraph.maxpool1d("p", 4, 0),
     r"layer 'p': stride must be a list of 1 positive integers \(one per spatial axis\), "
     r"not \[0\]"),
    (qgraph.Node("p", "maxpool1d", None, {"kernel": 2}),
     r"layer 'p': kernel must be a list of 1 positive integers \(one per spatial axis\), "
     r"not 2\nlayer 'p': stride must be a list of 1 positive integers \(one per spatial "
     r"axis\), not None"),
])
def test_node_problems_name_the_layer(node, message):
    g = qgraph.QGraph(qgraph.InputSpec((1, 16), 8, False), [node])
    if message is None:
        assert g.validate().shapes()[node.name] == (1,)
        return
    with pytest.raises(GraphError, match=message):
        g.validate()


def test_depthwise_rules():
    rng = np.random.default_rng(5)
    spec = qgraph.InputSpec((4, 6, 6), 4, False)
    ok = qgraph.conv2d("dw", rand_filters(rng, (8, 1, 3, 3), [4] * 8), np.zeros(8, np.int64),
                       np.full(8, 4), groups=4)
    assert qgraph.QGraph(spec, [ok]).validate().shapes()["dw"] == (8, 4, 4)
    bad = qgraph.conv2d("dw", rand_filters(rng, (6, 2, 3, 3), [4] * 6), np.zeros(6, np.int64),
                        np.full(6, 4), groups=4)
    with pytest.raises(GraphError) as info:
        qgraph.QGraph(spec, [bad]).validate()
    assert info.value.problems == [
        "layer 'dw': a depthwise weight (groups 4) needs 1 input channel per filter, not 2",
        "layer 'dw': depthwise out_channels 6 must be a multiple of in_channels 4",
    ]


def test_requantize_needs_one_multiplier_per_channel_of_a_feature_map():
    g = qgraph.QGraph(qgraph.InputSpec((3, 4, 4), 8, False),
                      [qgraph.requantize("act", np.ones(4, np.int64), 2, 4)])
    with pytest.raises(GraphError, match=r"layer 'act': multiplier must be an integer array "
                                         r"with one entry per channel \(3\), not \(4,\)"):
        g.validate()


def test_downstream_of_a_broken_node_is_not_checked_twice():
    g = qgraph.QGraph(qgraph.InputSpec((1, 3, 3), 8, False), [
        qgraph.conv2d("conv1", np.ones((2, 1, 5, 5), np.int64), np.zeros(2, np.int64),
                      np.full(2, 4)),
        qgraph.requantize("act", np.ones(2, np.int64), 2, 4),
        qgraph.maxpool2d("pool", 2)])
    with pytest.raises(GraphError) as info:
        g.validate()
    assert len(info.value.problems) == 1
