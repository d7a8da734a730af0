"""MatVecUnit, Requantizer and WidthConverter in the Amaranth simulator against NumPy."""

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from hwgen import FoldingError
from hwgen.blocks import MatVecUnit, Requantizer, WidthConverter
from hwgen.blocks._util import element_shape
from quant import numerics
from sim.stream import pack_beat, unpack_beat

from .streams import run_stream, stream_put


def random_layer(rng, out_features, in_features, bits, in_bits, in_signed, extreme=False):
    """Weights with per-filter bits (a repeating lane pattern), bias, and input vectors."""
    weight_bits = np.asarray(bits * (out_features // len(bits)))
    hi = (1 << (weight_bits - 1)) - 1
    if extreme:
        weight = np.where(rng.random((out_features, in_features)) < 0.5, -1, 1) * hi[:, None]
    else:
        weight = rng.integers(-hi[:, None], hi[:, None] + 1, (out_features, in_features))
    bias = rng.integers(-300, 300, out_features)
    return weight, bias, weight_bits


def vectors(rng, count, in_features, in_bits, in_signed, extreme=False):
    lo, hi = numerics.int_range(in_bits, in_signed)
    if extreme:
        return rng.choice([lo, hi, 0], (count, in_features))
    return rng.integers(lo, hi + 1, (count, in_features))


def rtl_matvec(unit, x, backpressure, seed):
    beats = x.reshape(-1, unit.simd)
    out, _, _, when = run_stream(unit, beats, len(x) * unit.output_folds,
                                 in_bits=unit.in_bits, out_bits=unit.acc_bits, out_signed=True,
                                 out_count=unit.pe, in_gaps=backpressure,
                                 out_stalls=backpressure, seed=seed)
    return out.reshape(len(x), -1), when


def ref_matvec(weight, bias, x):
    return numerics.dense(x, weight, bias)


CASES = [
    # out, in, pe, simd, lane bits, in_bits, in_signed
    (1, 1, 1, 1, [4], 5, False),           # fan-in 1, one filter
    (3, 7, 3, 7, [4, 8, 4], 5, False),     # one fold each way, odd sizes
    (6, 9, 2, 3, [8, 4], 8, False),
    (8, 12, 4, 1, [2, 4, 8, 4], 4, True),  # signed input, simd 1
    (10, 5, 5, 5, [4, 4, 8, 4, 4], 5, False),
    (12, 16, 1, 4, [4], 8, False),         # pe 1
    (4, 6, 4, 6, [3, 5, 6, 7], 3, True),
]


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["flow", "backpressure"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "o{}_i{}_pe{}_simd{}_w{}_a{}{}".format(
    c[0], c[1], c[2], c[3], "-".join(map(str, c[4])), c[5], "s" if c[6] else "u"))
def test_matvec_matches_numpy(case, backpressure):
    out_features, in_features, pe, simd, bits, in_bits, in_signed = case
    seed = CASES.index(case)
    rng = np.random.default_rng(seed)
    weight, bias, weight_bits = random_layer(rng, out_features, in_features, bits, in_bits,
                                             in_signed)
    x = vectors(rng, 6, in_features, in_bits, in_signed)
    unit = MatVecUnit(weight=weight, bias=bias, weight_bits=weight_bits, in_bits=in_bits,
                      in_signed=in_signed, pe=pe, simd=simd)
    got, _ = rtl_matvec(unit, x, backpressure, seed)
    expected = ref_matvec(weight, bias, x)
    bad = np.argwhere(got != expected)
    assert not bad.size, (f"vector {bad[0][0]} output {bad[0][1]}: expected "
                          f"{expected[tuple(bad[0])]}, got {got[tuple(bad[0])]} (seed {seed})")


PACKED_CASES = [
    # out, in, pe, simd, lane bits, in_bits, in_signed, lut_lanes
    (8, 6, 8, 2, [4, 4, 4, 8, 4, 4, 4, 8], 5, False, {}),
    (8, 6, 8, 3, [4, 4, 4, 8, 4, 4, 4, 8], 5, False, {4: 2}),
    (6, 4, 6, 1, [2, 3, 4, 5, 6, 7], 4, True, {}),
    (4, 8, 4, 4, [8, 8, 8, 8], 8, False, {8: 1}),
    (9, 3, 9, 3, [4] * 9, 8, True, {}),
]


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["flow", "backpressure"])
@pytest.mark.parametrize("device", ["xc7", "xcup", "ecp5"])
@pytest.mark.parametrize("case", PACKED_CASES, ids=lambda c: "o{}_i{}_pe{}_simd{}_a{}{}_lut{}".format(
    c[0], c[1], c[2], c[3], c[5], "s" if c[6] else "u", sum(c[7].values())))
def test_packed_matvec_matches_numpy(case, device, backpressure):
    """DSP-packed lanes (and some LUT lanes) are exact, extremes included."""
    out_features, in_features, pe, simd, bits, in_bits, in_signed, lut_lanes = case
    seed = PACKED_CASES.index(case)
    rng = np.random.default_rng(seed)
    weight, bias, weight_bits = random_layer(rng, out_features, in_features, bits, in_bits,
                                             in_signed)
    extreme_w, _, _ = random_layer(rng, out_features, in_features, bits, in_bits, in_signed,
                                   extreme=True)
    weight[: out_features // 2] = extreme_w[: out_features // 2]
    x = np.vstack([vectors(rng, 4, in_features, in_bits, in_signed),
                   vectors(rng, 4, in_features, in_bits, in_signed, extreme=True)])
    unit = MatVecUnit(weight=weight, bias=bias, weight_bits=weight_bits, in_bits=in_bits,
                      in_signed=in_signed, pe=pe, simd=simd, multiplier=device,
                      lut_lanes=lut_lanes)
    assert unit.lut_lane_count == sum(lut_lanes.values())
    got, _ = rtl_matvec(unit, x, backpressure, seed)
    expected = ref_matvec(weight, bias, x)
    bad = np.argwhere(got != expected)
    assert not bad.size, (f"vector {bad[0][0]} output {bad[0][1]}: expected "
                          f"{expected[tuple(bad[0])]}, got {got[tuple(bad[0])]} (seed {seed})")


def test_packed_matvec_dsp_count():
    """W4A5 on DSP48E2 packs 3 lanes per DSP: 7 lanes need 3 DSPs per input element."""
    weight_bits = np.array([4] * 7 + [8])
    unit = MatVecUnit(weight=np.zeros((8, 4), np.int64), bias=np.zeros(8, np.int64),
                      weight_bits=weight_bits, in_bits=5, in_signed=False, pe=8, simd=2,
                      multiplier="xcup")
    # 7 four-bit lanes in packs of 3 (3 DSPs), one 8-bit lane alone (1 DSP), per element.
    assert unit.dsp_count == (3 + 1) * 2
    lut = MatVecUnit(weight=np.zeros((8, 4), np.int64), bias=np.zeros(8, np.int64),
                     weight_bits=weight_bits, in_bits=5, in_signed=False, pe=8, simd=2,
                     multiplier="xcup", lut_lanes={4: 1})
    assert lut.dsp_count == (2 + 1) * 2 and lut.lut_lane_count == 1


def test_matvec_extremes_reach_accumulator_bounds():
    """All weights at ±max and inputs at the range ends: the accumulator must not wrap."""
    rng = np.random.default_rng(7)
    weight, bias, weight_bits = random_layer(rng, 4, 64, [8, 4], 8, True, extreme=True)
    x = np.vstack([np.where(weight[0] > 0, 127, -128), np.where(weight[0] > 0, -128, 127),
                   vectors(rng, 4, 64, 8, True, extreme=True)])
    unit = MatVecUnit(weight=weight, bias=bias, weight_bits=weight_bits, in_bits=8,
                      in_signed=True, pe=2, simd=16)
    got, _ = rtl_matvec(unit, x, 0.3, 7)
    np.testing.assert_array_equal(got, ref_matvec(weight, bias, x))


def test_matvec_steady_state_interval_is_cycles_per_frame():
    rng = np.random.default_rng(3)
    weight, bias, weight_bits = random_layer(rng, 8, 12, [4], 5, False)
    unit = MatVecUnit(weight=weight, bias=bias, weight_bits=weight_bits, in_bits=5,
                      in_signed=False, pe=2, simd=3)
    _, when = rtl_matvec(unit, vectors(rng, 8, 12, 5, False), 0.0, 3)
    last_beats = when[unit.output_folds - 1::unit.output_folds]
    assert set(np.diff(last_beats[2:])) == {unit.cycles_per_frame}


@pytest.mark.parametrize("fan_in_one", [False, True])
def test_matvec_one_cycle_per_frame(fan_in_one):
    """A fully unfolded unit accepts one vector per cycle."""
    rng = np.random.default_rng(5)
    in_features = 1 if fan_in_one else 3
    weight, bias, weight_bits = random_layer(rng, 2, in_features, [4], 5, False)
    unit = MatVecUnit(weight=weight, bias=bias, weight_bits=weight_bits, in_bits=5,
                      in_signed=False, pe=2, simd=in_features)
    x = vectors(rng, 10, in_features, 5, False)
    got, when = rtl_matvec(unit, x, 0.0, 5)
    np.testing.assert_array_equal(got, ref_matvec(weight, bias, x))
    assert set(np.diff(when[2:])) == {1}


@pytest.mark.parametrize("in_signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("device", [None, "xcup"])
def test_unfolded_matvec_multiplies_by_constants(device, in_signed):
    """An unfolded unit's weights are constants: every weight of each width (zero and both
    extremes among them), beside packed lanes, against extreme and random inputs."""
    rng = np.random.default_rng(11)
    bits = [2, 4, 8, 4]
    weight_bits = np.asarray(bits)
    # Every value of each filter's range, the rest random.
    weight = np.stack([np.resize(np.arange(-(1 << (b - 1)) + 1, 1 << (b - 1)), 255)
                       for b in bits])
    weight = np.stack([rng.permutation(row) for row in weight])
    bias = rng.integers(-300, 300, 4)
    x = np.vstack([vectors(rng, 4, 255, 5, in_signed),
                   vectors(rng, 4, 255, 5, in_signed, extreme=True)])
    unit = MatVecUnit(weight=weight, bias=bias, weight_bits=weight_bits, in_bits=5,
                      in_signed=in_signed, pe=4, simd=255, multiplier=device,
                      lut_lanes={4: 1} if device else None)
    assert unit.constant_weights
    got, _ = rtl_matvec(unit, x, 0.3, 11)
    np.testing.assert_array_equal(got, ref_matvec(weight, bias, x))


@pytest.mark.parametrize("in_gaps", [0.0, 0.6], ids=["flow", "gaps"])
@pytest.mark.parametrize("device", [None, "ecp5", "xc7"])
def test_matvec_beat_times_are_exact(device, in_gaps):
    """A frame into an empty unit: every output beat in the cycle ``beat_times`` gives, and
    nothing more."""
    seed = 13 + int(10 * in_gaps)
    rng = np.random.default_rng(seed)
    weight, bias, weight_bits = random_layer(rng, 6, 12, [4, 8, 4], 5, False)
    unit = MatVecUnit(weight=weight, bias=bias, weight_bits=weight_bits, in_bits=5,
                      in_signed=False, pe=3, simd=4, multiplier=device)
    x = vectors(rng, 1, 12, 5, False)
    got, _, taken, when = run_stream(unit, x.reshape(-1, unit.simd), unit.output_folds,
                                     in_bits=5, out_bits=unit.acc_bits, out_signed=True,
                                     out_count=unit.pe, in_gaps=in_gaps, seed=seed, drain=20)
    np.testing.assert_array_equal(got.reshape(1, -1), ref_matvec(weight, bias, x))
    assert unit.beat_times(taken) == when, f"seed {seed}"
    assert when[0] - taken[-1] == unit.latency


def rtl_after_reset(dut, before, after, *, in_bits, out_bits, out_signed, out_count, reset_at,
                    wait):
    """Send the beats ``before`` (stopping after ``reset_at`` of them), wait ``wait`` cycles,
    reset ``dut`` for two cycles, then send ``after``; return the outputs after the reset."""
    outputs = []

    async def bench(ctx):
        ctx.set(dut.o_stream.ready, 1)
        for beats, stop in ((before, reset_at), (after, None)):
            for k, beat in enumerate(beats):
                if k == stop:
                    break
                await stream_put(ctx, dut.i_stream, pack_beat(beat, in_bits))
            if stop is not None:
                await ctx.tick().repeat(wait)
                outputs.clear()
                ctx.set(domain.rst, 1)
                await ctx.delay(2e-8)   # two clock cycles
                ctx.set(domain.rst, 0)
        await ctx.tick().repeat(400)

    async def monitor(ctx):
        async for _, reset, valid, word in ctx.tick().sample(dut.o_stream.valid,
                                                              dut.o_stream.payload.as_value()):
            if valid and not reset:
                outputs.append(unpack_beat(word, out_bits, out_count, out_signed))

    top = Module()
    top.domains.sync = domain = ClockDomain()
    top.submodules.dut = dut
    simulator = Simulator(top)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.add_process(monitor)
    simulator.run()
    return np.array(outputs, dtype=np.int64).reshape(-1, out_count)


@pytest.mark.parametrize("device", [None, "ecp5"])
def test_matvec_recovers_from_a_reset_mid_frame(device):
    """A reset while a frame is half done (partial sums in the accumulators, products in
    flight) drops that frame; the frames sent after it come out exact."""
    rng = np.random.default_rng(21)
    weight, bias, weight_bits = random_layer(rng, 6, 12, [4, 8, 4], 5, False)
    unit = MatVecUnit(weight=weight, bias=bias, weight_bits=weight_bits, in_bits=5,
                      in_signed=False, pe=3, simd=2, multiplier=device)
    before, after = vectors(rng, 2, 12, 5, False), vectors(rng, 3, 12, 5, False)
    got = rtl_after_reset(unit, before.reshape(-1, 2), after.reshape(-1, 2), in_bits=5,
                          out_bits=unit.acc_bits, out_signed=True, out_count=3, reset_at=9,
                          wait=unit.input_folds + 3)
    np.testing.assert_array_equal(got.reshape(len(after), -1), ref_matvec(weight, bias, after))


def test_matvec_rejects_bad_folding():
    weight = np.zeros((6, 10), dtype=np.int64)
    common = dict(weight=weight, bias=np.zeros(6, np.int64), weight_bits=np.full(6, 4),
                  in_bits=5, in_signed=False, name="fc1")
    with pytest.raises(FoldingError, match=r"layer 'fc1': PE 4 does not divide out_features 6; "
                                           r"choose one of 1, 2, 3, 6"):
        MatVecUnit(pe=4, simd=1, **common)
    with pytest.raises(FoldingError, match=r"SIMD 3 does not divide in_features 10"):
        MatVecUnit(pe=1, simd=3, **common)
    mixed = common | {"weight_bits": np.array([4, 8, 4, 4, 4, 4])}
    with pytest.raises(FoldingError, match=r"fold 1 puts filters of other precisions"):
        MatVecUnit(pe=2, simd=1, **mixed)


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["flow", "backpressure"])
@pytest.mark.parametrize("out_signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("geometry,in_bits,m_bits", [
    ("xc7", 14, 12), ("xc7", 40, 20), ("ecp5", 30, 16), ("xcup", 27, 17)])
def test_requantizer_matches_numerics(out_signed, backpressure, geometry, in_bits, m_bits):
    rng = np.random.default_rng(11)
    channels, lanes = 12, 4
    multiplier = rng.integers(1, 1 << m_bits, channels)
    multiplier[[1, 5, 9]] = 8  # lane 1: the same power of two in every fold, a shift
    multiplier[[2, 6]] = 3     # lane 2: a constant in two folds only
    block = Requantizer(multiplier=multiplier, shift=in_bits // 2 + 3, in_bits=in_bits,
                        lanes=lanes, out_bits=5, out_signed=out_signed, geometry=geometry)
    lo, hi = numerics.int_range(in_bits, True)
    acc = np.vstack([rng.integers(lo, hi + 1, (5, channels)), np.full(channels, lo),
                     np.full(channels, hi), np.zeros(channels, np.int64)])
    out, *_ = run_stream(block, acc.reshape(-1, lanes), acc.size // lanes, in_bits=in_bits,
                         out_bits=5, out_signed=out_signed, out_count=lanes,
                         in_gaps=backpressure, out_stalls=backpressure, seed=11)
    np.testing.assert_array_equal(out.reshape(acc.shape), block.reference(acc))


OFFSET_CASES = [
    # geometry, in_bits, shift, out_bits, out_signed, rounding
    ("xc7", 14, 3, 5, False, "half_even"),
    ("xc7", 30, 12, 8, True, "half_even"),
    ("ecp5", 20, 1, 4, True, "half_even"),      # shift 1: every odd sum is a tie
    ("xcup", 16, 0, 32, True, "half_even"),     # no shift (no rounding), a 32-bit head
    ("ecp5", 4, 16, 2, True, "half_even"),      # lane 0's sum is narrower than the shift
    ("xc7", 18, 6, 5, False, "half_up"),
]


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["flow", "backpressure"])
@pytest.mark.parametrize("case", OFFSET_CASES, ids=lambda c: "{}_i{}_s{}_o{}{}_{}".format(
    c[0], c[1], c[2], c[3], "s" if c[4] else "u", c[5]))
