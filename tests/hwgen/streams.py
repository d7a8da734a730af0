"""Stream testbench helpers for the blocks in the Amaranth simulator.

:func:`stream_put` and :func:`stream_get` move one beat the way a well-behaved producer or
consumer does (valid held until ready; ready held until valid). :func:`stream_bench` drives
any number of input streams and collects one output stream in a single testbench, so every
offer and transfer is counted in one clock: input beats come after seeded random gaps and are
held until taken, the output is not ready in seeded random cycles. :func:`run_stream` is the
common case of one input stream. :func:`run_unit` runs any block under a testbench.
"""

import random

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from sim.stream import pack_beat, unpack_beat

__all__ = ["stream_put", "stream_get", "stream_bench", "run_stream", "run_unit"]


def run_unit(dut, bench):
    """Simulate ``dut`` in a ``sync`` domain on a clock under the testbench ``bench`` (the
    top owns the clock, so purely combinational blocks simulate too)."""
    top = Module()
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


async def stream_put(ctx, stream, payload):
    """Offer ``payload`` (an int, the payload's bits) on ``stream`` until it is taken."""
    ctx.set(stream.payload.as_value(), payload)
    ctx.set(stream.valid, 1)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Take one beat from ``stream``; returns its payload bits as an int."""
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload.as_value()).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


def stream_bench(dut, inputs, out_beats, *, out_bits, out_signed, out_count, gaps=0.0,
                 out_stalls=0.0, seed=0, drain=0, max_cycles=200_000, output="o_stream"):
    """Drive ``inputs`` (``{port name: (beats, element bits)}``, each beat a row of element
    values) into ``dut`` and collect ``out_beats`` beats of ``out_count`` elements.

    ``gaps`` is a probability per cycle of a gap before an input beat (one number, or one per
    port); ``out_stalls`` a probability per cycle of the output not being ready. After the last
    beat, ``drain`` more cycles with the output ready must bring no further beat.

    Returns ``(outputs (out_beats, out_count) int64, {port: offer cycles}, {port: transfer
    cycles}, output transfer cycles)``; a failure message names the seed.
    """
    rng = random.Random(seed)
    gaps = gaps if isinstance(gaps, dict) else {name: gaps for name in inputs}
    offered = {name: [] for name in inputs}
    taken = {name: [] for name in inputs}
    outputs, when = [], []
    out = getattr(dut, output)

    async def bench(ctx):
        cycle = 0
        index = dict.fromkeys(inputs, 0)
        pending = dict.fromkeys(inputs, False)
        while len(outputs) < out_beats or any(index[n] < len(b) for n, (b, _) in inputs.items()):
            for name, (beats, bits) in inputs.items():
                port = getattr(dut, name)
                if index[name] < len(beats) and not pending[name] and rng.random() >= gaps[name]:
                    pending[name] = True
                    offered[name].append(cycle)
                    ctx.set(port.payload.as_value(), pack_beat(beats[index[name]], bits))
                ctx.set(port.valid, pending[name])
            ready = rng.random() >= out_stalls
            ctx.set(out.ready, ready)
            for name in inputs:
                if pending[name] and ctx.get(getattr(dut, name).ready):
                    taken[name].append(cycle)
                    pending[name], index[name] = False, index[name] + 1
            if ready and ctx.get(out.valid):
                word = ctx.get(out.payload.as_value())
                outputs.append(unpack_beat(word, out_bits, out_count, out_signed))
                when.append(cycle)
            await ctx.tick()
            cycle += 1
            if cycle > max_cycles:
                raise AssertionError(f"only {len(outputs)} of {out_beats} output beats after "
                                     f"{max_cycles} cycles (seed {seed})")
        for name in inputs:
            ctx.set(getattr(dut, name).valid, 0)
        ctx.set(out.ready, 1)
        for _ in range(drain):
            if ctx.get(out.valid):
                raise AssertionError(f"an output beat beyond the {out_beats} expected "
                                     f"(seed {seed})")
            await ctx.tick()

    run_unit(dut, bench)
    return (np.array(outputs, dtype=np.int64).reshape(out_beats, out_count), offered, taken,
            when)


def run_stream(dut, beats, out_beats, *, in_bits, out_bits, out_signed, out_count,
               in_gaps=0.0, out_stalls=0.0, seed=0, drain=0, max_cycles=200_000):
    """:func:`stream_bench` with one input, ``i_stream``: ``(outputs, offer cycles, input
    transfer cycles, output transfer cycles)``."""
    out, offered, taken, when = stream_bench(
        dut, {"i_stream": (beats, in_bits)}, out_beats, out_bits=out_bits,
        out_signed=out_signed, out_count=out_count, gaps=in_gaps, out_stalls=out_stalls,
        seed=seed, drain=drain, max_cycles=max_cycles)
    return out, offered["i_stream"], taken["i_stream"], when
