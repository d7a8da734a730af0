"""PackedMultiplier in the Amaranth simulator and, as Verilog, in cocotb, against NumPy."""

import itertools
import json

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hwgen.blocks._util import element_shape
from hwgen.blocks.packed import PackedMultiplier
from hwgen.verilog import to_verilog
from hwgen.packing import Multiplier, PackingError, plan_lanes

SEED = 5


def _id(case):
    mult, w, a, act_signed, scheme = case[:5]
    return f"{mult}-W{w}A{a}{'s' if act_signed else 'u'}-{scheme}"


def rtl_products(dut, x, weights, *, stall=0.0, seed=SEED):
    """Lane products of ``dut`` for each (x, weights) pair, one pair per enabled cycle.

    With ``stall`` > 0, ``en`` is dropped at random; on those cycles the inputs carry garbage
    and the outputs must hold.
    """
    if dut.raw:       # the lanes' weights, lane 0 in the low bits
        port, bits = dut.weights.as_value(), dut.weight_bits
        words = [sum((int(v) & ((1 << bits) - 1)) << (bits * i) for i, v in enumerate(row))
                 for row in weights]
    else:
        port, bits = dut.word, dut.word_bits
        words = [dut.rom_word(w) for w in weights]
    rng = np.random.default_rng(seed)
    x_lo, x_hi = dut.plan.act_range
    out = []

    async def testbench(ctx):
        presented = []          # index of the input presented at each enabled tick
        i = 0
        while len(out) < len(x):
            enable = stall == 0 or rng.random() >= stall
            if not enable:
                ctx.set(dut.x, int(rng.integers(x_lo, x_hi + 1)))
                ctx.set(port, int(rng.integers(0, 1 << len(port))))
            elif i < len(x):
                ctx.set(dut.x, int(x[i]))
                ctx.set(port, words[i])
            ctx.set(dut.en, int(enable))
            before = [ctx.get(dut.products[lane]) for lane in range(dut.lanes)]
            await ctx.tick()
            after = [ctx.get(dut.products[lane]) for lane in range(dut.lanes)]
            if not enable:
                assert after == before, f"outputs changed while en was low (seed {seed})"
                continue
            presented.append(i if i < len(x) else None)
            i += 1
            if len(presented) >= dut.latency and presented[-dut.latency] is not None:
                out.append(after)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return np.array(out, dtype=np.int64)


def ref_products(x, weights):
    return np.asarray(weights, dtype=np.int64) * np.asarray(x, dtype=np.int64)[:, None]


def _assert_equal(got, expected, x, weights, seed, what=""):
    bad = np.argwhere(got != expected)
    assert not bad.size, (f"{what}input {bad[0][0]} (x={x[bad[0][0]]}, weights="
                          f"{list(weights[bad[0][0]])}) lane {bad[0][1]}: expected "
                          f"{expected[tuple(bad[0])]}, got {got[tuple(bad[0])]} (seed {seed})")


def _extreme_inputs(plan):
    """Every combination of extreme lane weights with every extreme activation."""
    lo, hi = plan.weight_range
    x_lo, x_hi = plan.act_range
    w_values = sorted({lo, hi, 0, 1, -1})
    x_values = sorted(v for v in {x_lo, x_hi, 0, 1, -1} if x_lo <= v <= x_hi)
    w = np.array(list(itertools.product(w_values, repeat=plan.lanes)))
    return np.repeat(w, len(x_values), axis=0), np.tile(x_values, len(w))


W4A5_CASES = [("xcup", 4, 5, False, "postadd"), ("xcup", 4, 5, False, "borrow"),
              ("xcup", 4, 5, True, "postadd"), ("xcup", 4, 5, True, "borrow")]


@pytest.mark.parametrize("raw", [False, True], ids=["word", "raw"])
@pytest.mark.parametrize("case", W4A5_CASES, ids=_id)
def test_w4a5_dsp48e2_random_and_extremes(case, raw):
    """From a ROM word or from the raw weights (packed in front of the operand registers)."""
    mult, w_bits, a_bits, act_signed, scheme = case
    dut = PackedMultiplier(multiplier=mult, weight_bits=w_bits, act_bits=a_bits,
                           act_signed=act_signed, scheme=scheme, raw=raw)
    plan = dut.plan
    seed = SEED + W4A5_CASES.index(case)
    rng = np.random.default_rng(seed)
    lo, hi = plan.weight_range
    x_lo, x_hi = plan.act_range
    w_ext, x_ext = _extreme_inputs(plan)
    w = np.concatenate([w_ext, rng.integers(lo, hi + 1, (3000, plan.lanes))])
    x = np.concatenate([x_ext, rng.integers(x_lo, x_hi + 1, 3000)])
    got = rtl_products(dut, x, w, seed=seed)
    _assert_equal(got, dut.reference(x, w), x, w, seed, f"{_id(case)}: ")


