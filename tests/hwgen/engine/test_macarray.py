"""The engine's MAC array against plain dot products, every lane width, random k-steps; and
its multipliers after synthesis."""

import numpy as np
import pytest

from hwgen.blocks import PackedMultiplier
from hwgen.engine import EngineConfig
from hwgen.engine.macarray import MacArray
from hwgen.engine.weights import kstep_bits, kstep_widths, pack_fields, unpack_fields
from hwgen.synth import synthesize

from ..streams import run_unit


def weight_word(config, w):
    """The k-step word of weights ``w`` (tm x tn): each lane's weights at its own width, as
    the compiler stores them."""
    word, offset = 0, 0
    for p in range(config.tm):
        bits = config.lane_bits[p]
        for i in range(config.tn):
            word |= (int(w[p, i]) & ((1 << bits) - 1)) << offset
            offset += bits
    return word


def test_kstep_fields_round_trip_at_each_lanes_width():
    config = EngineConfig(tm=4, tn=4, lane_bits=(2, 3, 5, 8), data_bits=32)
    rng = np.random.default_rng(1)
    lo = -(1 << (np.array(config.lane_bits) - 1))
    w = rng.integers(lo[None, :, None], -lo[None, :, None], (6, 4, 4))
    data = pack_fields(w.reshape(6, 16), kstep_widths(config), 12)
    assert kstep_bits(config) == 72 and len(data) == 6 * 12
    for step in range(6):
        assert int.from_bytes(data[12 * step:12 * step + 12], "little") == \
            weight_word(config, w[step])
    assert (unpack_fields(data, kstep_widths(config), 6, 12).reshape(6, 4, 4) == w).all()
    with pytest.raises(ValueError, match="does not fit"):
        pack_fields(np.full((1, 16), 2), kstep_widths(config), 12)


@pytest.mark.parametrize("family,lanes", [("xcup", (4, 4, 4, 8)), ("xc7", (2, 3, 5, 8)),
                                          ("ecp5", (4, 6, 4, 8))])
def test_mac_array_matches_dot_products(family, lanes):
    config = EngineConfig(tm=4, tn=4, lane_bits=lanes, act_bits=9, family=family)
    rng = np.random.default_rng(len(family))
    dut = MacArray(config, tag_bits=4)
    steps = [1, 3, 2, 1, 5]                     # k-steps of each dot product
    hi = (1 << (np.array(lanes) - 1)) - 1
    problems = []
    for n, k in enumerate(steps):
        w = rng.integers(-hi[:, None, None], hi[:, None, None] + 1, (4, k, 4))
        w[:, 0] = np.where(rng.random((4, 4)) < 0.3, hi[:, None] * rng.choice([-1, 1]), w[:, 0])
        x = rng.integers(-256, 256, (k, 4))
        bias = rng.integers(-1000, 1000, 4)
        problems.append((w, x, bias, (bias + np.einsum("pki,ki->p", w, x)).tolist()))
    got = []

    async def bench(ctx):
        for n, (w, x, bias, _) in enumerate(problems):
            for s in range(x.shape[0]):
                ctx.set(dut.valid, 1)
                ctx.set(dut.first, s == 0)
                ctx.set(dut.last, s == x.shape[0] - 1)
                ctx.set(dut.tag, n)
                for i in range(4):
                    ctx.set(dut.x[i], int(x[s, i]))
                ctx.set(dut.weights, weight_word(config, w[:, s]))
                for p in range(4):
                    ctx.set(dut.bias[p], int(bias[p]))
                await ctx.tick()
                if ctx.get(dut.o_valid):
                    got.append((ctx.get(dut.o_tag), [ctx.get(dut.sums[p]) for p in range(4)]))
        ctx.set(dut.valid, 0)
        for _ in range(12):
            await ctx.tick()
            if ctx.get(dut.o_valid):
                got.append((ctx.get(dut.o_tag), [ctx.get(dut.sums[p]) for p in range(4)]))

    run_unit(dut, bench)
    assert got == [(n, expected) for n, (*_, expected) in enumerate(problems)]


def test_multiplier_latency_is_the_arrays():
    unit = PackedMultiplier(multiplier="xcup", weight_bits=4, act_bits=9, act_signed=True,
                            registered=True, pipelined=True, raw=True)
    assert unit.latency == MacArray.MULTIPLY


@pytest.mark.synth
def test_mac_array_synthesizes_to_the_dsp_count_the_engine_reports():
    # Three 4-bit lanes share a DSP48E2, the 8-bit lane takes one alone: 2 per input element.
    config = EngineConfig(tm=4, tn=4, lane_bits=(4, 4, 4, 8), family="xcup")
    result = synthesize(MacArray(config), "xcup")
    assert config.dsp_count == 8
    assert result["cells"].get("DSP48E2") == result["DSP"] == config.dsp_count, result["cells"]
