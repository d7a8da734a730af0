"""The main job end to end on a few images: the report's promises hold."""

import functools
import json
from pathlib import Path

import pytest

import hwgen.synth
from hwgen.app.demo import run_demo
from hwgen.synth import SynthesisError


@pytest.mark.synth
def test_demo_report_survives_a_synthesis_that_fails(tmp_path, monkeypatch):
    # yosys cannot finish in half a second: the report keeps the simulation's results, says
    # why synthesis failed, and the run still fails.
    monkeypatch.setattr(hwgen.synth, "synthesize",
                        functools.partial(hwgen.synth.synthesize, timeout=0.5))
    with pytest.raises(SynthesisError, match="did not finish"):
        run_demo(out_dir=tmp_path, images=24, backpressure=0.5, seed=0, synth=True)
    report = json.loads((tmp_path / "report.json").read_text())
    assert "did not finish" in report["dsp"]["synthesis_error"]
    acc = report["accuracy"]
    assert acc["float"] >= 0.90
    assert abs(acc["golden"] - acc["float"]) <= 0.01
    assert acc["rtl"] == acc["golden_on_simulated"]
    assert report["rtl_vs_golden"] == {"images": 24, "outputs_compared": 240, "mismatches": 0,
                                       "shards": 1, "retried_shards": 0}
    assert set(report["weight_bits_histogram"]) == {"4", "8"}
    assert report["dsp"]["predicted"] > 0
    for path in report["artifacts"].values():
        assert Path(path).exists()
