"""quant.models and quant.train for convolutional networks: builders, float twins, a quick
smoke run of every recipe, and (slow) the accuracy targets."""

import numpy as np
import pytest
import torch
from torch import nn

from hwgen import hardware_problems
from quant import golden, graph as qgraph
from quant.export import export
from quant.models import mnist_cnn, peaks_cnn, resnet_mnist
from quant.nn import Add, QuantConv2d, Residual, fold_batchnorms
from quant.train import (auto_granularity, float_twin, load_float_weights, mnist_images,
                         random_shift, train_film_qnn, train_mnist_cnn, train_peaks,
                         train_resnet_mnist)


@pytest.fixture(scope="module")
def images():
    return mnist_images()


def test_builders_stay_within_their_mac_budgets():
    budgets = {"mnist_cnn": (mnist_cnn(), (1, 28, 28), 300_000),
               "resnet_mnist": (resnet_mnist(), (1, 28, 28), 500_000),
               "resnet_mnist_gap": (resnet_mnist(head="gap"), (1, 28, 28), 500_000),
               "peaks_cnn": (peaks_cnn(), (1, 256), 300_000)}
    for name, (model, shape, budget) in budgets.items():
        graph = export(fold_batchnorms(model.eval()), shape)
        macs = sum(graph.macs().values())
        assert macs <= budget, (name, macs)
        assert hardware_problems(graph) == [], name
    graph = export(fold_batchnorms(resnet_mnist().eval()), (1, 28, 28))
    assert sum(graph.macs().values()) == 423_360
    assert graph["block2.shortcut.conv"].attrs["stride"] == [2, 2]
    assert graph.shapes()["block2.add"] == (16, 7, 7)


def test_model_layouts():
    assert list(mnist_cnn()._modules) == ["input", "conv1", "act1", "pool1", "conv2", "act2",
                                          "pool2", "flat", "fc"]
    assert list(mnist_cnn(batchnorm=True)._modules)[:4] == ["input", "conv1", "bn1", "act1"]
    model = resnet_mnist()
    assert model.block1.shortcut is None
    assert [type(m) for m in model.block2.shortcut] == [QuantConv2d, nn.BatchNorm2d]
    assert list(resnet_mnist(head="gap")._modules)[-4:] == ["pool", "act3", "flat", "fc"]
    p = peaks_cnn(weight_bits=3)
    assert p.input.signed and p.head.shared_scale and p.head.out_channels == 3
    assert all(int(b) == 3 for m in p.modules() if hasattr(m, "weight_bits")
               for b in m.weight_bits)


