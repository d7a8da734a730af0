"""Peak detection quality at 2, 3 and 4 weight bits against the classic detectors.

For each weight width it runs the peaks demo (``hwgen demo --example peaks --weight-bits W
--sim verilator --images 1000 --no-synth --samples-per-cycle 4``): train the QNN, export it,
score the golden on the 1,000 test signals, generate Verilog and simulate every test signal in
Verilator against the golden. The design takes ``--samples-per-cycle`` samples a cycle (4 by
default: the outputs are the same at any rate, and cocotb's time is per cycle). The RTL's F1
is then measured on the same 1,000 signals as the golden's and as the classic detectors'
(``scipy.signal.find_peaks`` and the centroid detector, tuned on training signals; every run
tunes and scores them again, and the JSON records them once). F1 counts a detection within 3
samples of a true peak (:func:`quant.peaks.detection_scores`).

Usage::

    python benchmarks/peaks_quality.py [--out benchmarks/peaks_quality.json] [--images N]
                                       [--weight-bits 2,3,4] [--sim verilator|icarus] [--merge]
                                       [--samples-per-cycle P]

``--merge`` adds the widths measured to those already in ``--out`` (runs of different widths
may go side by side, one process each).
"""

import argparse
import fcntl
import json
import platform
import sys
import time
from pathlib import Path

import torch

from hwgen.app.demo import run_demo
from hwgen.app.examples import PEAKS_WEIGHT_BITS
from quant.train import PEAK_QAT

ROOT = Path(__file__).resolve().parent.parent
CLASSIC = ("find_peaks", "centroid")


def measure(weight_bits, images, simulator, work, samples_per_cycle):
    started = time.perf_counter()
    report = run_demo("peaks", out_dir=work / f"w{weight_bits}", images=images,
                      simulator=simulator, synth=False, weight_bits=weight_bits,
                      samples_per_cycle=samples_per_cycle)
    f1 = report["f1"]
    entry = {"qat": PEAK_QAT[weight_bits], "float": f1["float"],
             "fake_quant": f1["fake_quant"], "golden": f1["golden"],
             "rtl": f1["rtl"], "golden_on_simulated": f1["golden_on_simulated"],
             "rtl_signals": report["rtl_vs_golden"]["images"],
             "rtl_mismatches": report["rtl_vs_golden"]["mismatches"],
             "macs_per_frame": report["macs_per_frame"],
             "cycles_per_frame": report["cycles_per_frame"],
             "samples_per_cycle": samples_per_cycle,
             "seconds": round(time.perf_counter() - started, 1)}
    classic = {name: f1[name] for name in CLASSIC}
    print(f"W{weight_bits}: golden {entry['golden']:.4f}, RTL {entry['rtl']:.4f} on "
          f"{entry['rtl_signals']} signals ({entry['rtl_mismatches']} mismatches); "
          + ", ".join(f"{k} {v:.4f}" for k, v in classic.items()), file=sys.stderr)
    return entry, classic


def _summary(qnn, classic, simulator):
    best = max(classic.values())
    return {
        "machine": {"python": platform.python_version(), "processor": platform.machine(),
                    "torch": torch.__version__},
        "note": "F1 on the 1,000 test signals of quant.peaks.dataset() (tolerance 3 samples); "
                "golden: the integer QGraph; rtl: the generated Verilog in "
                f"{simulator} on the first rtl_signals of them (bit-exact to the golden); "
                "the recipes were chosen on separate validation signals, never on these",
        "test_signals": 1000,
        "classic": classic,
        "best_classic": best,
        "qnn": dict(sorted(qnn.items())),
        "every_qnn_at_least_best_classic": all(
            q["golden"] >= best and q["rtl"] >= best and q["rtl_signals"] == 1000
            for q in qnn.values()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "peaks_quality.json"))
    parser.add_argument("--images", type=int, default=1000,
                        help="test signals simulated in RTL (default: all 1,000)")
    parser.add_argument("--weight-bits", default=",".join(map(str, PEAKS_WEIGHT_BITS)))
    parser.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    parser.add_argument("--work", default=str(ROOT / "build" / "peaks_quality"))
    parser.add_argument("--samples-per-cycle", type=int, default=4,
                        help="the simulated design's samples a cycle (default 4)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the widths already in --out that this run does not measure")
    args = parser.parse_args()
    torch.set_num_threads(1)
    widths = [int(w) for w in args.weight_bits.split(",")]
    qnn, classic = {}, None
    for weight_bits in widths:
        qnn[f"W{weight_bits}"], scores = measure(weight_bits, args.images, args.sim,
                                                 Path(args.work), args.samples_per_cycle)
        if classic is not None and scores != classic:
            raise RuntimeError(f"the classic detectors scored {scores} in one run and "
                               f"{classic} in another; they should not depend on the QNN")
        classic = scores
    Path(args.work).mkdir(parents=True, exist_ok=True)
    with open(Path(args.work) / "merge.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # side-by-side runs merge one at a time
        out = Path(args.out)
        if args.merge and out.is_file():
            earlier = json.loads(out.read_text())
            if earlier["classic"] != classic:
                raise RuntimeError(f"the classic detectors scored {classic}, in {out} "
                                   f"{earlier['classic']}; the runs are not comparable")
            qnn = {**earlier["qnn"], **qnn}
        out.write_text(json.dumps(_summary(qnn, classic, args.sim), indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
