"""ImageNet-shape estimates: ResNet-18, ResNet-50 and MobileNet-V2 at 224x224 with the FILM-QNN
precisions (per filter 95% 4-bit / 5% 8-bit weights, 5-bit activations; random weights,
exact shapes, :mod:`quant.zoo`), folded by :func:`hwgen.explore.compile` for ZCU102 at
200 MHz and PYNQ-Z2 at 100 MHz.

For each pair it records MACs and weight bits, the fastest dataflow design that fits and what
bounds it (the search's answer for a rate just above it), or why none fits (the weights
against the on-chip memory, with the numbers), the resources of a
design that holds every weight on chip (all layers folded to the slowest rate the search
tried), and the wall time of the estimate; then the fastest layer-sequential engine
(:func:`hwgen.engine.search.search_engine`, DRAM at the part's bandwidth: 13 GB/s on
ZCU102, 1.6 on PYNQ-Z2): its configuration, frames/s
(the cycle model's cycles, bounded layer by layer by the DRAM bandwidth), the MAC array's
utilization, LUT/FF/DSP/BRAM use, DRAM bytes per frame and the bandwidth used, and what
bounds it; the same search as the board's Vivado project (``hwgen build --arch engine``)
has the engine, at the board's fabric clock, its bus spread over at most the four
high-performance ports the block design connects it through (``engine_as_built``; on ZCU102
also at the estimate's 200 MHz, ``hwgen build --clock-mhz 200``); and which architecture
``hwgen estimate --arch auto`` picks (the faster that fits). On ZCU102 each network has a
target rate (:data:`TARGETS_FPS`): the JSON says whether the picked architecture reaches it
and, if not, what bounds it.

Usage::

    python benchmarks/imagenet.py [--out benchmarks/imagenet_estimates.json]
"""

import argparse
import json
import time
from pathlib import Path

from boards import get_board
from boards.vivado import port_bits
from hwgen.engine.search import default_bandwidth, search_engine
from hwgen.explore import DesignError, compile as compile_design, estimate, greedy_folding
from hwgen.model import device
from quant import zoo

ROOT = Path(__file__).resolve().parent.parent
TARGETS = [("xczu9eg", 200.0, "ZCU102", "zcu102"), ("xc7z020", 100.0, "PYNQ-Z2", "pynq_z2")]
#: Published multiply-accumulates per 224x224 image (torchvision's model documentation).
PUBLISHED_GMACS = {"resnet18": 1.81, "resnet50": 4.09, "mobilenet_v2": 0.30}
#: Frame rates to reach on ZCU102 at 200 MHz by whichever architecture auto picks (1.25x the
#: Vitis AI DPU's ResNet-18 and ResNet-50 at a lower clock; the DPU's MobileNet-V2).
TARGETS_FPS = {"resnet18": 600.0, "resnet50": 240.0, "mobilenet_v2": 734.0}
TARGET_PART = "xczu9eg"


def engine_row(graph, part_name, clock, port_bits=None):
    """The fastest engine for ``graph`` on the part (its bus spread over ports of
    ``port_bits`` when given), or why none fits."""
    start = time.perf_counter()
    try:
        design = search_engine(graph, part_name, clock, port_bits=port_bits)
    except DesignError as error:
        return {"fits": False, "reason": str(error),
                "search_seconds": round(time.perf_counter() - start, 2)}
    report = design.as_dict()
    row = {"fits": True, "fps": report["fps"]}
    row |= {k: report[k] for k in ("cycles_per_frame", "model_cycles_per_frame",
                                   "dram_latency_cycles", "mac_utilization", "macs_per_frame",
                                   "dram_bytes_per_frame", "bandwidth_gbs",
                                   "bandwidth_used_gbs", "engine", "total", "utilization",
                                   "bounds")}
    row["configurations_priced"] = len(report["explored"])
    row["search_seconds"] = round(time.perf_counter() - start, 2)
    return row


def as_built_row(graph, part_name, board_name, clock=None):
    """The fastest engine as ``hwgen build --arch engine`` builds it for the board: at
    ``clock`` (the board's fabric clock by default), its bus spread over at most
    :data:`boards.vivado.HP_PORTS` high-performance ports, so a word of theirs a cycle each way
    is all its DRAM traffic."""
    board = get_board(board_name)
    bits, clock = port_bits(board), clock or board.target_mhz
    row = engine_row(graph, part_name, clock, port_bits=bits)
    out = {"clock_mhz": clock, "fits": row["fits"]}
    if row["fits"]:
        ports = row["engine"]["ports"]
        out["ports"] = (f"{ports} {bits}-bit high-performance port{'s' * (ports > 1)} at "
                        f"{clock:g} MHz: {ports * bits / 8 * clock / 1e3:g} GB/s each way")
        out |= {k: row[k] for k in ("fps", "cycles_per_frame", "mac_utilization",
                                    "dram_bytes_per_frame", "bandwidth_used_gbs")}
        out["engine"] = {k: row["engine"][k] for k in ("tm", "tn", "data_bits", "ports")}
        out["bandwidth_bound_layers"] = row["bounds"]["bandwidth"]["layers_bound"]
    else:
        out["reason"] = row["reason"]
    return out


def auto_pick(row):
    """What ``--arch auto`` picks: the faster architecture that fits."""
    fits = {arch: r["fps"] for arch, r in (("dataflow", row), ("engine", row["engine"]))
            if r["fits"]}
    if not fits:
        return {"chosen": None, "fps": None}
    chosen = max(fits, key=fits.get)
    return {"chosen": chosen, "fps": fits[chosen]}


