"""The engine's AXI read and write masters against a memory with random stalls."""

import random

import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from hwgen.engine.dma import MAX_BURST, ReadMaster, WriteMaster

from .axi_memory import AxiMemory

COMMANDS = [(0, 5), (4096 - 3 * 8, 7), (8192, 3 * MAX_BURST + 2), (3 * 4096 + 8, 0),
            (4096 * 5 - 8, 1), (4096 * 6, 1)]


def simulate(dut, benches, max_cycles=20_000):
    top = Module()
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(1e-8)
    *background, main = benches
    for bench in background:
        sim.add_testbench(bench, background=True)
    sim.add_testbench(main)
    sim.run()


@pytest.mark.parametrize("stall", [0.0, 0.4], ids=["flow", "stalls"])
def test_read_master_streams_every_word_of_every_command_in_order(stall):
    rng = random.Random(1)
    memory = bytearray(rng.randbytes(8 * 4096))
    dut = ReadMaster(addr_bits=16, data_bits=64)
    axi = AxiMemory(dut.m_axi, memory, data_bits=64, stall=stall, latency=3, seed=2)
    got, lasts = [], []
    expected = [int.from_bytes(memory[a + 8 * i:a + 8 * i + 8], "little")
                for a, n in COMMANDS for i in range(n)]

    async def commands(ctx):
        for address, words in COMMANDS:
            ctx.set(dut.i_cmd.payload.address, address)
            ctx.set(dut.i_cmd.payload.words, words)
            ctx.set(dut.i_cmd.valid, 1)
            await ctx.tick().until(dut.i_cmd.ready)
        ctx.set(dut.i_cmd.valid, 0)

    async def sink(ctx):
        out_rng = random.Random(3)
        for _ in range(20_000):
            ready = out_rng.random() >= stall
            ctx.set(dut.o_data.ready, ready)
            _, _, valid, word, last, idle = await ctx.tick().sample(
                dut.o_data.valid, dut.o_data.payload.word, dut.o_data.payload.last, dut.idle)
            if ready and valid:
                got.append(word)
                lasts.append(last)
            if len(got) == len(expected) and idle:
                break
        assert ctx.get(dut.idle), f"{len(got)} of {len(expected)} words"

    simulate(dut, [axi.read, commands, sink])
    assert got == expected
    ends = [i for i, last in enumerate(lasts) if last]
    assert ends == list(itertools_accumulate([n for _, n in COMMANDS if n]))
    assert all(beats <= MAX_BURST for _, beats in axi.reads)
    assert sum(beats for _, beats in axi.reads) == len(expected)


def itertools_accumulate(lengths):
    total, out = 0, []
    for n in lengths:
        total += n
        out.append(total - 1)
    return out


@pytest.mark.parametrize("stall, w_first", [(0.0, False), (0.4, False), (0.2, True)],
                         ids=["flow", "stalls", "w_first"])
def test_write_master_writes_every_word_where_its_command_says(stall, w_first):
    """With ``w_first`` the memory waits for WVALID before it raises AWREADY (as AXI allows a
    slave to): the master must not wait for AWREADY before it raises WVALID, or neither
    moves."""
    rng = random.Random(4)
    memory = bytearray(8 * 4096)
    dut = WriteMaster(addr_bits=16, data_bits=64)
    axi = AxiMemory(dut.m_axi, memory, data_bits=64, stall=stall, seed=5, w_first=w_first)
    words = [rng.getrandbits(64) for _ in range(sum(n for _, n in COMMANDS))]

    async def commands(ctx):
        for address, n in COMMANDS:
            ctx.set(dut.i_cmd.payload.address, address)
            ctx.set(dut.i_cmd.payload.words, n)
            ctx.set(dut.i_cmd.valid, 1)
            await ctx.tick().until(dut.i_cmd.ready)
        ctx.set(dut.i_cmd.valid, 0)

    async def guard(ctx):
        for _ in range(5000):
            await ctx.tick()
        raise AssertionError(f"the writes stalled: {len(axi.writes)} bursts taken")

    async def source(ctx):
        in_rng = random.Random(6)
        for word in words:
            while in_rng.random() < stall:
                await ctx.tick()
            ctx.set(dut.i_data.payload, word)
            ctx.set(dut.i_data.valid, 1)
            await ctx.tick().until(dut.i_data.ready)
            ctx.set(dut.i_data.valid, 0)
        for _ in range(2000):
            await ctx.tick()
            if ctx.get(dut.idle):
                break
        assert ctx.get(dut.idle)

    simulate(dut, [axi.write, commands, guard, source])
    k = 0
    for address, n in COMMANDS:
        for i in range(n):
            assert int.from_bytes(memory[address + 8 * i:address + 8 * i + 8], "little") == \
                words[k], f"word {i} of the command at {address:#x}"
            k += 1
    assert all(beats <= MAX_BURST for _, beats in axi.writes)
