"""The layer-sequential engine's Verilog in cocotb, every tensor it writes checked against the
golden.

:func:`simulate_engine` runs a graph's program on the generated engine (``hwgen.generate(...,
arch="engine")``): cocotbext-axi's ``AxiRam`` is the DRAM, loaded with ``program.bin`` and each
frame's input, with random pauses on every AXI channel and a read latency (fixed, or drawn
per burst from a range; a range delays writes too); the program is
started through the AXI4-Lite registers, frame by frame. After each frame every tensor the
engine wrote (each layer's output, unpacked with the metadata's
:class:`~hwgen.engine.TensorLayout`) is compared with the golden, element by element, and each
layer's cycles are measured from its ``layer_done`` pulse.

Builds go to ``<out_dir>/sim_build/<simulator>-<digest>`` as for the dataflow designs (a design
with the same Verilog reuses the build, whatever program it runs); each run writes its
configuration, inputs, results and simulator log into ``<out_dir>/sim_run/engine-<simulator>-
<digest>-<run digest>``, the run digest covering the program, the inputs, the seed, the
back-pressure and the latency. While a run goes on, its ``layers.txt`` gets a line at each
frame's start and layer end (``"<layers done> <cycle>"``) and ``layer<i>.bin`` the tensor layer
``i`` wrote, as it lies in DRAM: a long frame can be followed and checked before it ends.
"""

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from quant.numerics import is_int

from .errors import SimulationError
from .runner import (CLOCK_PERIOD_NS, RESET_CYCLES, backpressure_label, build_design,
                     check_backpressure, check_simulator, input_problems, _run_cocotb,
                     _run_files)
from .stream import Pattern

__all__ = ["TensorMismatch", "EngineSimulationResult", "load_engine_design", "simulate_engine"]

TEST_MODULE = "sim.cocotb_engine_test"
#: Environment variable that carries the path of the run's JSON configuration (the test
#: module reads the same name).
CONFIG_ENV = "SIM_ENGINE_CONFIG"
DESCRIPTOR_BYTES = 64
#: Where the simulated DRAM holds the image (when the engine's address space has room).
IMAGE_BASE = 4096


@dataclass(frozen=True)
class TensorMismatch:
    """One element of a tensor in DRAM where the RTL differs from the golden."""
    frame: int
    tensor: str
    layer: str
    index: tuple
    expected: int
    got: int

    def describe(self):
        return (f"frame {self.frame}, tensor '{self.tensor}' (layer '{self.layer}'), index "
                f"{self.index}: expected {self.expected}, got {self.got}")


