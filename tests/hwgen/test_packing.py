"""The lane planner and the integer model of both packing schemes against plain products."""

import itertools

import numpy as np
import pytest

from hwgen.packing import (DSP48E1, DSP48E2, MULT18X18D, MULTIPLIERS, LanePlan, Multiplier,
                           PackingError, extract_lanes, finn_lanes, lane_table,
                           multiply_packed, pack_weights, packed_products, plan_lanes,
                           rom_word, split_word, unpack_weights)

SEED = 2022
BITS = range(2, 9)
EXHAUSTIVE_LIMIT = 1 << 20
CHUNK = 1 << 15  # rows per model evaluation: keeps temporaries in cache
#: A small multiplier with a post-adder, to exercise geometries the vendor slices do not have.
SMALL = Multiplier.generic(12, 6, 20, post_adder=True, name="SMALL")


def _plans(multiplier, act_bits_range=range(1, 9)):
    """Every plan of both schemes, both signednesses and both weight ranges."""
    schemes = ("borrow", "postadd") if multiplier.post_adder else ("borrow",)
    for scheme, act_signed, narrow in itertools.product(schemes, (False, True), (True, False)):
        for w, a in itertools.product(BITS, act_bits_range):
            try:
                yield plan_lanes(multiplier, w, a, act_signed=act_signed, narrow=narrow,
                                 scheme=scheme)
            except PackingError:
                pass


def _plan_id(plan):
    return (f"{plan.multiplier.name}-W{plan.weight_bits}A{plan.act_bits}"
            f"{'s' if plan.act_signed else 'u'}-{'narrow' if plan.narrow else 'full'}-"
            f"{plan.scheme}")


def _inputs(plan, rng, random_count=4000):
    """All (weights, x) pairs when there are at most 2^20, else random ones plus extremes."""
    lo, hi = plan.weight_range
    x_lo, x_hi = plan.act_range
    L = plan.lanes
    if (hi - lo + 1) ** L * (x_hi - x_lo + 1) <= EXHAUSTIVE_LIMIT:
        grid = np.indices((hi - lo + 1,) * L + (x_hi - x_lo + 1,)).reshape(L + 1, -1)
        return grid[:L].T + lo, grid[L] + x_lo, True
    extremes_w = np.array(sorted({lo, hi, 0, -1, 1, lo + 1, hi - 1}), dtype=np.int64)
    extremes_x = np.array(sorted(v for v in {x_lo, x_hi, 0, 1, -1, x_lo + 1, x_hi - 1}
                                 if x_lo <= v <= x_hi), dtype=np.int64)
    rows = [rng.integers(lo, hi + 1, (random_count, L)),
            rng.choice(extremes_w, (random_count, L))]
    # Structured borrow chains: one nonzero lane among zeros, all lanes at one extreme, and
    # alternating extremes.
    for v in extremes_w:
        rows.append(np.diag(np.full(L, v)))
        rows.append(np.full((1, L), v))
    rows.append(np.where(np.arange(L) % 2 == 0, lo, hi)[None])
    rows.append(np.where(np.arange(L) % 2 == 0, hi, lo)[None])
    w = np.concatenate(rows)
    # Every activation extreme with every weight row, and random activations besides.
    x = np.concatenate([np.tile(extremes_x, len(w)),
                        rng.integers(x_lo, x_hi + 1, len(w))])
    w = np.concatenate([np.repeat(w, len(extremes_x), axis=0), w])
    return w, x, False


