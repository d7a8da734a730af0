"""The cocotb test that runs the layer-sequential engine frame by frame on a DRAM model.

It runs inside the simulator, started by :func:`sim.engine.simulate_engine`. Its configuration
is a JSON file whose path is in the environment variable ``SIM_ENGINE_CONFIG``::

    {"image": "program.bin", "image_address": 4096, "inputs": "inputs.npy",
     "input_address": 4352, "program_address": 4096, "addr_bits": 20, "ports": 1,
     "data_bytes": 8,
     "layers": [{"name": "conv", "output": [address, nbytes],
                 "reads": [[address, nbytes], ...]}, ...],
     "results": "results.npz", "progress": "progress.txt", "layer_log": "layers.txt",
     "latency": [2, 9], "backpressure": 0.3, "seed": 0, "max_cycles": 100000,
     "idle_cycles": 20000, "reset_cycles": 4, "clock_period_ns": 10}

The DRAM is cocotbext-axi's ``AxiRam`` on the ``m_axi`` port, loaded with the image (with
several ports, an ``AxiRam`` on each of ``m_axi0`` ..., all on one memory that holds the
image in planes, :class:`hwgen.engine.layout.ImagePlanes`; ``PLANE`` is set to match); the
registers are driven through cocotbext-axi's ``AxiLiteMaster`` on ``s_axil``. Each AXI channel
of the DRAM pauses at random (the back-pressure pattern of :class:`sim.stream.Pattern`, one
independent stream per channel from the seed). A read burst's first beat is ready ``latency + 1``
cycles after its address is taken (``latency`` drawn per burst from ``[min, max]``, seeded),
then a beat a cycle, bursts served in order; writes are taken as they come and each burst is
answered the cycle after its last beat. When ``min < max`` each write burst also waits a draw
before it is taken, to stress the write side; with a fixed latency writes never wait. Without
pauses and with a fixed latency this is the memory of the engine's cycle model
(:mod:`hwgen.engine.model`, ``tests/hwgen/engine/axi_memory.py``), so each layer's measured
cycles equal the model's (the first layer's one more: the model counts the run from its first
read, ``busy`` rises a cycle before).

``AxiRam`` is made to keep that timing in three ways: the address channels queue any number of
bursts (so ``arready`` and ``awready`` stay high), a read's latency counts from the cycle its
address was taken (not from when the RAM gets to it), and the R and B channels drive a beat in
the cycle the RAM produces it (cocotbext-axi's sources, once idle, wait for the next clock edge
to drive: a cycle more than the model's memory on each read burst that finds R idle and on
every write response).

Per frame (``inputs.npy`` holds each frame's input tensor, packed as it lies in DRAM): every
output tensor is filled with a poison byte, the input is written, the program started through
the registers; when ``busy`` falls, STATUS and LAYERS are checked and every output tensor is
read back. While a layer runs, each burst must stay inside what that layer may touch: reads in
its descriptor, parameters and input tensors, writes in its output tensor; every byte of each
output tensor must be written.

``results.npz`` holds ``status`` (``"ok"`` or the error), ``frames`` (frames finished),
``start_cycles`` and ``frame_cycles`` (cycle at which ``busy`` rose, and cycles until it fell,
per frame), ``layer_cycles`` (``(frames, layers)``: cycles from the start to each layer's
``layer_done`` pulse), ``registers`` (``(frames, 4)``: STATUS, LAYERS, CYCLES, ERROR),
``tensor<i>`` (``(frames, nbytes)`` uint8, layer ``i``'s output tensor as stored), ``cycles``
(cycles run after reset) and ``wall_seconds`` (wall time of the frames). Cycle ``c`` is the
``c``-th rising clock edge after reset is released.
"""

import json
import logging
import os
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import Event, FallingEdge, First, ReadWrite, RisingEdge, Timer
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from hwgen.engine.control import REGISTERS
from hwgen.engine.layout import ImagePlanes
from hwgen.engine.ports import port_names
from sim.engine import CONFIG_ENV
from sim.stream import Pattern

#: Byte written over every output tensor before a frame, so that an element the engine does
#: not write cannot keep a value that happens to be right.
POISON = 0xA5

