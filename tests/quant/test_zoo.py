"""quant.zoo: ImageNet-shape graphs against torchvision's published sizes, their FILM-QNN
precisions and residual joins, and the golden model on them."""

import functools
import math

import numpy as np
import pytest

from hwgen import hardware_problems
from quant import golden, graph as qgraph, numerics, zoo

#: torchvision's weights tables (IMAGENET1K_V1): num_params, and GFLOPS (which count
#: multiply-accumulates) to two decimals.
PUBLISHED = {"resnet18": (11_689_512, 1.81), "resnet50": (25_557_032, 4.09),
             "mobilenet_v2": (3_504_872, 0.30)}

#: Convolutions, residual adds and the output shapes of a few layers.
STRUCTURE = {
    "resnet18": (20, 8, {"maxpool": (64, 56, 56), "layer2.0.downsample": (128, 28, 28),
                         "layer4.1.relu": (512, 7, 7), "fc": (1000,)}),
    "resnet50": (53, 16, {"maxpool": (64, 56, 56), "layer1.0.downsample": (256, 56, 56),
                          "layer3.0.conv2": (256, 14, 14), "layer4.2.relu": (2048, 7, 7),
                          "fc": (1000,)}),
    "mobilenet_v2": (52, 10, {"features.0": (32, 112, 112), "features.1.project": (16, 112, 112),
                              "features.2.depthwise": (96, 56, 56),
                              "features.17.requantize": (320, 7, 7),
                              "features.18": (1280, 7, 7), "classifier": (1000,)}),
}


@functools.cache
def build(name):
    """Each network built once for the whole module (tests do not modify them)."""
    return zoo.NETWORKS[name]()


@pytest.fixture(params=list(zoo.NETWORKS))
def network(request):
    return request.param, build(request.param)


def filter_nodes(graph):
    return [n for n in graph.nodes if n.op in qgraph.FILTER_OPS]


def test_graphs_are_valid_imagenet_shapes(network):
    name, g = network
    convs, adds, shapes = STRUCTURE[name]
    assert g.input == qgraph.InputSpec((3, 224, 224), 8, False, 1 / 255)
    assert g.metadata == {"network": name, "seed": 0, "weights": "random"}
    assert sum(n.op == "conv2d" for n in g.nodes) == convs
    assert sum(n.op == "add" for n in g.nodes) == adds
    known = g.validate().shapes()
    assert {k: known[k] for k in shapes} == shapes
    assert g.output == ("classifier" if name == "mobilenet_v2" else "fc")


def test_macs_match_the_published_count(network):
    name, g = network
    macs = zoo.totals(g)["macs"]
    assert round(macs / 1e9, 2) == PUBLISHED[name][1], f"{name}: {macs:,} MACs"


def test_params_match_the_published_count_with_batchnorm_folded(network):
    """torchvision counts a batch norm's weight and bias per channel and no convolution bias;
    folded, each convolution filter has one bias instead: one parameter less per filter."""
    name, g = network
    conv_filters = sum(n.tensors["weight"].shape[0] for n in g.nodes if n.op == "conv2d")
    assert zoo.totals(g)["params"] + conv_filters == PUBLISHED[name][0]


def test_totals_sum_the_layers(network):
    _, g = network
    t = zoo.totals(g)
    layers = filter_nodes(g)
    assert list(t["layers"]) == [n.name for n in layers]
    assert t["macs"] == sum(v["macs"] for v in t["layers"].values())
    assert t["weight_bits"] == sum(v["weight_bits"] for v in t["layers"].values())
    assert t["weight_bits"] == sum(int((n.tensors["weight"].reshape(len(n.tensors["bias"]), -1)
                                        .shape[1] * n.tensors["weight_bits"]).sum())
                                   for n in layers)
    assert t["params"] == t["weights"] + t["biases"]
    assert sum(t["filters_by_bits"].values()) == t["biases"]


