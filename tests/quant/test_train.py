"""quant.train and quant.models: the MNIST recipe end to end, and the training helpers."""

import numpy as np
import pytest
import torch
from torch import nn

from quant import golden
from quant.datasets import mnist
from quant.export import export
from quant.models import mnist_mlp
from quant.nn import QuantLinear, Requantizer
from quant.train import accuracy, float_twin, load_float_weights, train, train_mnist_mlp


@pytest.fixture(scope="module")
def data():
    return mnist()


@pytest.fixture(scope="module")
def trained():
    """The recommended recipe: granularity 4 for the hidden layers, 1 for the head."""
    model, acc = train_mnist_mlp(seed=0, granularity=4, progress=False)
    return model, acc, export(model, (784,))


def test_mnist_mlp_reaches_its_accuracy_targets(trained):
    _, acc, _ = trained
    assert acc["float"] >= 0.90, acc
    assert abs(acc["golden"] - acc["float"]) <= 0.01, acc
    assert abs(acc["golden"] - acc["fake_quant"]) <= 0.002, acc


def test_mnist_mlp_golden_accuracy_is_recomputed_from_the_graph(trained, data):
    _, acc, graph = trained
    _, _, x_test, y_test = data
    out = golden.run(graph, x_test)[graph.output]
    assert np.mean(out.argmax(axis=1) == y_test) == acc["golden"]


def test_mnist_mlp_precisions_follow_film_qnn(trained):
    model, _, graph = trained
    bits = {n.name: n.tensors["weight_bits"] for n in graph.nodes if n.op == "dense"}
    # 5% of 128 = 6.4 -> 8 (granularity 4); 5% of 64 = 3.2 -> 4; 5% of 10 = 0.5 -> 1.
    assert {name: int((b == 8).sum()) for name, b in bits.items()} == \
        {"fc1": 8, "fc2": 4, "fc3": 1}
    assert all(set(b.tolist()) == {4, 8} for b in bits.values())
    assert [n.attrs["out_bits"] for n in graph.nodes if n.op == "requantize"] == [5, 5]
    assert graph.input.bits == 8 and not graph.input.signed
    head_scale = model.fc3.weight_scale().detach()
    assert torch.all(head_scale == head_scale[0])  # argmax of raw accumulators is faithful


def test_mnist_mlp_golden_agrees_with_fake_quant_per_image(trained, data):
    model, _, graph = trained
    _, _, x_test, _ = data
    want = golden.run(graph, x_test)[graph.output].argmax(axis=1)
    with torch.no_grad():
        got = model(torch.as_tensor(x_test, dtype=torch.float32) * model.input.scale)
    assert np.mean(got.argmax(dim=1).numpy() == want) >= 0.998


def test_power_of_two_mnist_mlp_is_bit_exact(data):
    """Power-of-two scales everywhere: the fake-quant model and the golden agree exactly on
    every activation of every test digit."""
    model, acc = train_mnist_mlp(seed=1, epochs=3, float_epochs=5, power_of_two=True,
                                 progress=False)
    graph = export(model, (784,))
    _, _, x_test, _ = data
    want = golden.run(graph, x_test)
    x = torch.as_tensor(x_test, dtype=torch.float32) * model.input.scale
    with torch.no_grad():
        for index, name in enumerate(model._modules):
            if name == "input":
                continue
            got = model[:index + 1](x).double().numpy()
            scale = np.asarray(graph.metadata["output_scale"]) if name == graph.output else (
                float(model.get_submodule(name).output_scale()) if name.startswith("act")
                else None)
            if scale is not None:
                assert np.array_equal(got / scale, want[name]), name
    for node in graph.nodes:
        if node.op == "requantize":
            mult = node.tensors["multiplier"]
            assert ((mult & (mult - 1)) == 0).all(), node.name
    assert acc["golden"] == acc["fake_quant"]


def test_float_twin_has_the_same_shape_and_weights():
    torch.manual_seed(0)
    model = mnist_mlp(hidden=(16,))
    twin = float_twin(model)
    assert [type(m) for m in twin] == [nn.Identity, nn.Linear, nn.ReLU, nn.Linear]
    assert torch.equal(twin.fc1.weight, model.fc1.weight)
    with torch.no_grad():
        twin.fc2.weight.mul_(2)
    load_float_weights(model, twin)
    assert torch.equal(model.fc2.weight, twin.fc2.weight)
    # The weight scales were re-derived for the new weights.
    assert (np.abs(model.fc2.int_weight()).max() == 7)


def test_float_twin_rejects_unknown_modules():
    with pytest.raises(TypeError, match=r"module '1' \(Dropout\) has no float twin"):
        float_twin(nn.Sequential(QuantLinear(4, 4), nn.Dropout()))


def test_train_learns_and_is_seeded(data):
    x_train, y_train, x_test, y_test = data
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        model = mnist_mlp(hidden=(32,))
        losses = train(model, x_train[:1000], y_train[:1000], epochs=5, lr=3e-3,
                       progress=False)
        results.append((losses, accuracy(model, x_test, y_test)))
    assert results[0] == results[1]
    losses, acc = results[0]
    assert losses[-1] < losses[0] / 2 and acc > 0.7, (losses, acc)


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": -1}, r"epochs must be a non-negative integer, not -1"),
    ({"batch_size": 0}, r"batch_size must be a positive integer, not 0"),
    ({"lr": 0}, r"lr must be positive, not 0"),
])
def test_train_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train(mnist_mlp(hidden=()), np.zeros((4, 784), np.uint8), np.zeros(4), **kwargs)


def test_train_needs_matching_lengths():
    with pytest.raises(ValueError, match=r"x and y must have the same length, not 4 and 3"):
        train(mnist_mlp(hidden=()), np.zeros((4, 784), np.uint8), np.zeros(3), progress=False)


def test_mnist_mlp_layout_and_errors():
    model = mnist_mlp(hidden=(32, 16, 8), a_bits=3)
    assert list(model._modules) == ["input", "fc1", "act1", "fc2", "act2", "fc3", "act3", "fc4"]
    assert all(m.a_bits == 3 for m in model if isinstance(m, Requantizer))
    with pytest.raises(ValueError, match=r"hidden must be a sequence of positive integers, "
                                         r"not \(32, 0\)"):
        mnist_mlp(hidden=(32, 0))
    with pytest.raises(ValueError, match=r"high_bits must be greater than low_bits \(4\), not 4"):
        mnist_mlp(high_bits=4)


def test_train_mnist_mlp_granularity_must_match_the_layers():
    with pytest.raises(ValueError, match=r"granularity must be an int or have one entry per "
                                         r"QuantLinear \(3\), not 2 entries"):
        train_mnist_mlp(granularity=(4, 1), epochs=0, float_epochs=0, progress=False)
