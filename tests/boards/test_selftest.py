"""The self-test design in cocotb: it passes with the right golden and fails on a flipped bit."""

import re
from pathlib import Path

import numpy as np
import pytest

import hwgen
import quant
from boards.errors import BoardError
from boards.selftest import SelfTest, ecp5_pll_params, selftest_vectors, xilinx_mmcm_params
from hwgen.verilog import to_verilog
from quant.stream_format import StreamFormat

from ..hwgen.graphs import random_mlp
from ..hwgen.test_conv_accelerator import Builder
from . import cocotb_bench

FOLDING = {"fc1": (4, 6)}


def _graph():
    return random_mlp(5, sizes=(24, 16, 8, 5), high=(4, 2, 1))


def image_graph():
    """A 3-channel 5x4 image through a 3x3 convolution 3 -> 4 and a requantize: feature maps
    in and out, streamed pixel by pixel (HWC), not in the IR's CHW order."""
    return Builder(21, (3, 5, 4)).conv("conv1", 4, 3, high=1).requantize("act1").graph


#: Simulation model of the ECP5 multiplier primitive the ECP5 netlist instantiates.
MULT18X18D_MODEL = Path(__file__).parent / "mult18x18d.v"


def _run_selftest(test, tmp_path, seed=0, verilog=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "selftest.v").write_text(verilog or to_verilog(test, name="selftest"))
    sources = [tmp_path / "selftest.v"] + ([MULT18X18D_MODEL] if verilog else [])
    runner = cocotb_bench.build(sources, "selftest", tmp_path / "build")
    results = cocotb_bench.run(
        runner, toplevel="selftest", module="tests.boards.cocotb_selftest",
        config={"max_cycles": test.cycles + test.stall_limit + 100},
        env_var="BOARDS_SELFTEST_CONFIG", work_dir=tmp_path, build_dir=tmp_path / "build",
        seed=seed)
    return results["run_to_verdict"]


def _flip_weight_bit(graph, inputs):
    """A copy of ``graph`` with bit 0 of one output-layer weight flipped, chosen so that the
    golden outputs on ``inputs`` change (the weight's input is non-zero)."""
    hidden = quant.run(graph, inputs)["act2"]
    weight = graph["fc3"].tensors["weight"]
    for row, col in np.ndindex(weight.shape):
        flipped = int(weight[row, col]) ^ 1
        limit = (1 << (int(graph["fc3"].tensors["weight_bits"][row]) - 1)) - 1
        if abs(flipped) <= limit and hidden[:, col].any():
            changed = graph.copy()
            changed["fc3"].tensors["weight"][row, col] = flipped
            return changed, (row, col)
    raise AssertionError("no weight bit flip changes the outputs")


def test_selftest_passes_with_the_golden(tmp_path):
    graph = _graph()
    inputs, expected = selftest_vectors(graph, count=4, seed=1)
    test = SelfTest(hwgen.compile_graph(graph, folding=FOLDING), inputs, expected)
    verdict = _run_selftest(test, tmp_path)
    assert verdict["held"] == {"done": 1, "passed": 1, "failed": 0, "mismatches": 0,
                               "timed_out": 0}, verdict
    assert verdict["first_failed"] is None
    assert verdict["done_at"] <= test.cycles, (verdict, test.cycles)


@pytest.mark.parametrize("folding", [FOLDING, {"fc1": (8, 3), "fc2": (4, 2), "fc3": (5, 1)}],
                         ids=["fc1_4x6", "all_folded"])
def test_selftest_passes_with_ecp5_multipliers(tmp_path, folding):
    """Elaborated for the ULX3S, every packed MAC and requantizer product is a MULT18X18D
    with its own registers (an instance, simulated with a model of the primitive); the
    accelerator still equals the golden, cycle for cycle with the behavioral design."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    graph = _graph()
    inputs, expected = selftest_vectors(graph, count=4, seed=3)
    acc = hwgen.compile_graph(graph, folding=folding, device="ecp5")
    test = SelfTest(acc, inputs, expected)
    text = to_verilog(test, "selftest", platform=ULX3S_85F_Platform())
    assert len(re.findall(r"^\s*MULT18X18D\b", text, re.M)) == acc.dsp_count > 0
    behavioral = _run_selftest(test, tmp_path / "behavioral")
    verdict = _run_selftest(test, tmp_path / "ecp5", verilog=text)
    passed = {"done": 1, "passed": 1, "failed": 0, "mismatches": 0, "timed_out": 0}
    assert behavioral["held"] == verdict["held"] == passed, (behavioral, verdict)
    assert verdict["done_at"] == behavioral["done_at"] <= test.cycles, (verdict, behavioral)


def test_selftest_fails_on_a_flipped_weight_bit(tmp_path):
    """The accelerator's weight ROM differs by one bit; the expected outputs are the
    original golden's. The self-test must report the failure."""
    graph = _graph()
    inputs, expected = selftest_vectors(graph, count=4, seed=1)
    changed, where = _flip_weight_bit(graph, inputs)
    acc = hwgen.compile_graph(changed, folding=FOLDING)
    got = quant.run(changed, inputs)[changed.output]
    beats = (got != expected).reshape(len(inputs), acc.out_beats, acc.out_elements).any(axis=2)
    assert beats.any()
    test = SelfTest(acc, inputs, expected)
    verdict = _run_selftest(test, tmp_path)
    held = verdict["held"]
    assert held["done"] == 1 and held["failed"] == 1 and held["passed"] == 0, (where, verdict)
    assert held["mismatches"] == int(beats.sum()), (where, verdict)
    assert verdict["first_failed"] < verdict["done_at"]


