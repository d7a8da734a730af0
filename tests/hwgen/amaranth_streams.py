"""Amaranth-simulator stream helpers for block tests: seeded valid gaps and ready drops."""

import random

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from sim.stream import pack_beat, unpack_beat


def run_stream(dut, beats, out_beats, *, in_bits, out_bits, out_signed, out_count,
               backpressure=0.0, seed=0, max_cycles=200_000):
    """Drive ``beats`` (rows of element values) into ``dut.i_stream``; collect ``out_beats``.

    Returns ``(outputs as an int64 array (out_beats, out_count), cycles of each output)``.
    """
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1)
    outputs, when = [], []

    async def driver(ctx):
        for beat in beats:
            while rng_in.random() < backpressure:
                await ctx.tick()
            ctx.set(dut.i_stream.payload.as_value(), pack_beat(beat, in_bits))
            ctx.set(dut.i_stream.valid, 1)
            await ctx.tick().until(dut.i_stream.ready)
            ctx.set(dut.i_stream.valid, 0)

    async def monitor(ctx):
        cycle = 0
        while len(outputs) < out_beats:
            ready = rng_out.random() >= backpressure
            ctx.set(dut.o_stream.ready, ready)
            valid, word = ctx.get(dut.o_stream.valid), ctx.get(dut.o_stream.payload.as_value())
            await ctx.tick()
            cycle += 1
            if ready and valid:
                outputs.append(unpack_beat(word, out_bits, out_count, out_signed))
                when.append(cycle)
            if cycle > max_cycles:
                raise AssertionError(f"only {len(outputs)} of {out_beats} output beats after "
                                     f"{max_cycles} cycles (seed {seed})")

    top = Module()  # owns the clock, so purely combinational blocks simulate too
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(driver, background=True)
    sim.add_testbench(monitor)
    sim.run()
    return np.array(outputs, dtype=np.int64).reshape(out_beats, out_count), when
