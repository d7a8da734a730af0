"""The engine's output path against the golden requantizer, a new vector and new layer
parameters every cycle, at the extremes of every operand, on each family's product; its
vector lanes against each op's reduction."""

import numpy as np
import pytest
from hwgen.engine.params import MULTIPLIER_BITS, OFFSET_BITS
from hwgen.engine.post import SPLIT_PRODUCT_FAMILIES, VECTOR_OPS, OutputPath, VectorLanes
from quant import numerics

from ..streams import run_unit

LANES = 4


def _extremes(rng, lo, hi, size, share=0.3):
    """Integers in ``[lo, hi]``, a ``share`` of them at ``lo``, ``hi``, 0 or next to them."""
    values = rng.integers(lo, hi, size, endpoint=True)
    edge = rng.random(size) < share
    picks = np.array([lo, lo + 1, -1, 0, 1, hi - 1, hi])
    values[edge] = rng.choice(picks.clip(lo, hi), edge.sum())
    return values


def _vectors(rng, count, acc_bits):
    """Per cycle: the sums, multipliers, offsets and one layer's parameters."""
    out = []
    for _ in range(count):
        bits = int(rng.integers(2, 33))
        signed = bool(rng.integers(2))
        shift = int(rng.choice([0, 1, int(rng.integers(2, 49)), 48]))
        out.append({
            "values": _extremes(rng, -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1, LANES),
            "mult": _extremes(rng, 0, (1 << MULTIPLIER_BITS) - 1, LANES),
            "offset": _extremes(rng, -(1 << (OFFSET_BITS - 1)), (1 << (OFFSET_BITS - 1)) - 1,
                                LANES),
            "requant": bool(rng.random() < 0.85), "half_even": bool(rng.integers(2)),
            "shift": shift, "bits": bits, "signed": signed,
        })
        _make_ties(rng, out[-1])
    return out


def _make_ties(rng, v, share=0.3):
    """Offsets that put a ``share`` of the lanes' scaled sums exactly half way between two
    quotients (random sums are ties once in ``2^shift``)."""
    shift, low = v["shift"], -(1 << (OFFSET_BITS - 1))
    if shift == 0:
        return
    for p in np.flatnonzero(rng.random(LANES) < share):
        # The offset modulo 2^shift that makes a tie, then the one of its class in range.
        rest = ((1 << (shift - 1)) - int(v["values"][p]) * int(v["mult"][p])) % (1 << shift)
        offset = rest - (1 << shift) * int(rng.integers(2))
        if offset < low or offset >= -low:
            offset = rest if rest < -low else rest - (1 << shift)
        v["offset"][p] = offset


def _requantize(x, mult, offset, shift, half_even, lo, hi):
    """The requantizer on Python integers (a 48-bit sum times a 24-bit multiplier is beyond
    int64): ``clamp(round((x * mult + offset) / 2^shift))``, ties up or to even."""
    scaled = x * mult + offset
    quotient, fraction = scaled >> shift, scaled & ((1 << shift) - 1)
    half = 1 << shift >> 1
    if shift and (fraction > half or (fraction == half and not (half_even and
                                                               quotient % 2 == 0))):
        quotient += 1
    return min(max(quotient, lo), hi)


def _expected(v):
    if not v["requant"]:
        return [int(x) for x in v["values"]]
    lo, hi = numerics.int_range(v["bits"], v["signed"])
    return [_requantize(int(x), int(m), int(o), v["shift"], v["half_even"], lo, hi)
            for x, m, o in zip(v["values"], v["mult"], v["offset"])]


def test_the_integer_requantizer_is_the_golden():
    """The reference above against the golden's, where the golden's int64 holds the sums."""
    rng = np.random.default_rng(7)
    for v in _vectors(rng, 200, 32):
        v["requant"] = True
        rounding = "half_even" if v["half_even"] else "half_up"
        golden = numerics.requantize(v["values"], v["mult"], v["shift"], v["bits"],
                                     v["signed"], offset=v["offset"], rounding=rounding)
        assert _expected(v) == golden.tolist()


