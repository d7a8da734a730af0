"""WeightPacker: the packed operand and aux bits formed from raw weights equal rom_word's."""

import itertools

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hwgen.blocks.packer import WeightPacker, packed_word
from hwgen.packing import (DSP48E1, DSP48E2, MULT18X18D, Multiplier, PackingError, plan_group,
                           plan_lanes, rom_word)

SEED = 13
#: Small multipliers (a few lanes each), so that every weight combination can be tried.
SMALL_POST = Multiplier.generic(12, 6, 20, post_adder=True, name="SMALL")
SMALL_BARE = Multiplier.generic(12, 6, 20, name="BARE")
#: Most weight combinations of one plan tried one by one.
COMBINATIONS = 20_000
#: Rows of weights evaluated per simulation step.
ROWS = 64


class PackerRig(wiring.Component):
    """``rows`` copies of the packer's logic side by side: row ``j``'s lane weights in
    ``weights`` and its word in ``words``, ``j``-th field each (one simulation step checks
    ``rows`` weight combinations)."""

    def __init__(self, plan, rows):
        self.plan, self.rows = plan, rows
        super().__init__({"weights": In(rows * plan.lanes * plan.weight_bits),
                          "words": Out(rows * plan.word_bits)})

    def elaborate(self, platform):
        m = Module()
        plan, bits = self.plan, self.plan.weight_bits
        fields = [self.weights[i * bits:(i + 1) * bits].as_signed()
                  for i in range(self.rows * plan.lanes)]
        for j in range(self.rows):
            m.d.comb += self.words.word_select(j, plan.word_bits).eq(
                packed_word(plan, fields[j * plan.lanes:(j + 1) * plan.lanes]))
        return m