#: The DRAM channels, as cocotbext-axi's ``AxiRam`` names them (read side, write side).
CHANNELS = {"read_if": ("ar_channel", "r_channel"),
            "write_if": ("aw_channel", "w_channel", "b_channel")}


class RunError(Exception):
    """The run failed; the message is the results file's status."""


def _pauses(pattern):
    """cocotbext-axi pause values, one per cycle: paused while the pattern is low."""
    cycle = 0
    while True:
        yield not pattern.high(cycle)
        cycle += 1


class _Addresses:
    """Stands for an AXI address channel of the RAM model, so that each burst is seen as the
    model takes it: ``on_burst(transaction, cycle)`` is awaited before the model serves it,
    ``cycle`` the one its address was taken in (the burst may have waited in the queue)."""

    def __init__(self, channel, on_burst, now):
        self._channel = channel
        self._on_burst = on_burst
        # The sink queues each address at the clock edge that takes it: note that cycle.
        # Any number of bursts may wait, so the channel is never held by a full queue.
        channel.queue_occupancy_limit = -1
        put = channel.queue.put_nowait
        self._taken = []
        channel.queue.put_nowait = lambda item: (self._taken.append(now()), put(item))

    def __getattr__(self, name):
        return getattr(self._channel, name)

    async def recv(self):
        transaction = await self._channel.recv()
        await self._on_burst(transaction, self._taken.pop(0))
        return transaction


async def _drive_at_once(source):
    """cocotbext-axi's ``StreamSource._run``, but deciding after the clock edge's other
    processes have run (``ReadWrite``), also when woken from idle: a beat the RAM produces at
    an edge (a read's first beat, a write response) is driven at that edge, as the model's
    memory does, rather than at the next."""
    edge = RisingEdge(source.clock)
    valid = False                   # what this drives (a signal read would lag a write)
    while True:
        if source.queue.empty() and not valid:
            source.active = False
            source.idle_event.set()
            source.active_event.clear()
            await source.active_event.wait()
            await ReadWrite()
        else:
            await edge
            ready = bool(source.ready.value)
            await ReadWrite()
            if valid and not ready:
                continue
        if not source.queue.empty() and not source.pause:
            source.bus.drive(source.queue.get_nowait())
            source.dequeue_event.set()
            valid = True
            source.active = True
        else:
            valid = False
            source.active = not source.queue.empty()
        source.valid.value = valid


