"""One whole ResNet-18 frame at 224 x 224 on the layer-sequential engine, in Verilator.

The zoo's ResNet-18 (FILM-QNN precisions, random weights) is compiled for the ``--engine``
configuration (``hwgen.generate(arch="engine")``) and one random input image runs through
:func:`sim.engine.simulate_engine` in Verilator (cocotbext-axi ``AxiRam`` as the DRAM, a fixed
read latency, no stalls). Every tensor the engine writes is compared with the golden, element
by element, layer by layer; each layer's cycles are measured from its ``layer_done`` pulse and
set against the cycle model (:mod:`hwgen.engine.model`). Reported: mismatches per layer,
cycles per frame and per layer (model and measured), MAC utilization, DRAM bytes by the model,
the generation, build and simulation wall times and the simulator's speed.

A frame takes tens of minutes, so the JSON is written before the simulation starts (the
model's figures, ``"status": "incomplete ..."``) and rewritten every ``--every`` seconds while
it runs, from the run's layer log: each finished layer's measured cycles and its output tensor
checked against the golden. When the run ends the simulator's own results replace them
(``"complete"``, or ``"failed: ..."``); a run stopped early (SIGINT or SIGTERM) leaves the
last snapshot, still marked incomplete.

``--reuse`` skips the generation when ``<work>/rtl<size>`` already holds a design whose
program is the one the compiler makes now (checked byte for byte).

Usage::

    python benchmarks/engine_resnet18.py [--out benchmarks/engine_resnet18.json]
        [--input-size 224] [--latency 2] [--engine weight_words=1024] [--seed 0]
        [--every 60] [--reuse]
"""

import argparse
import json
import os
import platform
import resource
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

import quant
from engine import layer_rows, network, random_inputs
from hwgen import generate
from hwgen.app.options import parse_engine
from hwgen.engine import TensorLayout, engine_golden
from hwgen.engine.compiler import compile_program
from hwgen.engine.model import metadata_cycles
from sim.engine import load_engine_design, simulate_engine
from sim.errors import SimulationError

ROOT = Path(__file__).resolve().parent.parent
NOTE = ("Engine: the default 16 x 16 engine with a weight buffer of 1024 words per bank (the "
        "default 512 cannot hold one fold of layer4's 3 x 3 convolutions: 576 words). A "
        "configuration from the ZCU102 search has many times more MACs per cycle and was not "
        "simulated: its Verilator model would not build and run a frame in the time this "
        "benchmark had. model: hwgen.engine.model at the fixed read latency; measured: "
        "Verilator, no AXI stalls; DRAM bytes are the model's. Wall times and speeds are on a "
        "shared 2-core machine (see load_average).")


def _log(message):
    print(message, file=sys.stderr, flush=True)


def _peak_memory_mb():
    """Peak resident memory of this process and of its largest child (the simulator or a
    compiler of its build), in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"python": round(own), "largest_child": round(child)}


def _write(path, report):
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(path)


def _design(graph, config, folder, reuse):
    """``(metadata, generation seconds or None when reused)``."""
    if reuse and (folder / "metadata.json").is_file():
        meta = load_engine_design(folder)
        program = compile_program(graph, config)
        if meta["config"] == config and \
                Path(meta["image"]).read_bytes() == bytes(program.image):
            return {k: v for k, v in meta.items() if k != "config"}, None
        _log(f"{folder} holds another program; generating")
    started = time.perf_counter()
    meta = generate(graph, folder, arch="engine", engine=config)
    return meta, time.perf_counter() - started


def _measured(report, cycles, result, config):
    """``report`` with the simulation's figures filled in."""
    frame = float(result.frame_cycles[0])
    rows = layer_rows(cycles, result, config)
    for row, mismatches in zip(rows, result.layer_mismatches.values()):
        row["mismatches"] = mismatches
    report.pop("partial", None)
    report["status"] = "complete" if result.ok else "complete, with mismatches"
    report["mismatches"] = result.mismatches
    report["values_compared"] = result.values_compared
    report["layers_checked"] = len(result.layers)
    report["layers_with_mismatches"] = sum(1 for n in result.layer_mismatches.values() if n)
    report["cycles_per_frame"] |= {"measured": frame,
                                   "cycles_register": int(result.cycles_register[0]),
                                   "error": round((cycles.total - frame) / frame, 6)}
    report["utilization_measured"] = round(cycles.macs / (config.tm * config.tn * frame), 4)
    report["verilator"] = {"cycles_simulated": result.cycles,
                           "sim_seconds": round(result.sim_seconds, 1),
                           "run_wall_seconds": round(result.wall_seconds, 1),
                           "build_seconds": round(result.build_seconds, 1),
                           "cycles_per_second": round(result.cycles_per_second)}
    report["layers"] = rows
    return report