def _check_model(plan, seed):
    """Every lane equals w_i * x and the multiplier result stays in ``plan.result_range``."""
    rng = np.random.default_rng(seed)
    w_all, x_all, exhaustive = _inputs(plan, rng)
    lo, hi = plan.result_range
    for start in range(0, len(x_all), CHUNK):
        w, x = w_all[start:start + CHUNK], x_all[start:start + CHUNK]
        packed, aux = pack_weights(plan, w)
        result = multiply_packed(plan, packed, aux, x)
        got = np.stack(extract_lanes(plan, result, x, packed, aux), axis=-1)
        expected = w * x[:, None]
        bad = np.argwhere(got != expected)
        assert not bad.size, (f"{_plan_id(plan)}: weights {w[bad[0][0]].tolist()} x "
                              f"{x[bad[0][0]]}: lane {bad[0][1]} expected "
                              f"{expected[tuple(bad[0])]}, got {got[tuple(bad[0])]} "
                              f"(seed {seed})")
        assert lo <= result.min() and result.max() <= hi, f"{_plan_id(plan)}: result range"
    return exhaustive


# -- lanes --------------------------------------------------------------------------------------

def test_finn_formula():
    # FINN's published numbers for DSP48E2.
    assert [finn_lanes(DSP48E2, w, a) for w, a in [(4, 4), (4, 5), (4, 8), (8, 8), (2, 2)]] \
        == [4, 3, 3, 2, 9]
    assert finn_lanes(DSP48E1, 4, 4, narrow=False) == 1 + (25 - 4 - 1) // 7


