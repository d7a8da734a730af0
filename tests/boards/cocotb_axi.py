"""cocotb tests of the AXI board top (module ``hwgen_axi``), driven by cocotbext-axi.

Started by tests/boards/test_axi.py; the configuration is a JSON file whose path is in the
environment variable ``BOARDS_AXI_CONFIG``::

    {"design": {...AXIAccelerator.description()...}, "latency": 40, "frames": 6,
     "input": "input.npy" (packed input bytes, uint8), "pause": 0.3, "seed": 1,
     "results": "results.json"}

Each test writes what it received (hex bytes per packet) and the registers it read under its
own name in ``results.json``; test_axi.py unpacks the bytes and compares them with the golden.
"""

import json
import os
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles
from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamFrame,
                           AxiStreamSink, AxiStreamSource)

CONFIG_ENV = "BOARDS_AXI_CONFIG"


def _config():
    return json.loads(Path(os.environ[CONFIG_ENV]).read_text())


def _record(config, name, **values):
    path = Path(config["results"])
    results = json.loads(path.read_text()) if path.exists() else {}
    results[name] = values
    path.write_text(json.dumps(results, indent=1))


def _pauses(seed, name, probability):
    rng = random.Random(f"{seed}/{name}")
    while True:
        yield rng.random() < probability


class Bench:
    """Clock, reset, stream source and sink and register master around the DUT."""

    def __init__(self, dut, config, *, pause=0.0):
        self.dut, self.config = dut, config
        self.design = config["design"]
        self.registers = self.design["registers"]
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.aclk,
                                      dut.aresetn, reset_active_level=False)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.aclk,
                                  dut.aresetn, reset_active_level=False)
        self.regs = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi"), dut.aclk, dut.aresetn,
                                  reset_active_level=False)
        if pause:
            seed = config["seed"]
            self.source.set_pause_generator(_pauses(seed, "source", pause))
            self.sink.set_pause_generator(_pauses(seed, "sink", pause))
        self.in_bytes = self.design["input"]["tdata_bits"] // 8 \
            * self.design["input"]["beats_per_frame"]
        self.out_bytes = self.design["output"]["tdata_bits"] // 8 \
            * self.design["output"]["beats_per_frame"]
        data = np.load(config["input"])
        self.frames = [data[i * self.in_bytes:(i + 1) * self.in_bytes].tobytes()
                       for i in range(config["frames"])]

    async def start(self):
        """Inputs are idle (set by the constructors); then reset with the clock running."""
        self.dut.aresetn.value = 0
        Clock(self.dut.aclk, 10, unit="ns").start()
        await ClockCycles(self.dut.aclk, 8)
        self.dut.aresetn.value = 1
        await ClockCycles(self.dut.aclk, 2)

    async def read(self, name):
        return int(await self.regs.read_dword(self.registers[name]))

    async def write(self, name, value):
        await self.regs.write_dword(self.registers[name], value)

    async def receive(self, packets):
        data = []
        for _ in range(packets):
            frame = await self.sink.recv()
            data.append(bytes(frame.tdata).hex())
        return data


@cocotb.test()
async def identity_and_latency(dut):
    """Constant registers read back; one frame without back-pressure takes the model latency."""
    config = _config()
    bench = Bench(dut, config)
    await bench.start()
    design = bench.design
    constants = {name: await bench.read(name) for name in
                 ("ID", "VERSION", "DESIGN_ID", "IN_BEATS", "OUT_BEATS", "PACKET_FRAMES")}
    assert constants == {"ID": design["magic"], "VERSION": design["register_map_version"],
                         "DESIGN_ID": design["design_id"],
                         "IN_BEATS": design["input"]["beats_per_frame"],
                         "OUT_BEATS": design["output"]["beats_per_frame"],
                         "PACKET_FRAMES": 1}, constants
    await bench.source.send(AxiStreamFrame(bench.frames[0]))
    packets = await bench.receive(1)
    await ClockCycles(dut.aclk, 2)
    latency = await bench.read("LAST_CYCLES")
    _record(config, "identity_and_latency", packets=packets, latency=latency,
            constants=constants)
    assert latency == config["latency"], (latency, config["latency"])


