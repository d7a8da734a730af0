"""Generation time and simulation speed of the example networks.

For each example (``hwgen demo --example NAME``) it records the time to compile the QGraph
and write Verilog and metadata (:func:`hwgen.generate`), and the speed of a cocotb run of
``--frames`` test inputs in Icarus and in Verilator: simulated clock cycles per wall-clock
second of the streaming loop, plus the one-time Verilator build. Every run is also checked
against the golden (0 mismatches) and its frame interval against the cycle model.

The models come from ``build/<example>/<example>.qgraph`` (written by ``hwgen demo
--example``) when present; otherwise the example is trained first (minutes).

Usage::

    python benchmarks/speed.py [--out benchmarks/speed.json] [--frames N] [--examples A,B]
"""

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import quant
import sim
from hwgen import generate
from hwgen.app.examples import EXAMPLES, train_example

ROOT = Path(__file__).resolve().parent.parent


def _model(example):
    path = ROOT / "build" / example / f"{example}.qgraph"
    if example == "mnist_mlp":
        path = ROOT / "build" / "demo" / "mnist_mlp.qgraph"
    if path.is_file():
        return quant.load(path), str(path.relative_to(ROOT))
    from quant import export
    model, _, _, _ = train_example(example, 0, None, None)
    return export.export(model, EXAMPLES[example].input_shape), "trained by this script"


def _inputs(example, graph, frames):
    if example == "peaks":
        from quant import peaks
        _, _, x, _ = peaks.dataset()
        return x[:frames, None, :]
    from quant import datasets
    _, _, x, _ = datasets.mnist()
    return x[:frames].reshape(frames, *graph.input.shape)


def measure(example, frames, work):
    graph, source = _model(example)
    start = time.perf_counter()
    meta = generate(graph, work / "rtl")
    generation = time.perf_counter() - start
    x = _inputs(example, graph, frames)
    entry = {"model": source, "macs_per_frame": meta["macs_per_frame"],
             "cycles_per_frame_model": meta["cycles_per_frame"],
             "generation_seconds": round(generation, 2),
             "verilog_lines": sum(1 for _ in open(meta["verilog"])), "frames": frames}
    for simulator in ("icarus", "verilator"):
        start = time.perf_counter()
        result = sim.simulate(graph, x, out_dir=work / simulator, simulator=simulator,
                              design=meta, progress=False)
        wall = time.perf_counter() - start
        entry[simulator] = {
            "cycles": result.cycles, "sim_seconds": round(result.sim_seconds, 2),
            "cycles_per_second": round(result.cycles_per_second),
            "wall_seconds_with_build": round(wall, 1), "mismatches": result.mismatches,
            "cycles_per_frame_measured": result.cycles_per_frame}
        print(f"{example:<13} {simulator:<9} {result.cycles_per_second:>10,.0f} cycles/s "
              f"({result.cycles} cycles, {result.mismatches} mismatches)", file=sys.stderr)
    return entry


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "speed.json"))
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--examples", default=",".join(EXAMPLES))
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="hwgen-speed-") as tmp:
        for example in args.examples.split(","):
            results[example] = measure(example, args.frames, Path(tmp) / example)
    report = {"machine": {"python": platform.python_version(), "processor": platform.machine(),
                          "cpus": __import__("os").cpu_count()},
              "note": "wall-clock figures on a shared machine; cycles per second of the "
                      "streaming loop (the simulator's speed incl. the cocotb agents)",
              "examples": results}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
