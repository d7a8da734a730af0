"""Generated convolutional accelerators in cocotb against the golden (HWC streams)."""

import numpy as np
import pytest

import hwgen
import sim

from ..hwgen.test_conv_accelerator import FOLDINGS, cnn1d, dwtaps, map_output, taps

DESIGNS = {"map_output": map_output, "cnn1d": cnn1d, "taps": taps, "dwtaps": dwtaps}


@pytest.fixture(scope="module", params=list(DESIGNS))
def design(request, tmp_path_factory):
    graph = DESIGNS[request.param]()
    out = tmp_path_factory.mktemp(request.param)
    folding = FOLDINGS[request.param] if request.param in ("taps", "dwtaps") else None
    return graph, hwgen.generate(graph, out / "rtl", folding), out


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


@pytest.mark.parametrize("design", ["taps"], indirect=True)
def test_windows_with_several_positions_per_beat_run_a_pixel_per_cycle(design):
    """The whole 3x3 window a beat on the 1-channel stem, a window row a beat after it: the
    generated design (bit-exact and at its model's interval above) takes a frame in one cycle
    per input pixel."""
    _, meta, _ = design
    assert meta["folding"]["conv1"]["simd"] == 9 and meta["folding"]["conv2"]["simd"] == 12
    assert meta["cycles_per_frame"] == 8 * 8


@pytest.mark.parametrize("design", ["dwtaps"], indirect=True)
def test_depthwise_windows_with_several_positions_per_beat_run_a_pixel_per_cycle(design):
    """Depthwise layers with the whole window, then a window row, a beat: the generated
    design (bit-exact and at its model's interval above) takes a frame in one cycle per input
    pixel."""
    _, meta, _ = design
    assert meta["folding"]["dw1"]["simd"] == 36 and meta["folding"]["dw2"]["simd"] == 12
    assert meta["folding"]["dw1"]["pe"] == meta["folding"]["dw2"]["pe"] == 4
    assert meta["cycles_per_frame"] == 6 * 6
