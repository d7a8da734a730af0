"""Generated Verilog against the golden: run both, compare every output exactly."""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from quant.numerics import is_int

from .errors import SimulationError
from .runner import (SIMULATORS, backpressure_label, check_backpressure, load_design,
                     run_design)

__all__ = ["Mismatch", "SimulationResult", "simulate", "steady_cycles_per_frame"]


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


@dataclass
class SimulationResult:
    """The outcome of :func:`simulate`.

    Attributes
    ----------
    outputs, golden : numpy.ndarray
        ``(N, *output shape)`` int64: what the RTL sent and what the golden computed.
    frame_cycles : numpy.ndarray
        Cycle at which each output frame's last beat transferred (cycle ``c`` is the ``c``-th
        rising clock edge after reset is released).
    input_cycles : numpy.ndarray
        Cycle at which each input frame's first beat transferred.
    cycles_per_frame : float or None
        Measured steady-state cycles per frame, see :func:`steady_cycles_per_frame`.
    frame_latency : int
        Cycles from frame 0's first input beat to its last output beat
        (``frame_cycles[0] - input_cycles[0]``).
    mismatches : int
        Output values that differ from the golden.
    outputs_compared : int
        Output values compared (``golden.size``).
    seed, simulator, backpressure
        How the run was made.
    cycles : int
        Cycles simulated after reset.
    sim_seconds : float
        Wall time of the streaming loop in the simulator.
    design : dict
        The design metadata.
    log : pathlib.Path
        The simulator log.
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
    log: Path = field(repr=False)

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
            "verilog": self.design.get("verilog"), "log": str(self.log),
        }


def _check_design_matches(graph, meta, golden_shape):
    from quant import numerics

    problems = []
    spec, inp, out = graph.input, meta["input"], meta["output"]
    if tuple(inp["shape"]) != tuple(spec.shape):
        problems.append(f"design input shape {tuple(inp['shape'])} does not match the graph "
                        f"input shape {tuple(spec.shape)}")
    lo, hi = (int(v) for v in numerics.int_range(spec.bits, spec.signed))
    d_lo, d_hi = (int(v) for v in numerics.int_range(inp["bits"], inp["signed"]))
    if lo < d_lo or hi > d_hi:
        kind = "signed" if inp["signed"] else "unsigned"
        problems.append(f"design input is {inp['bits']}-bit {kind} ({d_lo}..{d_hi}) and cannot "
                        f"carry the graph input range {lo}..{hi}")
    if tuple(out["shape"]) != tuple(golden_shape):
        problems.append(f"design output shape {tuple(out['shape'])} does not match the graph "
                        f"output shape {tuple(golden_shape)}")
    if problems:
        raise ValueError("design does not fit the graph:\n" + "\n".join(problems))


def simulate(graph, inputs, *, out_dir, simulator="icarus", backpressure=0.0, seed=0,
             design=None, folding=None, check=True, verbose=False, progress=None):
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
        Seed of the back-pressure patterns; it is in every failure message.
    design : dict or path, optional
        Design metadata with a ``"verilog"`` path (see :func:`sim.runner.load_design`). By
        default the design is generated with ``hwgen.generate(graph, out_dir / "rtl",
        folding=folding)``.
    folding : optional
        Passed to ``hwgen.generate`` when ``design`` is not given.
    check : bool
        Raise :class:`SimulationError` when an output differs (default); otherwise return the
        result, whose :attr:`SimulationResult.first_mismatch` tells where.
    verbose : bool
        Show the build and simulator output instead of writing log files.
    progress : bool, optional
        Progress bar on stderr; by default only when stderr is a terminal.

    Returns
    -------
    SimulationResult

    Raises
    ------
    ValueError
        Inputs of the wrong shape or range, a bad ``backpressure``, or a design that does not
        fit the graph; nothing is simulated.
    ToolchainError
        The simulator is not installed.
    SimulationError
        The build or run failed or timed out, or (with ``check``) an output differs: the
        message gives the input index, output index, expected and got values, and the seed.
    """
    from quant import golden as quant_golden

    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(map(repr, SIMULATORS))}, not "
                         f"{simulator!r}")
    backpressure = check_backpressure(backpressure)
    if not is_int(seed):
        raise TypeError(f"seed must be an integer, not {seed!r}")
    graph.validate()
    x = quant_golden.check_inputs(graph, inputs)
    expected = quant_golden.run(graph, x)[graph.output]

    out_dir = Path(out_dir)
    if design is None:
        import hwgen

        design = hwgen.generate(graph, out_dir / "rtl", folding=folding)
    meta = load_design(design)
    _check_design_matches(graph, meta, expected.shape[1:])

    # The golden works on CHW maps; the run streams each tensor in its metadata's order.
    run = run_design(meta, x, out_dir=out_dir, simulator=simulator, backpressure=backpressure,
                     seed=seed, verbose=verbose, progress=progress)
    outputs = run.outputs
    if outputs.shape != expected.shape:  # the run checks beat counts; this is a safety net
        raise SimulationError(f"RTL produced outputs of shape {outputs.shape}, the golden "
                              f"{expected.shape} (seed {seed})", log=run.log)
    mismatches = int(np.count_nonzero(outputs != expected))
    frame_latency = int(run.frame_cycles[0] - run.input_cycles[0])
    result = SimulationResult(
        outputs=outputs, golden=expected, frame_cycles=run.frame_cycles,
        input_cycles=run.input_cycles,
        cycles_per_frame=steady_cycles_per_frame(run.frame_cycles),
        frame_latency=frame_latency, mismatches=mismatches, outputs_compared=int(expected.size),
        seed=int(seed), simulator=simulator, backpressure=backpressure,
        cycles=run.cycles, sim_seconds=run.sim_seconds, design=meta, log=run.log)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sim_report.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    if check and not result.ok:
        raise SimulationError(result.describe(), result=result, log=run.log)
    return result
