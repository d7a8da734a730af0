"""Accelerators elaborated for an ECP5 board in cocotb against the golden.

For a Lattice ECP5 platform every packed MAC lane group and every requantizer product is a
MULT18X18D instance with its own operand and result registers
(:func:`hwgen.blocks._util.registered_product`); Icarus runs them with a model of the
primitive (``mult18x18d.v``). The streams see random back-pressure, so the pipelines stall
with the multipliers full, and without back-pressure the cycle model must hold exactly.
"""

import re

import numpy as np
import pytest

import hwgen
import sim
from hwgen.verilog import to_verilog

from ..hwgen.graphs import random_inputs, random_mlp
from .test_selftest import MULT18X18D_MODEL

# 16 output beats per frame from a one-lane requantizer fed by a unit that issues a fold every
# cycle: output back-pressure stops both with a different beat in every stage.
CASES = {
    "narrow_output": (random_mlp(8, sizes=(8, 16, 16), high=(0, 0), final_requant=True),
                      {"fc1": (16, 8), "fc2": (1, 16)}),
    "mlp": (random_mlp(3, sizes=(24, 16, 8, 5), high=(4, 2, 1)),
            {"fc1": (8, 3), "fc2": (4, 2), "fc3": (5, 1)}),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def ecp5_design(request, tmp_path_factory):
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    graph, folding = CASES[request.param]
    acc = hwgen.compile_graph(graph, folding, device="ecp5")
    text = to_verilog(acc, "top", platform=ULX3S_85F_Platform())
    assert len(re.findall(r"^\s*MULT18X18D\b", text, re.M)) == acc.dsp_count > 0
    out = tmp_path_factory.mktemp(request.param)
    verilog = out / "top.v"
    verilog.write_text(MULT18X18D_MODEL.read_text() + text)
    return graph, hwgen.metadata(acc) | {"verilog": str(verilog)}, out


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["flow", "backpressure"])
def test_ecp5_accelerator_matches_golden(ecp5_design, backpressure):
    graph, meta, out = ecp5_design
    x = random_inputs(graph, 24, seed=9)
    result = sim.simulate(graph, x, out_dir=out / f"bp{backpressure}", design=meta,
                          backpressure=backpressure, seed=9)
    assert result.mismatches == 0 and result.outputs_compared == result.golden.size
    np.testing.assert_array_equal(result.outputs, result.golden)
    if backpressure == 0:
        assert result.cycles_per_frame == meta["cycles_per_frame"]
        assert result.frame_latency == meta["latency"]
