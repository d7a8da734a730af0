"""The self-test's AXI RAM: every read burst gives the words it holds, in order, with its last
beat marked, whatever the reader's back-pressure; a burst past its end reads zeros and sets
the error; writes land under their strobes."""

import random

import pytest
from boards.engine_selftest import AxiRam

from ..hwgen.streams import run_unit

DEPTH = 64


def _run(bench_body, init):
    dut = AxiRam(data_bits=32, addr_bits=12, init=init)

    async def bench(ctx):
        await bench_body(ctx, dut)
    run_unit(dut, bench)
    return dut


async def _read(ctx, bus, word, beats, pauses, stall):
    """One read burst; returns its beats as (data, last) and the cycles it took."""
    ctx.set(bus.araddr, word * 4)
    ctx.set(bus.arlen, beats - 1)
    ctx.set(bus.arsize, 2)
    ctx.set(bus.arburst, 1)
    ctx.set(bus.arvalid, 1)
    got, cycles = [], 0
    while True:
        cycles += 1
        _, _, ready = await ctx.tick().sample(bus.arready)
        if ready:
            break
    ctx.set(bus.arvalid, 0)
    while len(got) < beats:
        assert cycles < 20 * beats + 20, f"only {len(got)} of {beats} beats came"
        take = pauses.random() >= stall
        ctx.set(bus.rready, take)
        _, _, valid, data, last = await ctx.tick().sample(bus.rvalid, bus.rdata, bus.rlast)
        cycles += 1
        if valid and take:
            got.append((data, last))
    ctx.set(bus.rready, 0)
    return got, cycles


async def _write_address(ctx, bus, word, beats):
    """A write burst's address, taken; its response will be taken when it comes."""
    ctx.set(bus.awaddr, word * 4)
    ctx.set(bus.awlen, beats - 1)
    ctx.set(bus.awsize, 2)
    ctx.set(bus.awburst, 1)
    ctx.set(bus.awvalid, 1)
    await ctx.tick().until(bus.awready)
    ctx.set(bus.awvalid, 0)
    ctx.set(bus.bready, 1)


@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_reads_give_the_words_in_order_under_back_pressure(stall):
    init = [random.Random(1).getrandbits(32) for _ in range(DEPTH)]
    pauses = random.Random(int(stall * 10))
    bursts = [(0, 1), (3, 16), (40, 24), (63, 1), (10, 5)]
    results = []

    async def bench(ctx, dut):
        for word, beats in bursts:
            results.append(await _read(ctx, dut.s_axi, word, beats, pauses, stall))
        assert not ctx.get(dut.error)

    _run(bench, init)
    for (word, beats), (got, cycles) in zip(bursts, results):
        assert got == [(init[word + i], int(i == beats - 1)) for i in range(beats)]
        if not stall:   # the address, the RAM's read, its register, then a beat a cycle
            assert cycles == 3 + beats


def test_addresses_taken_while_beats_wait_and_held_beats_stay_put():
    """The next burst's address is offered at once, every cycle, while the reader stalls at
    random: beats still come in order with their last marks, one held while not taken keeps
    its data, and a burst past the end between good ones reads zeros."""
    init = [random.Random(2).getrandbits(32) for _ in range(DEPTH)]
    bursts = [(5, 3), (0, 1), (DEPTH - 2, 4), (20, 9), (63, 1), (30, 2)]
    expected = [(0 if word + beats > DEPTH else init[word + i], int(i == beats - 1))
                for word, beats in bursts for i in range(beats)]
    pauses = random.Random(3)
    got = []

    async def bench(ctx, dut):
        bus = dut.s_axi
        ctx.set(bus.arsize, 2)
        ctx.set(bus.arburst, 1)
        pending, held = list(bursts), None
        for _ in range(400):
            if pending:
                word, beats = pending[0]
                ctx.set(bus.araddr, word * 4)
                ctx.set(bus.arlen, beats - 1)
            ctx.set(bus.arvalid, bool(pending))
            take = pauses.random() >= 0.5
            ctx.set(bus.rready, take)
            _, _, arready, valid, data, last = await ctx.tick().sample(
                bus.arready, bus.rvalid, bus.rdata, bus.rlast)
            if pending and arready:
                pending.pop(0)
            if held is not None:
                assert valid and (data, last) == held, "a beat changed before it was taken"
            held = (data, last) if valid and not take else None
            if valid and take:
                got.append((data, last))
            if len(got) == len(expected):
                break
        assert ctx.get(dut.error)

    _run(bench, init)
    assert got == expected


def test_a_burst_past_the_end_reads_zeros_and_sets_the_error():
    init = list(range(1, DEPTH + 1))

    async def bench(ctx, dut):
        got, _ = await _read(ctx, dut.s_axi, DEPTH - 2, 4, random.Random(0), 0.0)
        assert [data for data, _ in got] == [0] * 4
        assert ctx.get(dut.error)

    _run(bench, init)


def test_writes_land_under_their_strobes():
    init = [0] * DEPTH

    async def bench(ctx, dut):
        bus = dut.s_axi
        await _write_address(ctx, bus, 8, 2)
        for data, strobe, last in ((0x11223344, 0b1111, 0), (0xAABBCCDD, 0b0101, 1)):
            ctx.set(bus.wdata, data)
            ctx.set(bus.wstrb, strobe)
            ctx.set(bus.wlast, last)
            ctx.set(bus.wvalid, 1)
            await ctx.tick().until(bus.wready)
        ctx.set(bus.wvalid, 0)
        await ctx.tick().until(bus.bvalid)
        got, _ = await _read(ctx, bus, 8, 2, random.Random(0), 0.0)
        assert [data for data, _ in got] == [0x11223344, 0x00BB00DD]

    _run(bench, init)


def test_a_write_burst_past_the_end_writes_nothing_and_sets_the_error():
    init = list(range(1, DEPTH + 1))

    async def bench(ctx, dut):
        bus = dut.s_axi
        await _write_address(ctx, bus, DEPTH - 1, 2)
        for last in (0, 1):
            ctx.set(bus.wdata, 0xFFFFFFFF)
            ctx.set(bus.wstrb, 0b1111)
            ctx.set(bus.wlast, last)
            ctx.set(bus.wvalid, 1)
            await ctx.tick().until(bus.wready)
        ctx.set(bus.wvalid, 0)
        await ctx.tick().until(bus.bvalid)
        assert ctx.get(dut.error)
        got, _ = await _read(ctx, bus, DEPTH - 2, 2, random.Random(0), 0.0)
        assert [data for data, _ in got] == [DEPTH - 1, DEPTH]

    _run(bench, init)
