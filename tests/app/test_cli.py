"""The hwgen command: what each command prints and writes; model errors get one clear line,
exit code 1, and no output files (more bad input in test_cli_errors.py)."""

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import boards
import hwgen
import quant
from hwgen.app.cli import main
from hwgen.synth import SynthesisError
from quant import graph as g
from tests.hwgen.graphs import random_inputs, random_mlp
from tests.hwgen.test_conv_accelerator import cnn2d, signal_cnn

ROOT = Path(__file__).resolve().parents[2]
# The module (the package's `boards.build` is the function of the same name).
BUILD = importlib.import_module("boards.build")


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


def test_generate_an_engine_writes_its_image_and_program(model, tmp_path, capsys):
    out_dir = tmp_path / "engine"
    code, out, err = run(["generate", model, "-o", out_dir, "--arch", "engine", "--engine",
                          "tm=4,tn=4,lane_bits=4/4/4/8,addr_bits=20,data_bits=32"], capsys)
    assert code == 0, err
    meta = json.loads((out_dir / "metadata.json").read_text())
    assert meta["architecture"] == "engine"
    assert meta["engine"]["lane_bits"] == [4, 4, 4, 8] and meta["engine"]["data_bits"] == 32
    assert [layer["name"] for layer in meta["layers"]] == ["fc1", "fc2"]
    assert (out_dir / "program.bin").stat().st_size == meta["image_bytes"]
    assert "module top(" in (out_dir / "top.v").read_text()
    assert str(out_dir / "program.bin") in out and "2 engine layers" in err


def test_every_layer_beyond_the_engine_is_listed(model, tmp_path, capsys):
    code, _, err = run(["generate", model, "-o", tmp_path / "r", "--arch", "engine",
                        "--engine", "tm=4,tn=4,input_words=2"], capsys)
    assert_clean_error(code, err, "")
    assert err.splitlines() == [
        "error: layer 'fc1': one output row needs 5 input words (1 x 1 pixels of 5 channel "
        "groups); the engine's input buffer holds 2",
        "layer 'fc2': one output row needs 4 input words (1 x 1 pixels of 4 channel groups); "
        "the engine's input buffer holds 2"]
    assert not (tmp_path / "r").exists()


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


@pytest.mark.parametrize("options, shards", [([], 1), (["--workers", "2", "--shards", "3"], 3)],
                         ids=["one-process", "two-workers"])
def test_simulate_writes_outputs_in_input_order(model, tmp_path, capsys, options, shards):
    graph = quant.load(model)
    x = random_inputs(graph, 9, seed=3)
    np.save(tmp_path / "x.npy", x)
    code, out, _ = run(["simulate", model, "--inputs", tmp_path / "x.npy", "-o",
                        tmp_path / "sim", *options], capsys)
    assert code == 0
    report = json.loads((tmp_path / "sim" / "report.json").read_text())
    assert json.loads(out) == report
    assert report["images"] == 9 and report["mismatches"] == 0
    assert report["shards"] == shards and report["retried_shards"] == 0
    outputs = np.load(tmp_path / "sim" / "outputs.npy")
    np.testing.assert_array_equal(outputs, quant.run(graph, x)[graph.output])


@pytest.mark.parametrize("memory", [["--latency", "3"],
                                    ["--latency", "2..9", "--backpressure", "0.3"]],
                         ids=["fixed", "random"])
def test_simulate_an_engine_checks_every_tensor_and_reports_cycles(model, tmp_path, capsys,
                                                                   memory):
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.random.default_rng(0).integers(0, 256, (3, 20)))
    out_dir = tmp_path / "sim"
    code, out, err = run(["simulate", model, "--inputs", inputs, "-o", out_dir, "--arch",
                          "engine", "--engine", "tm=4,tn=4,lane_bits=4/4/4/8,addr_bits=20",
                          *memory], capsys)
    assert code == 0, err
    report = json.loads((out_dir / "report.json").read_text())
    assert json.loads(out) == report
    assert report["architecture"] == "engine"
    assert (report["dram_latency"], report["model_latency"]) == \
        (("3", 3) if memory[1] == "3" else ("2..9", 2))
    assert report["rtl_vs_golden"] == {"images": 3, "mismatches": 0,
                                       "values_compared": 3 * (16 + 6), "tensors": 2,
                                       "tensor_mismatches": {}}
    assert [layer["name"] for layer in report["layers"]] == ["fc1", "fc2"]
    for layer in report["layers"] + [{"cycles": report["cycles_per_frame"]}]:
        model_, measured = layer["cycles"]["model"], layer["cycles"]["measured"]
        if memory[1] == "3":
            assert measured == model_, layer           # the memory the model assumes
        else:
            assert measured >= model_, layer           # pauses and longer waits: a bound
    graph = quant.load(model)
    golden = quant.run(graph, np.load(inputs))[graph.output]
    assert np.array_equal(np.load(out_dir / "outputs.npy"), golden)


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
    # Weights are stored at their own width; a pre-packed W4A5 word (22 bits for 3 lanes)
    # would hold 7.33 bits per weight.
    assert all(r["stored_bits_per_weight"] == r["weight_bits"] < r["prepacked_bits_per_weight"]
               for r in rows.values())
    assert rows[4, 5]["prepacked_bits_per_weight"] == 7.33