def test_requantizer_offsets_and_rounding_match_numerics(case, backpressure):
    """Per-channel offsets (constant, zero and varying lanes) and both rounding modes, with
    ties, extreme accumulators and offsets at both ends of their range."""
    geometry, in_bits, shift, out_bits, out_signed, rounding = case
    seed = 29 + in_bits + shift
    rng = np.random.default_rng(seed)
    channels, lanes = 12, 4
    multiplier = rng.integers(1, 1 << 10, channels)
    multiplier[[1, 5, 9]] = 2          # lane 1: a shift
    reach = 1 << (shift + out_bits + 2)
    offset = rng.integers(-reach, reach + 1, channels)
    offset[[0, 4, 8]] = 0              # lane 0: no offset
    offset[[3, 7, 11]] = -reach        # lane 3: one constant
    offset[2], offset[6] = reach, -reach
    block = Requantizer(multiplier=multiplier, shift=shift, in_bits=in_bits, lanes=lanes,
                        out_bits=out_bits, out_signed=out_signed, offset=offset,
                        rounding=rounding, geometry=geometry)
    assert block.rounding == rounding and (block.offset == offset).all()
    lo, hi = numerics.int_range(in_bits, True)
    acc = [rng.integers(lo, hi + 1, (4, channels)), np.full((1, channels), lo),
           np.full((1, channels), hi), np.zeros((1, channels), np.int64)]
    if shift:
        # Sums exactly halfway between two results, both parities, where they fit.
        half = 1 << (shift - 1)
        q = rng.integers(-8, 9, (3, channels))
        ties = (q * (1 << shift) + half - offset) // multiplier
        exact = ties * multiplier + offset == q * (1 << shift) + half
        acc.append(np.where(exact & (ties >= lo) & (ties <= hi), ties, 0))
    acc = np.vstack(acc)
    out, *_ = run_stream(block, acc.reshape(-1, lanes), acc.size // lanes, in_bits=in_bits,
                         out_bits=out_bits, out_signed=out_signed, out_count=lanes,
                         in_gaps=backpressure, out_stalls=backpressure, seed=seed)
    expected = numerics.requantize(acc, multiplier, shift, out_bits, out_signed,
                                   offset=offset, rounding=rounding)
    np.testing.assert_array_equal(out.reshape(acc.shape), expected, err_msg=f"seed {seed}")


