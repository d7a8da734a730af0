"""Generated convolutional accelerators in cocotb against the golden (HWC streams)."""

import numpy as np
import pytest

import hwgen
import sim

from ..hwgen.test_conv_accelerator import cnn1d, map_output


@pytest.fixture(scope="module", params=["map_output", "cnn1d"])
def design(request, tmp_path_factory):
    graph = {"map_output": map_output, "cnn1d": cnn1d}[request.param]()
    out = tmp_path_factory.mktemp(request.param)
    return graph, hwgen.generate(graph, out / "rtl"), out


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["flow", "backpressure"])
def test_conv_network_matches_golden_in_icarus(design, backpressure):
    graph, meta, out = design
    x = np.random.default_rng(1).integers(0, 16, (6, *graph.input.shape))
    result = sim.simulate(graph, x, out_dir=out / f"bp{backpressure}", design=meta,
                          backpressure=backpressure, seed=5)
    assert result.mismatches == 0
    np.testing.assert_array_equal(result.outputs, result.golden)
    if backpressure == 0:
        assert result.cycles_per_frame == meta["cycles_per_frame"]
        assert result.frame_latency == meta["latency"]
