"""Brevitas models exported to QONNX and imported: exact with power-of-two scales and
Int32Bias (golden == qonnx's executor at every layer, RTL == golden in cocotb), measured with
Brevitas's default float scales (predictions on the 1,000 test digits)."""

import numpy as np
import pytest

for _package in ("onnx", "qonnx", "brevitas"):
    pytest.importorskip(_package, reason=f"the QONNX import tests need {_package}: pip install "
                                         f"'.[onnx]' torch==2.13.0")

import quant                                            # noqa: E402
from quant import brevitas_models as bm, datasets, qonnx  # noqa: E402

#: Training images per model: enough to make the weights and scales a trained network's.
TRAIN = 1000


@pytest.fixture(scope="module")
def digits():
    x_train, y_train, x_test, y_test = datasets.mnist()
    return x_train[:TRAIN], y_train[:TRAIN], x_test, y_test


def _exported(tmp_path_factory, digits, kind, scaling, w_bits, a_bits, epochs=1):
    x_train, y_train, x_test, _ = digits
    image = kind == "cnn"
    make = bm.cnn if image else bm.mlp
    model = make(w_bits=w_bits, a_bits=a_bits, scaling=scaling)
    bm.train(model, bm.as_model_inputs(x_train, image), y_train, epochs=epochs)
    path = tmp_path_factory.mktemp("qonnx") / f"{kind}_w{w_bits}a{a_bits}_{scaling}.onnx"
    bm.export(model, path, bm.as_model_inputs(x_test[:1], image))
    return model, path, image


EXACT = [("mlp", 4, 5), ("mlp", 8, 8), ("cnn", 4, 5), ("cnn", 8, 8)]


def _id(p):
    return f"{p[0]}_w{p[1]}a{p[2]}"


@pytest.fixture(scope="module", params=EXACT, ids=_id)
def exact(request, tmp_path_factory, digits):
    kind, w_bits, a_bits = request.param
    model, path, image = _exported(tmp_path_factory, digits, kind, "power_of_two", w_bits,
                                   a_bits)
    return model, qonnx.import_model(path), image


def test_power_of_two_models_equal_qonnx_at_every_layer(exact, digits):
    model, imported, image = exact
    x_test = digits[2][:200]
    x = qonnx.quantize_inputs(imported, bm.as_model_inputs(x_test, image))
    rows = qonnx.agreement(imported, x)
    table = "\n".join(qonnx.agreement_table(rows))
    traced = {r.layer for r in rows}
    # Every weight layer, requantizer, pool and join is compared, and the output.
    assert traced >= {n.name for n in imported.graph.nodes if n.op != "flatten"}, table
    for row in rows:
        assert row.equal == 1.0 and row.max_steps == 0.0, f"{row.layer}\n{table}"
    # Where the head's per-channel weight scales differ, it is rescaled onto one scale.
    head = [n for n in imported.graph.nodes if n.op == "dense"][-1]
    assert imported.graph.output.endswith("_rescale") == \
        (len(set(head.tensors["weight_scale"].tolist())) > 1)
    logits = bm.predict(model, bm.as_model_inputs(x_test, image))
    out = quant.run(imported.graph, x)[imported.graph.output]
    np.testing.assert_array_equal(out.argmax(1), logits.argmax(1))


def test_power_of_two_models_use_ties_to_even_and_the_ops_of_the_model(exact):
    _, imported, image = exact
    ops = [n.op for n in imported.graph.nodes]
    requantizers = [n for n in imported.graph.nodes if n.op == "requantize"]
    assert all(n.attrs.get("rounding") == "half_even" for n in requantizers)
    if image:
        assert {"conv2d", "maxpool2d", "add", "avgpool2d", "flatten", "dense"} <= set(ops)
    else:
        assert ops.count("dense") == 3


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_float_scales_agree_on_predictions(kind, tmp_path_factory, digits):
    """Brevitas's defaults (learned float scales, float biases as requantize offsets): the
    golden and qonnx's executor predict the same digit for at least 99.9% of the 1,000."""
    _, path, image = _exported(tmp_path_factory, digits, kind, "float", 4, 5)
    imported = qonnx.import_model(path)
    assert any("offset" in n.tensors for n in imported.graph.nodes)
    x_test, y_test = digits[2], digits[3]
    inputs = bm.as_model_inputs(x_test, image)
    x = qonnx.quantize_inputs(imported, inputs)
    ours = quant.run(imported.graph, x)[imported.graph.output]
    theirs = qonnx.run_model(imported, inputs)[imported.model.graph.output[0].name]
    same = float((ours.argmax(1) == theirs.argmax(1)).mean())
    rows = qonnx.agreement(imported, x)
    table = "\n".join(qonnx.agreement_table(rows))
    print(f"{kind}: predictions agree on {100 * same:.1f}% of {len(x)} digits; golden "
          f"accuracy {100 * (ours.argmax(1) == y_test).mean():.1f}%, qonnx "
          f"{100 * (theirs.argmax(1) == y_test).mean():.1f}%\n{table}")
    assert same >= 0.999, table
    requantizers = [r for r in rows if r.op == "requantize" and not r.layer.endswith("_rescale")]
    # Float ratios: the activations are at most one step apart, and nearly always equal.
    assert all(r.max_steps <= 1.0 + 1e-6 and r.equal >= 0.99 for r in requantizers), table


@pytest.mark.parametrize("exact", [
    pytest.param(p, marks=[pytest.mark.slow] if p[0] == "cnn" else [], id=_id(p))
    for p in EXACT], indirect=True)
def test_imported_models_run_exactly_in_rtl(exact, digits, tmp_path):
    """The Verilog of an imported model equals the golden (cocotb, Icarus), with
    back-pressure. The CNNs (a minute each) are in the slow tier."""
    import hwgen
    import sim
    _, imported, image = exact
    images = 4
    x = qonnx.quantize_inputs(imported, bm.as_model_inputs(digits[2][:images], image))
    meta = hwgen.generate(imported.graph, tmp_path / "rtl")
    result = sim.simulate(imported.graph, x, out_dir=tmp_path / "sim", design=meta,
                          backpressure=0.2, seed=3)
    assert result.mismatches == 0 and result.outputs_compared == images * 10