def test_requantizer_rejects_bad_offsets_and_rounding():
    common = {"multiplier": np.array([3, 5]), "shift": 2, "in_bits": 10, "lanes": 1,
              "out_bits": 4}
    with pytest.raises(ValueError, match=r"offset must have one entry per channel \(2\), "
                                         r"not shape \(3,\)"):
        Requantizer(offset=np.array([1, 2, 3]), **common)
    with pytest.raises(ValueError, match=r"rounding must be one of half_up, half_even, not "
                                         r"'floor'"):
        Requantizer(rounding="floor", **common)


@pytest.mark.parametrize("in_gaps", [0.0, 0.5], ids=["flow", "gaps"])
@pytest.mark.parametrize("geometry", ["ecp5", "xc7"])
def test_requantizer_beat_times_are_exact(geometry, in_gaps):
    """Without output stalls every beat leaves ``latency`` cycles after it was taken, one
    beat per cycle, and nothing more."""
    seed = 17 + int(10 * in_gaps)
    rng = np.random.default_rng(seed)
    multiplier = rng.integers(1, 1 << 12, 8)
    multiplier[[1, 5]] = 4
    block = Requantizer(multiplier=multiplier, shift=12, in_bits=26, lanes=2, out_bits=5,
                        geometry=geometry)
    acc = rng.integers(-(1 << 25), 1 << 25, (5, 8))
    out, _, taken, when = run_stream(block, acc.reshape(-1, 2), acc.size // 2, in_bits=26,
                                     out_bits=5, out_signed=False, out_count=2,
                                     in_gaps=in_gaps, seed=seed, drain=10)
    np.testing.assert_array_equal(out.reshape(acc.shape), block.reference(acc))
    assert block.beat_times(taken) == when, f"seed {seed}"
    if in_gaps == 0.0:
        assert set(np.diff(when)) == {1}


