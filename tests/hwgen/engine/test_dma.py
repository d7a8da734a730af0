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


def send(dut, commands):
    """A testbench that gives ``dut`` the ``(address, words)`` commands in order."""
    async def bench(ctx):
        for address, words in commands:
            ctx.set(dut.i_cmd.payload.address, address)
            ctx.set(dut.i_cmd.payload.words, words)
            ctx.set(dut.i_cmd.valid, 1)
            await ctx.tick().until(dut.i_cmd.ready)
        ctx.set(dut.i_cmd.valid, 0)
    return bench


def feed(dut, words, *, stall=0.0, delay=0):
    """A testbench that, after ``delay`` cycles, gives the write master ``words`` (pausing
    at random with probability ``stall``), then waits for it to be idle."""
    async def bench(ctx):
        rng = random.Random(6)
        for _ in range(delay):
            await ctx.tick()
        for word in words:
            while rng.random() < stall:
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
    return bench


@pytest.mark.parametrize("stall", [0.0, 0.4], ids=["flow", "stalls"])
def test_read_master_streams_every_word_of_every_command_in_order(stall):
    rng = random.Random(1)
    memory = bytearray(rng.randbytes(8 * 4096))
    dut = ReadMaster(addr_bits=16, data_bits=64)
    axi = AxiMemory(dut.m_axi, memory, data_bits=64, stall=stall, latency=3, seed=2)
    got, lasts = [], []
    expected = [int.from_bytes(memory[a + 8 * i:a + 8 * i + 8], "little")
                for a, n in COMMANDS for i in range(n)]

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

    simulate(dut, [axi.read, send(dut, COMMANDS), sink])
    assert got == expected
    ends = [i for i, last in enumerate(lasts) if last]
    assert ends == list(itertools_accumulate([n for _, n in COMMANDS if n]))
    assert all(beats <= MAX_BURST for _, beats in axi.reads)
    assert sum(beats for _, beats in axi.reads) == len(expected)


def test_read_master_holds_a_beat_its_consumer_does_not_take():
    """``rready`` is a register: the consumer's ``ready`` reaches it a cycle later, never in
    the same cycle, and the beat the consumer left is held and given first."""
    dut = ReadMaster(addr_bits=16, data_bits=64)

    async def bench(ctx):
        ctx.set(dut.m_axi.rvalid, 1)
        ctx.set(dut.m_axi.rdata, 0x1234)
        ctx.set(dut.o_data.ready, 0)
        assert ctx.get(dut.m_axi.rready)            # nothing held: the bus gives its beat
        await ctx.tick()
        ctx.set(dut.m_axi.rdata, 0x5678)
        assert not ctx.get(dut.m_axi.rready)
        assert ctx.get(dut.o_data.valid) and ctx.get(dut.o_data.payload.word) == 0x1234
        ctx.set(dut.o_data.ready, 1)
        assert not ctx.get(dut.m_axi.rready)        # not in the cycle the consumer takes it
        await ctx.tick()
        assert ctx.get(dut.m_axi.rready)
        assert ctx.get(dut.o_data.valid) and ctx.get(dut.o_data.payload.word) == 0x5678

    simulate(dut, [bench])


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

    async def guard(ctx):
        for _ in range(5000):
            await ctx.tick()
        raise AssertionError(f"the writes stalled: {len(axi.writes)} bursts taken")

    simulate(dut, [axi.write, send(dut, COMMANDS), guard, feed(dut, words, stall=stall)])
    k = 0
    for address, n in COMMANDS:
        for i in range(n):
            assert int.from_bytes(memory[address + 8 * i:address + 8 * i + 8], "little") == \
                words[k], f"word {i} of the command at {address:#x}"
            k += 1
    assert all(beats <= MAX_BURST for _, beats in axi.writes)


def test_write_addresses_hold_while_the_data_waits():
    """Many short bursts whose data comes late: the length queue fills ahead of the data,
    and every burst's address, once offered, stays offered until it is taken (the memory
    fails the test otherwise)."""
    memory = bytearray(8 * 4096)
    dut = WriteMaster(addr_bits=16, data_bits=64)
    axi = AxiMemory(dut.m_axi, memory, data_bits=64, stall=0.5, seed=8)
    commands = [(64 * i, 1) for i in range(40)]

    words = list(range(1, len(commands) + 1))
    simulate(dut, [axi.write, send(dut, commands), feed(dut, words, delay=60)])
    assert [int.from_bytes(memory[a:a + 8], "little") for a, _ in commands] == words