@pytest.mark.parametrize("family", ["xcup", "ecp5"])
@pytest.mark.parametrize("acc_bits", [32, 17, 16, 48])
def test_output_path_is_the_golden_requantizer(family, acc_bits):
    rng = np.random.default_rng(acc_bits + len(family))
    dut = OutputPath(lanes=LANES, acc_bits=acc_bits, out_bits=32, tag_bits=8, family=family)
    assert dut.latency == 5 + (family in SPLIT_PRODUCT_FAMILIES)
    vectors = _vectors(rng, 300, acc_bits)
    got = []

    async def bench(ctx):
        for n in range(len(vectors) + dut.latency + 2):
            v = vectors[n] if n < len(vectors) else None
            ctx.set(dut.valid, v is not None)
            if v is not None:
                lo, hi = numerics.int_range(v["bits"], v["signed"])
                ctx.set(dut.tag, n % 256)
                for name in ("requant", "half_even", "shift"):
                    ctx.set(getattr(dut, name), v[name])
                ctx.set(dut.lo, lo)
                ctx.set(dut.hi, hi)
                for p in range(LANES):
                    for name in ("values", "mult", "offset"):
                        ctx.set(getattr(dut, name)[p], int(v[name][p]))
            await ctx.tick()
            if ctx.get(dut.o_valid):
                got.append((ctx.get(dut.o_tag), [ctx.get(dut.o_values[p])
                                                 for p in range(LANES)], n))

    run_unit(dut, bench)
    assert len(got) == len(vectors)
    for k, (tag, values, cycle) in enumerate(got):
        # Out ``latency`` cycles after it went in (read after the tick of cycle k + latency - 1).
        assert (tag, cycle) == (k % 256, k + dut.latency - 1)
        assert values == [x & 0xFFFFFFFF for x in _expected(vectors[k])], (k, vectors[k])


def _vector_outputs(rng, count, element_bits, weight_bits):
    """Reductions of random ops over windows of 1 to 9 k-steps (an add has one), with
    their k-steps; each k-step ``(op, first, last, x, y, w, bias)``."""
    def elements(bits):
        return _extremes(rng, -(1 << (bits - 1)), (1 << (bits - 1)) - 1, LANES)
    outputs = []
    for _ in range(count):
        op = str(rng.choice(list(VECTOR_OPS)))
        length = 1 if op == "add" else int(rng.integers(1, 10))
        bias = _extremes(rng, -(1 << 20), 1 << 20, LANES)
        steps = [(op, k == 0, k == length - 1, elements(element_bits), elements(element_bits),
                  elements(weight_bits), bias) for k in range(length)]
        xs = np.array([step[3] for step in steps], dtype=np.int64)
        if op == "max":
            want = xs.max(axis=0)
        elif op == "sum":
            want = xs.sum(axis=0)
        elif op == "mac":
            want = bias + (np.array([step[5] for step in steps], dtype=np.int64) * xs).sum(0)
        else:
            want = steps[0][3] + steps[0][4]
        outputs.append((steps, [int(v) for v in want]))
    return outputs


def test_vector_lanes_reduce_each_op():
    """Every op's reduction, ops changing from one output to the next, k-steps back to back
    with a gap now and then, each output tagged."""
    rng = np.random.default_rng(3)
    element_bits, weight_bits = 17, 8
    dut = VectorLanes(lanes=LANES, element_bits=element_bits, weight_bits=weight_bits,
                      acc_bits=32, tag_bits=8)
    outputs = _vector_outputs(rng, 200, element_bits, weight_bits)
    got = []

    async def bench(ctx):
        steps = [(n, step) for n, (s, _) in enumerate(outputs) for step in s]
        cycle = 0
        while steps or cycle < 10:
            idle = not steps or rng.random() < 0.1
            ctx.set(dut.valid, not idle)
            if not idle:
                n, (op, first, last, x, y, w, bias) = steps.pop(0)
                for name, value in (("op", VECTOR_OPS[op]), ("first", first), ("last", last),
                                    ("tag", n % 256)):
                    ctx.set(getattr(dut, name), value)
                for p in range(LANES):
                    for name, values in (("x", x), ("y", y), ("w", w), ("bias", bias)):
                        ctx.set(getattr(dut, name)[p], int(values[p]))
            else:
                cycle += not steps
            await ctx.tick()
            if ctx.get(dut.o_valid):
                got.append((ctx.get(dut.o_tag), [ctx.get(dut.sums[p]) for p in range(LANES)]))

    run_unit(dut, bench)
    assert got == [(n % 256, want) for n, (_, want) in enumerate(outputs)]
