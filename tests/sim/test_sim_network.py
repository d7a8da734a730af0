"""Generated accelerators in cocotb against the golden: outputs, frame interval, latency."""

import numpy as np
import pytest

import hwgen
import sim

from ..hwgen.graphs import random_inputs, random_mlp


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    graph = random_mlp(3, sizes=(24, 16, 8, 5), high=(4, 2, 1))
    out = tmp_path_factory.mktemp("network")
    return graph, hwgen.generate(graph, out / "rtl", folding={"fc1": (4, 6)}), out


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["flow", "backpressure"])
def test_network_matches_golden_in_icarus(design, backpressure):
    graph, meta, out = design
    x = random_inputs(graph, 40, seed=1)
    result = sim.simulate(graph, x, out_dir=out / f"bp{backpressure}", design=meta,
                          backpressure=backpressure, seed=5)
    assert result.mismatches == 0 and result.outputs_compared == 40 * 5
    np.testing.assert_array_equal(result.outputs, result.golden)
    if backpressure == 0:
        assert result.cycles_per_frame == meta["cycles_per_frame"]
        assert result.frame_latency == meta["latency"]


@pytest.mark.verilator
def test_network_matches_golden_in_verilator(design):
    graph, meta, out = design
    x = random_inputs(graph, 40, seed=2)
    result = sim.simulate(graph, x, out_dir=out / "verilator", design=meta,
                          simulator="verilator", backpressure=0.3, seed=6)
    assert result.mismatches == 0


def test_a_wrong_golden_is_reported(design):
    """The comparison can fail: change one bias so the golden disagrees with the RTL."""
    graph, meta, out = design
    wrong = graph.copy()
    wrong["fc3"].tensors["bias"][2] += 1
    x = random_inputs(graph, 4, seed=3)
    with pytest.raises(sim.SimulationError, match=r"first at input 0, output index \(2,\): "
                                                  r"expected -?\d+, got -?\d+ .*seed 9"):
        sim.simulate(wrong, x, out_dir=out / "wrong", design=meta, seed=9)