@dataclass
class EngineSimulationResult:
    """The outcome of :func:`simulate_engine`.

    Attributes
    ----------
    outputs, golden : dict
        ``{graph value: (N, *shape) int64}`` for every tensor an engine layer writes, in layer
        order: what the RTL left in DRAM and what the golden computed.
    layers : list of str
        The engine layers' names, in order; ``tensors[i]`` is the value layer ``i`` writes.
    tensors : list of str
    mismatches : int
        Elements that differ from the golden, over all frames and tensors.
    tensor_mismatches : dict
        ``{graph value: mismatching elements}`` (by layer name:
        :attr:`layer_mismatches`).
    values_compared : int
    layer_cycles : numpy.ndarray
        ``(N, layers)``: cycles each layer took, from the end of the one before (the first
        from the start of the frame) to its ``layer_done`` pulse.
    layer_end_cycles : numpy.ndarray
        ``(N, layers)``: cycles from the frame's start (``busy`` rising) to each
        ``layer_done`` pulse.
    frame_cycles : numpy.ndarray
        ``(N,)``: cycles from ``busy`` rising to ``busy`` falling (their mean:
        :attr:`cycles_per_frame`).
    cycles_register : numpy.ndarray
        ``(N,)``: the ``CYCLES`` register read after each frame.
    cycles : int
        Cycles simulated after reset (register accesses and loading included).
    sim_seconds : float
        Wall time of the frames inside the simulator.
    wall_seconds, build_seconds : float
        Wall time of the whole run (simulator start-up included) and of the build (0 when an
        earlier build was reused).
    seed, simulator, backpressure, latency
        How the run was made (``latency`` an int, or a ``(min, max)`` pair).
    design : dict
        The design metadata.
    log : pathlib.Path
        The simulator log.
    """
    outputs: dict
    golden: dict
    layers: list
    tensors: list
    mismatches: int
    tensor_mismatches: dict
    values_compared: int
    layer_cycles: np.ndarray
    layer_end_cycles: np.ndarray
    frame_cycles: np.ndarray
    cycles_register: np.ndarray
    cycles: int
    sim_seconds: float
    wall_seconds: float
    build_seconds: float
    seed: int
    simulator: str
    backpressure: float | str
    latency: int | tuple
    design: dict = field(repr=False)
    log: Path = field(repr=False)

    @property
    def ok(self):
        """True when every element of every tensor equals the golden."""
        return self.mismatches == 0

    @property
    def layer_mismatches(self):
        """``{layer name: mismatching elements of the tensor it writes}``, in layer order."""
        return {layer: self.tensor_mismatches[value]
                for layer, value in zip(self.layers, self.tensors)}

    @property
    def cycles_per_frame(self):
        """Mean measured cycles per frame (``busy`` high), as a float."""
        return float(np.mean(self.frame_cycles))

    @property
    def cycles_per_second(self):
        """Simulated clock cycles per wall-clock second of the frames."""
        return self.cycles / self.sim_seconds if self.sim_seconds > 0 else math.inf

    @property
    def first_mismatch(self):
        """The first differing element in (frame, layer, C-order index) order, or ``None``."""
        frames = len(next(iter(self.golden.values()))) if self.golden else 0
        for frame in range(frames):
            for layer, value in zip(self.layers, self.tensors):
                differ = self.outputs[value][frame] != self.golden[value][frame]
                if differ.any():
                    index = np.unravel_index(np.argmax(differ), differ.shape)
                    return TensorMismatch(frame, value, layer, tuple(int(i) for i in index),
                                          int(self.golden[value][frame][index]),
                                          int(self.outputs[value][frame][index]))
        return None

    def _how(self):
        return (f"simulator {self.simulator}, backpressure "
                f"{backpressure_label(self.backpressure)}, latency "
                f"{latency_label(self.latency)}, "
                f"seed {self.seed}")

    def describe(self):
        """One line: agreement, or the count and the first mismatch with the seed."""
        frames = len(self.frame_cycles)
        if self.ok:
            return (f"RTL equals the golden on all {self.values_compared} values of "
                    f"{len(self.tensors)} tensors in {frames} frames ({self._how()})")
        bad = [f"{layer} {count}" for layer, count in self.layer_mismatches.items() if count]
        return (f"RTL differs from the golden in {self.mismatches} of {self.values_compared} "
                f"values ({len(bad)} of {len(self.tensors)} layers: {', '.join(bad)}); first "
                f"at {self.first_mismatch.describe()} ({self._how()})")

    def to_json(self):
        """A JSON-able summary (no tensors)."""
        first = self.first_mismatch
        cps = self.cycles_per_second
        return {
            "ok": self.ok, "frames": int(len(self.frame_cycles)),
            "mismatches": self.mismatches, "values_compared": self.values_compared,
            "tensor_mismatches": {k: int(v) for k, v in self.tensor_mismatches.items() if v},
            "layer_mismatches": {k: int(v) for k, v in self.layer_mismatches.items()},
            "first_mismatch": None if first is None else {
                "frame": first.frame, "tensor": first.tensor, "layer": first.layer,
                "index": list(first.index), "expected": first.expected, "got": first.got},
            "simulator": self.simulator, "backpressure": self.backpressure,
            "latency": list(self.latency) if isinstance(self.latency, tuple) else
            self.latency, "seed": self.seed,
            "cycles_per_frame": self.cycles_per_frame,
            "frame_cycles": self.frame_cycles.tolist(),
            "cycles_register": self.cycles_register.tolist(),
            "layer_cycles": {name: self.layer_cycles[:, i].tolist()
                             for i, name in enumerate(self.layers)},
            "cycles": self.cycles, "sim_seconds": self.sim_seconds,
            "wall_seconds": self.wall_seconds, "build_seconds": self.build_seconds,
            "cycles_per_second": None if math.isinf(cps) else cps,
            "engine": self.design.get("engine"), "verilog": self.design.get("verilog"),
            "log": str(self.log),
        }