def test_packing_rejects_widths_the_port_cannot_hold(capsys):
    code, _, err = run(["packing", "--device", "ecp5", "--weight-bits", "8", "--act-bits", "20"],
                       capsys)
    assert_clean_error(code, err, r"W8A20 needs a 20-bit unsigned activation in the 18-bit "
                                  r"signed B port of MULT18X18D")


def test_inspect_lists_every_layer_the_hardware_cannot_build(tmp_path, capsys):
    graph = quant.QGraph(quant.InputSpec((2, 8, 8), 5, False), [
        g.avgpool2d("gappy", 1, 2, inputs=["input"]),
        g.requantize("scale", np.ones(2, np.int64), 1, 4, inputs=["input"]),
        g.conv2d("conv1", np.ones((2, 2, 8, 8), np.int64), np.zeros(2, np.int64),
                 np.full(2, 4)),
        g.flatten("flat"),
        g.dense("fc", np.ones((3, 2), np.int64), np.zeros(3, np.int64), np.full(3, 4))])
    path = tmp_path / "unsupported.qgraph"
    quant.save(graph, path)
    code, out, _ = run(["inspect", path], capsys)
    assert code == 1
    assert "layer 'gappy': pool stride 2x2 with kernel 1x1 is not supported" in out
    assert "layer 'conv1': kernel 8x8" in out


def test_boards_lists_pynq_z2_and_zcu102(capsys):
    code, out, _ = run(["boards"], capsys)
    assert code == 0
    assert "xc7z020clg400-1" in out and "xczu9eg-ffvb1156-2-e" in out and "ulx3s_85f" in out


def test_build_for_an_unknown_board_lists_the_known_ones(model, tmp_path, capsys):
    code, _, err = run(["build", model, "--board", "pynq_z3", "--out", tmp_path / "b"], capsys)
    assert_clean_error(code, err, r"unknown board 'pynq_z3'; known boards: .*pynq_z2.*zcu102")


def test_inspect_aligns_its_columns_and_shows_convolution_weight_bits(tmp_path, capsys):
    path = tmp_path / "cnn.qgraph"
    quant.save(cnn2d(), path)
    code, out, _ = run(["inspect", path], capsys)
    assert code == 0
    lines = out.splitlines()
    header, rows = lines[1], lines[2:11]
    assert [row.split()[0] for row in rows] == [n.name for n in cnn2d().nodes]
    for name in ("op", "output", "range", "weight bits"):
        start = header.index(name)
        filled = [row for row in rows if len(row) > start]   # weight bits: filter layers
        assert len(filled) == (3 if name == "weight bits" else len(rows))
        assert all(row[start - 1] == " " and row[start] != " " for row in filled), name
    end = header.index("MACs") + len("MACs")
    assert all(row[end - 1].isdigit() and row[end] == " " for row in rows)
    conv1 = next(row for row in rows if row.startswith("conv1 "))
    assert "global_avgpool" in out and conv1.endswith("2 x 4-bit, 2 x 8-bit")
    assert lines[-2] == "total: 4,554 MACs per frame; 7 filters of 4 bits, 6 filters of 8 bits"


