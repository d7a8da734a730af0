"""QGraph: building, validation (every problem at once), save/load, and the golden executor."""

import json
import re

import numpy as np
import pytest

from quant import GraphError, UnsupportedLayerError, golden, graph as qgraph


def small_graph(seed=0):
    """input (8 uint4) -> dense 6 (mixed 2/4/8-bit) -> requantize 5-bit -> dense 3."""
    rng = np.random.default_rng(seed)
    bits1 = np.array([4, 4, 8, 2, 4, 8])
    w1 = np.stack([rng.integers(-(2 ** (b - 1) - 1), 2 ** (b - 1), size=8) for b in bits1])
    w2 = rng.integers(-7, 8, size=(3, 6))
    nodes = [
        qgraph.dense("fc1", w1, rng.integers(-50, 50, size=6), bits1,
                     weight_scale=rng.uniform(0.01, 0.1, size=6)),
        qgraph.requantize("act1", rng.integers(1 << 14, 1 << 16, size=6), 20, 5, scale=0.25),
        qgraph.dense("fc2", w2, rng.integers(-9, 9, size=3), np.full(3, 4)),
    ]
    return qgraph.QGraph(qgraph.InputSpec((8,), 4, False, 1 / 15), nodes, {"note": "test"})


def test_small_graph_is_valid_and_chains_inputs():
    g = small_graph().validate()
    assert [n.inputs for n in g.nodes] == [["input"], ["fc1"], ["act1"]]
    assert g.output == "fc2"
    assert g.shapes() == {"input": (8,), "fc1": (6,), "act1": (6,), "fc2": (3,)}
    assert g.weight_bits_histogram() == {2: 1, 4: 6, 8: 2}


def test_golden_matches_numerics_step_by_step():
    g = small_graph()
    x = np.random.default_rng(5).integers(0, 16, size=(10, 8))
    out = golden.run(g, x)
    t1, t2 = g["fc1"].tensors, g["fc2"].tensors
    acc1 = x @ t1["weight"].T + t1["bias"]
    a = g["act1"]
    act = np.clip((acc1 * a.tensors["multiplier"] + (1 << 19)) >> 20, 0, 31)
    assert np.array_equal(out["fc1"], acc1)
    assert np.array_equal(out["act1"], act)
    assert np.array_equal(out["fc2"], act @ t2["weight"].T + t2["bias"])


def test_ranges_bound_every_output():
    g = small_graph()
    ranges = g.ranges()
    x = np.random.default_rng(6).integers(0, 16, size=(300, 8))
    x[0], x[1] = 0, 15  # the input extremes
    for name, value in golden.run(g, x).items():
        lo, hi = ranges[name]
        assert lo <= value.min() and value.max() <= hi, name


def test_save_load_round_trip(tmp_path):
    g = small_graph()
    path = tmp_path / "net.qgraph"
    qgraph.save(g, path)
    h = qgraph.load(path)
    assert h.input == g.input
    assert h.metadata == g.metadata
    assert [(n.name, n.op, n.inputs, n.attrs) for n in h.nodes] == \
        [(n.name, n.op, n.inputs, n.attrs) for n in g.nodes]
    for a, b in zip(g.nodes, h.nodes):
        assert a.tensors.keys() == b.tensors.keys()
        for key in a.tensors:
            assert np.array_equal(a.tensors[key], b.tensors[key]), (a.name, key)
            assert a.tensors[key].dtype == b.tensors[key].dtype, (a.name, key)
    x = np.random.default_rng(7).integers(0, 16, size=(20, 8))
    assert np.array_equal(golden.run(g, x)["fc2"], golden.run(h, x)["fc2"])


def _with_offset(g, rounding="half_even"):
    a = g["act1"]
    g.nodes[1] = qgraph.requantize("act1", a.tensors["multiplier"], a.attrs["shift"],
                                   a.attrs["out_bits"], scale=a.attrs["scale"],
                                   offset=np.arange(-3, 3) << 18, rounding=rounding,
                                   inputs=a.inputs)
    return g