# -- the design ----------------------------------------------------------------------------------

_TENSOR_KEYS = ("address", "shape", "bits", "signed", "group", "data_bits", "nbytes")


def load_engine_design(design):
    """Return a checked copy of an engine design's metadata, with absolute ``"verilog"`` and
    ``"image"`` paths and the :class:`~hwgen.engine.EngineConfig` under ``"config"``.

    ``design`` is the metadata dict :func:`hwgen.generate` returns for ``arch="engine"``, its
    ``metadata.json`` path, or the directory holding it; ``top.v`` and ``program.bin`` beside
    ``metadata.json`` are used when the metadata names no ``"verilog"`` or ``"image"``.

    Raises
    ------
    ValueError
        Listing every problem, one per line (another architecture's metadata, missing or
        malformed entries, an image of the wrong size).
    FileNotFoundError
        When the metadata, Verilog or image file does not exist.
    """
    from hwgen.engine import EngineConfig, TensorLayout

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
    if meta.get("architecture") != "engine":
        raise ValueError(f"design metadata describes architecture "
                         f"{meta.get('architecture', 'dataflow')!r}; simulate_engine runs "
                         f"'engine' designs (sim.simulate runs the dataflow ones)")

    problems = []
    top = meta.get("top", "top")
    if not isinstance(top, str) or not top.isidentifier():
        problems.append(f"metadata top must be a Verilog module name, not {top!r}")
    config = None
    try:
        config = EngineConfig.from_dict(meta.get("engine") or {})
    except (TypeError, ValueError) as e:
        problems.append(f"metadata engine is not an engine configuration ({e})")
    if not is_int(meta.get("image_bytes")) or meta["image_bytes"] < 0:
        problems.append(f"metadata image_bytes must be a non-negative integer, not "
                        f"{meta.get('image_bytes')!r}")
    tensors = meta.get("tensors")
    if not isinstance(tensors, dict) or "input" not in tensors:
        problems.append("metadata tensors must map each stored value (\"input\" first) to its "
                        "address and layout")
        tensors = {}
    for value, entry in tensors.items():
        missing = [k for k in _TENSOR_KEYS if not isinstance(entry, dict) or k not in entry]
        if missing:
            problems.append(f"metadata tensor '{value}' lacks {', '.join(missing)}")
            continue
        try:
            layout = TensorLayout.from_metadata(entry)
        except (TypeError, ValueError) as e:
            problems.append(f"metadata tensor '{value}' has a bad layout ({e})")
            continue
        if layout.nbytes != entry["nbytes"]:
            problems.append(f"metadata tensor '{value}' has nbytes {entry['nbytes']}; its "
                            f"layout takes {layout.nbytes}")
        elif not is_int(entry["address"]) or entry["address"] < 0 or \
                is_int(meta.get("image_bytes")) and \
                entry["address"] + layout.nbytes > meta["image_bytes"]:
            problems.append(f"metadata tensor '{value}' at {entry['address']!r} does not lie "
                            f"inside the image of {meta.get('image_bytes')} bytes")
    layers = meta.get("layers")
    if not isinstance(layers, list) or not layers:
        problems.append("metadata layers must list the program's layers")
        layers = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict) or not {"name", "inputs", "output",
                                               "descriptor"} <= layer.keys():
            problems.append(f"metadata layer {i} must have name, inputs, output and descriptor")
        elif not all(v in tensors for v in [*layer["inputs"], layer["output"]]):
            problems.append(f"metadata layer '{layer['name']}' reads or writes a value that "
                            f"is not in tensors")
    if problems:
        raise ValueError("design metadata is invalid:\n" + "\n".join(problems))

    def resolve(key, default):
        value = meta.get(key)
        if value is None:
            if base is None:
                raise ValueError(f"design metadata has no {key!r} path; add the path of the "
                                 f"design's {default}")
            value = base / default
        path = Path(value).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"design {key} file {path} does not exist")
        return path

    verilog, image = resolve("verilog", f"{top}.v"), resolve("image", "program.bin")
    if image.stat().st_size != meta["image_bytes"]:
        raise ValueError(f"design image {image} holds {image.stat().st_size} bytes; the "
                         f"metadata says {meta['image_bytes']}")
    return dict(meta) | {"top": top, "verilog": str(verilog), "image": str(image),
                         "config": config}