def target_row(name, row):
    """Whether the picked architecture reaches the network's target, and what bounds it."""
    target, auto = TARGETS_FPS[name], row["auto"]
    out = {"fps": target, "reached": auto["fps"] is not None and auto["fps"] >= target,
           "by": auto["chosen"], "best_fps": auto["fps"]}
    if not out["reached"]:
        bounds = {"dataflow": row.get("reason", "fits")}
        if row["engine"]["fits"]:
            b = row["engine"]["bounds"]
            bounds["engine"] = {
                "largest_array_that_fits": row["engine"]["engine"]["tm"],
                "resources": {k: v["share"] for k, v in b["resources"].items()},
                "larger_arrays_rejected": b["larger_arrays_rejected"],
                "bandwidth": b["bandwidth"], "array": b["array"],
                "peak_fps_at_full_array_use": round(
                    row["clock_mhz"] * 1e6 * row["engine"]["engine"]["tm"] ** 2 /
                    row["engine"]["macs_per_frame"], 1)}
        else:
            bounds["engine"] = row["engine"]["reason"]
        out["bounds"] = bounds
    return out


def on_chip_bits(part):
    """Block RAM and LUT RAM bits of a part (RAMB18 = 18 Kbit; a LUT as RAM holds 64 bits)."""
    return {"bram_bits": part.bram18 * 18 * 1024, "lutram_bits": part.lutram * 64}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "imagenet_estimates.json"))
    parser.add_argument("--networks", nargs="*", default=list(zoo.NETWORKS),
                        choices=list(zoo.NETWORKS))
    args = parser.parse_args()
    results = {}
    for name in args.networks:
        build = zoo.NETWORKS[name]
        start = time.perf_counter()
        graph = build()
        totals = zoo.totals(graph)
        entry = {"macs": totals["macs"], "gmacs": round(totals["macs"] / 1e9, 3),
                 "published_gmacs": PUBLISHED_GMACS[name], "weights": totals["weights"],
                 "weight_bits": totals["weight_bits"],
                 "filters_by_bits": {str(k): v for k, v in totals["filters_by_bits"].items()},
                 "build_seconds": round(time.perf_counter() - start, 2), "devices": {}}
        for part_name, clock, board, board_name in TARGETS:
            part = device(part_name)
            memory = on_chip_bits(part)
            row = {"board": board, "clock_mhz": clock, **memory,
                   "weights_fit_in_bram": totals["weight_bits"] <= memory["bram_bits"]}
            start = time.perf_counter()
            try:
                design = compile_design(graph, device=part_name, clock_mhz=clock)
                row |= {"fits": True, "fps": round(design.fps, 2),
                        "cycles_per_frame": design.cycles_per_frame,
                        "latency_cycles": design.latency,
                        "latency_is_estimate": design.latency_is_estimate,
                        "total": design.total.as_dict(),
                        "utilization": {k: round(v, 4) for k, v in
                                        design.utilization().items()},
                        "folding": {k: list(v) for k, v in design.folding.items()}}
                # What bounds it: the search's answer for a rate just above it.
                try:
                    compile_design(graph, device=part_name, clock_mhz=clock,
                                   target_fps=design.fps * 1.001)
                except DesignError as error:
                    row["bound"] = str(error)
            except DesignError as error:
                row |= {"fits": False, "reason": str(error)}
                # What holding the whole network would take at about one frame per second.
                target = int(clock * 1e6)
                needed = estimate(graph, greedy_folding(graph, target), part_name, clock,
                                  latency=False)
                row["needs_at_1_fps"] = {"cycles_per_frame": needed.cycles_per_frame,
                                         "total": needed.total.as_dict(),
                                         "utilization": {k: round(v, 3) for k, v in
                                                         needed.utilization().items()}}
            row["estimate_seconds"] = round(time.perf_counter() - start, 2)
            row["engine"] = engine_row(graph, part_name, clock)
            row["engine_as_built"] = as_built_row(graph, part_name, board_name)
            if clock != get_board(board_name).target_mhz:
                # ``hwgen build --clock-mhz`` at the estimate's clock (no timing run here).
                row["engine_as_built_at_estimate_clock"] = as_built_row(
                    graph, part_name, board_name, clock)
            row["auto"] = auto_pick(row)
            if part_name == TARGET_PART:
                row["target"] = target_row(name, row)
            entry["devices"][part_name] = row
            print(f"{name:<13} {board:<8} dataflow "
                  f"{'fits' if row['fits'] else 'does not fit':<13} "
                  f"{row.get('fps', '-')} frames/s, {row['estimate_seconds']} s; engine "
                  f"{row['engine'].get('fps', 'does not fit')} frames/s, "
                  f"{row['engine']['search_seconds']} s (as built "
                  f"{row['engine_as_built'].get('fps', '-')}); auto picks "
                  f"{row['auto']['chosen']}",
                  flush=True)
        results[name] = entry
    report = {"precisions": "per filter 95% 4-bit / 5% 8-bit weights (quant.zoo.filter_bits), "
                            "5-bit activations, 8-bit input",
              "engine_dram_gbs": {part: default_bandwidth(device(part))
                                  for part, *_ in TARGETS},
              "engine_cycles": "the cycle model's (equal to Verilator's on the simulated AXI "
                               "RAM, one bus word a cycle, read latency 2), each layer at "
                               "least its DRAM bytes at the part's engine_dram_gbs",
              "engine_as_built": "the fastest engine as the Vivado project of hwgen build "
                                 "--arch engine has it: at the board's fabric clock, its bus "
                                 "spread over at most the four high-performance ports of the "
                                 "processing system (a word of each a cycle each way), the "
                                 "ports' logic in its resources; "
                                 "engine_as_built_at_estimate_clock: the same at the "
                                 "estimate's clock (hwgen build --clock-mhz; timing not "
                                 "checked without Vivado)",
              "networks": results}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