def test_requantize_offset_and_rounding_round_trip(tmp_path):
    g = _with_offset(small_graph())
    assert g["act1"].attrs["rounding"] == "half_even"
    qgraph.save(g, tmp_path / "net.qgraph")
    h = qgraph.load(tmp_path / "net.qgraph")
    assert h["act1"].attrs == g["act1"].attrs
    np.testing.assert_array_equal(h["act1"].tensors["offset"], g["act1"].tensors["offset"])
    x = np.random.default_rng(8).integers(0, 16, size=(50, 8))
    out = golden.run(h, x)
    a = g["act1"]
    want = np.round((out["fc1"] * a.tensors["multiplier"] + a.tensors["offset"]) / 2.0 ** 20)
    np.testing.assert_array_equal(out["act1"], np.clip(want, 0, 31))
    assert not np.array_equal(out["act1"], golden.run(small_graph(), x)["act1"])


def test_requantize_defaults_are_not_stored():
    """A graph without offsets or ties to even writes the same header as before they
    existed, so files of either kind load (absent means zeros and half up)."""
    node = small_graph()["act1"]
    assert "rounding" not in node.attrs and "offset" not in node.tensors
    assert qgraph.requantize_rounding(node) == "half_up"
    assert qgraph.requantize_offset(node).tolist() == [0] * 6


def test_requantize_offset_and_rounding_are_checked():
    g = _with_offset(small_graph(), rounding="nearest")
    g["act1"].tensors["offset"] = np.array([1, 2, 3])
    g.nodes[1].tensors["offset"] = np.array([1, 2, 3])
    with pytest.raises(GraphError) as info:
        g.validate()
    assert str(info.value).splitlines() == [
        "layer 'act1': offset must be an integer array with one entry per channel (6), not (3,)",
        "layer 'act1': rounding must be one of half_up, half_even, not 'nearest'"]
    g["act1"].tensors["offset"] = np.full(6, 1 << 48)
    g["act1"].attrs["rounding"] = "half_up"
    with pytest.raises(GraphError, match=r"^layer 'act1': offset must be in ±\(2\^48-1\), not "
                                         r"281474976710656..281474976710656$"):
        g.validate()


def test_validate_lists_every_problem_at_once():
    g = small_graph()
    g["fc1"].tensors["weight"][1, 2] = 9                     # outside ±7 for a 4-bit filter
    g["act1"].tensors["multiplier"][0] = 0                   # multipliers must be >= 1
    g["act1"].attrs["shift"] = 60                            # beyond MAX_SHIFT
    g["fc2"].tensors["bias"] = g["fc2"].tensors["bias"][:2]  # wrong shape
    with pytest.raises(GraphError) as info:
        g.validate()
    problems = info.value.problems
    assert len(problems) == 4, problems
    message = str(info.value)
    assert message.count("\n") == 3
    assert "layer 'fc1': weight[1, 2] = 9 is outside filter 1's 4-bit range ±7" in message
    assert "layer 'act1': multiplier must be in 1..2^24-1, not 0.." in message
    assert "layer 'act1': shift must be in 0..48, not 60" in message
    assert "layer 'fc2': bias must be an integer array of shape (3,)" in message


def test_weight_outside_its_filter_bit_range():
    g = small_graph()
    w = g["fc1"].tensors["weight"]
    w[3, 0] = 2          # filter 3 is 2-bit: ±1 only
    w[3, 5] = -2
    with pytest.raises(GraphError, match=r"layer 'fc1': weight\[3, 0\] = 2 is outside filter 3's "
                                         r"2-bit range ±1 \(2 weights out of range\)"):
        g.validate()


def test_weight_bits_outside_2_to_8():
    g = small_graph()
    g["fc2"].tensors["weight_bits"][1] = 9
    with pytest.raises(GraphError, match=r"layer 'fc2': weight_bits must be in 2..8; filter 1 "
                                         r"has 9"):
        g.validate()


def test_shape_mismatch_and_unknown_input_are_reported():
    g = small_graph()
    g.nodes[2].inputs = ["fc1", "act1"]
    g.nodes[1].inputs = ["nowhere"]
    with pytest.raises(GraphError) as info:
        g.validate()
    message = str(info.value)
    assert "layer 'act1': input 'nowhere' is not an earlier layer" in message
    assert "layer 'fc2': dense takes exactly one input, not 2" in message