def _check_design_fits(graph, meta, values):
    """``ValueError`` listing how the design's program does not fit ``graph``."""
    problems = input_problems(graph.input, meta["tensors"]["input"])
    for layer in meta["layers"]:
        value = layer["output"]
        shape = tuple(meta["tensors"][value]["shape"])
        if value not in values:
            problems.append(f"design layer '{layer['name']}' writes '{value}', which the graph "
                            f"does not have")
        elif values[value].shape[1:] != shape:
            problems.append(f"design layer '{layer['name']}' writes '{value}' of shape {shape}; "
                            f"the graph's is {values[value].shape[1:]}")
    if problems:
        raise ValueError("design does not fit the graph:\n" + "\n".join(problems))


# -- what the run may touch, and how long it may take ------------------------------------------

def _parameter_bytes(layer, data_bytes):
    """Bytes of a layer's parameters: per fold, its parameter words and the weight words of
    the passes it runs."""
    d = layer["descriptor"]
    passes = layer.get("fold_passes") or [d["passes"]] * d["folds"]
    return sum(d["fold_words"] + p * d["ksteps"] * d["kstep_words"] for p in passes) \
        * data_bytes


def _image_base(meta):
    """Where the image is loaded in the simulated DRAM: past the first page when the address
    space has room, so that every run checks the engine adds the PROGRAM register's base to
    the image's offsets."""
    from hwgen.engine.layout import ImagePlanes

    config = meta["config"]
    nbytes = ImagePlanes(config.ports, config.data_bytes, meta["image_bytes"]).nbytes
    return IMAGE_BASE if IMAGE_BASE + nbytes <= 1 << config.addr_bits else 0


def _regions(meta, base):
    """Per layer, where it may read and write (``[address, nbytes]`` pairs), the image
    loaded at ``base``."""
    data_bytes = meta["config"].data_bytes
    tensors = meta["tensors"]

    def region(value):
        return [base + int(tensors[value]["address"]), int(tensors[value]["nbytes"])]

    return [{"name": layer["name"],
             "descriptor": [base + DESCRIPTOR_BYTES * i, DESCRIPTOR_BYTES],
             "parameters": [base + layer["descriptor"]["param_addr"],
                            _parameter_bytes(layer, data_bytes)],
             "reads": [region(v) for v in layer["inputs"]],
             "output": region(layer["output"])}
            for i, layer in enumerate(meta["layers"])]


