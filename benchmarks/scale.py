"""Wall time of a long simulation in one process and in shards on 1 and 2 local workers.

The design is the MNIST MLP (784-128-64-10, FILM-QNN precisions: about 5% of each layer's
filters 8-bit, the rest 4-bit, 5-bit activations) as ``hwgen demo`` generates it, from
``build/demo/mnist_mlp.qgraph`` when present, else with random weights of the same shape
and precisions (the simulation's cost does not depend on the weights' values). The inputs
are real MNIST test digits. The design is built once before the runs, so no run pays for
the build; each sharded run starts and stops its own ``LocalCluster``, which is part of its
wall time (also measured alone).

Runs: one simulator process (``sim.simulate`` without workers); 1 worker (2 shards);
2 workers (4 shards); 2 workers with ``--many-shards`` shards. Every run must equal the
golden and give identical outputs. Per-shard overhead, two ways: inside each shard, the
simulator run's wall time less its streaming loop (start-up, reset, pipeline fill, results);
and end to end, the extra wall time per extra shard between the 4-shard and the many-shard
runs on 2 workers, times 2 (two workers absorb the extra shards side by side).

The machine is shared: before each run the script waits (at most ``--quiet-wait`` seconds)
for the 1-minute load average to fall below ``--quiet-load``, and records the load average
at the start and end of every run.

Usage::

    python benchmarks/scale.py [--out benchmarks/scale.json] [--frames 200] [--sim icarus]
"""

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import quant
import sim
from hwgen import generate
from quant import datasets
from quant.graph import InputSpec, QGraph, dense, requantize
from sim.cluster import open_client
from sim.runner import build_design, load_design

ROOT = Path(__file__).resolve().parent.parent
SIZES = (784, 128, 64, 10)
#: 8-bit filters per layer: 5% rounded up to the demo's granularity (8, 4, 1).
HIGH = (8, 4, 1)