class _Snapshots:
    """The report, rewritten from the running simulation's layer log (the newest run folder
    under ``work / "sim_run"`` made after ``since`` for ``image``): each finished layer's
    measured cycles and its output tensor compared with the golden."""

    def __init__(self, out, report, meta, golden, work, since):
        self.out, self.report, self.meta, self.golden = out, report, meta, golden
        self.work, self.since = work, since
        self.checked = {}               # layer index: mismatches (a layer's tensor is final)

    def _run(self):
        image = str(Path(self.meta["image"]).resolve())
        runs = [path.parent for path in (self.work / "sim_run").glob("*/config.json")
                if path.stat().st_mtime >= self.since
                and json.loads(path.read_text())["image"] == image]
        return max(runs, key=lambda run: (run / "config.json").stat().st_mtime, default=None)

    def take(self):
        run = self._run()
        log = None if run is None else run / "layers.txt"
        if log is None or not log.is_file():
            return
        lines = [[int(v) for v in line.split()] for line in log.read_text().splitlines()]
        ends = [cycle for _, cycle in lines]        # the frame's start, then each layer's end
        layers = self.meta["layers"]
        for i in range(len(ends) - 1):
            if i not in self.checked:
                layout = TensorLayout.from_metadata(self.meta["tensors"][layers[i]["output"]])
                got = layout.unpack((run / f"layer{i}.bin").read_bytes())
                self.checked[i] = int(np.count_nonzero(got != self.golden[layers[i]["output"]]))
        report = self.report
        done = len(ends) - 1
        rows = report["layers"]
        for i in range(done):
            got = ends[i + 1] - ends[i]
            rows[i] |= {"cycles_measured": got,
                        "error": round((rows[i]["cycles_model"] - got) / got, 5),
                        "utilization_measured": round(rows[i]["macs"] / (
                            report["engine"]["tm"] * report["engine"]["tn"] * got), 4),
                        "mismatches": self.checked[i]}
        elapsed = time.time() - (run / "config.json").stat().st_mtime
        simulated = ends[-1] - ends[0]
        report["status"] = (f"incomplete: {done} of {len(layers)} layers finished "
                            f"({simulated:,} of the model's {report['cycles_per_frame']['model']:,}"
                            f" cycles) when this was written; those layers' tensors checked")
        report["partial"] = {
            "layers_done": done, "frame_cycles_so_far": simulated,
            "mismatches_so_far": sum(self.checked[i] for i in range(done)),
            "values_compared_so_far": sum(int(self.golden[layers[i]["output"]].size)
                                          for i in range(done)),
            "wall_seconds_since_run_start": round(elapsed, 1),
            "cycles_per_second_to_last_layer_end": round(ends[-1] / (
                log.stat().st_mtime - (run / "config.json").stat().st_mtime)) if done else None,
            "load_average": os.getloadavg(),
            "run": str(run.relative_to(ROOT)) if run.is_relative_to(ROOT) else str(run)}
        _write(self.out, report)

    def every(self, seconds, stop):
        while not stop.wait(seconds):
            try:
                self.take()
            except (OSError, ValueError) as error:   # a file caught half written: next time
                _log(f"snapshot skipped: {error}")


