"""The cocotb test that streams frames through a design and records what comes out.

It runs inside the simulator, started by :func:`sim.runner.run_design`. Its configuration is a
JSON file whose path is in the environment variable ``SIM_STREAM_CONFIG``::

    {"metadata": {...design metadata...}, "inputs": "inputs.npy", "results": "results.npz",
     "progress": "progress.txt", "backpressure": 0.0, "seed": 0, "max_cycles": 100000,
     "reset_cycles": 4, "clock_period_ns": 10}

Frames are packed into beats and unpacked by the streams'
:class:`~quant.stream_format.StreamFormat` (``StreamFormat.from_metadata``), so in the order
the metadata gives. ``results.npz`` holds ``outputs`` (int64, ``(N, *output.shape)``,
complete frames only), ``frame_cycles`` (cycle of each output frame's last beat),
``input_cycles`` (cycle of each input frame's first beat), ``cycles`` (cycles run) and
``status`` (``"ok"`` or the error). Cycle ``c`` is the ``c``-th rising clock edge after reset
is released.
"""

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from quant.stream_format import StreamFormat
from sim.errors import SimulationError
from sim.runner import CONFIG_ENV
from sim.stream import StreamDriver, StreamMonitor, parse_pattern, run_cycles, run_lockstep

#: Cycles (beyond one output frame) watched after the last expected beat for surplus beats.
DRAIN_CYCLES = 16


class _Progress:
    """Writes ``"<frames done> <frames> <cycle>"`` to a file, at most four times a second."""

    def __init__(self, path, monitor, beats_per_frame, frames):
        self._path = Path(path) if path else None
        self._monitor = monitor
        self._beats_per_frame = beats_per_frame
        self._frames = frames
        self._last = 0.0

    def __call__(self, cycle, force=False):
        now = time.monotonic()
        if self._path is None or (not force and now - self._last < 0.25):
            return
        self._last = now
        done = len(self._monitor.words) // self._beats_per_frame
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(f"{done} {self._frames} {cycle}\n")
        tmp.replace(self._path)


def _save(path, *, outputs, frame_cycles=(), input_cycles=(), cycles=0, wall=0.0,
          status="ok"):
    np.savez(path, outputs=outputs, frame_cycles=np.array(frame_cycles, dtype=np.int64),
             input_cycles=np.array(input_cycles, dtype=np.int64), cycles=np.int64(cycles),
             wall_seconds=np.float64(wall), status=np.array(status))


@cocotb.test()
async def stream_frames(dut):
    """Drive every input frame, collect every output frame, record completion cycles."""
    config = json.loads(Path(os.environ[CONFIG_ENV]).read_text())
    out = config["metadata"]["output"]
    try:
        await _stream_frames(dut, config)
    except Exception as error:
        # Setup problems (a missing port, say) reach the caller through the results file.
        if not Path(config["results"]).exists():
            _save(config["results"], outputs=np.zeros((0, *out["shape"]), dtype=np.int64),
                  status=f"{error}")
        raise


async def _stream_frames(dut, config):
    meta = config["metadata"]
    inp, out = meta["input"], meta["output"]
    frames = np.load(config["inputs"])
    n_frames = len(frames)
    backpressure = config["backpressure"]
    # A random pattern also gaps the input; bursts and stalls are the output's alone.
    gap = backpressure if parse_pattern(backpressure)[0] == "random" else 0.0
    seed = int(config["seed"])

    words = StreamFormat.from_metadata(inp, name="input").pack(frames)
    driver = StreamDriver(dut, words, beats_per_frame=inp["beats_per_frame"],
                          gap=gap, seed=seed)
    monitor = StreamMonitor(dut, n_frames * out["beats_per_frame"],
                            beats_per_frame=out["beats_per_frame"], stall=backpressure,
                            seed=seed)
    progress = _Progress(config.get("progress"), monitor, out["beats_per_frame"], n_frames)

    # Inputs first, then the clock: the design never sees an undriven input on a clock edge.
    # The clock is the simulator's own (GPI) clock, much faster than a Python coroutine; the
    # agents write right after a rising edge and sample at the falling edge, so they do not
    # race it.
    driver.reset_values()
    monitor.reset_values()
    dut.rst.value = 1
    Clock(dut.clk, config.get("clock_period_ns", 10), unit="ns", impl="gpi").start()
    for _ in range(int(config.get("reset_cycles", 4))):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    status, cycles = "ok", 0
    start = time.monotonic()
    try:
        cycles = await run_lockstep(dut.clk, [driver, monitor],
                                    max_cycles=int(config["max_cycles"]), on_progress=progress)
    except SimulationError as error:
        cycles = getattr(error, "cycle", 0)
        status = (f"{error}: {driver.beats_sent} of {len(words)} input beats and "
                  f"{len(monitor.words)} of {n_frames * out['beats_per_frame']} output beats "
                  f"transferred")
    wall = time.monotonic() - start
    progress(cycles, force=True)
    if status == "ok":
        # A few more cycles with ready high: a design must not send more than it was asked for.
        expected = n_frames * out["beats_per_frame"]
        monitor.hold_ready()
        await run_cycles(dut.clk, [driver, monitor], out["beats_per_frame"] + DRAIN_CYCLES,
                         start=cycles)
        if monitor.extra_beats:
            status = (f"design sent {monitor.extra_beats} more output beats than the "
                      f"{expected} expected for {n_frames} frames")

    complete = min(len(monitor.words), n_frames * out["beats_per_frame"])
    complete -= complete % out["beats_per_frame"]
    outputs = StreamFormat.from_metadata(out, name="output").unpack(monitor.words[:complete])
    _save(config["results"], outputs=outputs, frame_cycles=monitor.frame_end_cycles,
          input_cycles=driver.frame_start_cycles, cycles=cycles, wall=wall, status=status)
    if status != "ok":
        raise SimulationError(status)