@cocotb.test()
async def frames_under_backpressure(dut):
    """Every frame its own packet; random pauses on both streams; registers read meanwhile."""
    config = _config()
    bench = Bench(dut, config, pause=config["pause"])
    await bench.start()
    n = len(bench.frames)
    reads = []
    done = False

    async def poll():
        # IN_FRAMES before FRAMES: their difference never exceeds the frames in flight.
        while not done:
            in_frames = await bench.read("IN_FRAMES")
            reads.append([await bench.read("FRAMES"), in_frames, await bench.read("CYCLES")])

    poller = cocotb.start_soon(poll())
    for frame in bench.frames:
        await bench.source.send(AxiStreamFrame(frame))
    packets = await bench.receive(n)
    done = True
    await poller
    await ClockCycles(dut.aclk, 2)
    final = {name: await bench.read(name) for name in
             ("FRAMES", "IN_FRAMES", "ERRORS", "LAST_CYCLES", "INTERVAL")}
    _record(config, "frames_under_backpressure", packets=packets, reads=reads, final=final)
    assert all(len(bytes.fromhex(p)) == bench.out_bytes for p in packets), \
        [len(p) // 2 for p in packets]
    assert final["FRAMES"] == n and final["IN_FRAMES"] == n and final["ERRORS"] == 0, final
    assert final["INTERVAL"] > 0 and final["LAST_CYCLES"] >= config["latency"], final
    frames_read = [r[0] for r in reads]
    assert len(reads) >= 3 and frames_read == sorted(frames_read), reads
    cycles_read = [r[2] for r in reads]
    assert cycles_read == sorted(cycles_read) and len(set(cycles_read)) == len(reads), reads


@cocotb.test()
async def one_packet_for_all_frames(dut):
    """PACKET_FRAMES = N: one TLAST packet in, one out, no framing error."""
    config = _config()
    bench = Bench(dut, config, pause=config["pause"])
    await bench.start()
    n = len(bench.frames)
    await bench.write("PACKET_FRAMES", n)
    await bench.source.send(AxiStreamFrame(b"".join(bench.frames)))
    packets = await bench.receive(1)
    errors = await bench.read("ERRORS")
    _record(config, "one_packet_for_all_frames", packets=packets, errors=errors)
    assert len(bytes.fromhex(packets[0])) == n * bench.out_bytes
    assert errors == 0, errors


@cocotb.test()
async def tlast_errors_are_flagged(dut):
    """A missing and an early TLAST set their sticky flags; frames still come out whole."""
    config = _config()
    bench = Bench(dut, config)
    await bench.start()
    bits = config["design"]["error_bits"]
    first, second = bench.frames[0], bench.frames[1]
    # Two frames in one packet: the first frame ends without TLAST.
    await bench.source.send(AxiStreamFrame(first + second))
    packets = await bench.receive(2)
    missing = await bench.read("ERRORS")
    await bench.write("ERRORS", 1 << bits["tlast_missing"])
    cleared = await bench.read("ERRORS")
    # One frame cut in two packets: TLAST after its first beat.
    beat = config["design"]["input"]["tdata_bits"] // 8
    if len(first) > beat:
        await bench.source.send(AxiStreamFrame(first[:beat]))
        await bench.source.send(AxiStreamFrame(first[beat:]))
    else:
        await bench.source.send(AxiStreamFrame(first))
    packets += await bench.receive(1)
    early = await bench.read("ERRORS")
    frames_before = await bench.read("FRAMES")
    await bench.write("CONTROL", 1)
    after_clear = [await bench.read("ERRORS"), await bench.read("FRAMES")]
    _record(config, "tlast_errors_are_flagged", packets=packets, missing=missing,
            cleared=cleared, early=early, frames_before=frames_before, after_clear=after_clear)
    assert missing == 1 << bits["tlast_missing"], missing
    assert cleared == 0, cleared
    if config["design"]["input"]["beats_per_frame"] > 1:
        assert early == 1 << bits["tlast_early"], early
    assert frames_before == 3 and after_clear == [0, 0], (frames_before, after_clear)