def test_dense_in_features_mismatch():
    g = small_graph()
    g.input = qgraph.InputSpec((9,), 4, False)
    with pytest.raises(GraphError, match="layer 'fc1': weight has in_features 8 but its input "
                                         "has 9 features"):
        g.validate()


def test_unknown_ops_raise_unsupported_layer_error_listing_all():
    g = small_graph()
    g.nodes.insert(1, qgraph.Node("pool", "maxpool", ["fc1"]))
    g.nodes.append(qgraph.Node("soft", "softmax", ["fc2"]))
    with pytest.raises(UnsupportedLayerError) as info:
        g.validate()
    supported = ("dense, conv2d, conv1d, requantize, flatten, maxpool2d, maxpool1d, avgpool2d, "
                 "avgpool1d, global_avgpool, add")
    assert info.value.problems == [
        f"layer 'pool': operation 'maxpool' is not supported; supported operations are "
        f"{supported}",
        f"layer 'soft': operation 'softmax' is not supported; supported operations are "
        f"{supported}",
    ]
    assert isinstance(info.value, GraphError)


def test_save_refuses_an_invalid_graph(tmp_path):
    g = small_graph()
    g["fc2"].tensors["weight"][0, 0] = 100
    path = tmp_path / "bad.qgraph"
    with pytest.raises(GraphError, match="weight\\[0, 0\\] = 100"):
        qgraph.save(g, path)
    assert not path.exists()


def test_load_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.qgraph"
    path.write_bytes(b"this is not an npz archive")
    with pytest.raises(GraphError, match=r"corrupt.qgraph is not a valid .qgraph file"):
        qgraph.load(path)