@pytest.mark.parametrize("build, kwargs, message", [
    (mnist_cnn, {"channels": (8,)}, r"channels must be 2 positive integers, not \(8,\)"),
    (mnist_cnn, {"high_bits": 4}, r"high_bits must be greater than low_bits \(4\), not 4"),
    (resnet_mnist, {"head": "avg"}, r"head must be 'flatten' or 'gap', not 'avg'"),
    (peaks_cnn, {"channels": (8, 0, 8)}, r"channels must be 3 positive integers, not "
                                         r"\(8, 0, 8\)"),
])
def test_builder_errors(build, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(**kwargs)


def test_float_twin_of_a_resnet_keeps_names_weights_and_statistics():
    torch.manual_seed(0)
    model = resnet_mnist()
    twin = float_twin(model)
    assert isinstance(twin.block2, Residual) and isinstance(twin.block2.add, Add)
    assert isinstance(twin.block2.body.conv1, nn.Conv2d)
    assert twin.block2.body.conv1.stride == (2, 2)
    assert torch.equal(twin.block2.shortcut.conv.weight, model.block2.shortcut.conv.weight)
    with torch.no_grad():
        twin.block1.body.conv2.weight.mul_(2)
        twin.block1.body.bn2.running_mean.fill_(0.5)
    load_float_weights(model, twin)
    assert torch.equal(model.block1.body.conv2.weight, twin.block1.body.conv2.weight)
    assert torch.all(model.block1.body.bn2.running_mean == 0.5)
    x = torch.rand(2, 1, 28, 28)
    assert twin(x).shape == (2, 10)


def test_random_shift_moves_images_and_is_seeded():
    x = torch.zeros(64, 1, 6, 6)
    x[:, 0, 2, 3] = 1
    a = random_shift(1)(x, torch.Generator().manual_seed(0))
    b = random_shift(1)(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape
    rows, cols = np.nonzero(a[:, 0].sum(dim=0).numpy())
    assert set(rows) == {1, 2, 3} and set(cols) == {2, 3, 4}   # every shift of -1..1 occurs
    assert torch.equal(random_shift(0)(x, None), x)


def test_auto_granularity():
    assert [auto_granularity(n) for n in (8, 16, 39, 40, 64, 128)] == [1, 1, 1, 4, 4, 4]


def smoke_data(images, n_train=500, n_test=200):
    x_train, y_train, x_test, y_test = images
    return x_train[:n_train], y_train[:n_train], x_test[:n_test], y_test[:n_test]


@pytest.mark.parametrize("build", [mnist_cnn, resnet_mnist], ids=["cnn", "resnet"])
def test_recipe_smoke_run(build, images):
    """Three float epochs and one QAT epoch on 500 digits: the whole pipeline runs and the
    golden accuracy is the graph's."""
    torch.manual_seed(0)
    model = build(batchnorm=True)
    data = smoke_data(images)
    model, acc = train_film_qnn(model, data, (1, 28, 28), epochs=1, float_epochs=3,
                                progress=False)
    assert set(acc) == {"float", "fake_quant", "golden", "seconds"}
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    graph = export(model, (1, 28, 28))
    out = golden.run(graph, data[2])[graph.output]
    assert np.mean(out.argmax(axis=1) == data[3]) == acc["golden"]
    assert acc["golden"] > 0.4        # far above chance after 4 short epochs
    counts = {n.name: int((n.tensors["weight_bits"] == 8).sum()) for n in graph.nodes
              if n.op in qgraph.FILTER_OPS}
    assert all(c == 1 for c in counts.values()), counts   # 5% of <= 16 filters -> 1 each


def test_recipe_granularity_must_match_the_layers(images):
    with pytest.raises(ValueError, match=r"granularity must be None, an int or have one entry "
                                         r"per weight layer \(3\), not 2 entries"):
        train_film_qnn(mnist_cnn(), smoke_data(images), (1, 28, 28), epochs=0,
                       float_epochs=0, granularity=(1, 1), progress=False)


def test_peaks_smoke_run():
    model, results = train_peaks(epochs=1, float_epochs=4, train_size=600, test_size=100,
                                 baseline_signals=60, progress=False)
    for key in ("float", "fake_quant", "golden", "find_peaks", "centroid"):
        assert 0 <= results[key]["f1"] <= 1, key
    assert results["golden"]["f1"] > 0.2    # it has started to find peaks
    graph = export(model, (1, 256))
    assert graph.input.signed and graph.shapes()[graph.output] == (3, 128)


def test_peaks_at_two_bits_are_ternary_throughout():
    model, _ = train_peaks(epochs=1, float_epochs=1, train_size=64, test_size=16,
                           baselines=False, progress=False, weight_bits=2)
    graph = export(model, (1, 256))
    assert set(graph.weight_bits_histogram()) == {2}
    assert all(set(np.unique(node.tensors["weight"])) <= {-1, 0, 1}
               for node in graph.nodes if "weight" in node.tensors)
    assert hardware_problems(graph) == []


# -- the accuracy targets (a few minutes each) ------------------------------------------------

@pytest.mark.slow
def test_mnist_cnn_reaches_its_targets():
    model, acc = train_mnist_cnn(seed=0, progress=False)
    assert acc["golden"] >= 0.97, acc
    assert abs(acc["golden"] - acc["fake_quant"]) <= 0.003, acc
    assert acc["seconds"] < 240, acc
    graph = export(model, (1, 28, 28))
    assert sum(graph.macs().values()) < 300_000
    assert [n.attrs["out_bits"] for n in graph.nodes if n.op == "requantize"] == [5, 5]


@pytest.mark.slow
def test_resnet_mnist_reaches_its_targets():
    model, acc = train_resnet_mnist(seed=0, progress=False)
    assert acc["golden"] >= 0.97, acc
    assert abs(acc["golden"] - acc["fake_quant"]) <= 0.003, acc
    assert acc["seconds"] < 240, acc
    graph = export(model, (1, 28, 28))
    assert sum(n.op == "add" for n in graph.nodes) == 2


@pytest.mark.slow
def test_peak_detector_beats_the_classic_detectors():
    _, results = train_peaks(seed=0, progress=False)
    best_classic = max(results["find_peaks"]["f1"], results["centroid"]["f1"])
    assert results["golden"]["f1"] >= best_classic, results
    assert results["golden"]["localization_error"] <= 0.5, results
    assert results["seconds"] < 240, results