def test_boards_lists_the_estimators_device_of_each_board(capsys):
    code, out, _ = run(["boards"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "PART", "DEVICE", "CLOCK", "TOOLCHAIN", "FAMILY", "TOPS"]
    for board in boards.list_boards():
        assert any(line.split()[:3] == [board.name, board.part, board.device.name]
                   for line in lines), board.name


def test_every_board_gets_an_estimate():
    """Each board of `hwgen boards` names a part the estimator prices."""
    graph = random_mlp(0)
    for board in boards.list_boards():
        design = hwgen.compile(graph, device=board.name, clock_mhz=50)
        assert design.device is board.device and design.fps > 0, board.name


def test_estimate_takes_a_board_name(model, tmp_path, capsys):
    code, out, _ = run(["estimate", model, "--device", "arty_a7_35", "--out", tmp_path / "e"],
                       capsys)
    assert code == 0
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert report["device"]["name"] == "xc7a35t" and report["device"]["lut"] == 20_800
    assert "share of xc7a35t" in out


def test_estimate_searches_an_engine(model, tmp_path, capsys):
    code, out, _ = run(["estimate", model, "--arch", "engine", "--bandwidth-gbs", "2",
                        "--out", tmp_path / "e"], capsys)
    assert code == 0
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert report["architecture"] == "engine" and report["bandwidth_gbs"] == 2.0
    assert report["engine"]["family"] == "xc7" and report["fps"] > 0
    assert all(share <= 0.8 for share in report["utilization"].values())
    assert report["cycles_per_frame"] >= report["model_cycles_per_frame"]
    assert [row["name"] for row in report["layers"]] == ["fc1", "fc2"]
    assert f"{report['engine']['tm']} x {report['engine']['tm']} MAC array" in out
    assert "of 2 GB/s" in out and (tmp_path / "e" / "estimate.png").stat().st_size > 0


def test_estimate_auto_prices_both_architectures(model, tmp_path, capsys):
    code, out, _ = run(["estimate", model, "--arch", "auto", "--out", tmp_path / "e"], capsys)
    assert code == 0
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert report["architecture"] == "auto"
    assert report["dataflow"]["fits"] and report["engine"]["fits"]
    rates = {arch: report[arch]["fps"] for arch in ("dataflow", "engine")}
    assert report["chosen"] == max(rates, key=rates.get)
    assert out.startswith("dataflow:\n") and "\nengine:\n" in out
    assert f"auto picks {report['chosen']}" in out
    assert (tmp_path / "e" / "estimate.png").stat().st_size > 0


def test_estimate_takes_a_sample_rate_for_a_signal(tmp_path, capsys):
    quant.save(signal_cnn(), tmp_path / "signal.qgraph")
    code, out, _ = run(["estimate", tmp_path / "signal.qgraph", "--device", "xczu9eg",
                        "--clock-mhz", "200", "--samples-per-second", "1.6e9",
                        "--out", tmp_path / "e"], capsys)
    assert code == 0
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert report["target_samples_per_second"] == 1.6e9
    assert report["target_fps"] == 1.6e9 / 64
    # 8 samples a cycle at 200 MHz: 8 cycles per 64-sample frame.
    assert report["cycles_per_frame"] == 8
    assert report["samples_per_second"] == pytest.approx(1.6e9)
    assert "1.6e+09 samples/s (signal of 64 samples)" in out


def test_build_dry_run_without_synthesis(model, tmp_path, capsys):
    code, out, _ = run(["build", model, "--board", "pynq_z2", "--dry-run", "--no-synth",
                        "--out", tmp_path / "b", "--folding", "fc1=2x4,fc2=1x4"], capsys)
    assert code == 0
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["utilization"] is None and report["toolchain"] == {"ran": False}
    assert (tmp_path / "b" / "build.tcl").is_file()
    assert not (tmp_path / "b" / "INCOMPLETE").exists()
    assert out.splitlines()[-1] == str((tmp_path / "b" / "report.json").resolve())


def test_build_at_a_clock_of_its_own(model, tmp_path, capsys):
    code, _, _ = run(["build", model, "--board", "pynq_z2", "--dry-run", "--no-synth",
                      "--clock-mhz", "125", "--out", tmp_path / "b",
                      "--folding", "fc1=2x4,fc2=1x4"], capsys)
    assert code == 0
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["clock_mhz"] == 125
    assert "CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ {125}" in \
        (tmp_path / "b" / "build.tcl").read_text()


def test_a_build_that_fails_is_marked_incomplete(model, tmp_path, capsys, monkeypatch):
    """yosys stopped by its timeout: the tree has no report.json and says it is incomplete;
    a build that then succeeds removes the mark."""
    def timeout(*args, **kwargs):
        raise SynthesisError("yosys did not finish in 900 s")
    monkeypatch.setattr(BUILD, "estimate_utilization", timeout)
    out = tmp_path / "b"
    code, _, err = run(["build", model, "--board", "pynq_z2", "--dry-run", "--out", out],
                       capsys)
    assert code == 2 and err.splitlines()[-1] == "error: yosys did not finish in 900 s"
    assert (out / "build.tcl").is_file() and not (out / "report.json").exists()
    assert (out / "INCOMPLETE").read_text() == \
        "hwgen build did not finish: yosys did not finish in 900 s\n"
    code, _, _ = run(["build", model, "--board", "pynq_z2", "--dry-run", "--no-synth",
                      "--out", out], capsys)
    assert code == 0 and not (out / "INCOMPLETE").exists()
    assert "complete" not in json.loads((out / "report.json").read_text())


def test_a_build_that_does_not_fit_marks_its_report(model, tmp_path, capsys, monkeypatch):
    def too_big(verilog, top, board, **kwargs):
        total = {"LUT": 60_000, "FF": 10, "DSP": 1, "BRAM": 1}
        return {"source": "test", "total": total, "design": total, "overhead": {},
                "available": board.resources, "fits": False}
    monkeypatch.setattr(BUILD, "estimate_utilization", too_big)
    out = tmp_path / "b"
    code, _, err = run(["build", model, "--board", "pynq_z2", "--dry-run", "--out", out],
                       capsys)
    assert code == 1 and "LUTs: 60,000 needed, 53,200 available" in err
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] is False and "does not fit pynq_z2" in report["error"]
    assert (out / "INCOMPLETE").read_text().startswith("hwgen build did not finish: the design "
                                                       "does not fit pynq_z2")


def test_python_m_runs_the_command():
    run = subprocess.run([sys.executable, "-m", "hwgen.app.cli", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: hwgen ") and "exit status:" in run.stdout