def test_selftest_passes_on_a_three_channel_image(tmp_path):
    graph = image_graph()
    inputs, expected = selftest_vectors(graph, count=4, seed=5)
    acc = hwgen.compile_graph(graph)
    assert (acc.in_order, acc.out_order, acc.in_elements) == ("HWC", "HWC", 3)
    test = SelfTest(acc, inputs, expected)
    verdict = _run_selftest(test, tmp_path)
    assert verdict["held"] == {"done": 1, "passed": 1, "failed": 0, "mismatches": 0,
                               "timed_out": 0}, verdict
    assert verdict["done_at"] <= test.cycles, (verdict, test.cycles)


def test_selftest_fails_on_chw_packed_vectors(tmp_path):
    """The same accelerator with its vectors packed in CHW order (words made as if the
    tensors streamed as they are): the self-test counts every output beat that differs."""
    graph = image_graph()
    inputs, expected = selftest_vectors(graph, count=4, seed=5)
    acc = hwgen.compile_graph(graph)
    in_format, out_format = acc.in_format, acc.out_format
    # Tensors whose HWC words are the CHW words of the vectors.
    as_chw_in = in_format.from_stream(inputs.reshape(len(inputs), -1))
    as_chw_expected = out_format.from_stream(expected.reshape(len(expected), -1))
    test = SelfTest(acc, as_chw_in, as_chw_expected)
    assert test.in_words == StreamFormat(in_format.shape, in_format.bits, in_format.signed,
                                         in_format.elements_per_beat, order="C").pack(inputs)
    # What the hardware sends for those input words, against what the words expect.
    sent = out_format.pack(quant.run(graph, as_chw_in)[graph.output])
    differ = sum(a != b for a, b in zip(sent, test.out_words))
    assert differ > 0
    verdict = _run_selftest(test, tmp_path)
    held = verdict["held"]
    assert held["done"] == 1 and held["failed"] == 1 and held["passed"] == 0, verdict
    assert held["mismatches"] == differ, (differ, verdict)


def test_selftest_times_out_when_outputs_do_not_come(tmp_path):
    """A stall limit shorter than the accelerator's latency: no output in time, a failure."""
    graph = _graph()
    inputs, expected = selftest_vectors(graph, count=2, seed=2)
    acc = hwgen.compile_graph(graph, folding=FOLDING)
    test = SelfTest(acc, inputs, expected, stall_limit=acc.latency // 2)
    verdict = _run_selftest(test, tmp_path)
    held = verdict["held"]
    assert held["timed_out"] == 1 and held["failed"] == 1 and held["passed"] == 0, verdict


def test_selftest_vectors_and_errors():
    graph = _graph()
    inputs, expected = selftest_vectors(graph, count=3, seed=0)
    lo, hi = graph.input.range
    assert (inputs[0] == lo).all() and (inputs[1] == hi).all() and inputs.shape == (3, 24)
    np.testing.assert_array_equal(expected, quant.run(graph, inputs)[graph.output])
    acc = hwgen.compile_graph(graph, folding=FOLDING)
    with pytest.raises(ValueError, match=r"expected must have shape \(3, 5\), not \(2, 5\)"):
        SelfTest(acc, inputs, expected[:2])
    with pytest.raises(ValueError, match=r"inputs must have shape \(N, 24\)"):
        SelfTest(acc, inputs[:, :5], expected)


def test_ecp5_pll_dividers():
    assert ecp5_pll_params(25, 100) | {} == {"CLKI_DIV": 1, "CLKFB_DIV": 4, "CLKOP_DIV": 6,
                                               "f_out_mhz": 100.0, "vco_mhz": 600.0}
    p = ecp5_pll_params(25, 125)
    assert p["f_out_mhz"] == 125 and 400 <= p["vco_mhz"] <= 800
    with pytest.raises(BoardError, match="cannot make 1000 MHz from 25 MHz"):
        ecp5_pll_params(25, 1000)


@pytest.mark.parametrize("family, f_in, primitive, settings", [
    ("series7", 125, "MMCME2_BASE", (1, 8, 10)),
    ("ultrascale", 125, "MMCME3_BASE", (1, 8, 10)),
    ("ultrascaleplus", 125, "MMCME4_BASE", (1, 8, 10)),
    ("series7", 200, "MMCME2_BASE", (1, 5, 10)),
    ("series7", 100, "MMCME2_BASE", (1, 10, 10)),
])
def test_xilinx_mmcm_settings(family, f_in, primitive, settings):
    p = xilinx_mmcm_params(family, f_in, 100)
    assert p["primitive"] == primitive and p["f_out_mhz"] == 100 and p["vco_mhz"] == 1000
    assert (p["DIVCLK_DIVIDE"], p["CLKFBOUT_MULT_F"], p["CLKOUT0_DIVIDE_F"]) == settings


def test_xilinx_mmcm_range():
    p = xilinx_mmcm_params("series7", 156, 100)  # KC705's 156 MHz: within 1 %
    assert abs(p["f_out_mhz"] - 100) < 1 and 600 <= p["vco_mhz"] <= 1200
    with pytest.raises(BoardError, match="a MMCME2_BASE cannot make 2000 MHz from 125 MHz"):
        xilinx_mmcm_params("series7", 125, 2000)