def _interrupt(signum, frame):
    raise KeyboardInterrupt       # SIGTERM stops the run as Ctrl-C does


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "engine_resnet18.json"))
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--latency", type=int, default=2)
    parser.add_argument("--engine", default="weight_words=1024",
                        help="the engine's configuration, as hwgen --engine takes it")
    parser.add_argument("--seed", type=int, default=0, help="seed of the input image")
    parser.add_argument("--every", type=float, default=60,
                        help="seconds between snapshots of the running simulation")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the design generated by an earlier run when its program "
                             "is the same")
    parser.add_argument("--work", default=str(ROOT / "build" / "engine_resnet18"))
    args = parser.parse_args()
    config = parse_engine(args.engine)
    # One folder for every input size: the simulator, built once, is reused (the engine's
    # Verilog does not depend on the network).
    work = Path(args.work)

    graph, source = network("resnet18", args.input_size)
    meta, generation = _design(graph, config, work / f"rtl{args.input_size}", args.reuse)
    cycles = metadata_cycles(meta, latency=args.latency)
    x = random_inputs(graph, 1, seed=args.seed)
    report = {
        "status": "incomplete: the simulation had not started when this was written",
        "machine": {"python": platform.python_version(), "processor": platform.machine(),
                    "cpus": os.cpu_count(), "load_average_start": os.getloadavg()},
        "model": source, "input": f"one image, uniform in the input range, seed {args.seed}",
        "input_size": args.input_size, "engine_spec": args.engine,
        "engine": config.as_dict(), "latency": args.latency, "note": NOTE,
        "generation_seconds": None if generation is None else round(generation, 1),
        "image_bytes": meta["image_bytes"], "macs_per_frame": cycles.macs,
        "cycles_per_frame": {"model": cycles.total},
        "bytes_per_frame": {"read": sum(layer.bytes_read for layer in cycles.layers),
                            "written": sum(layer.bytes_written for layer in cycles.layers)},
        "layers": layer_rows(cycles, None, config),
    }
    _write(args.out, report)
    _log(f"resnet18 at {args.input_size}: {len(meta['layers'])} layers, model "
         f"{cycles.total:,} cycles per frame; simulating one frame in Verilator")

    golden = {value: frames[0] for value, frames in
              engine_golden(meta["layers"], quant.run(graph, x)).items()}
    snapshots = _Snapshots(args.out, report, meta, golden, work, time.time())
    stop = threading.Event()
    watcher = threading.Thread(target=snapshots.every, args=(args.every, stop), daemon=True)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.perf_counter()
    result = None
    watcher.start()
    try:
        result = simulate_engine(graph, x, out_dir=work, design=meta, simulator="verilator",
                                 latency=args.latency, check=False, progress=False)
    except SimulationError as error:
        report["status"] = f"failed: {error}"
    except KeyboardInterrupt:
        stop.set()
        watcher.join()
        snapshots.take()
        report["status"] = report["status"].replace("incomplete:", "incomplete (stopped):", 1)
        _write(args.out, report)
        _log(f"stopped: {report['status']}")
        return 1
    finally:
        stop.set()
        watcher.join()
    if result is not None:
        report = _measured(report, cycles, result, config)
    report["simulation_wall_seconds"] = round(time.perf_counter() - started, 1)
    report["peak_memory_mb"] = _peak_memory_mb()
    report["machine"]["load_average_end"] = os.getloadavg()
    _write(args.out, report)
    print(args.out)
    if result is not None:
        _log(f"model {cycles.total:,}, measured {result.frame_cycles[0]:,} cycles per frame, "
             f"{result.mismatches} mismatches in {len(result.layers)} layers, "
             f"{result.cycles_per_second:,.0f} cycles/s")
    return 0 if result is not None and result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
