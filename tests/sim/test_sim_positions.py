"""Several positions per cycle: the peaks network's shape folded by ``hwgen.samples_folding``
runs bit-exact in cocotb, at ``length / P`` cycles per frame as the model says, and so does
the MNIST CNN at several pixels per cycle; the rules for ``P`` give clear errors."""

import numpy as np
import pytest
import torch

import hwgen
import sim
from hwgen import DesignError
from quant import graph as g
from quant.export import export
from quant.models import mnist_cnn
from quant.nn import fold_batchnorms
from tests.hwgen.test_conv_accelerator import Builder, signal_cnn

from ..graphgen import random_inputs


@pytest.mark.parametrize("positions, lanes", [
    (1, "packed"), (2, "constant"), (8, "packed"), (8, "constant"),
    pytest.param(32, "constant", marks=pytest.mark.slow)])
def test_signal_at_several_samples_per_cycle(positions, lanes, tmp_path):
    """Unfolded layers with packed DSP lanes, or with constant LUT lanes
    (``hwgen.unfolded_lut_lanes``)."""
    graph = signal_cnn()
    folding = hwgen.samples_folding(graph, positions)
    lut_lanes = hwgen.unfolded_lut_lanes(graph, folding) if lanes == "constant" else None
    if lanes == "constant":
        assert lut_lanes
    meta = hwgen.generate(graph, tmp_path / "rtl", folding=folding, device="xcup",
                          lut_lanes=lut_lanes)
    assert meta["cycles_per_frame"] == 64 // positions
    x = random_inputs(graph, 12, positions)
    result = sim.simulate(graph, x, out_dir=tmp_path / "flow", design=meta, seed=1,
                          check=False)
    assert result.ok, result.describe()
    assert result.cycles_per_frame == meta["cycles_per_frame"]
    if not meta["latency_is_estimate"]:
        assert result.frame_latency == meta["latency"]
    pressed = sim.simulate(graph, x, out_dir=tmp_path / "pressed", design=meta, seed=2,
                           backpressure=0.4, check=False)
    assert pressed.ok, pressed.describe()
    # The search prices the same interval as the accelerator's schedule.
    design = hwgen.estimate(graph, folding, device="xczu9eg", clock_mhz=200,
                            lut_lanes=lut_lanes)
    assert design.cycles_per_frame == meta["cycles_per_frame"]


def test_samples_per_cycle_must_divide_the_signal():
    with pytest.raises(ValueError, match=r"samples per cycle must divide the signal length "
                                         r"64; choose one of 1, 2, 4, 8, 16, 32, 64, not 3"):
        hwgen.samples_folding(signal_cnn(), 3)


def test_samples_per_cycle_are_for_a_signal():
    graph = Builder(4, (2, 4, 4)).conv("conv1", 3, 3, padding=1).graph
    with pytest.raises(ValueError, match=r"samples per cycle apply to a 1-D signal input "
                                         r"\(channels, length\), not an input of shape "
                                         r"\(2, 4, 4\)"):
        hwgen.samples_folding(graph, 2)


def test_a_rate_no_folding_reaches_names_the_layer():
    # A pool whose windows do not tile the signal takes one pixel a beat: 32 cycles for the
    # 32 pixels in, whatever the folding.
    b = Builder(3, (1, 32))
    b.conv("conv1", 4, 3, padding=1).requantize("act1")
    graph = b.then(g.maxpool1d("pool", 3, stride=1)).conv("conv2", 2, 1).graph
    assert hwgen.samples_folding(graph, 1)
    with pytest.raises(DesignError, match=r"2 samples per cycle need a frame interval of 16 "
                                          r"cycles; layer 'conv1' takes at least 32 at any "
                                          r"folding"):
        hwgen.samples_folding(graph, 2)


def test_the_mnist_cnn_at_several_pixels_per_cycle(tmp_path):
    """The MNIST CNN as the search folds it for xc7z020: under 784 cycles a frame (several
    pixels a cycle: whole windows of several positions, pools taking several pixels), bit-exact
    in cocotb with and without back-pressure, at the model's interval and latency."""
    torch.manual_seed(0)
    graph = export(fold_batchnorms(mnist_cnn().eval()), (1, 28, 28))
    design = hwgen.compile(graph, device="xc7z020", clock_mhz=100)
    meta = hwgen.generate(graph, tmp_path / "rtl", folding=design.folding,
                          lut_lanes=design.lut_lanes, device="xc7")
    assert meta["cycles_per_frame"] == design.cycles_per_frame < 784
    x = np.random.default_rng(0).integers(0, 256, (6, 1, 28, 28))
    result = sim.simulate(graph, x, out_dir=tmp_path / "flow", design=meta, seed=1,
                          check=False)
    assert result.ok, result.describe()
    assert result.cycles_per_frame == meta["cycles_per_frame"]
    assert result.frame_latency == meta["latency"]
    pressed = sim.simulate(graph, x, out_dir=tmp_path / "pressed", design=meta, seed=2,
                           backpressure=0.4, check=False)
    assert pressed.ok, pressed.describe()