def test_depthwise_and_dense_macs():
    t = zoo.totals(zoo.mobilenet_v2())["layers"]
    assert t["features.2.depthwise"]["macs"] == 96 * 9 * 56 * 56       # one channel per filter
    assert t["features.2.expand"]["macs"] == 96 * 16 * 112 * 112
    assert t["classifier"]["macs"] == 1000 * 1280


def test_filter_precisions_are_film_qnn(network):
    """About 5% of the filters of every layer are 8-bit, the rest 4-bit, and equal folds of
    consecutive filters (as many as the largest power of two dividing both counts) hold the
    same number of 8-bit filters."""
    name, g = network
    hist = g.weight_bits_histogram()
    assert set(hist) == {4, 8}
    assert 0.045 <= hist[8] / (hist[4] + hist[8]) <= 0.055, (name, hist)
    for n in filter_nodes(g):
        bits = n.tensors["weight_bits"]
        assert n.tensors["weight"].dtype == np.int8, n.name
        high, out = int((bits == 8).sum()), bits.size
        assert high == 1 or abs(high - 0.05 * out) <= 0.05 * out / 4, (n.name, high, out)
        folds = math.gcd(high, out) & -math.gcd(high, out)     # largest common power of two
        per_fold = (bits.reshape(folds, -1) == 8).sum(axis=1)
        assert (per_fold == high // folds).all(), (n.name, per_fold)
        if out == 2048:
            assert (high, folds) == (96, 32)


@pytest.mark.parametrize("out_channels, high", [(16, 1), (32, 2), (64, 3), (256, 12),
                                                (1000, 48), (1280, 64), (2048, 96)])
def test_filter_bits_counts(out_channels, high):
    bits = zoo.filter_bits(out_channels, np.random.default_rng(0))
    assert bits.dtype == np.int64 and bits.shape == (out_channels,)
    assert int((bits == 8).sum()) == high and int((bits == 4).sum()) == out_channels - high


def test_filter_bits_are_seeded():
    def positions(seed):
        return np.flatnonzero(zoo.filter_bits(512, np.random.default_rng(seed)) == 8)
    assert np.array_equal(positions(0), positions(0))
    assert not np.array_equal(positions(0), positions(1))


def test_builders_are_seeded():
    a, b, c = zoo.mobilenet_v2(), zoo.mobilenet_v2(seed=0), zoo.mobilenet_v2(seed=1)
    for x, y in zip(a.nodes, b.nodes):
        assert x.attrs == y.attrs and all(np.array_equal(x.tensors[k], y.tensors[k])
                                          for k in x.tensors), x.name
    assert not np.array_equal(a["features.0"].tensors["weight"],
                              c["features.0"].tensors["weight"])
    assert c.metadata["seed"] == 1


def test_residual_joins_and_activations(network):
    """Each add reads ``<block>.requantize_body`` and ``<block>.requantize_shortcut`` on one
    signed ADD_BITS grid; every other requantize is a 5-bit activation (unsigned for a ReLU,
    signed for MobileNet-V2's linear bottlenecks)."""
    name, g = network
    joins = set()
    for n in g.nodes:
        if n.op == "add":
            block = n.name.removesuffix(".add")
            assert n.inputs == [f"{block}.requantize_body", f"{block}.requantize_shortcut"]
            joins.update(n.inputs)
    for n in g.nodes:
        if n.op != "requantize":
            continue
        a = n.attrs
        if n.name in joins:
            assert (a["out_bits"], a["out_signed"]) == (zoo.ADD_BITS, True), n.name
        else:
            signed = name == "mobilenet_v2" and n.name.startswith("features.") \
                and n.name.endswith(".requantize")
            assert (a["out_bits"], a["out_signed"]) == (zoo.ACT_BITS, signed), n.name


def test_the_hardware_builds_every_zoo_network(network):
    name, g = network
    assert hardware_problems(g) == []
    if name != "mobilenet_v2":
        assert g["maxpool"].attrs == {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1]}


