"""The built-in examples end to end: RTL equals the golden under back-pressure, the measured
frame interval equals the model, the residual network never deadlocks, and (slow tier) every
example reaches its accuracy or F1 target."""

import json

import numpy as np
import pytest

from hwgen.app.demo import run_demo

import sim


def _check(report, images):
    assert report["rtl_vs_golden"]["images"] == images
    assert report["rtl_vs_golden"]["mismatches"] == 0
    assert report["rtl_vs_golden"]["outputs_compared"] > 0
    assert report["cycles_per_frame"]["measured"] == report["cycles_per_frame"]["model"]


@pytest.fixture(scope="module")
def quick_resnet(tmp_path_factory):
    """resnet_mnist after one float and one QAT epoch: a real model, if not a good one."""
    out = tmp_path_factory.mktemp("resnet_mnist")
    report = run_demo("resnet_mnist", out_dir=out, images=20, epochs=1, float_epochs=1,
                      backpressure=0.5, seed=1, synth=False)
    return report, out


def test_quick_resnet_matches_the_golden_under_backpressure(quick_resnet):
    report, out = quick_resnet
    assert json.loads((out / "report.json").read_text()) == report
    _check(report, 20)
    assert report["fifo_depths"]["block1.add_fifo1"] > 1   # the identity shortcut waits
    assert report["accuracy"]["rtl"] == report["accuracy"]["golden_on_simulated"]


@pytest.mark.parametrize("pattern", ["bursty:20,80", "stall:1500,5000"])
def test_resnet_never_deadlocks(quick_resnet, pattern):
    """Bursts of ready, and the output stalled for 5,000 cycles with frames in flight, with
    the analytical FIFO depths: every frame comes out, equal to the golden."""
    report, out = quick_resnet
    import quant
    graph = quant.load(report["artifacts"]["qgraph"])
    meta = json.loads((out / "rtl" / "metadata.json").read_text())
    x = np.random.default_rng(2).integers(0, 256, (6, 1, 28, 28))
    result = sim.simulate(graph, x, out_dir=out / pattern.split(":")[0], design=meta,
                          backpressure=pattern, seed=3)
    assert result.mismatches == 0 and len(result.outputs) == 6


def test_weight_bits_are_the_peaks_examples_alone(tmp_path):
    with pytest.raises(ValueError, match=r"weight_bits selects the peaks example's weight "
                                         r"width; mnist_mlp has its own mixed precision"):
        run_demo("mnist_mlp", out_dir=tmp_path / "a", weight_bits=2)
    with pytest.raises(ValueError, match=r"weight_bits must be one of 2, 3, 4 for peaks, "
                                         r"not 5"):
        run_demo("peaks", out_dir=tmp_path / "b", weight_bits=5)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_peaks_demo_at_four_samples_per_cycle(tmp_path):
    """A quick peak detector folded for 4 samples a cycle: 64 cycles per 256-sample signal,
    measured as the model says, the RTL equal to the golden under back-pressure."""
    report = run_demo("peaks", out_dir=tmp_path, images=12, epochs=1, float_epochs=1,
                      backpressure=0.3, synth=False, samples_per_cycle=4)
    _check(report, 12)
    assert report["samples_per_cycle"] == {"requested": 4, "model": 4.0, "measured": 4.0}
    assert report["cycles_per_frame"]["model"] == 64
    assert report["f1"]["rtl"] == report["f1"]["golden_on_simulated"]


@pytest.mark.slow
@pytest.mark.parametrize("example, target", [("mnist_cnn", 0.97), ("resnet_mnist", 0.97)])
def test_mnist_examples_reach_their_accuracy(example, target, tmp_path):
    report = run_demo(example, out_dir=tmp_path, images=100, backpressure=0.5, synth=False)
    _check(report, 100)
    assert report["accuracy"]["golden"] >= target
    assert report["accuracy"]["rtl"] == report["accuracy"]["golden_on_simulated"]


@pytest.mark.slow
@pytest.mark.parametrize("weight_bits", [2, 3, 4])
def test_peaks_example_beats_the_classic_detectors(weight_bits, tmp_path):
    """Pistellato et al.'s claim down to ternary weights: on the same test signals the
    golden's F1 is at least the best classic detector's, and the RTL's equals the golden's."""
    report = run_demo("peaks", out_dir=tmp_path, images=100, backpressure=0.5, synth=False,
                      weight_bits=weight_bits)
    _check(report, 100)
    assert report["weight_bits"] == weight_bits
    f1 = report["f1"]
    assert f1["golden"] >= max(f1["find_peaks"], f1["centroid"])
    assert f1["rtl"] == f1["golden_on_simulated"]


@pytest.mark.slow
@pytest.mark.verilator
@pytest.mark.parametrize("example", ["mnist_cnn", "resnet_mnist"])
def test_mnist_examples_on_the_engine(example, tmp_path):
    """The layer-sequential engine on a DRAM that pauses every AXI channel and varies its
    latency: every tensor of 50 test digits equals the golden, the golden is as accurate as in
    the dataflow demo, and a pause-free run takes the model's cycles, layer by layer."""
    report = run_demo(example, out_dir=tmp_path, images=50, backpressure=0.2, latency=(2, 12),
                      simulator="verilator", synth=False, arch="engine")
    assert report["architecture"] == "engine"
    assert report["rtl_vs_golden"]["images"] == 50
    assert report["rtl_vs_golden"]["mismatches"] == 0
    assert report["rtl_vs_golden"]["tensors"] == len(report["layers"])
    assert report["accuracy"]["golden"] >= 0.97
    assert report["accuracy"]["rtl"] == report["accuracy"]["golden_on_simulated"]
    assert report["cycles_per_frame"]["measured"] == report["cycles_per_frame"]["model"]
    for layer in report["layers"]:
        assert layer["cycles"]["measured"] == layer["cycles"]["model"], layer
