"""The engine's output path against the golden requantizer, a new vector and new layer
parameters every cycle, at the extremes of every operand, on each family's product."""

import numpy as np
import pytest
from hwgen.engine.params import MULTIPLIER_BITS, OFFSET_BITS
from hwgen.engine.post import SPLIT_PRODUCT_FAMILIES, OutputPath
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
    return out


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
