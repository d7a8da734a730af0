"""Generated Verilog against the golden: run both, compare every output exactly."""

import contextlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from quant.numerics import is_int

from .errors import SimulationError
from .runner import (SIMULATORS, backpressure_label, check_backpressure, input_problems,
                     load_design, run_design)

__all__ = ["Mismatch", "SimulationResult", "simulate", "steady_cycles_per_frame",
           "pooled_cycles_per_frame"]


@dataclass(frozen=True)
class Mismatch:
    """One output value where the RTL differs from the golden."""
    input_index: int
    output_index: tuple
    expected: int
    got: int

    def describe(self):
        return (f"input {self.input_index}, output index {self.output_index}: "
                f"expected {self.expected}, got {self.got}")


def steady_cycles_per_frame(frame_cycles):
    """Steady-state cycles per frame from the completion cycles of consecutive frames.

    With completion cycles ``c[0..N-1]`` and ``h = max(1, N // 2)``, the result is
    ``(c[N-1] - c[h-1]) / (N - h)``: the mean interval between consecutive completions over
    the second half of the run, which skips the pipeline fill. A design that finishes a frame
    every ``n`` cycles gives exactly ``n`` (with ``backpressure == 0`` the run is
    deterministic, so this is the design's throughput; with back-pressure it is the throughput
    under that back-pressure). ``None`` for fewer than two frames.
    """
    c = np.asarray(frame_cycles, dtype=np.int64)
    n = len(c)
    if n < 2:
        return None
    h = max(1, n // 2)
    return float(c[n - 1] - c[h - 1]) / (n - h)


def pooled_cycles_per_frame(runs):
    """Steady-state cycles per frame of several runs of one design (the shards of a run).

    ``runs`` holds each run's completion cycles, counted from its own reset. Each run with
    ``n >= 2`` frames contributes the second half of its intervals, as in
    :func:`steady_cycles_per_frame`: ``c[n-1] - c[h-1]`` cycles over ``n - h`` intervals;
    the result is the total cycles over the total intervals. A design that finishes a frame
    every ``n`` cycles gives exactly ``n`` however the frames were split. ``None`` when no
    run has two frames.
    """
    cycles = intervals = 0
    for c in runs:
        c = np.asarray(c, dtype=np.int64)
        n = len(c)
        if n < 2:
            continue
        h = max(1, n // 2)
        cycles += int(c[n - 1] - c[h - 1])
        intervals += n - h
    return cycles / intervals if intervals else None


@dataclass
class SimulationResult:
    """The outcome of :func:`simulate`.

    Attributes
    ----------
    outputs, golden : numpy.ndarray
        ``(N, *output shape)`` int64: what the RTL sent and what the golden computed.
    frame_cycles : numpy.ndarray
        Cycle at which each output frame's last beat transferred (cycle ``c`` is the ``c``-th
        rising clock edge after reset is released; in a sharded run, after the reset of the
        frame's shard).
    input_cycles : numpy.ndarray
        Cycle at which each input frame's first beat transferred (the same clock).
    cycles_per_frame : float or None
        Measured steady-state cycles per frame, see :func:`steady_cycles_per_frame`; of a
        sharded run, the shards' pooled, see :func:`pooled_cycles_per_frame`.
    frame_latency : int
        Cycles from frame 0's first input beat to its last output beat
        (``frame_cycles[0] - input_cycles[0]``; in a sharded run, frame 0 is the first of
        shard 0, as in a single run; each shard's own is in ``shards``).
    mismatches : int
        Output values that differ from the golden.
    outputs_compared : int
        Output values compared (``golden.size``).
    seed, simulator, backpressure
        How the run was made.
    cycles : int
        Cycles simulated after reset (the shards' sum).
    sim_seconds : float
        Wall time of the streaming loop in the simulator (the shards' sum).
    design : dict
        The design metadata.
    log : pathlib.Path or None
        The simulator log (``None`` for a sharded run: each shard's is on its worker, kept
        there when the shard fails).
    shards : list of dict or None
        A sharded run's shards in input order: ``index``, ``start``, ``stop``, ``worker``,
        ``attempts``, ``cycles``, ``cycles_per_frame``, ``frame_latency`` and timings.
    retried_shards : int
        Shards run again because their worker died.
    total_inputs : int or None
        Inputs asked for, when a sharded run stopped at a differing shard before the end
        (then ``outputs`` and ``golden`` hold the inputs ``0..len(golden)-1``).
    """
    outputs: np.ndarray
    golden: np.ndarray
    frame_cycles: np.ndarray
    input_cycles: np.ndarray
    cycles_per_frame: float | None
    frame_latency: int
    mismatches: int
    outputs_compared: int
    seed: int
    simulator: str
    backpressure: float | str
    cycles: int
    sim_seconds: float
    design: dict = field(repr=False)
    log: Path | None = field(repr=False)
    shards: list | None = field(default=None, repr=False)
    retried_shards: int = 0
    total_inputs: int | None = None

    @property
    def complete(self):
        """False when a sharded run stopped before simulating every input."""
        return self.total_inputs is None or self.total_inputs == len(self.golden)

    @property
    def ok(self):
        """True when every output equals the golden."""
        return self.mismatches == 0

    @property
    def cycles_per_second(self):
        """Simulated clock cycles per wall-clock second."""
        return self.cycles / self.sim_seconds if self.sim_seconds > 0 else math.inf

    @property
    def first_mismatch(self):
        """The first differing value in (input, C-order output index) order, or ``None``."""
        differ = self.outputs != self.golden
        if not differ.any():
            return None
        index = np.unravel_index(np.argmax(differ), differ.shape)
        return Mismatch(int(index[0]), tuple(int(i) for i in index[1:]),
                        int(self.golden[index]), int(self.outputs[index]))

    def describe(self):
        """One line: agreement, or the count and the first mismatch with the seed."""
        how = (f"simulator {self.simulator}, backpressure "
               f"{backpressure_label(self.backpressure)}, "
               f"seed {self.seed}")
        if self.shards is not None:
            how += f", {len(self.shards)} shards"
            if not self.complete:
                how += (f"; inputs 0..{len(self.golden) - 1} of {self.total_inputs} compared, "
                        f"the run stopped at the first differing shard")
        if self.ok:
            return (f"RTL equals the golden on all {self.outputs_compared} output values of "
                    f"{len(self.golden)} inputs ({how})")
        first = self.first_mismatch
        return (f"RTL differs from the golden in {self.mismatches} of {self.outputs_compared} "
                f"output values; first at {first.describe()} ({how})")

    def to_json(self):
        """A JSON-able summary (no arrays)."""
        first = self.first_mismatch
        return {
            "ok": self.ok, "inputs": int(len(self.golden)), "mismatches": self.mismatches,
            "outputs_compared": self.outputs_compared,
            "first_mismatch": None if first is None else {
                "input_index": first.input_index, "output_index": list(first.output_index),
                "expected": first.expected, "got": first.got},
            "simulator": self.simulator, "backpressure": self.backpressure, "seed": self.seed,
            "cycles": self.cycles, "cycles_per_frame": self.cycles_per_frame,
            "frame_latency": self.frame_latency,
            "expected_cycles_per_frame": self.design.get("cycles_per_frame"),
            "expected_latency": self.design.get("latency"),
            "sim_seconds": self.sim_seconds,
            "cycles_per_second": (None if math.isinf(self.cycles_per_second)
                                  else self.cycles_per_second),
            "verilog": self.design.get("verilog"),
            "log": None if self.log is None else str(self.log),
            "complete": self.complete, "total_inputs": self.total_inputs or len(self.golden),
            "shards": self.shards, "retried_shards": self.retried_shards,
        }


def _check_design_matches(graph, meta, golden_shape):
    out = meta["output"]
    problems = input_problems(graph.input, meta["input"])
    if tuple(out["shape"]) != tuple(golden_shape):
        problems.append(f"design output shape {tuple(out['shape'])} does not match the graph "
                        f"output shape {tuple(golden_shape)}")
    if problems:
        raise ValueError("design does not fit the graph:\n" + "\n".join(problems))


def _shard_record(result):
    frame_cycles, input_cycles = result["frame_cycles"], result["input_cycles"]
    steady = steady_cycles_per_frame(frame_cycles)
    return {"index": int(result["index"]), "start": int(result["start"]),
            "stop": int(result["stop"]), "worker": result["worker"],
            "attempts": int(result["attempts"]), "cycles": int(result["cycles"]),
            "cycles_per_frame": steady,
            "frame_latency": int(frame_cycles[0] - input_cycles[0]),
            "sim_seconds": round(float(result["sim_seconds"]), 3),
            "run_seconds": round(float(result["run_seconds"]), 3),
            "task_seconds": round(float(result["task_seconds"]), 3),
            "seconds": round(float(result["seconds"]), 3),
            "install": result["install"],
            "install_seconds": round(float(result["install_seconds"]), 3)}


def _sharded_result(x, expected, meta, *, client, out_dir, simulator, backpressure,
                    seed, shards, check, progress, verbose):
    """The :class:`SimulationResult` of a run in shards on ``client``'s workers."""
    from .cluster import total_threads
    from .shards import run_sharded

    if shards is None:
        shards = 2 * total_threads(client)

    def differs(start, outputs):
        return not np.array_equal(outputs, expected[start:start + len(outputs)])

    run = run_sharded(meta, x, client=client, out_dir=out_dir, simulator=simulator,
                      backpressure=backpressure, seed=seed, shards=shards,
                      mismatches=differs if check else None, progress=progress,
                      verbose=verbose)
    results = run.results
    golden = expected[:run.stop]
    outputs = np.concatenate([r["outputs"] for r in results])
    first = results[0]
    return SimulationResult(
        outputs=outputs, golden=golden,
        frame_cycles=np.concatenate([r["frame_cycles"] for r in results]),
        input_cycles=np.concatenate([r["input_cycles"] for r in results]),
        cycles_per_frame=pooled_cycles_per_frame([r["frame_cycles"] for r in results]),
        frame_latency=int(first["frame_cycles"][0] - first["input_cycles"][0]),
        mismatches=int(np.count_nonzero(outputs != golden)),
        outputs_compared=int(golden.size), seed=int(seed), simulator=simulator,
        backpressure=backpressure, cycles=sum(int(r["cycles"]) for r in results),
        sim_seconds=sum(float(r["sim_seconds"]) for r in results), design=meta, log=None,
        shards=[_shard_record(r) for r in results], retried_shards=run.retried_shards,
        total_inputs=None if run.complete else len(x))


def _check_distribution(workers, client, shards):
    """Raise ``ValueError`` (``TypeError`` for a client of another kind) for bad
    ``workers``, ``client`` or ``shards``."""
    from .cluster import check_address, check_client, check_workers

    if workers is not None and client is not None:
        raise ValueError("give workers (local worker processes) or client (a Dask cluster), "
                         "not both")
    if workers is not None:
        check_workers(workers)
    if isinstance(client, str):
        check_address(client)
    elif client is not None:
        check_client(client)
    if shards is not None:
        if workers is None and client is None:
            raise ValueError("shards needs workers or client: a run without them is one "
                             "simulator process")
        check_workers(shards, "shards")


def simulate(graph, inputs, *, out_dir, simulator="icarus", backpressure=0.0, seed=0,
             design=None, folding=None, check=True, verbose=False, progress=None,
             workers=None, client=None, shards=None):
    """Run ``graph``'s RTL on ``inputs`` in cocotb and compare it with the golden, exactly.

    Parameters
    ----------
    graph : quant.QGraph
        The model; the golden is ``quant.golden.run(graph, inputs)[graph.output]``.
    inputs : array_like
        One input (``graph.input.shape``) or a batch ``(N, *shape)`` of integers in the
        graph's input range.
    out_dir : path
        Output folder: ``rtl/`` (when the design is generated here), ``sim_build/``,
        ``sim_run/`` and ``sim_report.json`` go there.
    simulator : str
        ``"icarus"`` (default) or ``"verilator"``.
    backpressure : float or str
        Probability per cycle of a gap in the input ``valid`` and, independently, of the
        output ``ready`` being low (``0 <= backpressure < 1``), or an output ``ready``
        pattern such as ``"bursty:50,200"`` or ``"stall:1000,5000"`` (see
        :class:`sim.stream.Pattern`).
    seed : int
        Seed of the back-pressure patterns; it is in every failure message. Every shard
        of a sharded run uses it.
    design : dict or path, optional
        Design metadata with a ``"verilog"`` path (see :func:`sim.runner.load_design`). By
        default the design is generated with ``hwgen.generate(graph, out_dir / "rtl",
        folding=folding)``.
    folding : optional
        Passed to ``hwgen.generate`` when ``design`` is not given.
    check : bool
        Raise :class:`SimulationError` when an output differs (default); a sharded run then
        stops at the first differing shard. Otherwise every input is simulated and the
        result returned; its :attr:`SimulationResult.first_mismatch` tells where.
    verbose : bool
        Show the build and simulator output instead of writing log files.
    progress : bool, optional
        Progress bar on stderr (over frames; a sharded run's also counts shards); by
        default only when stderr is a terminal.
    workers : int, optional
        Split the inputs into shards and run them on this many local worker processes (a
        Dask ``LocalCluster``, started and stopped here).
    client : distributed.Client or str, optional
        Run the shards on this Dask cluster instead: a client, or a scheduler address
        (``tcp://HOST:PORT``), checked before anything else is done. Its workers need this
        project and the simulator's run-time; the build is shipped to them
        (:mod:`sim.shipping`), so they need not share this file system.
    shards : int, optional
        Number of shards (at most one per input). Default: twice the number of worker
        threads, so a slow or lost worker delays the end by a small shard.

    Returns
    -------
    SimulationResult

    Raises
    ------
    ValueError
        Inputs of the wrong shape or range, a bad ``backpressure``, ``workers``,
        ``shards`` or address, or a design that does not fit the graph; nothing is
        simulated.
    ToolchainError
        The simulator is not installed.
    ClusterError
        No Dask scheduler answers at the address ``client``; nothing is simulated.
    SimulationError
        The build or run (or a shard) failed or timed out, or (with ``check``) an output
        differs: the message gives the input index, output index, expected and got values,
        and the seed.
    """
    from quant import golden as quant_golden

    from .cluster import open_client

    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(map(repr, SIMULATORS))}, not "
                         f"{simulator!r}")
    backpressure = check_backpressure(backpressure)
    if not is_int(seed):
        raise TypeError(f"seed must be an integer, not {seed!r}")
    _check_distribution(workers, client, shards)
    graph.validate()
    x = quant_golden.check_inputs(graph, inputs)
    out_dir = Path(out_dir)
    with contextlib.ExitStack() as stack:
        if isinstance(client, str):  # an unreachable scheduler stops us before any work
            client = stack.enter_context(open_client(client=client))
        expected = quant_golden.run(graph, x)[graph.output]
        (out_dir / "sim_report.json").unlink(missing_ok=True)
        if design is None:
            import hwgen

            design = hwgen.generate(graph, out_dir / "rtl", folding=folding)
        meta = load_design(design)
        _check_design_matches(graph, meta, expected.shape[1:])
        if workers is not None or client is not None:
            if workers is not None:
                client = stack.enter_context(open_client(workers=workers))
            result = _sharded_result(x, expected, meta, client=client, out_dir=out_dir,
                                     simulator=simulator, backpressure=backpressure, seed=seed,
                                     shards=shards, check=check, progress=progress,
                                     verbose=verbose)
        else:
            result = _single_result(x, expected, meta, out_dir=out_dir, simulator=simulator,
                                    backpressure=backpressure, seed=seed, progress=progress,
                                    verbose=verbose)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sim_report.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    if check and not result.ok:
        raise SimulationError(result.describe(), result=result, log=result.log)
    return result


def _single_result(x, expected, meta, *, out_dir, simulator, backpressure, seed, progress,
                   verbose):
    """The :class:`SimulationResult` of a run in one simulator process here."""
    # The golden works on CHW maps; the run streams each tensor in its metadata's order.
    run = run_design(meta, x, out_dir=out_dir, simulator=simulator, backpressure=backpressure,
                     seed=seed, verbose=verbose, progress=progress)
    outputs = run.outputs
    if outputs.shape != expected.shape:  # the run checks beat counts; this is a safety net
        raise SimulationError(f"RTL produced outputs of shape {outputs.shape}, the golden "
                              f"{expected.shape} (seed {seed})", log=run.log)
    return SimulationResult(
        outputs=outputs, golden=expected, frame_cycles=run.frame_cycles,
        input_cycles=run.input_cycles,
        cycles_per_frame=steady_cycles_per_frame(run.frame_cycles),
        frame_latency=int(run.frame_cycles[0] - run.input_cycles[0]),
        mismatches=int(np.count_nonzero(outputs != expected)),
        outputs_compared=int(expected.size), seed=int(seed), simulator=simulator,
        backpressure=backpressure, cycles=run.cycles, sim_seconds=run.sim_seconds, design=meta,
        log=run.log)