def test_load_truncated_file(tmp_path):
    path = tmp_path / "net.qgraph"
    qgraph.save(small_graph(), path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(GraphError, match=r"net.qgraph is not a valid .qgraph file"):
        qgraph.load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model file .*missing.qgraph does not exist"):
        qgraph.load(tmp_path / "missing.qgraph")


def test_load_wrong_schema_version(tmp_path):
    path = tmp_path / "old.qgraph"
    header = {"schema_version": 99, "input": {}, "nodes": []}
    with open(path, "wb") as f:  # a file object keeps np.savez from appending ".npz"
        np.savez(f, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    with pytest.raises(GraphError, match=r"old.qgraph: schema_version must be 1, not 99"):
        qgraph.load(path)


def test_golden_rejects_out_of_range_inputs():
    g = small_graph()
    x = np.zeros((3, 8), dtype=np.int64)
    x[2, 5] = 16
    with pytest.raises(ValueError, match=r"inputs must lie in the 4-bit unsigned range 0..15; "
                                         r"input 2 has 16 at \(5,\)"):
        golden.run(g, x)


def _rewrite_header(tmp_path, edit, name="edited.qgraph"):
    """``small_graph`` saved, its JSON header changed by ``edit``, written back."""
    source = tmp_path / "source.qgraph"
    qgraph.save(small_graph(), source)
    with np.load(source) as archive:
        arrays = {key: archive[key] for key in archive.files}
    header = json.loads(bytes(arrays["header"]).decode())
    edit(header)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    path = tmp_path / name
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _set(*keys, value):
    def edit(header):
        target = header
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


@pytest.mark.parametrize("edit, message", [
    (_set("schema_version", value="1"), r"edited.qgraph: schema_version must be 1, not '1'$"),
    (_set("schema_version", value=True), r"schema_version must be 1, not True$"),
    (_set("input", "shape", value="784"),
     r"^input: shape must be a list of integers, not '784'$"),
    (_set("input", "bits", value="4"), r"^input: bits must be an integer in 1..16, not '4'$"),
    (_set("input", "signed", value="no"), r"^input: signed must be true or false, not 'no'$"),
    (_set("input", "scale", value=float("nan")),
     r"^input: scale must be a finite positive number, not nan$"),
    (_set("input", "scale", value=-0.5),
     r"^input: scale must be a finite positive number, not -0.5$"),
    (_set("input", value=[8, 4]),
     r"^.*edited.qgraph: header: input must be an object with shape, bits, signed and scale, "
     r"not \[8, 4\]$"),
    (_set("nodes", value={"fc1": {}}),
     r"^.*edited.qgraph: header: nodes must be a list, not \{'fc1': \{\}\}$"),
    (_set("nodes", 1, value="act1"),
     r"header: node 1 must be an object with name, op, inputs, attrs and tensors, not 'act1'$"),
    (_set("nodes", 1, "inputs", value="fc1"),
     r"^layer 'act1': inputs must be a list of layer names, not 'fc1'$"),
    (_set("nodes", 1, "attrs", value=[20, 5]),
     r"edited.qgraph: layer 'act1': attrs must be an object, not \[20, 5\]$"),
    (_set("nodes", 0, "tensors", value=["weight", "bias", "weight_bits", "scales"]),
     r"layer 'fc1': tensor scales is not in the archive \(no entry fc1/scales\)$"),
    (_set("nodes", 1, "attrs", "out_bits", value="5"),
     r"^layer 'act1': out_bits must be an integer in 1..32, not '5'$"),
    (_set("nodes", 1, "attrs", "shift", value=2.5),
     r"^layer 'act1': shift must be an integer in 0..48, not 2.5$"),
    (_set("nodes", 1, "attrs", "out_signed", value=0),
     r"^layer 'act1': out_signed must be true or false, not 0$"),
    (_set("nodes", 1, "attrs", "scale", value=float("inf")),
     r"^layer 'act1': scale must be a finite positive number, not inf$"),
    (_set("nodes", 1, "op", value=["requantize"]),
     r"layer 'act1': op must be a string, not \['requantize'\]$"),
    (_set("metadata", value=[1]), r"header: metadata must be an object, not \[1\]$"),
], ids=["version-string", "version-bool", "shape-string", "bits-string", "signed-string",
        "scale-nan", "scale-negative", "input-list", "nodes-dict", "node-string",
        "inputs-string", "attrs-list", "tensor-missing", "out-bits-string", "shift-float",
        "out-signed-int", "requantize-scale-inf", "op-list", "metadata-list"])
def test_load_names_each_header_problem(tmp_path, edit, message):
    """One line per problem, naming the field and its value as the file holds it."""
    path = _rewrite_header(tmp_path, edit)
    with pytest.raises(GraphError) as info:
        qgraph.load(path)
    assert len(info.value.problems) == 1, info.value.problems
    assert re.search(message, info.value.problems[0]), info.value.problems[0]


def test_load_lists_every_header_problem_at_once(tmp_path):
    def edit(header):
        header["input"] = "x"
        header["nodes"][0]["attrs"] = None
        header["metadata"] = 3
    with pytest.raises(GraphError) as info:
        qgraph.load(_rewrite_header(tmp_path, edit))
    assert [p.split(": ", 1)[1] for p in info.value.problems] == [
        "header: input must be an object with shape, bits, signed and scale, not 'x'",
        "layer 'fc1': attrs must be an object, not None",
        "header: metadata must be an object, not 3"]


@pytest.mark.parametrize("scale, shown", [(np.nan, "nan"), (0.0, "0.0"), (-1.0, "-1.0"),
                                          (np.inf, "inf")])
def test_weight_scale_must_be_finite_and_positive(scale, shown):
    g = small_graph()
    g["fc1"].tensors["weight_scale"][4] = scale
    with pytest.raises(GraphError, match=rf"^layer 'fc1': weight_scale must be finite and "
                                         rf"positive; filter 4 has {shown}$"):
        g.validate()


def test_weight_scale_needs_one_entry_per_filter():
    g = small_graph()
    g["fc2"].tensors["weight_scale"] = np.ones(2)
    with pytest.raises(GraphError, match=r"^layer 'fc2': weight_scale must be a number array "
                                         r"of shape \(3,\), not float64 \(2,\)$"):
        g.validate()


def test_non_string_op_is_unsupported_not_a_crash():
    g = small_graph()
    g.nodes[1].op = ["requantize"]
    with pytest.raises(UnsupportedLayerError, match=r"layer 'act1': operation \['requantize'\] "
                                                    r"is not supported"):
        g.validate()