class _Bench:
    def __init__(self, dut, config):
        self.dut = dut
        self.config = config
        self.period = float(config.get("clock_period_ns", 10))
        self.layers = config["layers"]
        self.ports = int(config.get("ports", 1))
        self.base = int(config["image_address"])
        self.released = 0.0             # sim time (ns) at which reset was released
        self.layer = 0                  # the layer running (layer_done pulses this frame)
        self.layer_times = []
        self.activity = 0               # bursts and layer ends, for the idle watchdog
        self.problems = []
        self.written = []               # (address, nbytes) of this frame's write bursts

    def now(self):
        """Cycles since reset was released."""
        return round((get_sim_time("ns") - self.released) / self.period)

    # -- the DRAM ------------------------------------------------------------------------------

    def _burst(self, transaction, kind, port):
        """``(address, nbytes)`` of a burst on ``port``, as the engine sees it: the bytes of
        the image whose lanes it carries."""
        address = int(getattr(transaction, f"{kind}addr"))
        beats = int(getattr(transaction, f"{kind}len")) + 1
        size = 1 << int(getattr(transaction, f"{kind}size"))
        if self.ports == 1:
            return address, beats * size
        offset = address - self.base - port * self.planes.plane_bytes
        return self.base + offset * self.ports, beats * size * self.ports

    def _inside(self, address, nbytes, regions):
        return any(start <= address and address + nbytes <= start + length
                   for start, length in regions)

    def _where(self):
        if self.layer < len(self.layers):
            return f"layer {self.layer} ('{self.layers[self.layer]['name']}')"
        return f"after the last layer ({len(self.layers)} layers done)"

    def _crosses_page(self, transaction, kind):
        """A burst on a port that crosses a 4 KiB boundary (the AXI rule), as a problem."""
        address = int(getattr(transaction, f"{kind}addr"))
        nbytes = (int(getattr(transaction, f"{kind}len")) + 1) << \
            int(getattr(transaction, f"{kind}size"))
        if address // 4096 != (address + nbytes - 1) // 4096:
            self.problems.append(f"a {nbytes}-byte burst at {address:#x} crosses a 4 KiB "
                                 f"boundary (cycle {self.now()})")

    async def _on_read(self, transaction, taken, port):
        self.activity += 1
        self._crosses_page(transaction, "ar")
        address, nbytes = self._burst(transaction, "ar", port)
        if self.layer < len(self.layers):
            layer = self.layers[self.layer]
            regions = [layer["descriptor"], layer["parameters"], *layer["reads"]]
        else:
            regions = []
        if not self._inside(address, nbytes, regions):
            self.problems.append(f"{self._where()} read {nbytes} bytes at {address:#x}, outside "
                                 f"its descriptor, parameters and input tensors "
                                 f"(cycle {self.now()})")
        # The first beat is driven at the edge ``latency`` cycles after the one that took the
        # address (the R channel drives at the edge it is given a beat), taken at the next.
        ready = taken + self.read_latency()
        if ready > self.now():
            await Timer((ready - self.now()) * self.period, "ns")

    async def _on_write(self, transaction, taken, port):
        self.activity += 1
        self._crosses_page(transaction, "aw")
        address, nbytes = self._burst(transaction, "aw", port)
        self.written.append((address, nbytes))
        regions = [self.layers[self.layer]["output"]] if self.layer < len(self.layers) else []
        if not self._inside(address, nbytes, regions):
            self.problems.append(f"{self._where()} wrote {nbytes} bytes at {address:#x}, "
                                 f"outside its output tensor (cycle {self.now()})")
        cycles = self.write_latency()
        if cycles:
            await Timer(cycles * self.period, "ns")

    def attach_ram(self, image):
        config, dut = self.config, self.dut
        latency = config["latency"]
        lo, hi = (latency, latency) if isinstance(latency, int) else map(int, latency)
        seed = int(config["seed"])
        # One random stream per direction, so that a read's wait does not depend on writes.
        # With a fixed latency writes do not wait (the model's memory takes them as they come).
        for name in ("read", "write"):
            rng = random.Random(f"{seed}:{name}_latency")
            fixed = lo if name == "read" else 0
            setattr(self, f"{name}_latency",
                    (lambda rng=rng: rng.randint(lo, hi)) if hi > lo else (lambda v=fixed: v))
        # One memory behind every port; the image lies in it as the engine's planes, from
        # ``base``, rounded up to whole 4 KiB pages (bursts stop at pages).
        base = self.base
        self.planes = ImagePlanes(self.ports, int(config["data_bytes"]), len(image))
        size = max(4096, -(-(base + self.planes.nbytes) // 4096) * 4096)
        self.mem = bytearray(size)
        self.image = np.frombuffer(self.mem, dtype=np.uint8)[base:base + self.planes.nbytes]
        self.planes.write(self.image, 0, image)
        self.rams = []
        pattern = config["backpressure"]
        for k, name in enumerate(port_names(self.ports)):
            ram = AxiRam(AxiBus.from_prefix(dut, f"{name}_"), dut.clk, dut.rst, size=size,
                         mem=self.mem)
            for side, channels in CHANNELS.items():
                interface = getattr(ram, side)
                interface.log.setLevel(logging.WARNING)      # one line per burst otherwise
                for channel_name in channels:
                    channel = getattr(interface, channel_name)
                    if not Pattern(pattern).always_high:
                        channel.set_pause_generator(_pauses(Pattern(
                            pattern, seed=seed, name=f"{name}.{channel_name}")))
            ram.read_if.ar_channel = _Addresses(
                ram.read_if.ar_channel, lambda t, taken, k=k: self._on_read(t, taken, k),
                self.now)
            ram.write_if.aw_channel = _Addresses(
                ram.write_if.aw_channel, lambda t, taken, k=k: self._on_write(t, taken, k),
                self.now)
            # The sources run from their construction (and again after each reset): replace
            # them.
            for source in (ram.read_if.r_channel, ram.write_if.b_channel):
                source._run = lambda source=source: _drive_at_once(source)
                if source._run_cr is not None:
                    source._run_cr.cancel()
                    source._run_cr = cocotb.start_soon(source._run())
            self.rams.append(ram)

    def read_image(self, address, nbytes):
        """``nbytes`` at ``address`` of the DRAM, the image seen whole (not in planes)."""
        return self.planes.read(self.image, address - self.base, nbytes)

    def write_image(self, address, data):
        self.planes.write(self.image, address - self.base, data)

    # -- monitors --------------------------------------------------------------------------------

    def log_layer(self, cycle):
        """The optional layer log, for following (and checking) a long frame as it runs: a
        line ``"<layers done in the frame> <cycle since reset>"`` at the frame's start (0
        layers) and at each layer end, the tensor that layer wrote first saved beside the log
        as it lies in DRAM (``layer<i>.bin``, ``i`` from 0)."""
        log = self.config.get("layer_log")
        if not log:
            return
        if self.layer:
            address, nbytes = self.layers[self.layer - 1]["output"]
            Path(log).with_name(f"layer{self.layer - 1}.bin").write_bytes(
                self.read_image(address, nbytes))
        with open(log, "a") as file:
            file.write(f"{self.layer} {cycle}\n")

    async def watch_layers(self):
        while True:
            await RisingEdge(self.dut.layer_done)
            self.layer_times.append(self.now())
            self.layer += 1
            self.activity += 1
            self.log_layer(self.layer_times[-1])

    async def watch_frame(self, times, finished):
        await RisingEdge(self.dut.busy)
        times.append(self.now())
        self.log_layer(times[-1])
        await FallingEdge(self.dut.busy)
        times.append(self.now())
        finished.set()

    # -- one frame ---------------------------------------------------------------------------------

    def _unwritten(self, start, length):
        """The first byte range of ``[start, start + length)`` no write burst covered."""
        at = start
        for address, nbytes in sorted(self.written):
            if address > at:
                break
            at = max(at, address + nbytes)
        end = start + length
        if at >= end:
            return None
        return at, end

    async def frame(self, index, packed_input, axil):
        config = self.config
        for layer in self.layers:
            address, nbytes = layer["output"]
            self.write_image(address, bytes([POISON]) * nbytes)
        self.write_image(int(config["input_address"]), packed_input.tobytes())
        self.layer, self.layer_times, self.written = 0, [], []

        times, finished = [], Event()
        cocotb.start_soon(self.watch_frame(times, finished))
        program = int(config["program_address"])
        await axil.write_dword(REGISTERS["PROGRAM_LO"], program & 0xFFFFFFFF)
        await axil.write_dword(REGISTERS["PROGRAM_HI"], program >> 32)
        if self.ports > 1:
            await axil.write_dword(REGISTERS["PLANE"], self.planes.plane_bytes)
        await axil.write_dword(REGISTERS["CTRL"], 1)

        max_cycles, idle_cycles = int(config["max_cycles"]), int(config["idle_cycles"])
        begin = self.now()
        step = max(1, min(idle_cycles // 4, 10_000))
        seen, since = self.activity, begin
        while not finished.is_set():
            await First(finished.wait(), Timer(step * self.period, "ns"))
            now = self.now()
            if self.problems:
                raise RunError(f"frame {index}: {self.problems[0]}")
            if self.activity != seen:
                seen, since = self.activity, now
            elif now - since > idle_cycles and not finished.is_set():
                raise RunError(f"frame {index}: the engine hung in {self._where()}: no DRAM "
                               f"burst and no layer end for {now - since} cycles (cycle {now})")
            if now - begin > max_cycles and not finished.is_set():
                raise RunError(f"frame {index}: the engine did not finish within {max_cycles} "
                               f"cycles ({self._where()}, cycle {now})")
        start, end = times
        # The last write response may still be on its way to the engine's counters; the
        # registers are read after busy falls, as a driver would.
        status = await axil.read_dword(REGISTERS["STATUS"])
        layers = await axil.read_dword(REGISTERS["LAYERS"])
        cycles = await axil.read_dword(REGISTERS["CYCLES_LO"]) | \
            (await axil.read_dword(REGISTERS["CYCLES_HI"]) << 32)
        error = await axil.read_dword(REGISTERS["ERROR"])
        if self.problems:
            raise RunError(f"frame {index}: {self.problems[0]}")
        if status & 0b101 or not status & 0b10:
            raise RunError(f"frame {index}: STATUS is {status:#05b} after busy fell (bit 0 busy, "
                           f"bit 1 done, bit 2 error; ERROR is {error}), expected done alone")
        if layers != len(self.layers) or len(self.layer_times) != len(self.layers):
            raise RunError(f"frame {index}: LAYERS is {layers} and layer_done pulsed "
                           f"{len(self.layer_times)} times; the program has {len(self.layers)} "
                           f"layers")
        for layer in self.layers:
            gap = self._unwritten(*layer["output"])
            if gap is not None:
                raise RunError(f"frame {index}: layer '{layer['name']}' left bytes "
                               f"{gap[0]:#x}..{gap[1] - 1:#x} of its output tensor unwritten")
        tensors = [np.frombuffer(self.read_image(*layer["output"]), dtype=np.uint8)
                   for layer in self.layers]
        return {"start": start, "cycles": end - start,
                "layers": [t - start for t in self.layer_times],
                "registers": [status, layers, cycles, error], "tensors": tensors}


class _Progress:
    """Writes ``"<frames done> <frames> <cycle>"`` to a file (read by the caller's bar)."""

    def __init__(self, path, frames):
        self._path = Path(path) if path else None
        self._frames = frames

    def __call__(self, done, cycle):
        if self._path is None:
            return
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(f"{done} {self._frames} {cycle}\n")
        tmp.replace(self._path)


def _save(path, frames, layers, *, status, cycles=0, wall=0.0):
    n = len(frames)
    arrays = {f"tensor{i}": np.stack([f["tensors"][i] for f in frames]) if n else
              np.zeros((0, layer["output"][1]), np.uint8) for i, layer in enumerate(layers)}
    np.savez(path, status=np.array(status), frames=np.int64(n),
             start_cycles=np.array([f["start"] for f in frames], dtype=np.int64),
             frame_cycles=np.array([f["cycles"] for f in frames], dtype=np.int64),
             layer_cycles=np.array([f["layers"] for f in frames],
                                   dtype=np.int64).reshape(n, len(layers)),
             registers=np.array([f["registers"] for f in frames], dtype=np.int64).reshape(n, 4),
             cycles=np.int64(cycles), wall_seconds=np.float64(wall), **arrays)


@cocotb.test()
async def run_frames(dut):
    """Run the program once per input frame; record every output tensor and the cycles."""
    config = json.loads(Path(os.environ[CONFIG_ENV]).read_text())
    frames = []
    bench = None
    try:
        bench = _Bench(dut, config)
        image = Path(config["image"]).read_bytes()
        inputs = np.load(config["inputs"])
        progress = _Progress(config.get("progress"), len(inputs))

        # The bus models sample the design's outputs from their first clock edge on, reset
        # or not, and some outputs take two edges of reset to leave X: the models are made
        # after the reset cycles (they drive their own outputs idle at once), and reset is
        # released one edge later.
        dut.rst.value = 1
        Clock(dut.clk, bench.period, unit="ns", impl="gpi").start()
        for _ in range(max(2, int(config.get("reset_cycles", 4)))):
            await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        bench.attach_ram(image)
        axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil_"), dut.clk, dut.rst)
        axil.write_if.log.setLevel(logging.WARNING)
        axil.read_if.log.setLevel(logging.WARNING)
        await RisingEdge(dut.clk)
        dut.rst.value = 0
        bench.released = get_sim_time("ns")
        cocotb.start_soon(bench.watch_layers())

        start = time.monotonic()
        for index, packed in enumerate(inputs):
            frames.append(await bench.frame(index, packed, axil))
            progress(len(frames), bench.now())
        wall = time.monotonic() - start
    except Exception as error:
        message = str(error) if isinstance(error, RunError) else \
            f"{type(error).__name__}: {error}"
        _save(config["results"], frames, config["layers"], status=message,
              cycles=bench.now() if bench is not None and bench.released else 0)
        raise
    _save(config["results"], frames, config["layers"], status="ok", cycles=bench.now(),
          wall=wall)
