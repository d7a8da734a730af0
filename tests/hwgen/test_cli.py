"""The hwgen command: every bad input gets one clear line, exit code 1, and no output files."""

import json
import re

import numpy as np
import pytest

import quant
from hwgen.cli import main
from quant import graph as g

from .graphs import random_mlp


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.qgraph"
    quant.save(random_mlp(0), path)
    return path


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(code, err, pattern):
    assert code == 1
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines and lines[0].startswith("error: ")
    assert any(re.search(pattern, line) for line in lines), err


def test_inspect_lists_layers_and_precision(model, capsys):
    code, out, _ = run(["inspect", model], capsys)
    assert code == 0
    assert "fc1" in out and "dense" in out and "14 x 4-bit, 2 x 8-bit" in out
    assert "total: 416 MACs per frame" in out


def test_generate_writes_verilog_and_metadata(model, tmp_path, capsys):
    code, out, _ = run(["generate", model, "-o", tmp_path / "rtl"], capsys)
    assert code == 0
    assert "module top(" in (tmp_path / "rtl" / "top.v").read_text()
    assert str(tmp_path / "rtl" / "metadata.json") in out


def test_missing_model_file(tmp_path, capsys):
    code, _, err = run(["inspect", tmp_path / "absent.qgraph"], capsys)
    assert_clean_error(code, err, r"model file .*absent.qgraph does not exist")


def test_corrupt_model_file(tmp_path, capsys):
    path = tmp_path / "bad.qgraph"
    path.write_bytes(b"PK\x03\x04 definitely not a zip archive")
    code, _, err = run(["inspect", path], capsys)
    assert_clean_error(code, err, r"bad.qgraph is not a valid .qgraph file")


def test_unsupported_op(tmp_path, capsys):
    graph = random_mlp(0)
    graph.nodes.insert(1, quant.Node("rnn1", "lstm", ["fc1"], {}, {}))
    graph.nodes.insert(3, quant.Node("odd", "softmax", ["act1"], {}, {}))
    path = tmp_path / "unsupported.qgraph"
    g._write(graph, path)
    code, _, err = run(["generate", path, "-o", tmp_path / "rtl"], capsys)
    assert_clean_error(code, err, r"layer 'rnn1': operation 'lstm' is not supported")
    assert "layer 'odd': operation 'softmax' is not supported" in err
    assert not (tmp_path / "rtl").exists()


def test_weight_outside_its_filter_range(tmp_path, capsys):
    graph = random_mlp(0)
    graph["fc1"].tensors["weight"][1, 2] = 9  # filter 1 has 4-bit weights: at most ±7
    path = tmp_path / "wide.qgraph"
    g._write(graph, path)
    code, _, err = run(["generate", path, "-o", tmp_path / "rtl"], capsys)
    bits = graph["fc1"].tensors["weight_bits"][1]
    assert bits == 4
    assert_clean_error(code, err, r"layer 'fc1': weight\[1, 2\] = 9 is outside filter 1's "
                                  r"4-bit range ±7")
    assert not (tmp_path / "rtl").exists()


def test_pe_that_does_not_divide(model, tmp_path, capsys):
    code, _, err = run(["generate", model, "-o", tmp_path / "rtl", "--folding", "fc2=4x1"],
                       capsys)
    assert_clean_error(code, err, r"layer 'fc2': PE 4 does not divide out_features 6; "
                                  r"choose one of 1, 2, 3, 6")
    assert not (tmp_path / "rtl").exists()


def test_malformed_folding_option(model, tmp_path, capsys):
    code, _, err = run(["generate", model, "-o", tmp_path / "rtl", "--folding", "fc2:4"],
                       capsys)
    assert_clean_error(code, err, r"--folding must look like NAME=PExSIMD")


@pytest.mark.parametrize("bad,pattern", [
    (np.zeros((3, 21), np.int64), r"inputs must have shape \(20,\) or \(N, 20\), not \(3, 21\)"),
    (np.full((2, 20), 256), r"inputs must lie in the 8-bit unsigned range 0..255; input 0 has "
                            r"256"),
    (np.zeros((2, 20)), r"inputs must be integers, not float64"),
], ids=["shape", "range", "dtype"])
def test_bad_inputs_are_rejected_before_simulation(model, tmp_path, capsys, bad, pattern):
    inputs = tmp_path / "x.npy"
    np.save(inputs, bad)
    code, _, err = run(["simulate", model, "--inputs", inputs, "-o", tmp_path / "sim"], capsys)
    assert_clean_error(code, err, pattern)
    assert not (tmp_path / "sim" / "report.json").exists()
    assert not (tmp_path / "sim" / "outputs.npy").exists()


def test_missing_inputs_file(model, tmp_path, capsys):
    code, _, err = run(["simulate", model, "--inputs", tmp_path / "none.npy"], capsys)
    assert_clean_error(code, err, r"inputs file .*none.npy does not exist")


def test_packing_table_json(capsys):
    code, out, _ = run(["packing", "--device", "xcup", "--json"], capsys)
    assert code == 0
    rows = {(r["weight_bits"], r["act_bits"]): r for r in json.loads(out)["rows"]}
    assert len(rows) == 49
    assert rows[4, 4]["finn_lanes"] == 4 and rows[4, 5]["finn_lanes"] == 3
    assert all(r["lanes"] >= r["finn_lanes"] for r in rows.values())


def test_packing_rejects_widths_the_port_cannot_hold(capsys):
    code, _, err = run(["packing", "--device", "ecp5", "--weight-bits", "8", "--act-bits", "20"],
                       capsys)
    assert_clean_error(code, err, r"W8A20 needs a 20-bit unsigned activation in the 18-bit "
                                  r"signed B port of MULT18X18D")


def test_inspect_lists_every_layer_the_hardware_cannot_build(tmp_path, capsys):
    graph = quant.QGraph(quant.InputSpec((2, 8, 8), 5, False), [
        g.requantize("scale", np.ones(2, np.int64), 1, 4, inputs=["input"]),
        g.conv2d("conv1", np.ones((2, 2, 8, 8), np.int64), np.zeros(2, np.int64),
                 np.full(2, 4)),
        g.flatten("flat"),
        g.dense("fc", np.ones((3, 2), np.int64), np.zeros(3, np.int64), np.full(3, 4))])
    path = tmp_path / "unsupported.qgraph"
    quant.save(graph, path)
    code, out, _ = run(["inspect", path], capsys)
    assert code == 1
    assert "layer 'scale': requantize must follow a dense layer or a convolution" in out
    assert "layer 'conv1': kernel 8x8" in out


def test_boards_lists_pynq_z2_and_zcu102(capsys):
    code, out, _ = run(["boards"], capsys)
    assert code == 0
    assert "xc7z020clg400-1" in out and "xczu9eg-ffvb1156-2-e" in out and "ulx3s_85f" in out


def test_build_for_an_unknown_board_lists_the_known_ones(model, tmp_path, capsys):
    code, _, err = run(["build", model, "--board", "pynq_z3", "--out", tmp_path / "b"], capsys)
    assert_clean_error(code, err, r"unknown board 'pynq_z3'; known boards: .*pynq_z2.*zcu102")
