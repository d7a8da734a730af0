"""ImageNet-shape estimates: ResNet-18, ResNet-50 and MobileNet-V2 at 224x224 with the FILM-QNN
precisions (per filter 95% 4-bit / 5% 8-bit weights, 5-bit activations; random weights,
exact shapes, :mod:`quant.zoo`), folded by :func:`hwgen.explore.compile` for ZCU102 at
200 MHz and PYNQ-Z2 at 100 MHz.

For each pair it records MACs and weight bits, the fastest design that fits (or why none
does: the weights against the on-chip memory, with the numbers), the resources of a design
that holds every weight on chip (all layers folded to the slowest rate the search tried), and
the wall time of the estimate.

Usage::

    python benchmarks/imagenet.py [--out benchmarks/imagenet_estimates.json]
"""

import argparse
import json
import time
from pathlib import Path

from hwgen.explore import DesignError, compile as compile_design, estimate, greedy_folding
from hwgen.model import device
from quant import zoo

ROOT = Path(__file__).resolve().parent.parent
TARGETS = [("xczu9eg", 200.0, "ZCU102"), ("xc7z020", 100.0, "PYNQ-Z2")]
#: Published multiply-accumulates per 224x224 image (torchvision's model documentation).
PUBLISHED_GMACS = {"resnet18": 1.81, "resnet50": 4.09, "mobilenet_v2": 0.30}


def on_chip_bits(part):
    """Block RAM and LUT RAM bits of a part (RAMB18 = 18 Kbit; a LUT as RAM holds 64 bits)."""
    return {"bram_bits": part.bram18 * 18 * 1024, "lutram_bits": part.lutram * 64}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "imagenet_estimates.json"))
    args = parser.parse_args()
    results = {}
    for name, build in zoo.NETWORKS.items():
        start = time.perf_counter()
        graph = build()
        totals = zoo.totals(graph)
        entry = {"macs": totals["macs"], "gmacs": round(totals["macs"] / 1e9, 3),
                 "published_gmacs": PUBLISHED_GMACS[name], "weights": totals["weights"],
                 "weight_bits": totals["weight_bits"],
                 "filters_by_bits": {str(k): v for k, v in totals["filters_by_bits"].items()},
                 "build_seconds": round(time.perf_counter() - start, 2), "devices": {}}
        for part_name, clock, board in TARGETS:
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
            entry["devices"][part_name] = row
            print(f"{name:<13} {board:<8} {'fits' if row['fits'] else 'does not fit':<13} "
                  f"{row.get('fps', '-')} frames/s, {row['estimate_seconds']} s")
        results[name] = entry
    report = {"precisions": "per filter 95% 4-bit / 5% 8-bit weights (quant.zoo.filter_bits), "
                            "5-bit activations, 8-bit input",
              "networks": results}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
