"""QONNX models made by hand (onnx.helper): the import of a small valid model, and one clear
line per unsupported or malformed construct, all of them at once."""

import re

import numpy as np
import pytest

for _package in ("onnx", "qonnx"):
    pytest.importorskip(_package, reason=f"the QONNX import tests need {_package}: pip install "
                                         f"'.[onnx]' torch==2.13.0")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import quant                                        # noqa: E402
from hwgen.app.cli import main                      # noqa: E402
from quant import GraphError, UnsupportedLayerError, qonnx  # noqa: E402

RNG = np.random.default_rng(5)
W1 = (RNG.integers(-7, 8, (6, 16)) * 0.125).astype(np.float32)
W2 = (RNG.integers(-7, 8, (4, 6)) * 0.25).astype(np.float32)


def _quant(name, x, scale, bits, signed, narrow=0, zero=0.0, rounding="ROUND", op="Quant"):
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), f"{name}_{k}")
             for k, v in (("scale", scale), ("zero", zero), ("bits", bits))]
    node = helper.make_node(op, [x, f"{name}_scale", f"{name}_zero", f"{name}_bits"], [name],
                            name=name, domain="qonnx.custom_op.general", signed=signed,
                            narrow=narrow, rounding_mode=rounding)
    return node, inits


def mlp(**change):
    """input (1, 16) -> Quant 8-bit -> Gemm 6 (4-bit weights) -> Relu -> Quant 4-bit ->
    Gemm 4 (4-bit weights); ``change`` replaces pieces by name."""
    c = {"in_scale": 2.0 ** -4, "w1_zero": 0.0, "w1_bits": 4, "w1_scale": 0.125,
         "act_signed": 0, "act_narrow": 0, "act_rounding": "ROUND", "in_dims": [1, 16],
         "extra": [], "w1_op": "Quant", "output": "out", "trans_a": 0} | change
    nodes, inits = [], []
    for node, more in (
            _quant("q_in", "x", c["in_scale"], 8, 0),
            _quant("q_w1", "w1", c["w1_scale"], c["w1_bits"], 1, 1, c["w1_zero"],
                   op=c["w1_op"]),
            _quant("q_act", "relu", 0.25, 4, c["act_signed"], c["act_narrow"],
                   rounding=c["act_rounding"]),
            _quant("q_w2", "w2", 0.25, 4, 1, 1)):
        nodes.append(node)
        inits += more
    inits += [numpy_helper.from_array(W1, "w1"), numpy_helper.from_array(W2, "w2")]
    nodes = [nodes[0], nodes[1],
             helper.make_node("Gemm", ["q_in", "q_w1"], ["fc1"], name="fc1", transB=1,
                              transA=c["trans_a"]),
             helper.make_node("Relu", ["fc1"], ["relu"], name="relu1"), nodes[2], nodes[3],
             helper.make_node("Gemm", ["q_act", "q_w2"], ["fc2"], name="fc2", transB=1)]
    nodes += c["extra"]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, c["in_dims"])],
        [helper.make_tensor_value_info(c["output"], TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def save(model, tmp_path, name="model.onnx"):
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def test_a_hand_made_model_imports_exactly(tmp_path):
    model = mlp(extra=[helper.make_node("Identity", ["fc2"], ["out"], name="id")])
    imported = qonnx.import_model(save(model, tmp_path))
    g = imported.graph
    assert [n.op for n in g.nodes] == ["dense", "requantize", "dense"]
    assert (g.input.shape, g.input.bits, g.input.signed, g.input.scale) == ((16,), 8, False,
                                                                           2.0 ** -4)
    # Nodes carry qonnx's cleaned names (the errors name the file's too); 2^-4 * 2^-3 / 2^-2.
    np.testing.assert_array_equal(g["Gemm_0"].tensors["weight"], W1 * 8)
    assert g["Quant_3"].attrs["shift"] == 5 and g["Quant_3"].attrs["rounding"] == "half_even"
    x = np.random.default_rng(1).integers(0, 256, (300, 16))
    rows = qonnx.agreement(imported, x)
    assert [r.layer for r in rows] == ["input", "Gemm_0", "Quant_3", "Gemm_1"]
    assert all(r.equal == 1.0 and r.max_steps == 0.0 for r in rows)


def _conv_model(conv_attrs=None, pool_attrs=None):
    """(1, 2, 6, 6) -> Quant -> Conv 3x3 (4-bit) -> Relu -> Quant -> MaxPool -> Flatten."""
    nodes, inits = [], []
    for node, more in (_quant("q_in", "x", 1.0, 4, 0), _quant("q_w", "w", 0.5, 4, 1, 1),
                       _quant("q_act", "relu", 2.0, 4, 0)):
        nodes.append(node)
        inits += more
    inits.append(numpy_helper.from_array(
        (RNG.integers(-7, 8, (3, 2, 3, 3)) * 0.5).astype(np.float32), "w"))
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]} | (conv_attrs or {})
    pool = {"kernel_shape": [2, 2], "strides": [2, 2]} | (pool_attrs or {})
    nodes = nodes[:2] + [helper.make_node("Conv", ["q_in", "q_w"], ["conv"], name="conv",
                                          **conv),
                         helper.make_node("Relu", ["conv"], ["relu"], name="relu"), nodes[2],
                         helper.make_node("MaxPool", ["q_act"], ["pool"], name="pool", **pool),
                         helper.make_node("Flatten", ["pool"], ["out"], name="flat")]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_a_hand_made_convolution_imports_exactly(tmp_path):
    imported = qonnx.import_model(save(_conv_model(), tmp_path))
    assert [n.op for n in imported.graph.nodes] == ["conv2d", "requantize", "maxpool2d",
                                                    "flatten"]
    x = np.random.default_rng(2).integers(0, 16, (50, 2, 6, 6))
    assert all(r.equal == 1.0 and r.max_steps == 0.0 for r in qonnx.agreement(imported, x))