def _random_mlp(seed=0):
    """784-128-64-10 with the demo's share of 8-bit filters, 5-bit activations."""
    rng = np.random.default_rng(seed)
    nodes = []
    for k, (fan_in, fan_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        bits = np.full(fan_out, 4)
        bits[rng.choice(fan_out, HIGH[k], replace=False)] = 8
        hi = (1 << (bits - 1)) - 1
        weight = rng.integers(-hi[:, None], hi[:, None] + 1, (fan_out, fan_in))
        nodes.append(dense(f"fc{k + 1}", weight, rng.integers(-300, 300, fan_out), bits))
        if k < len(SIZES) - 2:
            nodes.append(requantize(f"act{k + 1}", rng.integers(1, 32, fan_out), 14 + k, 5))
    return QGraph(InputSpec((784,), 8, False), nodes)


def _model():
    path = ROOT / "build" / "demo" / "mnist_mlp.qgraph"
    if path.is_file():
        return quant.load(path), str(path.relative_to(ROOT))
    return _random_mlp(), "random weights, the demo's shape and precisions"


def _load():
    return round(os.getloadavg()[0], 2)


def _wait_quiet(limit, seconds):
    start = time.monotonic()
    while _load() >= limit and time.monotonic() - start < seconds:
        time.sleep(10)
    return round(time.monotonic() - start)


def _cpu_seconds():
    """CPU seconds of this process and of its finished, waited-for descendants (simulators,
    worker processes once their cluster is closed)."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                 resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def _timed(label, run, args):
    waited = _wait_quiet(args.quiet_load, args.quiet_wait)
    load_start, cpu, start = _load(), _cpu_seconds(), time.monotonic()
    result = run()
    wall = time.monotonic() - start
    cpu = _cpu_seconds() - cpu
    print(f"{label:<28} {wall:8.1f} s wall {cpu:8.1f} s CPU (load {load_start} -> {_load()})",
          file=sys.stderr)
    return result, {"wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 1),
                    "load_average_start": load_start, "load_average_end": _load(),
                    "waited_for_quiet_seconds": waited}


def _sharded_entry(result, timing):
    records = result.shards
    overhead = [r["run_seconds"] - r["sim_seconds"] for r in records]
    return timing | {
        "shards": len(records), "retried_shards": result.retried_shards,
        "shard_frames": [r["stop"] - r["start"] for r in records],
        "workers_used": len({r["worker"] for r in records}),
        "cycles_per_frame": result.cycles_per_frame, "frame_latency": result.frame_latency,
        "shard_run_seconds": [r["run_seconds"] for r in records],
        "shard_stream_seconds": [r["sim_seconds"] for r in records],
        "shard_overhead_seconds_mean": round(float(np.mean(overhead)), 2),
        "mismatches": result.mismatches}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "scale.json"))
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--sim", choices=sim.runner.SIMULATORS, default="icarus")
    parser.add_argument("--many-shards", type=int, default=16)
    parser.add_argument("--quiet-load", type=float, default=1.0,
                        help="wait for the 1-minute load average to fall below this")
    parser.add_argument("--quiet-wait", type=float, default=120,
                        help="seconds to wait for that at most before each run")
    args = parser.parse_args()

    graph, source = _model()
    _, _, x_test, _ = datasets.mnist()
    x = x_test[:args.frames].reshape(args.frames, 784)
    with tempfile.TemporaryDirectory(prefix="hwgen-scale-") as tmp:
        work = Path(tmp)
        meta = load_design(generate(graph, work / "rtl", device="xc7"))
        _, _, build_seconds = build_design(meta, out_dir=work / "sim", simulator=args.sim)

        def simulate(**kwargs):
            return sim.simulate(graph, x, out_dir=work / "sim", simulator=args.sim,
                                design=meta, progress=False, **kwargs)

        def cluster_start_stop():
            with open_client(workers=2):
                pass

        _, cluster = _timed("LocalCluster(2) start+stop", cluster_start_stop, args)
        single, single_timing = _timed("one process", simulate, args)
        runs = {}
        for label, kwargs in (("workers_1", dict(workers=1)), ("workers_2", dict(workers=2)),
                              ("workers_2_many_shards",
                               dict(workers=2, shards=args.many_shards))):
            result, timing = _timed(label, lambda: simulate(**kwargs), args)
            if not np.array_equal(result.outputs, single.outputs):
                raise SystemExit(f"{label}: outputs differ from the single-process run")
            runs[label] = _sharded_entry(result, timing)

    base, many = runs["workers_2"], runs["workers_2_many_shards"]
    extra = many["shards"] - base["shards"]
    report = {
        "benchmark": "benchmarks/scale.py",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "processor": platform.machine()},
        "design": {"model": source, "frames": args.frames, "simulator": args.sim,
                   "cycles_per_frame_model": meta["cycles_per_frame"],
                   "latency_model": meta["latency"],
                   "build_seconds_once_before_the_runs": round(build_seconds, 1)},
        "local_cluster_start_stop_seconds": cluster["wall_seconds"],
        "single_process": single_timing | {
            "cycles_per_frame": single.cycles_per_frame, "frame_latency": single.frame_latency,
            "stream_seconds": round(single.sim_seconds, 2), "mismatches": single.mismatches},
        "sharded": runs,
        "speedup": {
            "workers_2_over_workers_1": round(runs["workers_1"]["wall_seconds"]
                                              / base["wall_seconds"], 2),
            "workers_2_over_single_process": round(single_timing["wall_seconds"]
                                                   / base["wall_seconds"], 2),
            "workers_1_over_single_process": round(single_timing["wall_seconds"]
                                                   / runs["workers_1"]["wall_seconds"], 2)},
        "per_shard_overhead_seconds": {
            "inside_a_shard_mean": base["shard_overhead_seconds_mean"],
            "end_to_end_per_extra_shard": round(
                2 * (many["wall_seconds"] - base["wall_seconds"]) / extra, 2) if extra else None,
        },
        "notes": [
            "wall_seconds of a sharded run includes starting and stopping its LocalCluster, "
            "shipping the build to the workers and merging; the design was built before.",
            "inside_a_shard_mean: a shard's simulator run (cocotb start-up, reset, pipeline "
            "fill, writing results) less its streaming loop, averaged over the 4 shards of "
            "the 2-worker run.",
            "end_to_end_per_extra_shard: 2 x (wall of the many-shard run - wall of the "
            "4-shard run) / extra shards, both on 2 workers.",
            "The machine is shared with other work; the load averages say how quiet it was. "
            "cpu_seconds (this process and its simulators and worker processes, counted "
            "once they exit) is the work done, which other work does not inflate.",
        ],
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