@pytest.mark.parametrize("name", ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow),
                                  "mobilenet_v2"])
def test_golden_activations_are_plausible(name):
    """On a random image no requantizer is stuck: ReLUs zero between 10% and 80% of their
    outputs, and fewer than 20% of any requantizer's outputs clamp at the top (the model of
    activation sizes in quant.zoo is rough, not calibrated)."""
    g = build(name)
    x = np.random.default_rng(1).integers(0, 256, size=(1, 3, 224, 224))
    out = golden.run(g, x)
    assert out[g.output].shape == (1, 1000) and out[g.output].std() > 0
    for n in g.nodes:
        if n.op != "requantize":
            continue
        _, hi = numerics.int_range(n.attrs["out_bits"], n.attrs["out_signed"])
        v = out[n.name]
        assert np.mean(v == hi) < 0.2 and v.std() > 1, (name, n.name)
        if "relu" in n.name:
            assert 0.1 <= np.mean(v == 0) <= 0.8, (name, n.name)


def test_save_load_round_trip_keeps_the_padded_pool(tmp_path):
    g = build("resnet18")
    qgraph.save(g, tmp_path / "resnet18.qgraph")
    h = qgraph.load(tmp_path / "resnet18.qgraph")
    assert [(n.name, n.attrs) for n in h.nodes] == [(n.name, n.attrs) for n in g.nodes]
    assert h["layer4.1.conv2"].tensors["weight"].dtype == np.int8
    assert zoo.totals(h) == zoo.totals(g)


@pytest.mark.parametrize("name, size, final", [("resnet18", 32, (512, 1, 1)),
                                               ("resnet50", 64, (2048, 2, 2)),
                                               ("mobilenet_v2", 48, (1280, 2, 2))])
def test_smaller_inputs_keep_the_layers_and_pool_the_real_final_map(name, size, final):
    """The same layers and weights on a smaller image; the head's requantizer is scaled for
    the final map the network really produces, so on a random image it is not stuck."""
    small, full = zoo.NETWORKS[name](input_size=size), build(name)
    assert small.input == qgraph.InputSpec((3, size, size), 8, False, 1 / 255)
    assert [n.name for n in small.nodes] == [n.name for n in full.nodes]
    for a, b in zip(small.nodes, full.nodes):
        if a.op in qgraph.FILTER_OPS:
            assert np.array_equal(a.tensors["weight"], b.tensors["weight"]), a.name
    shapes = small.validate().shapes()
    pooled = [n.inputs[0] for n in small.nodes if n.op == "global_avgpool"]
    assert [shapes[p] for p in pooled] == [final]
    # The pool sums final[1] * final[2] pixels: its multiplier (at the same shift) is the
    # full-size one times 49 / pixels, up to rounding.
    rq_small, rq_full = small["avgpool.requantize"], full["avgpool.requantize"]
    ratio = (rq_small.tensors["multiplier"] / 2.0 ** rq_small.attrs["shift"]) / \
        (rq_full.tensors["multiplier"] / 2.0 ** rq_full.attrs["shift"])
    assert np.allclose(ratio, 49 / (final[1] * final[2]), rtol=0.01)
    out = golden.run(small, np.random.default_rng(1).integers(0, 256, size=(1, 3, size, size)))
    v = out["avgpool.requantize"]
    hi = numerics.int_range(zoo.ACT_BITS, False)[1]
    assert np.mean(v == hi) < 0.2 and v.std() > 1, (name, np.mean(v == hi), v.std())


@pytest.mark.parametrize("size", [31, 0, 32.0, "32"])
def test_input_size_is_checked(size):
    with pytest.raises(ValueError, match=r"input_size must be an integer of at least 32 \(the "
                                         r"networks halve their maps five times\), not"):
        zoo.resnet18(input_size=size)