def rtl_words(plan, weights):
    """The packer's word for each row of ``weights`` (shape ``(n, lanes)``)."""
    rows = min(ROWS, len(weights))
    dut = PackerRig(plan, rows)
    bits, mask = plan.weight_bits, (1 << plan.weight_bits) - 1
    out = []

    async def testbench(ctx):
        for start in range(0, len(weights), rows):
            chunk = weights[start:start + rows].reshape(-1).tolist()
            ctx.set(dut.weights, sum((v & mask) << (i * bits) for i, v in enumerate(chunk)))
            got = ctx.get(dut.words)
            out.extend((got >> (j * plan.word_bits)) & ((1 << plan.word_bits) - 1)
                       for j in range(len(chunk) // plan.lanes))

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    return out


def ref_words(plan, weights):
    return [rom_word(plan, row) for row in weights.tolist()]


def _assert_words(plan, weights, what):
    got, expected = rtl_words(plan, weights), ref_words(plan, weights)
    bad = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
    assert not bad, (f"{what}: weights {weights[bad[0]].tolist()}: expected word "
                     f"{expected[bad[0]]:#x}, got {got[bad[0]]:#x} (seed {SEED})")


def _plan_id(plan):
    return (f"{plan.multiplier.name}-W{plan.weight_bits}A{plan.act_bits}"
            f"{'s' if plan.act_signed else 'u'}-{'narrow' if plan.narrow else 'full'}-"
            f"{plan.scheme}-L{plan.lanes}")


def _small_plans():
    """Plans of the small multipliers for 2..4-bit weights with at most
    :data:`COMBINATIONS` weight combinations, every scheme."""
    for mult, w, a, act_signed, narrow in itertools.product(
            (SMALL_POST, SMALL_BARE), (2, 3, 4), (1, 2, 3), (False, True), (True, False)):
        for scheme in ("postadd", "borrow") if mult.post_adder else ("borrow",):
            try:
                plan = plan_lanes(mult, w, a, act_signed=act_signed, narrow=narrow,
                                  scheme=scheme)
            except PackingError:
                continue
            lo, hi = plan.weight_range
            if (hi - lo + 1) ** plan.lanes <= COMBINATIONS:
                yield plan


SMALL_PLANS = list(_small_plans())
VENDOR_PLANS = [plan_lanes(DSP48E2, 4, 5), plan_lanes(DSP48E2, 4, 5, scheme="borrow"),
                plan_lanes(DSP48E1, 3, 8, act_signed=True), plan_lanes(DSP48E1, 6, 6),
                plan_lanes(MULT18X18D, 3, 5, act_signed=True),
                plan_group("xcup", 4, 24, act_signed=True)]       # swapped ports, one lane


@pytest.mark.parametrize("plan", SMALL_PLANS + VENDOR_PLANS, ids=_plan_id)
def test_every_weight_combination_gives_rom_word(plan):
    """Every combination of lane weights: the packer's word equals ``rom_word``."""
    lo, hi = plan.weight_range
    combos = (hi - lo + 1) ** plan.lanes
    assert combos <= COMBINATIONS, f"{_plan_id(plan)}: {combos} combinations"
    weights = np.array(list(itertools.product(range(lo, hi + 1), repeat=plan.lanes)))
    _assert_words(plan, weights, _plan_id(plan))


def _every_plan():
    for mult in (DSP48E1, DSP48E2, MULT18X18D):
        for w, a, act_signed in itertools.product(range(2, 9), (1, 5, 8), (False, True)):
            for scheme in ("postadd", "borrow") if mult.post_adder else ("borrow",):
                yield plan_lanes(mult, w, a, act_signed=act_signed, scheme=scheme)


@pytest.mark.parametrize("multiplier", [DSP48E1, DSP48E2, MULT18X18D], ids=lambda m: m.name)
def test_vendor_plans_on_extremes(multiplier):
    """Every plan of the multiplier (2..8-bit weights, 1/5/8-bit activations, both
    signednesses and schemes): lone, uniform and alternating extremes and random weights."""
    rng = np.random.default_rng(SEED)
    for plan in (p for p in _every_plan() if p.multiplier is multiplier):
        lo, hi = plan.weight_range
        L = plan.lanes
        rows = [rng.integers(lo, hi + 1, (8, L))]
        for v in (lo, hi, -1, 1):
            rows += [np.diag(np.full(L, v)), np.full((1, L), v)]
        rows += [np.where(np.arange(L) % 2 == 0, lo, hi)[None],
                 np.where(np.arange(L) % 2 == 0, hi, lo)[None]]
        _assert_words(plan, np.concatenate(rows), _plan_id(plan))


def test_fields_hold_a_weight_below_the_sign():
    """The packer's D operand lays each lower weight's low ``W - 1`` bits into its own
    ``k``-bit field, so every plan with several lanes needs ``k >= W - 1``."""
    plans = list(_every_plan()) + SMALL_PLANS
    assert all(p.lanes == 1 or p.field_bits >= p.weight_bits - 1 for p in plans)
    assert min(p.field_bits - p.weight_bits for p in plans if p.lanes > 1) == -1


def test_packer_block():
    dut = WeightPacker(multiplier="xcup", weight_bits=4, act_bits=5)
    assert (dut.lanes, dut.weight_bits, dut.word_bits) == (3, 4, 22)
    assert dut.reference([1, -7, 7]) == rom_word(dut.plan, [1, -7, 7])
    words = []

    async def testbench(ctx):
        for row in ([1, -7, 7], [0, 0, 0], [-1, -1, -1], [7, 0, -7]):
            for i, v in enumerate(row):
                ctx.set(dut.weights[i], v)
            words.append((row, ctx.get(dut.word)))

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    assert all(word == rom_word(dut.plan, row) for row, word in words), words
    with pytest.raises(PackingError, match=r"scheme 'postadd' needs a multiplier with a "
                                           r"post-adder; MULT18X18D has none"):
        WeightPacker(multiplier="ecp5", weight_bits=4, act_bits=4, scheme="postadd")
