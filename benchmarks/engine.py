"""The layer-sequential engine against its cycle model, layer by layer, and its simulation speed.

For each network it generates the engine (``hwgen.generate(arch="engine")``, ``--engine``
configuration), runs ``--frames`` inputs through :func:`sim.engine.simulate_engine` in
Verilator with a fixed DRAM read latency and no stalls (every tensor checked against the
golden; the model of :mod:`hwgen.engine.model` should equal the measured cycles), then one
frame with every AXI channel stalling at random (``--backpressure``: the model's error when the
memory is not the ideal one). Per layer: MACs, cycles by the model and measured, MAC
utilization (useful MACs over ``tm * tn`` per measured cycle), DRAM bytes read and written by
the model. For the first network it also measures the simulators' speed (simulated cycles per
wall-clock second of the frames) in Icarus and Verilator.

Networks: ``mnist_cnn`` and ``resnet_mnist`` (``build/<example>/<example>.qgraph`` when
``hwgen demo`` wrote it, otherwise trained for one epoch: cycles do not depend on the weights'
values) and ``resnet18`` (the zoo's ResNet-18 at ``--input-size``, FILM-QNN precisions, random
weights).

Usage::

    python benchmarks/engine.py [--out benchmarks/engine.json] [--frames N] [--latency L]
        [--backpressure P] [--engine SPEC] [--networks mnist_cnn,resnet_mnist,resnet18]
        [--input-size 32]
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import quant
from hwgen import generate
from hwgen.app.options import parse_engine
from hwgen.engine.model import metadata_cycles
from quant import zoo
from sim.engine import simulate_engine

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("mnist_cnn", "resnet_mnist")


def _log(message):
    print(message, file=sys.stderr, flush=True)


def network(name, input_size):
    """``(graph, where it came from)``."""
    if name == "resnet18":
        return (zoo.resnet18(input_size=input_size),
                f"quant.zoo.resnet18(input_size={input_size}), random weights")
    path = ROOT / "build" / name / f"{name}.qgraph"
    if path.is_file():
        return quant.load(path), str(path.relative_to(ROOT))
    from hwgen.app.examples import EXAMPLES as SPECS, train_example
    from quant import export

    model, _, _, _ = train_example(name, 0, 1, 1)
    return export.export(model, SPECS[name].input_shape), "trained for one epoch"


def random_inputs(graph, frames, seed=0):
    """``(frames, *input shape)`` integers drawn uniformly from the graph's input range."""
    lo, hi = graph.input.range
    return np.random.default_rng(seed).integers(lo, hi + 1, (frames, *graph.input.shape))


def layer_rows(cycles, result, config):
    """Per layer of the model ``cycles``: MACs, cycles modelled and measured (the mean over
    ``result``'s frames; ``None`` without a result), the model's error, MAC utilization and
    DRAM bytes by the model."""
    measured = None if result is None else result.layer_cycles.mean(axis=0)
    rows = []
    for i, layer in enumerate(cycles.layers):
        got = None if measured is None else float(measured[i])
        rows.append({"name": layer.name, "op": layer.op, "macs": layer.macs,
                     "cycles_model": layer.total, "cycles_measured": got,
                     "error": round((layer.total - got) / got, 5) if got else None,
                     "utilization_measured": round(layer.macs / (config.tm * config.tn * got),
                                                   4) if got else None,
                     "bytes_read": layer.bytes_read, "bytes_written": layer.bytes_written})
    return rows


def measure(name, config, args, work, speed):
    graph, source = network(name, args.input_size)
    started = time.perf_counter()
    meta = generate(graph, work / "rtl", arch="engine", engine=config)
    generation = time.perf_counter() - started
    cycles = metadata_cycles(meta, latency=args.latency)
    x = random_inputs(graph, args.frames)
    _log(f"{name}: {len(meta['layers'])} layers, model {cycles.total:,} cycles per frame; "
         f"simulating {args.frames} frames in Verilator")
    # One out_dir: the simulator is built once (cached by its Verilog), each run in its own
    # folder beneath.
    ideal = simulate_engine(graph, x, out_dir=work, design=meta,
                            simulator="verilator", latency=args.latency, progress=False)
    stalled = simulate_engine(graph, x[:1], out_dir=work, design=meta,
                              simulator="verilator", latency=args.latency,
                              backpressure=args.backpressure, seed=1, progress=False)
    frame = float(ideal.frame_cycles.mean())
    entry = {
        "model": source, "generation_seconds": round(generation, 1),
        "image_bytes": meta["image_bytes"], "frames": args.frames,
        "mismatches": ideal.mismatches + stalled.mismatches,
        "values_compared": ideal.values_compared + stalled.values_compared,
        "macs_per_frame": cycles.macs,
        "cycles_per_frame": {"model": cycles.total, "measured": frame,
                             "error": round((cycles.total - frame) / frame, 5)},
        "utilization_measured": round(cycles.macs / (config.tm * config.tn * frame), 4),
        "bytes_per_frame": {"read": sum(layer.bytes_read for layer in cycles.layers),
                            "written": sum(layer.bytes_written for layer in cycles.layers)},
        "layers": layer_rows(cycles, ideal, config),
        "stalled": {"backpressure": args.backpressure,
                    "cycles_measured": int(stalled.frame_cycles[0]),
                    "model_error": round((cycles.total - float(stalled.frame_cycles[0]))
                                         / float(stalled.frame_cycles[0]), 5),
                    "layer_errors": {row["name"]: row["error"]
                                     for row in layer_rows(cycles, stalled, config)}},
        "verilator": {"cycles_per_second": round(ideal.cycles_per_second),
                      "build_seconds": round(ideal.build_seconds, 1)},
    }
    if speed:
        icarus = simulate_engine(graph, x[:1], out_dir=work, design=meta,
                                 simulator="icarus", latency=args.latency, progress=False)
        entry["icarus"] = {"cycles_per_second": round(icarus.cycles_per_second),
                           "build_seconds": round(icarus.build_seconds, 1),
                           "mismatches": icarus.mismatches}
        entry["mismatches"] += icarus.mismatches
    _log(f"{name}: model {cycles.total:,}, measured {frame:,.0f} cycles per frame, "
         f"{entry['mismatches']} mismatches")
    return entry


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "engine.json"))
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--latency", type=int, default=8)
    parser.add_argument("--backpressure", type=float, default=0.2)
    parser.add_argument("--engine", default="weight_words=1024",
                        help="the engine's configuration, as hwgen --engine takes it")
    parser.add_argument("--networks", default="mnist_cnn,resnet_mnist,resnet18")
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--work", default=str(ROOT / "build" / "engine_benchmark"))
    args = parser.parse_args()
    config = parse_engine(args.engine)
    networks = args.networks.split(",")
    results = {name: measure(name, config, args, Path(args.work) / name, speed=i == 0)
               for i, name in enumerate(networks)}
    report = {
        "machine": {"python": platform.python_version(), "processor": platform.machine(),
                    "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "engine": config.as_dict(), "latency": args.latency,
        "note": "model: hwgen.engine.model at the fixed read latency; measured: Verilator, "
                "no stalls; 'stalled': one frame with every AXI channel pausing at random "
                "(the model does not include stalls). Simulation speeds are wall-clock "
                "figures on a shared machine.",
        "networks": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(args.out)
    return 0 if all(r["mismatches"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