def test_requantizer_recovers_from_a_reset_mid_frame():
    """A reset with beats in flight (the channel counter mid-frame): the frames sent after it
    are requantized with the right channels' multipliers."""
    rng = np.random.default_rng(23)
    multiplier = rng.integers(1, 1 << 12, 8)
    block = Requantizer(multiplier=multiplier, shift=12, in_bits=26, lanes=2, out_bits=5,
                        geometry="ecp5")
    before, after = (rng.integers(-(1 << 25), 1 << 25, (n, 8)) for n in (2, 3))
    got = rtl_after_reset(block, before.reshape(-1, 2), after.reshape(-1, 2), in_bits=26,
                          out_bits=5, out_signed=False, out_count=2, reset_at=5, wait=3)
    np.testing.assert_array_equal(got.reshape(after.shape), block.reference(after))


def test_requantizer_dsp_count_splits_wide_products():
    # 40-bit accumulators on a 25x18 multiplier: pieces of 24, then 16 signed bits -> 2; a
    # 20-bit multiplier needs 2 pieces of at most 17 bits -> 4 DSPs per multiplying lane.
    multiplier = np.array([3, 8, (1 << 20) - 1, 5])
    block = Requantizer(multiplier=multiplier, shift=10, in_bits=40, lanes=4, out_bits=5,
                        geometry="xc7")
    assert block.dsp_count == 1 * 2 + 0 + 2 * 2 + 1 * 2


@pytest.mark.parametrize("in_count,out_count", [(2, 6), (6, 2), (3, 3), (1, 4), (4, 1)])
def test_width_converter_keeps_order(in_count, out_count):
    shape = element_shape(6, True)
    conv = WidthConverter(shape=shape, in_count=in_count, out_count=out_count)
    values = np.arange(-60, 60) % 64 - 32
    out, *_ = run_stream(conv, values.reshape(-1, in_count), values.size // out_count,
                         in_bits=6, out_bits=6, out_signed=True, out_count=out_count,
                         in_gaps=0.4, out_stalls=0.4, seed=2)
    np.testing.assert_array_equal(out.ravel(), values)


def test_width_converter_rejects_non_dividing_counts():
    with pytest.raises(FoldingError, match=r"4 elements per beat cannot feed one of 6"):
        WidthConverter(shape=element_shape(4, False), in_count=4, out_count=6)