@pytest.mark.parametrize("act_signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("scheme", [None, "borrow", "postadd"])
@pytest.mark.parametrize("multiplier", [DSP48E1, DSP48E2], ids=lambda m: m.name)
def test_lanes_at_least_finn(multiplier, scheme, act_signed):
    worse = [(w, a) for w, a in itertools.product(BITS, BITS)
             if plan_lanes(multiplier, w, a, act_signed=act_signed, scheme=scheme).lanes
             < finn_lanes(multiplier, w, a)]
    assert not worse, f"fewer lanes than FINN on {multiplier.name} for (W, A) = {worse}"


def test_lane_table_dsp48e2():
    # The exact grid (rows W = 2..8, columns A = 2..8, unsigned activations): a regression
    # guard for density. W = 2 beats FINN (ternary weights need no sign headroom in k).
    expected = [
        [13, 9, 7, 6, 5, 4, 4],
        [7, 5, 5, 4, 4, 3, 3],
        [5, 4, 4, 3, 3, 3, 3],
        [4, 4, 3, 3, 3, 3, 2],
        [4, 3, 3, 3, 2, 2, 2],
        [3, 3, 3, 2, 2, 2, 2],
        [3, 2, 2, 2, 2, 2, 2],
    ]
    rows = lane_table(DSP48E2)
    assert len(rows) == 49
    grid = [[r["lanes"] for r in rows if r["weight_bits"] == w] for w in BITS]
    assert grid == expected
    finn = [[r["finn_lanes"] for r in rows if r["weight_bits"] == w] for w in BITS]
    assert finn[0] == [9, 7, 6, 5, 4, 4, 3] and finn[1:] == expected[1:]
    assert all(r["scheme"] == "postadd" for r in rows)


def test_signed_activations_are_denser():
    # Signed activations: |w x| <= (2^(W-1) - 1) 2^(A-1) < 2^(W+A-2), one bit less per lane.
    plan = plan_lanes(DSP48E2, 4, 4, act_signed=True)
    assert plan.field_bits == 6 and plan.lanes == 4
    plan = plan_lanes(DSP48E1, 4, 5, act_signed=True)
    assert (plan.field_bits, plan.lanes, plan.finn_lanes) == (7, 4, 3)
    assert plan_lanes(DSP48E2, 2, 2).lanes == 13


@pytest.mark.parametrize("multiplier", [DSP48E1, DSP48E2, MULT18X18D, SMALL],
                         ids=lambda m: m.name)
def test_plans_are_maximal_and_fit(multiplier):
    """One more lane would overflow A or P; every plan fits A, B and P."""
    for plan in _plans(multiplier):
        assert plan.packed_bits <= multiplier.a_bits, _plan_id(plan)
        assert plan.result_bits <= multiplier.p_bits, _plan_id(plan)
        assert plan.act_bits + (0 if plan.act_signed else 1) <= multiplier.b_bits
        bigger = LanePlan(**{**plan.__dict__, "lanes": plan.lanes + 1})
        assert (bigger.packed_bits > multiplier.a_bits
                or bigger.result_bits > multiplier.p_bits), _plan_id(plan)


@pytest.mark.parametrize("case", [("xcup", 4, 5, False, "postadd"), ("xcup", 4, 5, False, "borrow"),
                                  ("xc7", 3, 3, True, "borrow"), ("ecp5", 2, 3, False, "borrow"),
                                  ("xc7", 4, 4, True, "postadd")],
                         ids=lambda c: f"{c[0]}-W{c[1]}A{c[2]}{'s' if c[3] else 'u'}-{c[4]}")
def test_field_width_is_tight(case):
    """With one bit less per lane some input gives a wrong lane: k is the minimum."""
    mult, w_bits, a_bits, act_signed, scheme = case
    plan = plan_lanes(mult, w_bits, a_bits, act_signed=act_signed, scheme=scheme)
    narrower = LanePlan(**{**plan.__dict__, "field_bits": plan.field_bits - 1,
                           "lanes": max(plan.lanes, 2)})
    lo, hi = plan.weight_range
    x_lo, x_hi = plan.act_range
    w = np.array(list(itertools.product(sorted({lo, hi, 0, 1, -1}), repeat=narrower.lanes)))
    x = np.array(sorted({x_lo, x_hi, 1, -1} if act_signed else {x_hi, 1}))
    w, x = np.repeat(w, len(x), axis=0), np.tile(x, len(w))
    got = np.stack(packed_products(narrower, w, x), axis=-1)
    assert (got != w * x[:, None]).any(), f"{case}: k - 1 = {narrower.field_bits} still exact"


def test_depth_does_not_limit_per_cycle_extraction():
    shallow = plan_lanes(DSP48E2, 4, 5, depth=1)
    deep = plan_lanes(DSP48E2, 4, 5, depth=1 << 20)
    assert (deep.lanes, deep.field_bits) == (shallow.lanes, shallow.field_bits)
    # 7 * 31 = 217 per product: 9 bits for one, 9 + 20 for 2^20 of them.
    assert (shallow.acc_bits, deep.acc_bits) == (9, 29)


def test_plan_properties():
    plan = plan_lanes("xcup", 4, 5)
    assert plan.multiplier is DSP48E2 and MULTIPLIERS["xcup"] is DSP48E2
    assert (plan.scheme, plan.lanes, plan.field_bits, plan.offsets) == ("postadd", 3, 8,
                                                                         (0, 8, 16))
    assert (plan.packed_operand, plan.activation_operand) == ("A", "B")
    assert plan.product_bits == 9 and plan.product_range == (-217, 217)
    assert plan.packed_bits == 20 and plan.aux_layout == ("w0 < 0", "w1 < 0")
    assert plan.word_bits == 22 and plan.correction_bits == (8, 16)
    borrow = plan_lanes("xcup", 4, 5, scheme="borrow")
    assert borrow.aux_bits == 0 and borrow.correction_bits == (7, 15)
    signed = plan_lanes("ecp5", 3, 3, act_signed=True)
    assert signed.scheme == "borrow" and signed.aux_layout == (
        "lanes below 1 nonzero", "lanes below 2 nonzero", "lanes below 3 nonzero")
    d = plan.as_dict()
    assert d["multiplier"] == "DSP48E2" and d["finn_lanes"] == 3 and d["offsets"] == [0, 8, 16]


def test_auto_scheme_prefers_postadd_only_with_a_post_adder():
    assert plan_lanes("xc7", 4, 4).scheme == "postadd"
    assert plan_lanes("ecp5", 4, 4).scheme == "borrow"
    assert plan_lanes(Multiplier.generic(25, 18), 4, 4).scheme == "borrow"


# -- the integer model ----------------------------------------------------------------------------

@pytest.mark.parametrize("multiplier", [DSP48E1, DSP48E2, MULT18X18D, SMALL],
                         ids=lambda m: m.name)
def test_model_equals_products(multiplier):
    """Pack, multiply as integers, extract: every lane equals w_i * x.

    Exhaustive over all lane weights x all activations when that is at most 2^20 inputs;
    otherwise random inputs plus every combination of extreme values.
    """
    exhaustive = sum(_check_model(plan, SEED + i) for i, plan in enumerate(_plans(multiplier)))
    assert exhaustive >= 20


def test_model_reaches_extremes_exhaustively():
    # W4A5 on DSP48E2: 15^3 weight groups x 32 activations, all of them.
    plan = plan_lanes(DSP48E2, 4, 5)
    w, x, exhaustive = _inputs(plan, np.random.default_rng(SEED))
    assert exhaustive and len(x) == 15 ** 3 * 32
    got = np.stack(packed_products(plan, w, x), axis=-1)
    assert np.array_equal(got, w * x[:, None])
    assert got.min() == -7 * 31 and got.max() == 7 * 31


@pytest.mark.parametrize("scheme", ["borrow", "postadd"])
def test_model_on_python_ints(scheme):
    # Wider than int64: a generic 64 x 32 multiplier with a 100-bit product.
    mult = Multiplier.generic(64, 32, 100, post_adder=True)
    plan = plan_lanes(mult, 8, 31, act_signed=True, scheme=scheme)
    assert plan.result_bits > 63
    rng = np.random.default_rng(SEED)
    lo, hi = plan.weight_range
    x_lo, x_hi = plan.act_range
    for _ in range(300):
        w = [int(v) for v in rng.choice([lo, hi, 0, int(rng.integers(lo, hi + 1))],
                                        plan.lanes)]
        x = int(rng.choice([x_lo, x_hi, 0, int(rng.integers(x_lo, x_hi + 1))]))
        assert packed_products(plan, w, x) == [v * x for v in w], (w, x, SEED)
    # Many groups at once go through object arrays.
    w = rng.integers(lo, hi + 1, (50, plan.lanes))
    x = rng.integers(x_lo, x_hi + 1, 50)
    got = np.stack(packed_products(plan, w, x), axis=-1)
    assert np.array_equal(got.astype(np.int64), w * x[:, None])


def test_extraction_reads_only_the_result_bits():
    # The model masks the result to result_bits: garbage above them changes nothing.
    plan = plan_lanes(DSP48E1, 4, 4, scheme="borrow")
    w, x = [-7, 0, 7, -1], 13
    packed, aux = pack_weights(plan, w)
    result = multiply_packed(plan, packed, aux, x)
    noisy = result + (0b1011 << plan.result_bits)
    assert extract_lanes(plan, noisy, x, packed, aux) == [v * x for v in w]


@pytest.mark.parametrize("multiplier", [DSP48E1, MULT18X18D], ids=lambda m: m.name)
def test_pack_unpack_round_trip(multiplier):
    rng = np.random.default_rng(SEED)
    for plan in _plans(multiplier, act_bits_range=(1, 2, 5)):
        lo, hi = plan.weight_range
        groups = np.concatenate([rng.integers(lo, hi + 1, (40, plan.lanes)),
                                 rng.choice([lo, hi, 0], (40, plan.lanes))])
        for w in groups.tolist():
            packed, aux = pack_weights(plan, w)
            assert packed == sum(v << off for v, off in zip(w, plan.offsets))
            assert unpack_weights(plan, packed, aux) == w, (_plan_id(plan), w)
            word = rom_word(plan, w)
            assert 0 <= word < 1 << plan.word_bits
            assert split_word(plan, word) == (packed, aux)


def test_aux_bits():
    plan = plan_lanes(DSP48E2, 4, 4, act_signed=True, scheme="postadd")
    _, aux = pack_weights(plan, [-3, 0, 5, -7])
    # (w<0, w>0) for lanes 0..2: (1,0), (0,0), (0,1)
    assert aux == 0b10_00_01
    plan = plan_lanes(DSP48E2, 4, 4, act_signed=True, scheme="borrow")
    _, aux = pack_weights(plan, [0, 0, 5, -7])
    # lanes below 1, 2, 3 nonzero: 0, 0, 1
    assert aux == 0b100


# -- errors ----------------------------------------------------------------------------------------

def test_activation_must_fit_b():
    assert plan_lanes(DSP48E2, 8, 12).lanes == 2
    assert plan_lanes(DSP48E2, 4, 18, act_signed=True).lanes == 2
    with pytest.raises(PackingError, match=r"W8A18 needs an 18-bit unsigned activation in the "
                                           r"18-bit signed B port of DSP48E2, which holds "
                                           r"unsigned activations of at most 17 bits"):
        plan_lanes(DSP48E2, 8, 18)
    with pytest.raises(PackingError, match=r"W4A19 needs a 19-bit signed activation in the "
                                           r"18-bit signed B port of MULT18X18D, which holds "
                                           r"signed activations of at most 18 bits"):
        plan_lanes("ecp5", 4, 19, act_signed=True)


def test_weights_must_fit_a():
    with pytest.raises(PackingError, match=r"W20A4: 20-bit narrow-range weights do not fit the "
                                           r"18-bit signed A port of MULT18X18D; not even one "
                                           r"lane fits"):
        plan_lanes("ecp5", 20, 4)
    with pytest.raises(PackingError, match=r"W26A2: 26-bit full-range weights do not fit the "
                                           r"25-bit signed A port of DSP48E1"):
        plan_lanes("xc7", 26, 2, narrow=False)
    assert plan_lanes("xc7", 20, 4).lanes == 1


def test_product_must_fit_p():
    with pytest.raises(PackingError, match=r"W8A8: one narrow-range weight x unsigned "
                                           r"activation product needs 16 bits, more than the "
                                           r"12-bit P port of MUL18X18"):
        plan_lanes(Multiplier.generic(18, 18, 12), 8, 8)


def test_scheme_errors():
    with pytest.raises(PackingError, match=r"W4A4: scheme 'postadd' needs a multiplier with a "
                                           r"post-adder; MULT18X18D has none"):
        plan_lanes("ecp5", 4, 4, scheme="postadd")
    with pytest.raises(ValueError, match=r"scheme must be one of None, 'borrow', 'postadd', "
                                         r"not 'fast'"):
        plan_lanes("ecp5", 4, 4, scheme="fast")


def test_argument_errors():
    with pytest.raises(TypeError, match=r"multiplier must be a Multiplier or one of 'xc7', "
                                        r"'xcup', 'ecp5', not 'xc9'"):
        plan_lanes("xc9", 4, 4)
    with pytest.raises(ValueError, match=r"weight_bits must be an integer of at least 2, not 1"):
        plan_lanes("xc7", 1, 4)
    with pytest.raises(ValueError, match=r"act_bits must be an integer of at least 1, not 0"):
        plan_lanes("xc7", 4, 0)
    with pytest.raises(ValueError, match=r"depth must be an integer of at least 1, not 0"):
        plan_lanes("xc7", 4, 4, depth=0)
    with pytest.raises(TypeError, match=r"act_signed must be a bool, not 'yes'"):
        plan_lanes("xc7", 4, 4, act_signed="yes")
    with pytest.raises(ValueError, match=r"multiplier a_bits must be an integer of at least 2, "
                                         r"not 1"):
        Multiplier("M", 1, 18, 48)


def test_weight_errors():
    plan = plan_lanes(DSP48E2, 4, 5)
    with pytest.raises(ValueError, match=r"weights must have 3 lanes in the last axis, not "
                                         r"shape \(2,\)"):
        pack_weights(plan, [1, 2])
    with pytest.raises(ValueError, match=r"weights must lie in the 4-bit narrow range -7\.\.7; "
                                         r"weight \(1,\) is -8"):
        pack_weights(plan, [1, -8, 0])