def _layer_work(d, data_bytes):
    """``(compute cycles, bus words, bursts, cycles of one fold)``: generous upper bounds of a
    layer's work, from its descriptor."""
    pixels = d["out_height"] * d["out_width"]
    steps = d["passes"] * max(d["ksteps"], 1)
    compute = pixels * d["folds"] * steps + d["bands"] * d["folds"] * 64
    rows = min(d["in_height"], (d["band_rows"] - 1) * d["stride_h"] + d["kernel_h"])
    words = (d["bands"] * rows * (d["in_row_words"] + d["in2_row_words"])
             + _parameter_bytes({"descriptor": d}, data_bytes) // data_bytes * d["bands"]
             + d["out_height"] * d["out_row_words"] + DESCRIPTOR_BYTES // data_bytes)
    bursts = words // 8 + d["bands"] * (2 * rows + 2 * d["folds"]) + d["out_height"] + 4
    fold = d["band_rows"] * d["out_width"] * steps
    return compute, words, bursts, fold


def check_latency(latency):
    """``(min, max)`` cycles of a burst's latency: ``latency`` is a non-negative int (every
    burst waits as long) or a pair ``(min, max)`` (each burst draws its wait from
    ``min..max``); ``ValueError`` otherwise."""
    if is_int(latency) and latency >= 0:
        return int(latency), int(latency)
    if isinstance(latency, (tuple, list)) and len(latency) == 2 and \
            all(is_int(v) and v >= 0 for v in latency) and latency[0] <= latency[1]:
        return int(latency[0]), int(latency[1])
    raise ValueError(f"latency must be a non-negative integer of cycles or a (min, max) pair "
                     f"with 0 <= min <= max, not {latency!r}")


def latency_label(latency):
    """``latency`` for messages: ``4``, ``2..9``."""
    lo, hi = check_latency(latency)
    return f"{lo}" if lo == hi else f"{lo}..{hi}"


def _cycle_limits(meta, backpressure, latency):
    """``(max_cycles, idle_cycles)`` of one frame: four times the work, stretched by the
    back-pressure and the read latency, and the most cycles without a DRAM burst or a layer
    end before the engine counts as hung."""
    data_bytes = meta["config"].data_bytes
    pattern = Pattern(backpressure)
    slowdown = 1.0 / pattern.high_fraction ** 2
    work = [_layer_work(layer["descriptor"], data_bytes) for layer in meta["layers"]]
    compute = sum(w[0] for w in work)
    words = sum(w[1] for w in work)
    bursts = sum(w[2] for w in work)
    latency = check_latency(latency)[1]
    max_cycles = int(4 * (compute + words * slowdown + bursts * (latency + 16) * slowdown)) \
        + pattern.stall_cycles + 10_000
    idle = int(4 * max(w[3] for w in work) + 64 * (latency + 16) * slowdown) \
        + pattern.stall_cycles + 10_000
    return max_cycles, idle


# -- the run ---------------------------------------------------------------------------------------

def _explain(meta, graph_value, mismatch, x):
    """Where the program's own reference (:func:`hwgen.engine.run_image`) stands at a
    mismatch: it tells a program that computes something else from an RTL that does not
    compute its program."""
    from hwgen.engine import TensorLayout, run_image

    image = bytearray(Path(meta["image"]).read_bytes())
    entry = meta["tensors"]["input"]
    data = TensorLayout.from_metadata(entry).pack(x)
    image[entry["address"]:entry["address"] + len(data)] = data
    run_image(image, meta["config"])
    entry = meta["tensors"][graph_value]
    layout = TensorLayout.from_metadata(entry)
    reference = layout.unpack(image[entry["address"]:entry["address"] + layout.nbytes])
    value = int(reference[mismatch.index])
    if value == mismatch.got:
        return (f"the program's own reference (hwgen.engine.run_image) also gives {value}: "
                f"the RTL runs its program, and the program computes something else")
    if value == mismatch.expected:
        return (f"the program's own reference (hwgen.engine.run_image) gives {value}, as the "
                f"golden: the RTL does not compute its program")
    return f"the program's own reference (hwgen.engine.run_image) gives {value}"


def simulate_engine(graph, inputs, *, out_dir, config=None, design=None, simulator="icarus",
                    latency=0, backpressure=0.0, seed=0, max_cycles=None, check=True,
                    verbose=False, progress=None):
    """Run ``graph`` on the layer-sequential engine's Verilog in cocotb and compare every tensor
    the engine writes to DRAM with the golden, exactly.

    Parameters
    ----------
    graph : quant.QGraph
        The model; the golden is ``quant.run(graph, inputs)``, every value by name.
    inputs : array_like
        One input (``graph.input.shape``) or a batch ``(N, *shape)`` of integers in the
        graph's input range; the program runs once per frame.
    out_dir : path
        Output folder: ``rtl/`` (when the design is generated here), ``sim_build/``,
        ``sim_run/`` and ``sim_report.json`` go there.
    config : hwgen.engine.EngineConfig, optional
        The engine to generate (default: ``EngineConfig()``); when ``design`` is given too,
        it must be the design's.
    design : dict or path, optional
        An engine design's metadata (see :func:`load_engine_design`), whose program must be
        ``graph``'s. By default the design is generated with ``hwgen.generate(graph,
        out_dir / "rtl", arch="engine", engine=config)``.
    simulator : str
        ``"icarus"`` (default) or ``"verilator"``.
    latency : int or (int, int)
        A read burst's first beat is ready ``latency + 1`` cycles after the DRAM takes its
        address, as in :mod:`hwgen.engine.model`; writes are taken as they come. A pair
        ``(min, max)`` draws each read burst's latency from ``min..max`` (seeded by ``seed``)
        and makes each write burst wait a draw too before it is taken. Without back-pressure
        and with a fixed latency each layer takes the model's cycles
        (:func:`hwgen.engine.model.program_cycles`), the first one more (the model counts the
        run from its first read, ``busy`` rises a cycle before).
    backpressure : float or str
        Probability per cycle that each DRAM channel (AW, W, B, AR, R) pauses, each with its
        own random stream (``0 <= backpressure < 1``), or a :class:`sim.stream.Pattern` spec
        (``"bursty:H,L"``, ``"stall:S,N"``) applied to every channel.
    seed : int
        Seed of the pauses; it is in every failure message.
    max_cycles : int, optional
        Cycles a frame may take before the run fails as timed out; by default four times a
        bound of the frame's work (compute, words moved, bursts) stretched by the
        back-pressure and the latency. Independently, a run fails as soon as the engine goes
        longer than four of its longest folds without a DRAM burst or a layer end.
    check : bool
        Raise :class:`SimulationError` when a value differs (default); otherwise return the
        result, whose :attr:`EngineSimulationResult.first_mismatch` tells where.
    verbose : bool
        Show the build and simulator output instead of writing log files.
    progress : bool, optional
        Progress bar (frames) on stderr; by default only when stderr is a terminal.

    Returns
    -------
    EngineSimulationResult

    Raises
    ------
    ValueError
        Inputs of the wrong shape or range, a bad ``latency``, ``backpressure`` or
        ``max_cycles``, a configuration that is not the design's, or a design that does not
        fit the graph; nothing is simulated.
    ToolchainError
        The simulator is not installed (checked before anything is generated).
    hwgen.errors.UnsupportedLayerError
        The engine cannot run the graph (from :func:`hwgen.generate`).
    SimulationError
        The build or run failed (a status other than done, a wrong layer count, a burst
        outside what its layer may touch, an output byte left unwritten) or timed out, or
        (with ``check``) a value differs: the message gives the frame, the tensor, the
        index, expected and got values, and the seed.
    """
    from quant import golden as quant_golden
    from hwgen.engine import EngineConfig, TensorLayout, engine_golden

    check_simulator(simulator)      # before minutes of generation
    backpressure = check_backpressure(backpressure)
    if not is_int(seed):
        raise TypeError(f"seed must be an integer, not {seed!r}")
    latency_range = check_latency(latency)
    if max_cycles is not None and (not is_int(max_cycles) or max_cycles < 1):
        raise ValueError(f"max_cycles must be a positive integer, not {max_cycles!r}")
    if config is not None and not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, not {config!r}")
    seed = int(seed)
    latency = int(latency) if is_int(latency) else latency_range
    graph.validate()
    x = quant_golden.check_inputs(graph, inputs)
    if len(x) == 0:
        raise ValueError("inputs must hold at least one frame")
    values = quant_golden.run(graph, x)

    out_dir = Path(out_dir)
    # A run that fails from here on leaves no report, not the last run's.
    (out_dir / "sim_report.json").unlink(missing_ok=True)
    if design is None:
        import hwgen

        design = hwgen.generate(graph, out_dir / "rtl", arch="engine",
                                engine=EngineConfig() if config is None else config)
    meta = load_engine_design(design)
    if config is not None and config != meta["config"]:
        raise ValueError(f"config {config} is not the design's engine {meta['config']}")
    values = engine_golden(meta["layers"], values)
    _check_design_fits(graph, meta, values)
    layers = meta["layers"]
    tensors = [layer["output"] for layer in layers]
    input_entry = meta["tensors"]["input"]
    base = _image_base(meta)
    input_layout = TensorLayout.from_metadata(input_entry)
    packed = np.stack([np.frombuffer(input_layout.pack(frame), dtype=np.uint8) for frame in x])
    frame_limit, idle_cycles = _cycle_limits(meta, backpressure, latency)
    if max_cycles is not None:
        frame_limit = int(max_cycles)

    build_dir, digest, build_seconds = build_design(meta, out_dir=out_dir, simulator=simulator,
                                                    verbose=verbose)
    image = Path(meta["image"]).read_bytes()
    run_digest = hashlib.sha256(b"\0".join([
        image, json.dumps(meta["layers"]).encode(), packed.tobytes(),
        json.dumps([backpressure, latency, seed, frame_limit]).encode()])).hexdigest()[:12]
    run_dir = out_dir.resolve() / "sim_run" / f"engine-{simulator}-{digest}-{run_digest}"
    run_dir.mkdir(parents=True, exist_ok=True)
    inputs_path, results_path, progress_path, log = _run_files(run_dir)
    layer_log = run_dir / "layers.txt"
    for stale in (results_path, progress_path, layer_log):
        stale.unlink(missing_ok=True)
    np.save(inputs_path, packed)
    run_config = {"image": meta["image"], "inputs": str(inputs_path),
                  "image_address": base, "input_address": base + int(input_entry["address"]),
                  "program_address": base,
                  "addr_bits": meta["config"].addr_bits, "ports": meta["config"].ports,
                  "data_bytes": meta["config"].data_bytes, "layers": _regions(meta, base),
                  "results": str(results_path), "progress": str(progress_path),
                  "layer_log": str(layer_log),
                  "latency": list(latency_range), "backpressure": backpressure, "seed": seed,
                  "max_cycles": frame_limit, "idle_cycles": idle_cycles,
                  "reset_cycles": RESET_CYCLES, "clock_period_ns": CLOCK_PERIOD_NS}
    config_path = run_dir / "config.json"
    config_path.write_text(json.dumps(run_config, indent=2) + "\n")

    how = (f"seed {seed}, backpressure {backpressure_label(backpressure)}, latency "
           f"{latency_label(latency)}")
    data, wall = _run_cocotb(
        simulator, verbose=verbose, test_module=TEST_MODULE, top=meta["top"],
        build_dir=build_dir, run_dir=run_dir, config_env=CONFIG_ENV, config_path=config_path,
        seed=seed, n_frames=len(x), progress=progress, what=meta["verilog"], how=how)
    outputs, golden, counts = {}, {}, {}
    for i, value in enumerate(tensors):
        layout = TensorLayout.from_metadata(meta["tensors"][value])
        outputs[value] = np.stack([layout.unpack(row.tobytes()) for row in data[f"tensor{i}"]])
        golden[value] = values[value]
        counts[value] = int(np.count_nonzero(outputs[value] != golden[value]))
    ends = data["layer_cycles"]
    result = EngineSimulationResult(
        outputs=outputs, golden=golden, layers=[layer["name"] for layer in layers],
        tensors=tensors, mismatches=sum(counts.values()), tensor_mismatches=counts,
        values_compared=int(sum(g.size for g in golden.values())),
        layer_cycles=np.diff(ends, axis=1, prepend=0), layer_end_cycles=ends,
        frame_cycles=data["frame_cycles"], cycles_register=data["registers"][:, 2],
        cycles=int(data["cycles"]), sim_seconds=float(data["wall_seconds"]),
        wall_seconds=wall, build_seconds=build_seconds, seed=seed, simulator=simulator,
        backpressure=backpressure, latency=latency,
        design={k: v for k, v in meta.items() if k != "config"}, log=log)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sim_report.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    if check and not result.ok:
        first = result.first_mismatch
        raise SimulationError(f"{result.describe()}; "
                              f"{_explain(meta, first.tensor, first, x[first.frame])}",
                              result=result, log=log)
    return result
