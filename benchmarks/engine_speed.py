"""Simulation speed of the layer-sequential engine's Verilog in cocotb, Icarus and Verilator.

For each example it generates the engine (``hwgen.generate(arch="engine")`` with the given
``--tm``/``--tn``, the rest of :class:`~hwgen.engine.EngineConfig` at its defaults) and runs
``--frames`` test inputs through :func:`sim.engine.simulate_engine` in each simulator, every
tensor checked against the golden. It records the generation time, the one-time builds, the
measured cycles per frame and per layer, and the speed: simulated clock cycles per wall-clock
second of the frames (the DRAM model and register accesses in Python included).

The model comes from ``build/<example>/<example>.qgraph`` (written by ``hwgen demo
--example``) when present; otherwise the example is trained first (``--epochs`` shortens it:
the speed does not depend on the weights' values) and saved there.

Usage::

    python benchmarks/engine_speed.py [--out benchmarks/engine_speed.json] [--frames N]
        [--examples A,B] [--tm 16] [--tn 16] [--epochs N]
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
from hwgen.engine import EngineConfig
from sim.engine import simulate_engine

ROOT = Path(__file__).resolve().parent.parent


def _model(example, epochs):
    path = ROOT / "build" / example / f"{example}.qgraph"
    if path.is_file():
        return quant.load(path), str(path.relative_to(ROOT))
    from hwgen.app.examples import EXAMPLES, train_example
    from quant import export

    model, _, _, _ = train_example(example, 0, epochs, epochs)
    graph = export.export(model, EXAMPLES[example].input_shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    quant.save(graph, path)
    return graph, f"trained by this script ({epochs or 'the recipe'} epochs)"


def _inputs(graph, frames):
    from quant import datasets

    _, _, x, _ = datasets.mnist()
    return np.asarray(x[:frames]).reshape(frames, *graph.input.shape)


def measure(example, config, frames, epochs, work):
    graph, source = _model(example, epochs)
    start = time.perf_counter()
    meta = generate(graph, work / "rtl", arch="engine", engine=config)
    generation = time.perf_counter() - start
    x = _inputs(graph, frames)
    entry = {"model": source, "generation_seconds": round(generation, 1),
             "verilog_lines": sum(1 for _ in open(meta["verilog"])),
             "image_bytes": meta["image_bytes"], "layers": len(meta["layers"]),
             "frames": frames}
    for simulator in ("icarus", "verilator"):
        start = time.perf_counter()
        result = simulate_engine(graph, x, out_dir=work / simulator, design=meta,
                                 simulator=simulator, progress=False)
        wall = time.perf_counter() - start
        entry[simulator] = {
            "mismatches": result.mismatches, "values_compared": result.values_compared,
            "build_seconds": round(result.build_seconds, 1),
            "cycles": result.cycles, "sim_seconds": round(result.sim_seconds, 2),
            "cycles_per_second": round(result.cycles_per_second),
            "wall_seconds_with_build": round(wall, 1),
            "cycles_per_frame_measured": result.frame_cycles.tolist(),
            "layer_cycles_measured": {name: int(result.layer_cycles[0, i])
                                      for i, name in enumerate(result.layers)}}
        print(f"{example:<13} {simulator:<9} {result.cycles_per_second:>10,.0f} cycles/s "
              f"({result.cycles} cycles, {result.mismatches} mismatches, build "
              f"{result.build_seconds:.0f} s)", file=sys.stderr)
    return entry


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "engine_speed.json"))
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--examples", default="mnist_cnn")
    parser.add_argument("--tm", type=int, default=16)
    parser.add_argument("--tn", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--work", default=str(ROOT / "build" / "engine_speed"))
    args = parser.parse_args()
    config = EngineConfig(tm=args.tm, tn=args.tn)
    results = {example: measure(example, config, args.frames, args.epochs,
                                Path(args.work) / example)
               for example in args.examples.split(",")}
    report = {"machine": {"python": platform.python_version(), "processor": platform.machine(),
                          "cpus": os.cpu_count()},
              "engine": {"tm": config.tm, "tn": config.tn, "data_bits": config.data_bits},
              "note": "wall-clock figures on a shared machine; cycles per second of the "
                      "frames (the simulator's speed incl. the cocotb DRAM model and "
                      "register accesses); no back-pressure, latency 0",
              "examples": results}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