SMALL_CASES = [(mult, w, w, act_signed, scheme)
               for w in (2, 3) for act_signed in (False, True)
               for mult, scheme in (("xc7", "postadd"), ("xcup", "borrow"), ("ecp5", "borrow"))]


@pytest.mark.parametrize("raw", [False, True], ids=["word", "raw"])
@pytest.mark.parametrize("case", SMALL_CASES, ids=_id)
def test_small_precisions_all_activations(case, raw):
    """W2A2 and W3A3: every activation x 600 weight groups (random, plus lone and full
    extremes that make the longest borrow chains)."""
    mult, w_bits, a_bits, act_signed, scheme = case
    dut = PackedMultiplier(multiplier=mult, weight_bits=w_bits, act_bits=a_bits,
                           act_signed=act_signed, scheme=scheme, raw=raw)
    plan = dut.plan
    seed = SEED + 100 + SMALL_CASES.index(case)
    rng = np.random.default_rng(seed)
    lo, hi = plan.weight_range
    groups = [rng.integers(lo, hi + 1, (600, plan.lanes))]
    for v in (lo, hi):
        groups += [np.diag(np.full(plan.lanes, v)), np.full((1, plan.lanes), v)]
    w = np.concatenate(groups)
    x_values = np.arange(plan.act_range[0], plan.act_range[1] + 1)
    w, x = np.repeat(w, len(x_values), axis=0), np.tile(x_values, len(w))
    got = rtl_products(dut, x, w, seed=seed)
    _assert_equal(got, ref_products(x, w), x, w, seed, f"{_id(case)}: ")


@pytest.mark.parametrize("scheme", ["postadd", "borrow"])
def test_single_lane(scheme):
    """A plan with one lane (W8A8 on a 12 x 9 multiplier) is a plain multiplication."""
    dut = PackedMultiplier(multiplier=Multiplier.generic(12, 9, post_adder=True),
                           weight_bits=8, act_bits=8, scheme=scheme)
    assert dut.lanes == 1 and dut.word_bits == 8
    w = np.array([[-127], [127], [0], [1], [-1]] * 2)
    x = np.array([255] * 5 + [0, 255, 1, 128, 3])
    _assert_equal(rtl_products(dut, x, w), ref_products(x, w), x, w, SEED)


@pytest.mark.parametrize("pipelined", [False, True], ids=["", "pipelined"])
@pytest.mark.parametrize("registered", [False, True], ids=["", "registered"])
@pytest.mark.parametrize("scheme", ["postadd", "borrow"])
def test_enable_holds_the_pipeline(scheme, registered, pipelined):
    dut = PackedMultiplier(multiplier="xc7", weight_bits=4, act_bits=4, act_signed=True,
                           scheme=scheme, registered=registered, pipelined=pipelined,
                           raw=pipelined)
    assert dut.latency == 1 + registered + 3 * pipelined
    assert (dut.registered, dut.pipelined) == (registered, pipelined)
    seed = SEED + 7
    rng = np.random.default_rng(seed)
    lo, hi = dut.plan.weight_range
    w = rng.integers(lo, hi + 1, (800, dut.lanes))
    x = rng.integers(-8, 8, 800)
    got = rtl_products(dut, x, w, stall=0.4, seed=seed)
    _assert_equal(got, ref_products(x, w), x, w, seed)


