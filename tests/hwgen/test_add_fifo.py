"""Add (two inputs, independent back-pressure) and StreamFifo in the Amaranth simulator."""

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from hwgen import FoldingError
from hwgen.blocks.add import Add
from hwgen.blocks.fifo import StreamFifo
from hwgen.blocks.reorder import Reorder

from .streams import run_stream, run_unit, stream_bench
from .test_window import assert_equal


def rtl_add(add, x, skip, *, x_gaps=0.0, skip_gaps=0.0, out_stalls=0.0, seed=0):
    """Drive both inputs with their own random gaps; return outputs and all transfer cycles.

    Returns ``(outputs (beats, lanes), {port: offer cycles}, {port: transfer cycles}, output
    cycles)``, the ports named ``x`` and ``skip``.
    """
    out, offered, taken, when = stream_bench(
        add, {"i_stream": (x, add.shape.width), "i_skip": (skip, add.skip_shape.width)},
        len(x), out_bits=add.out_bits, out_signed=add.out_signed, out_count=add.lanes,
        gaps={"i_stream": x_gaps, "i_skip": skip_gaps}, out_stalls=out_stalls, seed=seed)
    names = {"i_stream": "x", "i_skip": "skip"}
    return (out, {names[k]: v for k, v in offered.items()},
            {names[k]: v for k, v in taken.items()}, when)


def random_beats(rng, beats, lanes, shape, extremes=True):
    lo, hi = ((-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1) if shape.signed
              else (0, (1 << shape.width) - 1))
    values = rng.integers(lo, hi + 1, (beats, lanes))
    if extremes:
        values[:3] = np.array([lo, hi, 0])[:, None]
    return values


ADDS = [
    # lanes, shape, skip shape
    (4, unsigned(5), unsigned(5)),     # two activations
    (3, signed(12), unsigned(4)),      # accumulator + activation
    (2, unsigned(3), signed(8)),
    (1, signed(4), signed(4)),
]


@pytest.mark.parametrize("gaps", [(0.0, 0.0, 0.0), (0.5, 0.0, 0.0), (0.0, 0.5, 0.0),
                                  (0.5, 0.5, 0.5), (0.2, 0.7, 0.4)],
                         ids=["flow", "x_gaps", "skip_gaps", "all", "mixed"])
@pytest.mark.parametrize("case", ADDS, ids=lambda c: "l{}_{}{}_{}{}".format(
    c[0], "s" if c[1].signed else "u", c[1].width, "s" if c[2].signed else "u", c[2].width))
def test_add_matches_numpy(case, gaps):
    lanes, shape, skip_shape = case
    seed = ADDS.index(case) * 10 + int(10 * sum(gaps))
    rng = np.random.default_rng(seed)
    add = Add(elements=lanes * 24, lanes=lanes, shape=shape, skip_shape=skip_shape)
    x, skip = random_beats(rng, 24, lanes, shape), random_beats(rng, 24, lanes, skip_shape)
    skip[:3] = skip[2::-1]                            # lo + hi, hi + lo, ...
    got, offered, taken, when = rtl_add(add, x, skip, x_gaps=gaps[0], skip_gaps=gaps[1],
                                        out_stalls=gaps[2], seed=seed)
    assert_equal(got, x + skip, seed)
    assert_equal(add.reference(x, skip), x + skip, seed)
    assert taken["x"] == taken["skip"], f"inputs taken in different cycles (seed {seed})"
    if gaps[2] == 0.0:
        assert add.beat_times(offered["x"], offered["skip"]) == when, f"seed {seed}"


def test_add_full_throughput_and_width():
    add = Add(elements=40, lanes=2, shape=signed(12), skip_shape=unsigned(4))
    assert (add.out_bits, add.out_signed) == (13, True)       # [-2048, 2062]
    assert Add(elements=4, lanes=4, shape=unsigned(5)).out_shape == unsigned(6)
    assert Add(elements=4, lanes=4, shape=signed(3), skip_shape=signed(5)).out_shape == signed(6)
    rng = np.random.default_rng(1)
    x, skip = random_beats(rng, 20, 2, add.shape), random_beats(rng, 20, 2, add.skip_shape)
    _, _, _, when = rtl_add(add, x, skip)
    assert set(np.diff(when)) == {1}
    assert when[0] == add.latency
    assert add.cycles_per_frame == 20


