"""Bad input to every command: one line naming the option or field, the rule and the value,
its exit status, no traceback, and no output files."""

import json
import os
import re
import stat

import numpy as np
import pytest

import hwgen
import quant
from hwgen.app.cli import EXIT_CODES, main
from quant import graph as g
from tests.hwgen.graphs import random_mlp


def _edit_header(source, path, edit):
    """Copy the .qgraph ``source`` to ``path`` with its JSON header changed by ``edit``."""
    with np.load(source) as archive:
        arrays = {key: archive[key] for key in archive.files}
    header = json.loads(bytes(arrays["header"]).decode())
    edit(header)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _set(*keys, value):
    def edit(header):
        target = header
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


@pytest.fixture(scope="module")
def estimate_report(tmp_path_factory):
    """An estimate of the model for xc7z020 (``hwgen estimate``'s report.json)."""
    return hwgen.compile(random_mlp(0), device="xc7z020").as_dict()


@pytest.fixture
def work(tmp_path, monkeypatch, estimate_report):
    """A folder with a good model, good inputs and every bad file the cases name."""
    monkeypatch.chdir(tmp_path)
    graph = random_mlp(0)
    quant.save(graph, "m.qgraph")
    np.save("x.npy", np.zeros((2, 20), np.int64))
    (tmp_path / "afile").write_text("not a folder\n")
    np.savez("x.npz", a=np.zeros((2, 20), np.int64))
    np.save("empty.npy", np.zeros((0, 20), np.int64))
    np.save("scalar.npy", np.array(5))
    np.save("objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "fold_list.json").write_text('[["fc1", 1, 1]]')
    (tmp_path / "fold_short.json").write_text('{"fc1": [1]}')
    (tmp_path / "fold_text.json").write_text("fc1=1x1")
    (tmp_path / "fold_unknown.json").write_text('{"fc1": [1, 1], "zz": [1, 1]}')
    (tmp_path / "design_list.json").write_text("[1]")
    (tmp_path / "design_text.json").write_text("fc1=1x1")
    bad = dict(estimate_report, folding={"fc1": [0, 1], "fc2": [1, 1]})
    (tmp_path / "design_folding.json").write_text(json.dumps(bad))
    big = dict(estimate_report, total=dict(estimate_report["total"], lut=36_000))
    (tmp_path / "design_big.json").write_text(json.dumps(big))
    (tmp_path / "design.json").write_text(json.dumps(estimate_report))
    headers = {
        "nan_scale": _set("input", "scale", value=float("nan")),
        "version_text": _set("schema_version", value="1"),
        "shape_text": _set("input", "shape", value="784"),
        "bits_text": _set("input", "bits", value="8"),
        "inputs_text": _set("nodes", 1, "inputs", value="fc1"),
        "out_bits_text": _set("nodes", 1, "attrs", "out_bits", value="5"),
        "nodes_object": _set("nodes", value={"fc1": {}}),
        "no_input": lambda header: header.pop("input"),
    }
    for name, edit in headers.items():
        _edit_header("m.qgraph", f"{name}.qgraph", edit)
    nan_weights = random_mlp(0)
    nan_weights["fc1"].tensors["weight_scale"][3] = np.nan
    g._write(nan_weights, "nan_weight_scale.qgraph")
    return tmp_path


# (id, argv, exit status, the error line (a regex matched in full), paths that must not exist)
CASES = [
    # generate
    ("generate-out-is-a-file", "generate m.qgraph -o afile", 1,
     r"-o/--out must be a folder, not the existing file afile", []),
    ("generate-out-inside-a-file", "generate m.qgraph -o afile/rtl", 1,
     r"-o/--out must be a folder, not afile/rtl inside the existing file afile", []),
    ("folding-pe-zero", "generate m.qgraph -o r --folding fc1=0x4", 1,
     r"--folding fc1 must be \[PE, SIMD\], two positive integers, not \[0, 4\]", ["r"]),
    ("folding-simd-zero", "generate m.qgraph -o r --folding fc1=4x0", 1,
     r"--folding fc1 must be \[PE, SIMD\], two positive integers, not \[4, 0\]", ["r"]),
    ("folding-negative", "generate m.qgraph -o r --folding fc2=-2x1", 1,
     r"--folding fc2 must be \[PE, SIMD\], two positive integers, not \[-2, 1\]", ["r"]),
    ("folding-twice", "generate m.qgraph -o r --folding fc1=1x1,fc1=2x1", 1,
     r"--folding must name each layer once, not 'fc1' twice", ["r"]),
    ("folding-json-list", "generate m.qgraph -o r --folding fold_list.json", 1,
     r'--folding file fold_list.json must hold a JSON object \{"NAME": \[PE, SIMD\]\}, not a '
     r"list", ["r"]),
    ("folding-json-short", "generate m.qgraph -o r --folding fold_short.json", 1,
     r"--folding file fold_short.json: layer 'fc1' must be \[PE, SIMD\], two positive "
     r"integers, not \[1\]", ["r"]),
    ("folding-json-not-json", "generate m.qgraph -o r --folding fold_text.json", 1,
     r'--folding file fold_text.json must be JSON, \{"NAME": \[PE, SIMD\]\}, not unreadable '
     r"\(Expecting value: line 1 column 1 \(char 0\)\)", ["r"]),
    ("folding-json-missing", "generate m.qgraph -o r --folding none.json", 1,
     r"--folding file none.json does not exist", ["r"]),
    ("folding-unknown-layer", "generate m.qgraph -o r --folding fold_unknown.json", 1,
     r"folding names layers that are not dense layers of the model: zz; .*", ["r"]),
    ("mac-budget-zero", "generate m.qgraph -o r --mac-budget 0", 1,
     r"--mac-budget must be an integer > 0, not 0", ["r"]),
    ("design-missing", "generate m.qgraph -o r --design none.json", 1,
     r"design report none.json does not exist", ["r"]),
    ("design-not-json", "generate m.qgraph -o r --design design_text.json", 1,
     r"design_text.json is not a JSON estimate report \(Expecting value: .*\)", ["r"]),
    ("design-a-list", "generate m.qgraph -o r --design design_list.json", 1,
     r"design_list.json is not an estimate report of `hwgen estimate`: it has no folding, "
     r"lut_lanes, rom_styles, device, total", ["r"]),
    ("design-bad-folding", "generate m.qgraph -o r --design design_folding.json", 1,
     r"design_folding.json: folding of 'fc1' must be \[PE, SIMD\], two positive integers, "
     r"not \[0, 1\]", ["r"]),
    ("design-and-folding", "generate m.qgraph -o r --design design.json --folding fc1=1x1", 1,
     r"--design gives the folding; leave out --folding", ["r"]),
    ("generate-device-choice", "generate m.qgraph -o r --device xc9", 64,
     r"hwgen generate: argument --device: invalid choice: 'xc9' \(choose from .*\) "
     r"\(see `hwgen generate --help`\)", ["r"]),
    ("generate-no-out", "generate m.qgraph", 64,
     r"hwgen generate: the following arguments are required: -o/--out \(see `hwgen "
     r"generate --help`\)", []),
    # generate --arch engine
    ("engine-tm-tn", "generate m.qgraph -o r --arch engine --engine tm=4,tn=8", 1,
     r"--engine: engine tm must equal tn \(the matrix and vector paths share one output "
     r"path\), not tm 4, tn 8", ["r"]),
    ("engine-unknown-key", "generate m.qgraph -o r --arch engine --engine pe=4", 1,
     r"--engine has no key 'pe'; the keys are acc_bits, act_bits, .*", ["r"]),
    ("engine-not-a-number", "generate m.qgraph -o r --arch engine --engine tm=four", 1,
     r"--engine tm must be an integer, not 'four'", ["r"]),
    ("engine-lane-bits", "generate m.qgraph -o r --arch engine --engine tm=4,tn=4,"
     "lane_bits=4/4/4", 1,
     r"--engine: engine lane_bits must be 4 widths in 2..8, one per lane, not \(4, 4, 4\)",
     ["r"]),
    ("engine-form", "generate m.qgraph -o r --arch engine --engine tm", 1,
     r"--engine must look like KEY=VALUE\[,KEY=VALUE...\] of .*, not 'tm'", ["r"]),
    ("engine-without-arch", "generate m.qgraph -o r --engine tm=4", 1,
     r"--engine configures --arch engine; add --arch engine", ["r"]),
    ("engine-with-folding", "generate m.qgraph -o r --arch engine --folding fc1=1x1", 1,
     r"--folding configure the dataflow architecture; with --arch engine give --engine",
     ["r"]),
    ("engine-ports", "generate m.qgraph -o r --arch engine --engine data_bits=64,ports=4", 1,
     r"--engine: engine ports must be one of 1, 2, 4 with lanes of at least 32 bits "
     r"\(data_bits / ports\), not 4 on a 64-bit bus", ["r"]),
    ("engine-address-space", "generate m.qgraph -o r --arch engine --engine addr_bits=12", 1,
     r"--engine: engine addr_bits must be in 16..64, not 12", ["r"]),
    ("arch-choice", "generate m.qgraph -o r --arch systolic", 64,
     r"hwgen generate: argument --arch: invalid choice: 'systolic' .*", ["r"]),
    # simulate
    ("simulate-out-is-a-file", "simulate m.qgraph --inputs x.npy -o afile", 1,
     r"-o/--out must be a folder, not the existing file afile", []),
    ("inputs-npz", "simulate m.qgraph --inputs x.npz -o s", 1,
     r"--inputs must be a .npy file of one array \(numpy.save\), not the .npz or zip archive "
     r"x.npz", ["s"]),
    ("inputs-text", "simulate m.qgraph --inputs afile -o s", 1,
     r"--inputs must be a .npy file of one array \(numpy.save\), not afile, which does not "
     r"start like one", ["s"]),
    ("inputs-empty", "simulate m.qgraph --inputs empty.npy -o s", 1,
     r"empty.npy holds no inputs", ["s"]),
    ("inputs-scalar", "simulate m.qgraph --inputs scalar.npy -o s", 1,
     r"scalar.npy holds no inputs", ["s"]),
    ("inputs-objects", "simulate m.qgraph --inputs objects.npy -o s", 1,
     r"objects.npy is not a valid .npy file \(Object arrays cannot be loaded when "
     r"allow_pickle=False\)", ["s"]),
    ("backpressure-above-1", "simulate m.qgraph --inputs x.npy -o s --backpressure 1.5", 1,
     r"--backpressure: backpressure must be a probability in \[0, 1\), .*, not 1.5", ["s"]),
    ("backpressure-pattern", "simulate m.qgraph --inputs x.npy -o s --backpressure bursty:x",
     1, r"--backpressure: .*not 'bursty:x'", ["s"]),
    ("seed-negative", "simulate m.qgraph --inputs x.npy -o s --seed -1", 1,
     r"--seed must be an integer >= 0, not -1", ["s"]),
    ("simulator-choice", "simulate m.qgraph --inputs x.npy -o s --sim modelsim", 64,
     r"hwgen simulate: argument --sim: invalid choice: 'modelsim' .*", ["s"]),
    ("workers-zero", "simulate m.qgraph --inputs x.npy -o s --workers 0", 1,
     r"--workers must be a positive integer, not 0", ["s"]),
    ("workers-negative", "simulate m.qgraph --inputs x.npy -o s --workers -3", 1,
     r"--workers must be a positive integer, not -3", ["s"]),
    ("workers-text", "simulate m.qgraph --inputs x.npy -o s --workers two", 64,
     r"hwgen simulate: argument --workers: invalid int value: 'two' .*", ["s"]),
    ("workers-and-cluster", "simulate m.qgraph --inputs x.npy -o s --workers 2 --cluster "
     "127.0.0.1:8786", 1,
     r"--cluster runs the shards on that cluster's workers; leave out --workers", ["s"]),
    ("shards-alone", "simulate m.qgraph --inputs x.npy -o s --shards 4", 1,
     r"--shards needs --workers or --cluster", ["s"]),
    ("shards-zero", "simulate m.qgraph --inputs x.npy -o s --workers 2 --shards 0", 1,
     r"--shards must be a positive integer, not 0", ["s"]),
    ("cluster-no-port", "simulate m.qgraph --inputs x.npy -o s --cluster localhost", 1,
     r"--cluster must be \[SCHEME://\]HOST:PORT with a port in 1\.\.65535, not 'localhost'",
     ["s"]),
    ("cluster-scheme", "simulate m.qgraph --inputs x.npy -o s --cluster http://h:80", 1,
     r"--cluster must use one of the schemes .*, not 'http' in 'http://h:80'", ["s"]),
    ("cluster-unreachable", "simulate m.qgraph --inputs x.npy -o s --cluster "
     "tcp://127.0.0.1:1", 1,
     r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:1 \(Connection refused\); "
     r"start one with `dask scheduler` or check the address", ["s"]),
    ("engine-with-workers", "simulate m.qgraph --inputs x.npy -o s --arch engine --workers 2",
     1, r"--workers, --cluster and --shards split dataflow simulations; an engine simulation "
     r"runs in one process", ["s"]),
    ("latency-without-engine", "simulate m.qgraph --inputs x.npy -o s --latency 4", 1,
     r"--latency is the engine's DRAM latency; add --arch engine", ["s"]),
    ("latency-negative", "simulate m.qgraph --inputs x.npy -o s --arch engine --latency -1", 1,
     r"--latency must be N or MIN..MAX, cycles with 0 <= MIN <= MAX, not '-1'", ["s"]),
    ("latency-range-reversed",
     "simulate m.qgraph --inputs x.npy -o s --arch engine --latency 9..2", 1,
     r"--latency must be N or MIN..MAX, cycles with 0 <= MIN <= MAX, not '9..2'", ["s"]),
    # estimate
    ("estimate-out-is-a-file", "estimate m.qgraph --out afile", 1,
     r"--out must be a folder, not the existing file afile", []),
    ("target-fps-nan", "estimate m.qgraph --out e --target-fps nan", 1,
     r"--target-fps must be a finite number > 0, not nan", ["e"]),
    ("target-fps-zero", "estimate m.qgraph --out e --target-fps 0", 1,
     r"--target-fps must be a finite number > 0, not 0", ["e"]),
    ("target-fps-inf", "estimate m.qgraph --out e --target-fps inf", 1,
     r"--target-fps must be a finite number > 0, not inf", ["e"]),
    ("target-fps-text", "estimate m.qgraph --out e --target-fps fast", 64,
     r"hwgen estimate: argument --target-fps: invalid float value: 'fast' \(see `hwgen "
     r"estimate --help`\)", ["e"]),
    ("samples-per-second-zero", "estimate m.qgraph --out e --samples-per-second 0", 1,
     r"--samples-per-second must be a finite number > 0, not 0", ["e"]),
    ("samples-per-second-and-fps",
     "estimate m.qgraph --out e --samples-per-second 1e9 --target-fps 5", 1,
     r"give --target-fps or --samples-per-second, not both", ["e"]),
    ("samples-per-second-not-a-signal", "estimate m.qgraph --out e --samples-per-second 1e9",
     1, r"--samples-per-second is for a model of a 1-D signal \(channels, length\); this "
        r"one's input is \(20,\): use --target-fps", ["e"]),
    ("clock-nan", "estimate m.qgraph --out e --clock-mhz nan", 1,
     r"--clock-mhz must be a finite number > 0, not nan", ["e"]),
    ("clock-above-the-part", "estimate m.qgraph --out e --clock-mhz 1000", 1,
     r"clock_mhz must be within 4.69..464 MHz on xc7z020, not 1000", ["e"]),
    ("utilization-above-1", "estimate m.qgraph --out e --utilization 1.5", 1,
     r"--utilization must be a finite number > 0 and <= 1, not 1.5", ["e"]),
    ("utilization-nan", "estimate m.qgraph --out e --utilization nan", 1,
     r"--utilization must be a finite number > 0 and <= 1, not nan", ["e"]),
    ("device-unknown", "estimate m.qgraph --out e --device xc7a75t", 1,
     r"device must be a part \(xc7z010, .*\), a part number or a board of `hwgen boards`, "
     r"not 'xc7a75t'", ["e"]),
    ("does-not-fit", "estimate m.qgraph --out e --utilization 0.0001", 1,
     r"the model does not fit xc7z020 even fully folded: .*", ["e/report.json"]),
    ("target-out-of-reach", "estimate m.qgraph --out e --target-fps 1e9", 1,
     r"1e\+09 frames/s at 100 MHz needs 0 cycles per frame; .*", ["e/report.json"]),
    ("bandwidth-without-engine", "estimate m.qgraph --out e --bandwidth-gbs 10", 1,
     r"--bandwidth-gbs is the engine's DRAM bandwidth; add --arch engine or --arch auto",
     ["e"]),
    ("bandwidth-zero", "estimate m.qgraph --out e --arch engine --bandwidth-gbs 0", 1,
     r"DRAM bandwidth must be within 0.1..1000 GB/s, not 0", ["e"]),
    ("bandwidth-too-high", "estimate m.qgraph --out e --arch auto --bandwidth-gbs 5000", 1,
     r"DRAM bandwidth must be within 0.1..1000 GB/s, not 5000", ["e"]),
    ("bandwidth-nan", "estimate m.qgraph --out e --arch engine --bandwidth-gbs nan", 1,
     r"DRAM bandwidth must be within 0.1..1000 GB/s, not nan", ["e"]),
    ("engine-clock-above-the-part", "estimate m.qgraph --out e --arch auto --clock-mhz 1000",
     1, r"clock_mhz must be within 4.69..464 MHz on xc7z020, not 1000", ["e"]),
    ("engine-does-not-fit", "estimate m.qgraph --out e --arch engine --utilization 0.0001", 1,
     r"the network does not run on xc7z020 at any engine configuration within utilization "
     r"0.0001: the smallest engine that runs it \(tm 4, 64-bit bus, least buffers: [\d,]+ "
     r"input, [\d,]+ output and [\d,]+ weight words\) needs lut [\d,]+ > 5, .*",
     ["e/report.json"]),
    ("auto-neither-fits", "estimate m.qgraph --out e --arch auto --utilization 0.0001", 1,
     r"neither architecture fits: dataflow: the model does not fit xc7z020 even fully folded"
     r": .*; engine: the network does not run on xc7z020 at any engine configuration .*",
     ["e/report.json"]),
    ("engine-target-out-of-reach", "estimate m.qgraph --out e --arch engine --target-fps 1e9",
     1, r"1e\+09 frames/s at 100 MHz needs 0 cycles per frame; the fastest engine that fits "
     r"xc7z020 \(utilization 0.8, 1.6 GB/s\) takes [\d,]+ \([\d.]+ frames/s\): .*MAC array "
     r"\d+% busy", ["e/report.json"]),
    # packing
    ("weight-bits-alone", "packing --weight-bits 4", 1,
     r"--weight-bits and --act-bits go together; give both or neither", []),
    ("weight-bits-one", "packing --weight-bits 1 --act-bits 4", 1,
     r"weight_bits must be an integer of at least 2, not 1", []),
    # model files
    ("model-nan-input-scale", "inspect nan_scale.qgraph", 1,
     r"input: scale must be a finite positive number, not nan", []),
    ("model-nan-weight-scale", "inspect nan_weight_scale.qgraph", 1,
     r"layer 'fc1': weight_scale must be finite and positive; filter 3 has nan", []),
    ("model-schema-version-text", "inspect version_text.qgraph", 1,
     r"version_text.qgraph: schema_version must be 1, not '1'", []),
    ("model-shape-text", "generate shape_text.qgraph -o r", 1,
     r"input: shape must be a list of integers, not '784'", ["r"]),
    ("model-bits-text", "inspect bits_text.qgraph", 1,
     r"input: bits must be an integer in 1..16, not '8'", []),
    ("model-inputs-text", "inspect inputs_text.qgraph", 1,
     r"layer 'act1': inputs must be a list of layer names, not 'fc1'", []),
    ("model-out-bits-text", "estimate out_bits_text.qgraph --out e", 1,
     r"layer 'act1': out_bits must be an integer in 1..32, not '5'", ["e"]),
    ("model-nodes-object", "inspect nodes_object.qgraph", 1,
     r"nodes_object.qgraph: header: nodes must be a list, not \{'fc1': \{\}\}", []),
    ("model-no-input", "inspect no_input.qgraph", 1,
     r"no_input.qgraph: header: input must be an object with shape, bits, signed and scale, "
     r"not None", []),
    ("model-is-a-folder", "inspect .", 1,
     r". is not a valid .qgraph file \(not an npz archive\)", []),
    # build
    ("build-out-is-a-file", "build m.qgraph --board pynq_z2 --dry-run --out afile", 1,
     r"--out must be a folder, not the existing file afile", []),
    ("build-clock-zero", "build m.qgraph --board pynq_z2 --dry-run --clock-mhz 0 --out b", 1,
     r"--clock-mhz must be a finite number > 0, not 0", []),
    ("build-clock-too-fast",
     "build m.qgraph --board pynq_z2 --dry-run --clock-mhz 900 --out b", 1,
     r"clock_mhz must be within 4.69..464 MHz on xc7z020, not 900", []),
    ("build-board-module", "build m.qgraph --board nosuch:Platform --out b", 1,
     r"board 'nosuch:Platform': module 'nosuch' cannot be imported \(No module named "
     r"'nosuch'\)", ["b"]),
    ("build-design-too-big",
     "build m.qgraph --board arty_a7_35 --design design_big.json --dry-run --out b", 1,
     r"--design \(estimated for xc7z020\) needs more than board arty_a7_35's part xc7a35t "
     r"has: LUTs 36,000 > 20,800; estimate for the board: hwgen estimate MODEL --device "
     r"arty_a7_35", ["b"]),
    ("build-design-and-folding",
     "build m.qgraph --board pynq_z2 --design design.json --folding fc1=1x1 --out b", 1,
     r"--design gives the folding; leave out --folding", ["b"]),
    ("build-no-board", "build m.qgraph --out b", 64,
     r"hwgen build: the following arguments are required: --board \(see `hwgen build "
     r"--help`\)", ["b"]),
    # demo (checked before any training)
    ("demo-images-zero", "demo --images 0 --out d", 1,
     r"--images must be an integer > 0 and <= 1000, not 0", ["d"]),
    ("demo-images-too-many", "demo --images 5000 --out d", 1,
     r"--images must be an integer > 0 and <= 1000, not 5000", ["d"]),
    ("demo-epochs-zero", "demo --epochs 0 --out d", 1,
     r"--epochs must be an integer > 0, not 0", ["d"]),
    ("demo-out-is-a-file", "demo --out afile", 1,
     r"--out must be a folder, not the existing file afile", []),
    ("demo-example-choice", "demo --example cifar --out d", 64,
     r"hwgen demo: argument --example: invalid choice: 'cifar' .*", ["d"]),
    ("demo-workers-zero", "demo --workers 0 --out d", 1,
     r"--workers must be a positive integer, not 0", ["d"]),
    ("demo-cluster-unreachable", "demo --cluster 127.0.0.1:1 --out d", 1,
     r"cannot reach the Dask scheduler at 127\.0\.0\.1:1 \(Connection refused\); start one "
     r"with `dask scheduler` or check the address", ["d"]),
    ("demo-engine-without-arch", "demo --engine tm=4,tn=4 --out d", 1,
     r"--engine configures --arch engine; add --arch engine", ["d"]),
    ("demo-engine-bad-key", "demo --arch engine --engine tm=4,speed=9 --out d", 1,
     r"--engine has no key 'speed'; the keys are acc_bits, act_bits, .*, weight_words", ["d"]),
    ("demo-latency-without-engine", "demo --latency 3 --out d", 1,
     r"--latency is the engine's DRAM latency; add --arch engine", ["d"]),
    ("demo-weight-bits-without-peaks", "demo --weight-bits 2 --out d", 1,
     r"--weight-bits is the peaks example's weight width; add --example peaks", ["d"]),
    ("demo-weight-bits-choice", "demo --example peaks --weight-bits 5 --out d", 64,
     r"hwgen demo: argument --weight-bits: invalid choice: 5 .*", ["d"]),
    ("demo-samples-per-cycle-zero", "demo --example peaks --samples-per-cycle 0 --out d", 1,
     r"--samples-per-cycle must be an integer > 0, not 0", ["d"]),
    ("demo-samples-per-cycle-engine",
     "demo --example peaks --arch engine --samples-per-cycle 2 --out d", 1,
     r"--samples-per-cycle folds the dataflow accelerator; drop --arch engine", ["d"]),
    ("demo-samples-per-cycle-not-a-divisor",
     "demo --example peaks --samples-per-cycle 3 --out d", 1,
     r"samples per cycle must divide peaks's signal length 256; choose one of 1, 2, 4, 8, "
     r"16, 32, 64, 128, 256, not 3", ["d"]),
    ("demo-samples-per-cycle-not-a-signal", "demo --samples-per-cycle 2 --out d", 1,
     r"samples per cycle are for a 1-D example \(peaks\); mnist_mlp's input is \(784,\)",
     ["d"]),
    # the command line
    ("no-command", "", 64,
     r"hwgen: the following arguments are required: COMMAND \(see `hwgen --help`\)", []),
    ("unknown-command", "synthesize m.qgraph", 64,
     r"hwgen: argument COMMAND: invalid choice: 'synthesize' .*", []),
]


@pytest.mark.parametrize("argv, code, message, absent", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input(work, capsys, argv, code, message, absent):
    assert main(argv.split()) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert err.count("\n") == 1, err
    assert re.fullmatch(f"error: {message}\n", err), err
    for path in absent:
        assert not (work / path).exists(), path


def test_the_cases_are_distinct_and_many():
    assert len({c[0] for c in CASES}) == len(CASES) >= 40
    assert len({c[1] for c in CASES}) == len(CASES)


def test_vivado_is_looked_for_before_anything_runs(work, capsys, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert main(["build", "m.qgraph", "--board", "pynq_z2", "--out", "b"]) == 3
    out, err = capsys.readouterr()
    assert err == ("error: Vivado is not on PATH; a build for pynq_z2 runs it. Add it to PATH, "
                   "or make a dry run (hwgen build --dry-run) and run its build.sh on a machine "
                   "with Vivado\n")
    assert not (work / "b").exists()


def test_verbose_shows_the_traceback(work):
    with pytest.raises(ValueError, match=r"--target-fps must be a finite number > 0, not nan"):
        main(["-v", "estimate", "m.qgraph", "--target-fps", "nan"])
    with pytest.raises(ValueError, match=r"--target-fps must be a finite number > 0, not nan"):
        main(["estimate", "m.qgraph", "--target-fps", "nan", "-v"])


def test_a_failed_estimate_leaves_no_old_report(work, capsys):
    assert main(["estimate", "m.qgraph", "--out", "e"]) == 0
    assert (work / "e" / "report.json").is_file() and (work / "e" / "estimate.png").is_file()
    capsys.readouterr()
    assert main(["estimate", "m.qgraph", "--out", "e", "--utilization", "0.0001"]) == 1
    assert "does not fit" in capsys.readouterr().err
    assert sorted(p.name for p in (work / "e").iterdir()) == []


def test_a_failed_simulation_setup_leaves_no_old_report(work, capsys):
    (work / "s").mkdir()
    for name in ("report.json", "outputs.npy"):
        (work / "s" / name).write_text("from an earlier run")
    assert main(["simulate", "m.qgraph", "--inputs", "x.npy", "-o", "s", "--folding",
                 "fc1=3x1"]) == 1
    assert "PE 3 does not divide out_features 16" in capsys.readouterr().err
    assert not (work / "s" / "report.json").exists()
    assert not (work / "s" / "outputs.npy").exists()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(work, capsys, umask, mode):
    old = os.umask(umask)
    try:
        assert main(["generate", "m.qgraph", "-o", "r"]) == 0
        assert main(["estimate", "m.qgraph", "--out", "e"]) == 0
    finally:
        os.umask(old)
    written = [work / "r" / name for name in ("top.v", "metadata.json", "model.qgraph")]
    written += [work / "e" / name for name in ("report.json", "estimate.png")]
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
    assert not [p for p in (work / "r").iterdir() if p.name.startswith(".")]


def test_exit_codes_are_documented_in_help(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for code, meaning in EXIT_CODES.items():
        assert re.search(rf"^  {code}\s+{re.escape(meaning[:30])}", out, re.M), code
    assert set(EXIT_CODES) == {0, 1, 2, 3, 64, 141}


def test_version(capsys):
    assert main(["--version"]) == 0
    assert re.fullmatch(r"hwgen \d+\.\d+\.\d+\n", capsys.readouterr().out)
