"""Run an engine program in the Amaranth simulator against the AXI memory model."""

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

import quant
from quant import graph as g

from hwgen.engine.control import REGISTERS
from hwgen.engine.core import Engine
from hwgen.engine.ports import port_names

from .axi_memory import AxiMemory


def port_memories(dut, config, memory, options):
    """An :class:`AxiMemory` on ``memory`` for each AXI4 master of the engine ``dut`` built
    as ``config``; ``options(k)`` the keyword arguments of port ``k``."""
    return [AxiMemory(getattr(dut, name), memory, data_bits=config.port_bits, **options(k))
            for k, name in enumerate(port_names(config.ports))]


async def axil_write(ctx, bus, address, value):
    ctx.set(bus.awaddr, address)
    ctx.set(bus.wdata, value)
    ctx.set(bus.wstrb, 0xF)
    ctx.set(bus.awvalid, 1)
    ctx.set(bus.wvalid, 1)
    ctx.set(bus.bready, 1)
    await ctx.tick().until(bus.awready)
    ctx.set(bus.awvalid, 0)
    ctx.set(bus.wvalid, 0)
    await ctx.tick().until(bus.bvalid)
    ctx.set(bus.bready, 0)


async def axil_read(ctx, bus, address):
    ctx.set(bus.araddr, address)
    ctx.set(bus.arvalid, 1)
    ctx.set(bus.rready, 1)
    await ctx.tick().until(bus.arready)
    ctx.set(bus.arvalid, 0)
    value, = await ctx.tick().sample(bus.rdata).until(bus.rvalid)
    ctx.set(bus.rready, 0)
    return value


def run_engine(config, memory, *, program=0, plane=None, stall=0.0, latency=2, seed=0,
               max_cycles=500_000, restart=None, port_options=None, **memory_options):
    """Run the program at ``program`` on ``memory`` (changed in place); returns the cycles of
    each layer (from start to its ``layer_done``) and the registers read at the end.

    Each of the engine's ports is an :class:`AxiMemory` on ``memory`` (``memory_options``
    for all, ``port_options[k]`` for port ``k`` besides; each port stalls on its own), and
    ``plane`` the ``PLANE`` register of an engine of several. With ``restart``, a function
    of the list of memories, the engine is started again after the run ends and ``restart``
    is called: the result is the second run's, with the first's under ``"first"``."""
    dut = Engine(config)
    axis = port_memories(dut, config, memory, lambda k: dict(
        stall=stall, latency=latency, seed=seed + k,
        **memory_options | (port_options or {}).get(k, {})))
    result = {"layers": []}

    seen = {"start": None, "ends": []}

    async def watch(ctx):
        # From the first cycle, so that the cycle busy rises is seen whatever the register
        # writes before it take.
        cycle = 0
        async for _, _, busy, layer_done in ctx.tick().sample(dut.busy, dut.layer_done):
            if seen["start"] is None and busy:
                seen["start"] = cycle
            if layer_done:
                seen["ends"].append(cycle)
            cycle += 1

    async def one_run(ctx):
        seen.update(start=None, ends=[])
        await axil_write(ctx, dut.s_axil, REGISTERS["CTRL"], 1)
        for _ in range(max_cycles):
            await ctx.tick()
            if seen["start"] is not None and not ctx.get(dut.busy):
                break
        else:
            raise AssertionError(f"the engine did not finish in {max_cycles} cycles "
                                 f"({len(seen['ends'])} layers done)")
        run = {name: await axil_read(ctx, dut.s_axil, REGISTERS[register])
               for name, register in [("status", "STATUS"), ("layers_register", "LAYERS"),
                                      ("cycles", "CYCLES_LO"), ("id", "ID"),
                                      ("error", "ERROR")]}
        # Each layer from the cycle busy rose to its layer_done pulse.
        run["layers"] = [end - seen["start"] for end in seen["ends"]]
        return run

    async def bench(ctx):
        await axil_write(ctx, dut.s_axil, REGISTERS["PROGRAM_LO"], program)
        if plane is not None:
            await axil_write(ctx, dut.s_axil, REGISTERS["PLANE"], plane)
        result.update(await one_run(ctx))
        if restart is not None:
            restart(axis)
            result.update(await one_run(ctx), first=dict(result))

    top = Module()
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(1e-8)
    for axi in axis:
        sim.add_testbench(axi.read, background=True)
        sim.add_testbench(axi.write, background=True)
    sim.add_testbench(watch, background=True)
    sim.add_testbench(bench)
    sim.run()
    return result


def three_dense_layers(rng):
    """A network of three dense layers, each with its requantizer: three engine layers."""
    nodes = []
    for i, (outs, ins) in enumerate([(5, 6), (7, 5), (3, 7)]):
        nodes += [g.dense(f"fc{i}", rng.integers(-7, 8, (outs, ins)), rng.integers(-9, 9, outs),
                          np.full(outs, 4)),
                  g.requantize(f"act{i}", rng.integers(1, 1 << 8, outs), 10, 4, False)]
    return quant.QGraph(quant.InputSpec((6,), 8, False), nodes)


def clear_faults(axis):
    """A ``restart`` for :func:`run_engine`: every memory answers OKAY from now on."""
    for axi in axis:
        axi.faulty = range(0)
