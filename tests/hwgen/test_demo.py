"""The main job end to end on a few images: the report's promises hold."""

import json
from pathlib import Path

from hwgen.demo import run_demo


def test_demo_report(tmp_path):
    report = run_demo(out_dir=tmp_path, images=24, backpressure=0.5, seed=0, synth=False)
    assert json.loads((tmp_path / "report.json").read_text()) == report
    acc = report["accuracy"]
    assert acc["float"] >= 0.90
    assert abs(acc["golden"] - acc["float"]) <= 0.01
    assert acc["rtl"] == acc["golden_on_simulated"]
    assert report["rtl_vs_golden"] == {"images": 24, "outputs_compared": 240, "mismatches": 0}
    assert set(report["weight_bits_histogram"]) == {"4", "8"}
    assert report["dsp"]["predicted"] > 0
    for path in report["artifacts"].values():
        assert Path(path).exists()