class PackedAccumulator(wiring.Component):
    """A PackedMultiplier whose lanes are summed in fabric at ``plan.acc_bits`` (test rig)."""

    def __init__(self, *, depth, **kwargs):
        self.mul = PackedMultiplier(**kwargs)
        plan = self.mul.plan
        self.acc_bits = plan_lanes(plan.multiplier, plan.weight_bits, plan.act_bits,
                                   act_signed=plan.act_signed, scheme=plan.scheme,
                                   depth=depth).acc_bits
        super().__init__({
            "x": In(element_shape(plan.act_bits, plan.act_signed)),
            "word": In(plan.word_bits),
            "valid": In(1),
            "sums": Out(data.ArrayLayout(signed(self.acc_bits), plan.lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mul = mul = self.mul
        m.d.comb += [mul.x.eq(self.x), mul.word.eq(self.word), mul.en.eq(1)]
        valid = [self.valid] + [Signal(name=f"valid{i}") for i in range(mul.latency)]
        m.d.sync += [valid[i + 1].eq(valid[i]) for i in range(mul.latency)]
        with m.If(valid[-1]):
            m.d.sync += [self.sums[i].eq(self.sums[i] + mul.products[i])
                         for i in range(mul.lanes)]
        return m


@pytest.mark.parametrize("pattern", ["extreme", "random"])
@pytest.mark.parametrize("case", [("xcup", 4, 5, False, "postadd", 4096),
                                  ("ecp5", 3, 3, True, "borrow", 2048),
                                  ("xc7", 8, 8, False, "postadd", 1024)],
                         ids=lambda c: f"{_id(c)}-depth{c[5]}")
def test_accumulation_at_depth(case, pattern):
    """Sum ``depth`` extracted products per lane at ``acc_bits``; equal to NumPy dot products.

    ``extreme``: the activation stays at the end of its range that gives the largest products,
    lane 0 always gets the weight that makes the most positive product and lane 1 the most
    negative one, so their sums reach the accumulator bounds. ``random``: everything random.
    """
    mult, w_bits, a_bits, act_signed, scheme, depth = case
    dut = PackedAccumulator(depth=depth, multiplier=mult, weight_bits=w_bits, act_bits=a_bits,
                            act_signed=act_signed, scheme=scheme)
    plan = dut.mul.plan
    seed = SEED + depth + (pattern == "random")
    rng = np.random.default_rng(seed)
    lo, hi = plan.weight_range
    x_lo, x_hi = plan.act_range
    w = rng.integers(lo, hi + 1, (depth, plan.lanes))
    if pattern == "extreme":
        x = np.full(depth, x_lo if act_signed else x_hi)
        w[:, 0], w[:, 1] = (lo, hi) if act_signed else (hi, lo)
    else:
        x = rng.integers(x_lo, x_hi + 1, depth)
    words = [dut.mul.rom_word(row) for row in w]
    sums = []

    async def testbench(ctx):
        for t in range(depth):
            ctx.set(dut.x, int(x[t]))
            ctx.set(dut.word, words[t])
            ctx.set(dut.valid, 1)
            await ctx.tick()
        ctx.set(dut.valid, 0)
        await ctx.tick().repeat(dut.mul.latency + 1)
        sums.extend(ctx.get(dut.sums[i]) for i in range(plan.lanes))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    expected = (w * x[:, None]).sum(axis=0)
    assert sums == expected.tolist(), f"seed {seed}"
    if pattern == "extreme":
        p_lo, p_hi = plan.product_range
        assert sums[0] == depth * p_hi and sums[1] == depth * p_lo
        # acc_bits is just enough: the positive bound needs every bit.
        assert (depth * p_hi).bit_length() + 1 == dut.acc_bits


def test_properties_and_reference():
    dut = PackedMultiplier(multiplier="xcup", weight_bits=4, act_bits=5)
    assert (dut.lanes, dut.field_bits, dut.product_bits, dut.scheme) == (3, 8, 9, "postadd")
    assert (dut.weight_bits, dut.act_bits, dut.act_signed, dut.narrow) == (4, 5, False, True)
    assert dut.multiplier.name == "DSP48E2" and dut.word_bits == dut.plan.word_bits == 22
    assert dut.latency == 1 and not dut.registered
    assert dut.signature.members["products"].shape == data.ArrayLayout(signed(9), 3)
    with pytest.raises(AttributeError):
        dut.lanes = 4
    x = np.array([3, 0, 31])
    w = np.array([[1, -7, 7], [7, 7, 7], [-1, 0, 2]])
    assert dut.reference(x, w).tolist() == [[3, -21, 21], [0, 0, 0], [-31, 0, 62]]


def test_constructor_errors():
    with pytest.raises(TypeError, match=r"registered must be a bool, not 1"):
        PackedMultiplier(multiplier="xc7", weight_bits=4, act_bits=4, registered=1)
    with pytest.raises(TypeError, match=r"pipelined must be a bool, not 'yes'"):
        PackedMultiplier(multiplier="xc7", weight_bits=4, act_bits=4, pipelined="yes")
    with pytest.raises(TypeError, match=r"raw must be a bool, not 1"):
        PackedMultiplier(multiplier="xc7", weight_bits=4, act_bits=4, raw=1)
    with pytest.raises(PackingError, match=r"W8A18 needs an 18-bit unsigned activation in the "
                                           r"18-bit signed B port of DSP48E1"):
        PackedMultiplier(multiplier="xc7", weight_bits=8, act_bits=18)
    with pytest.raises(PackingError, match=r"scheme 'postadd' needs a multiplier with a "
                                           r"post-adder; MULT18X18D has none"):
        PackedMultiplier(multiplier="ecp5", weight_bits=4, act_bits=4, scheme="postadd")
    with pytest.raises(TypeError, match=r"takes 1 positional argument"):
        PackedMultiplier("xc7", 4, 4)


# -- the generated Verilog in cocotb (Icarus) ---------------------------------------------------

# (..., registered, pipelined, elaborated for the ULX3S: a MULT18X18D instance and its model)
COCOTB_CASES = [("xcup", 4, 5, False, "postadd", False, False, False),
                ("ecp5", 3, 3, True, "borrow", True, False, False),
                ("ecp5", 4, 8, False, "borrow", True, True, True),
                ("ecp5", 3, 6, True, "borrow", False, True, True)]


def _cocotb_id(case):
    latency = 1 + case[5] + 3 * case[6]
    return f"{_id(case)}-latency{latency}" + ("-ulx3s" if case[7] else "")


@pytest.mark.parametrize("case", COCOTB_CASES, ids=_cocotb_id)
def test_verilog_in_cocotb(case, tmp_path):
    from cocotb_tools.runner import get_runner

    from ..boards.test_selftest import MULT18X18D_MODEL

    mult, w_bits, a_bits, act_signed, scheme, registered, pipelined, ulx3s = case
    dut = PackedMultiplier(multiplier=mult, weight_bits=w_bits, act_bits=a_bits,
                           act_signed=act_signed, scheme=scheme, registered=registered,
                           pipelined=pipelined)
    plan = dut.plan
    seed = SEED + 200 + COCOTB_CASES.index(case)
    rng = np.random.default_rng(seed)
    lo, hi = plan.weight_range
    w_ext, x_ext = _extreme_inputs(plan)
    w = np.concatenate([w_ext, rng.integers(lo, hi + 1, (500, plan.lanes))])
    x = np.concatenate([x_ext, rng.integers(plan.act_range[0], plan.act_range[1] + 1, 500)])
    verilog = tmp_path / "top.v"
    sources = [verilog]
    if ulx3s:
        from amaranth_boards.ulx3s import ULX3S_85F_Platform

        text = to_verilog(dut, "top", platform=ULX3S_85F_Platform())
        assert "MULT18X18D #(" in text
        sources.append(MULT18X18D_MODEL)
    else:
        text = to_verilog(dut, name="top")
    verilog.write_text(text)
    config = tmp_path / "config.json"
    outputs = tmp_path / "outputs.json"
    config.write_text(json.dumps({
        "x": x.tolist(), "words": [dut.rom_word(row) for row in w], "latency": dut.latency,
        "lanes": dut.lanes, "product_bits": dut.product_bits, "act_bits": dut.act_bits,
        "outputs": str(outputs)}))
    runner = get_runner("icarus")
    runner.build(sources=sources, hdl_toplevel="top", build_dir=tmp_path / "build",
                 timescale=("1ns", "1ps"), always=True, log_file=tmp_path / "build.log")
    runner.test(test_module="tests.hwgen.cocotb_packed", hdl_toplevel="top",
                hdl_toplevel_lang="verilog", build_dir=tmp_path / "build",
                test_dir=tmp_path / "run", extra_env={"PACKED_CONFIG": str(config)},
                timescale=("1ns", "1ps"), log_file=tmp_path / "run.log")
    got = np.array(json.loads(outputs.read_text()), dtype=np.int64)
    assert got.shape == (len(x), dut.lanes)
    _assert_equal(got, dut.reference(x, w), x, w, seed, f"{_id(case)} Verilog: ")
