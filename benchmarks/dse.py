"""Our folding search against a FINN-style greedy folding, on the example networks.

For each example (``build/<example>/<example>.qgraph`` from ``hwgen demo --example``; the
MLP from ``build/demo``) and several frame-rate targets on PYNQ-Z2 (xc7z020, 100 MHz):

- ours: :func:`hwgen.explore.compile` with ``target_fps`` (any divisors, LUT or DSP lanes);
- greedy: :func:`hwgen.explore.greedy_folding` (per layer raise SIMD, then PE, until the layer
  meets the target; every lane packed onto DSPs), priced by the same cost model.

Both designs are generated and simulated in cocotb (Icarus, a few frames, no back-pressure):
the measured frame interval must meet the target, and the outputs must equal the golden.
Each generation and simulation is a job of its own: here one after the other, or on
``--workers N`` local worker processes or the Dask cluster at ``--cluster ADDRESS``.
``fits`` says whether a design stays within 80% of every resource of the device.
Targets are fractions of the fastest design that fits.

Usage::

    python benchmarks/dse.py [--out benchmarks/dse.json] [--examples A,B] [--frames N]
                             [--workers N | --cluster ADDRESS] [--merge]

``--merge`` keeps the cases of the examples this run does not measure from ``--out`` (an
example re-measured after its network changed); the summaries cover every case.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import quant
import sim
from hwgen import generate
from hwgen.app.examples import EXAMPLES
from hwgen.app.options import check_distribution
from hwgen.explore import compile as compile_design, estimate, greedy_folding
from sim.cluster import run_jobs

ROOT = Path(__file__).resolve().parent.parent
DEVICE, CLOCK = "xc7z020", 100.0
FRACTIONS = (0.05, 0.2, 0.5)


def _model(example):
    path = ROOT / "build" / ("demo" if example == "mnist_mlp" else example) / f"{example}.qgraph"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `hwgen demo --example {example}` first")
    return quant.load(path)


def _simulate(graph, build_options, frames):
    """Generate one design and simulate ``frames`` random inputs, in a folder of its own."""
    with tempfile.TemporaryDirectory(prefix="hwgen-dse-") as tmp:
        work = Path(tmp)
        meta = generate(graph, work / "rtl", **build_options)
        rng = np.random.default_rng(0)
        lo, hi = quant.numerics.int_range(graph.input.bits, graph.input.signed)
        x = rng.integers(lo, hi + 1, (frames, *graph.input.shape))
        result = sim.simulate(graph, x, out_dir=work / "sim", design=meta, progress=False)
    return {"cycles_per_frame_model": meta["cycles_per_frame"],
            "cycles_per_frame_measured": result.cycles_per_frame,
            "latency_model": meta["latency"], "latency_measured": result.frame_latency,
            "latency_model_is_estimate": meta["latency_is_estimate"],
            "mismatches": result.mismatches, "dsp_predicted": meta["dsp"]}


def _summary(design):
    return {"cycles_per_frame": design.cycles_per_frame, "fps": round(design.fps, 2),
            "total": design.total.as_dict(),
            "folding": {k: list(v) for k, v in design.folding.items()},
            "lut_lanes": {k: {str(b): n for b, n in v.items()} for k, v in
                          design.lut_lanes.items() if v},
            "rom_styles": design.rom_styles,
            "fits": all(share <= 0.8 for share in design.utilization().values())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "dse.json"))
    parser.add_argument("--examples", default=",".join(EXAMPLES))
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="generate and simulate on N local worker processes")
    parser.add_argument("--cluster", default=None, metavar="ADDRESS",
                        help="generate and simulate on the Dask cluster at ADDRESS")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other examples' cases already in --out")
    args = parser.parse_args()
    check_distribution(args.workers, args.cluster, None)
    cases, jobs = [], []
    for example in args.examples.split(","):
        graph = _model(example)
        fastest = compile_design(graph, device=DEVICE, clock_mhz=CLOCK)
        for fraction in FRACTIONS:
            target_fps = round(fastest.fps * fraction, 1)
            start = time.perf_counter()
            ours = compile_design(graph, device=DEVICE, clock_mhz=CLOCK, target_fps=target_fps)
            seconds = time.perf_counter() - start
            target_cycles = int(CLOCK * 1e6 // target_fps)
            greedy = estimate(graph, greedy_folding(graph, target_cycles), DEVICE, CLOCK)
            cases.append({"example": example, "target_fps": target_fps,
                          "target_cycles": target_cycles, "search_seconds": round(seconds, 2),
                          "ours": _summary(ours), "greedy": _summary(greedy)})
            o, g = ours.total, greedy.total
            cases[-1]["ours_no_more_dsp_and_lut"] = o.dsp <= g.dsp and o.lut <= g.lut
            cases[-1]["ours_strictly_fewer"] = (o.dsp < g.dsp or o.lut < g.lut) and \
                cases[-1]["ours_no_more_dsp_and_lut"]
            jobs += [(graph, design.build_options, args.frames) for design in (ours, greedy)]
    simulations = run_jobs(_simulate, jobs, workers=args.workers, client=args.cluster)
    for k, case in enumerate(cases):
        for label, simulation in zip(("ours", "greedy"), simulations[2 * k:2 * k + 2]):
            case[label]["simulation"] = simulation
            measured = simulation["cycles_per_frame_measured"]
            case[label]["meets_target"] = measured is not None and \
                measured <= case["target_cycles"]
        o, g = case["ours"]["total"], case["greedy"]["total"]
        print(f"{case['example']:<13} {case['target_fps']:>9} fps  ours DSP {o['dsp']:>4} LUT "
              f"{o['lut']:>7}  greedy DSP {g['dsp']:>4} LUT {g['lut']:>7}  measured "
              f"{case['ours']['simulation']['cycles_per_frame_measured']} / "
              f"{case['greedy']['simulation']['cycles_per_frame_measured']} "
              f"<= {case['target_cycles']}")
    out = Path(args.out)
    if args.merge and out.is_file():
        measured = {case["example"] for case in cases}
        kept = [c for c in json.loads(out.read_text())["cases"] if c["example"] not in measured]
        order = {name: k for k, name in enumerate(EXAMPLES)}   # an unknown example last
        cases = sorted(kept + cases, key=lambda c: order.get(c["example"], len(order)))
    report = {"device": DEVICE, "clock_mhz": CLOCK, "fractions_of_fastest": FRACTIONS,
              "cases": cases,
              "all_meet_target": all(c["ours"]["meets_target"] and c["greedy"]["meets_target"]
                                     for c in cases),
              "ours_never_more": all(c["ours_no_more_dsp_and_lut"] for c in cases),
              "ours_strictly_fewer_cases": sum(c["ours_strictly_fewer"] for c in cases)}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