def test_add_rejects_bad_parameters():
    with pytest.raises(FoldingError, match=r"layer 'res1': lanes 4 does not divide elements 6; "
                                           r"choose one of 1, 2, 3, 6"):
        Add(elements=6, lanes=4, shape=unsigned(4), name="res1")
    with pytest.raises(TypeError, match=r"layer 'res1': skip_shape must be an Amaranth shape"):
        Add(elements=6, lanes=3, shape=unsigned(4), skip_shape=4.0, name="res1")
    add = Add(elements=6, lanes=3, shape=unsigned(4), name="res1")
    with pytest.raises(ValueError, match=r"inputs must have equal shapes, not \(2,\) and \(3,\)"):
        add.reference(np.zeros(2, np.int64), np.zeros(3, np.int64))


def rtl_fifo(fifo, beats, **kwargs):
    shape = fifo.shape
    return run_stream(fifo, beats, len(beats), in_bits=shape.width, out_bits=shape.width,
                      out_signed=shape.signed, out_count=fifo.lanes, **kwargs)


@pytest.mark.parametrize("backpressure", [0.0, 0.3, 0.7], ids=["flow", "light", "heavy"])
@pytest.mark.parametrize("depth", [0, 1, 2, 5])
def test_fifo_keeps_order(depth, backpressure):
    seed = depth * 10 + int(10 * backpressure)
    fifo = StreamFifo(shape=signed(6), lanes=3, depth=depth)
    beats = random_beats(np.random.default_rng(seed), 40, 3, signed(6))
    got, offered, taken, when = rtl_fifo(fifo, beats, in_gaps=backpressure,
                                         out_stalls=backpressure, seed=seed)
    assert_equal(got, beats, seed)
    if backpressure == 0.0:
        assert when == fifo.beat_times(taken) == [t + fifo.latency for t in range(40)]


@pytest.mark.parametrize("depth", [0, 1, 2, 5])
def test_fifo_holds_depth_beats(depth):
    """With the output stalled, exactly ``depth`` beats enter; then they leave one a cycle."""
    fifo = StreamFifo(shape=unsigned(4), lanes=1, depth=depth)
    accepted, when = [], []

    async def bench(ctx):
        ctx.set(fifo.o_stream.ready, 0)
        ctx.set(fifo.i_stream.valid, 1)
        for cycle in range(12):
            ctx.set(fifo.i_stream.payload.as_value(), len(accepted))
            if ctx.get(fifo.i_stream.ready):
                accepted.append(cycle)
            await ctx.tick()
        ctx.set(fifo.i_stream.valid, 0)
        ctx.set(fifo.o_stream.ready, 1)
        for cycle in range(12):
            if ctx.get(fifo.o_stream.valid):
                when.append((cycle, ctx.get(fifo.o_stream.payload.as_value())))
            await ctx.tick()

    run_unit(fifo, bench)
    assert accepted == list(range(depth))
    assert when == [(k, k) for k in range(depth)]
    assert fifo.memory_depth == max(0, depth - 1)


def test_fifo_rejects_bad_depth():
    with pytest.raises(ValueError, match=r"layer 'skip1': depth must be at least 0, not -1"):
        StreamFifo(shape=unsigned(4), lanes=1, depth=-1, name="skip1")
    with pytest.raises(TypeError, match=r"layer 'skip1': depth must be an integer, not 2.0"):
        StreamFifo(shape=unsigned(4), lanes=1, depth=2.0, name="skip1")


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["flow", "backpressure"])
def test_reorder_puts_each_frame_in_the_new_order(backpressure):
    rng = np.random.default_rng(11)
    order = rng.permutation(12)
    block = Reorder(order=order, shape=signed(5))
    frames = rng.integers(-16, 16, (5, 12))
    got, _, _, when = run_stream(block, frames.reshape(-1, 1), frames.size, in_bits=5,
                                 out_bits=5, out_signed=True, out_count=1, in_gaps=backpressure,
                                 out_stalls=backpressure, seed=3)
    np.testing.assert_array_equal(got.reshape(5, 12), block.reference(frames))
    if backpressure == 0:
        # Beat k of frame 0 is offered at cycle k and taken at once.
        assert when[:12] == block.beat_times(list(range(12)))
        assert when[12] - when[0] == block.cycles_per_frame == 12


def test_reorder_needs_a_permutation():
    with pytest.raises(ValueError, match=r"layer 'r': order must be a permutation of "
                                         r"range\(elements\), not array\(\[0, 0\]\)"):
        Reorder(order=[0, 0], shape=signed(3), name="r")