def _softmax():
    return [helper.make_node("Softmax", ["fc2"], ["out"], name="softmax")]


def _custom():
    return [helper.make_node("FooOp", ["fc2"], ["out"], name="foo", domain="my.ops")]


def _set_input(model, dims):
    model.graph.input[0].type.tensor_type.shape.dim[1].Clear()
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = dims
    return model


def _missing(model):
    model.graph.node[2].input[1] = "w_nowhere"
    return model


def _two_inputs(model):
    model.graph.input.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3]))
    return model


def _unquantized(model):
    model.graph.node[2].input[0] = "x"
    return model


def _bipolar(model):
    node = model.graph.node[1]
    node.op_type = "BipolarQuant"
    del node.input[2:]
    del node.attribute[:]
    return model


def _trunc(model):
    model.graph.node[4].op_type = "Trunc"
    return model


CASES = [
    # (name, model, error line)
    ("unknown-op", lambda: mlp(extra=_custom()),
     r"node 'foo' \(FooOp\): op type FooOp \(domain 'my.ops'\) is neither an ONNX nor a "
     r"QONNX op; supported: Quant, Gemm"),
    ("unsupported-op", lambda: mlp(extra=_softmax()),
     r"node 'Softmax_0' \(Softmax; 'softmax' in the file\): op type Softmax is not "
     r"supported; supported: Quant, Gemm"),
    ("zero-point", lambda: mlp(w1_zero=1.0, output="fc2"),
     r"node 'Quant_1' \(Quant; 'q_w1' in the file\): zeropt must be 0, not 1; zero points "
     r"are not supported"),
    ("weight-bits-9", lambda: mlp(w1_bits=9, output="fc2"),
     r"node 'Gemm_0' \(Gemm; 'fc1' in the file\): weight bitwidth of filter 0 is 9; weights "
     r"of 2..8 bits are supported"),
    ("bipolar", lambda: _bipolar(mlp(output="fc2")),
     r"node 'BipolarQuant_0' \(BipolarQuant; 'q_w1' in the file\): bipolar \(±1\) "
     r"quantizers are not supported"),
    ("one-bit-signed", lambda: mlp(w1_bits=1, output="fc2"),
     r"node 'Quant_1' \(Quant; 'q_w1' in the file\): bitwidth 1 with signed=1 is a bipolar"),
    ("dynamic-shape", lambda: _set_input(mlp(output="fc2"), "features"),
     r"graph: tensor 'x' axis 1 has a dynamic size \(features\); every axis but the batch "
     r"must have a fixed size"),
    ("missing-initializer", lambda: _missing(mlp(output="fc2")),
     r"node 'fc1' \(Gemm\): input 'w_nowhere' is neither an initializer, nor the graph "
     r"input, nor the output of an earlier node"),
    ("two-inputs", lambda: _two_inputs(mlp(output="fc2")),
     r"graph: the model must have exactly one input, not 2 \(x, y\)"),
    ("unquantized-input", lambda: _unquantized(mlp(output="fc2")),
     r"node 'Gemm_0' \(Gemm; 'fc1' in the file\): its input must come through a Quant"),
    ("scale-negative", lambda: mlp(w1_scale=-0.125, output="fc2"),
     r"node 'Quant_1' \(Quant; 'q_w1' in the file\): scale must be finite and positive, not "
     r"-0.125"),
    ("narrow-signed-activation", lambda: _narrow_signed(),
     r"narrow=1 on a signed activation Quant \(range ±\(2\^\(b-1\)-1\)\) is not supported"),
    ("rounding-up", lambda: mlp(act_rounding="UP", output="fc2"),
     r"node 'Quant_3' \(Quant; 'q_act' in the file\): rounding_mode UP is not supported on "
     r"activations"),
    ("gemm-trans-a", lambda: mlp(trans_a=1, in_dims=[16, 1], output="fc2"),
     r"node 'Gemm_0' \(Gemm; 'fc1' in the file\): attribute transA must be 0, not 1"),
    ("trunc", lambda: _trunc(mlp(output="fc2")),
     r"\(Trunc; 'q_act' in the file\): Trunc is not supported"),
    ("dilations", lambda: _conv_model({"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
     r"node 'Conv_0' \(Conv; 'conv' in the file\): attribute dilations must be all 1, not "
     r"\[2, 2\]"),
    ("asymmetric-pads", lambda: _conv_model({"pads": [0, 0, 1, 1]}),
     r"node 'Conv_0' \(Conv; 'conv' in the file\): attribute pads must be symmetric "
     r"\(begin = end\), not \[0, 0, 1, 1\]"),
    ("ceil-mode", lambda: _conv_model(pool_attrs={"ceil_mode": 1, "kernel_shape": [4, 4],
                                                  "strides": [4, 4]}),
     r"node 'MaxPool_0' \(MaxPool; 'pool' in the file\): attribute ceil_mode must be 0, "
     r"not 1"),
    ("reshape-not-flat", lambda: _reshape(),
     r"node 'Reshape_0' \(Reshape; 'reshape' in the file\): only a reshape to \(batch, "
     r"features\) is supported, not \[1, 2, 2\]"),
]


def _narrow_signed():
    model = mlp(act_signed=1, act_narrow=1, output="fc2")
    node = model.graph.node[3]               # the Relu: the signed Quant reads fc1 directly
    model.graph.node.remove(node)
    model.graph.node[3].input[0] = "fc1"
    return model


def _reshape():
    model = mlp(extra=[helper.make_node("Reshape", ["fc2", "shape"], ["out"], name="reshape")])
    model.graph.initializer.append(numpy_helper.from_array(np.array([1, 2, 2], np.int64),
                                                           "shape"))
    return model


@pytest.mark.parametrize("name, make, message", CASES, ids=[c[0] for c in CASES])
def test_each_unsupported_construct_gets_one_clear_line(tmp_path, name, make, message):
    path = save(make(), tmp_path)
    with pytest.raises(UnsupportedLayerError) as info:
        qonnx.import_model(path)
    lines = str(info.value).splitlines()
    assert sum(bool(re.search(message, line)) for line in lines) == 1, lines
    assert all(re.match(r"(node '[^']+' \(|graph: )", line) for line in lines), lines


def test_a_truncated_file_is_not_an_onnx_model(tmp_path):
    data = mlp(output="fc2").SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[:len(data) // 3])
    with pytest.raises(GraphError, match=r"cut.onnx is not a valid ONNX model \("):
        qonnx.import_model(path)
    with pytest.raises(FileNotFoundError, match=r"model file .*none.onnx does not exist"):
        qonnx.import_model(tmp_path / "none.onnx")


def test_every_problem_is_listed_at_once(tmp_path):
    model = mlp(w1_zero=1.0, act_rounding="UP", extra=_softmax())
    with pytest.raises(UnsupportedLayerError) as info:
        qonnx.import_model(save(model, tmp_path))
    lines = str(info.value).splitlines()
    assert len(lines) == 3, lines
    assert "zeropt must be 0" in lines[0]
    assert "rounding_mode UP" in lines[1]
    assert "op type Softmax is not supported" in lines[2]


def test_the_command_prints_the_problems_without_a_traceback(tmp_path, capsys):
    path = save(mlp(w1_zero=1.0, extra=_softmax()), tmp_path)
    for command in (["inspect", path], ["generate", path, "-o", tmp_path / "rtl"],
                    ["import", path, "-o", tmp_path / "m.qgraph"]):
        assert main([str(a) for a in command]) == 1
        out, err = capsys.readouterr()
        assert err.startswith("error: node 'Quant_1'") and "Traceback" not in err
        assert len(err.splitlines()) == 2
    assert not (tmp_path / "rtl").exists() and not (tmp_path / "m.qgraph").exists()


def test_hwgen_import_writes_the_graph_and_prints_the_agreement(tmp_path, capsys):
    path = save(mlp(output="fc2"), tmp_path)
    x = (np.random.default_rng(3).integers(0, 256, (20, 16)) / 16.0).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out_path = tmp_path / "m.qgraph"
    assert main(["import", str(path), "-o", str(out_path), "--inputs",
                 str(tmp_path / "x.npy")]) == 0
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "agreement of the golden with qonnx's executor on 20 inputs:"
    assert lines[1].split() == ["layer", "op", "tensor", "outputs", "equal", "max", "steps"]
    assert [line.split()[0] for line in lines[2:6]] == ["input", "Gemm_0", "Quant_3", "Gemm_1"]
    assert all(line.split()[-2:] == ["100.000%", "0"] for line in lines[2:6])
    assert lines[-1] == str(out_path)
    graph = quant.load(out_path)
    assert graph.metadata["qonnx"]["input_shape"] == [16]
    assert main(["inspect", str(path)]) == 0
    assert "hardware: every layer is supported" in capsys.readouterr()[0]
