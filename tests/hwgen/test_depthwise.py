"""DepthwiseUnit in the Amaranth simulator against NumPy, alone and behind a SlidingWindow."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen import FoldingError
from hwgen.blocks._util import element_shape
from hwgen.blocks.depthwise import DepthwiseUnit
from hwgen.blocks.window import SlidingWindow, im2col
from quant import numerics

from .streams import run_stream
from .test_window import assert_equal, hwc_beats


def random_depthwise(rng, channels, kernel, bits, extreme=False):
    """Per-channel weights (bits cycle through ``bits``), bias."""
    weight_bits = np.resize(np.asarray(bits), channels)
    hi = (1 << (weight_bits - 1)) - 1
    shape = (channels,) + tuple(kernel)
    if extreme:
        weight = np.where(np.random.default_rng(0).random(shape) < 0.5, -1, 1)
        weight = weight * hi[:, None, None]
    else:
        weight = rng.integers(-hi[:, None, None], hi[:, None, None] + 1, shape)
    bias = rng.integers(-200, 200, channels)
    return weight, bias, weight_bits


def ref_depthwise(x, weight, bias, stride, padding):
    """Direct depthwise convolution of ``(N, C, H, W)``: ``(N, C, out_h, out_w)``."""
    (kh, kw), (sh, sw), (ph, pw) = weight.shape[1:], stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    out = np.zeros(x.shape[:2] + (oh, ow), dtype=np.int64)
    for oy in range(oh):
        for ox in range(ow):
            patch = xp[:, :, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw]
            out[:, :, oy, ox] = (patch * weight[None]).sum(axis=(2, 3)) + bias
    return out


def rtl_depthwise(unit, windows, *, backpressure=0.0, seed=0):
    """``(N, kh*kw*C)`` windows in, ``(N, C)`` accumulators out, plus the cycles."""
    out, offered, taken, when = run_stream(
        unit, windows.reshape(-1, unit.in_lanes), len(windows) * unit.folds, in_bits=unit.in_bits,
        out_bits=unit.acc_bits, out_signed=True, out_count=unit.simd, in_gaps=backpressure,
        out_stalls=backpressure, seed=seed)
    return out.reshape(len(windows), unit.channels), offered, taken, when


CASES = [
    # channels, simd, kernel, bits, in_bits, in_signed
    (4, 2, (3, 3), [4, 8], 5, False),
    (3, 1, (3, 3), [4], 5, False),         # odd channels, one channel a beat
    (5, 5, (2, 3), [2, 3, 8], 4, True),    # all channels in one beat, signed input
    (6, 3, (1, 5), [8, 4, 4], 8, False),   # 1-D kernel
    (1, 1, (1, 1), [8], 8, True),          # fan-in 1
]


def random_frames(rng, channels, kernel, bits, in_bits, in_signed):
    """A random depthwise layer, two 4x5 input frames padded to keep their size, and their
    windows."""
    weight, bias, weight_bits = random_depthwise(rng, channels, kernel, bits)
    lo, hi = numerics.int_range(in_bits, in_signed)
    x = rng.integers(lo, hi + 1, (2, channels, 4, 5))
    padding = (kernel[0] // 2, kernel[1] // 2)
    return weight, bias, weight_bits, x, padding, im2col(x, kernel, 1, padding)


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["flow", "backpressure"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "c{}_simd{}_k{}x{}_w{}_a{}{}".format(
    c[0], c[1], *c[2], "-".join(map(str, c[3])), c[4], "s" if c[5] else "u"))
def test_depthwise_matches_numpy(case, backpressure):
    channels, simd, kernel, bits, in_bits, in_signed = case
    seed = CASES.index(case)
    rng = np.random.default_rng(seed)
    weight, bias, weight_bits, x, padding, windows = random_frames(rng, channels, kernel,
                                                                   bits, in_bits, in_signed)
    unit = DepthwiseUnit(weight=weight, bias=bias, weight_bits=weight_bits, in_bits=in_bits,
                         in_signed=in_signed, simd=simd)
    got, *_ = rtl_depthwise(unit, windows.reshape(-1, windows.shape[-1]),
                            backpressure=backpressure, seed=seed)
    expected = np.moveaxis(ref_depthwise(x, weight, bias, (1, 1), padding), 1, -1)
    assert_equal(got.reshape(expected.shape), expected, seed)
    assert_equal(unit.reference(windows), expected, seed)


TAP_CASES = [
    # channels, taps, kernel, bits, in_bits, in_signed
    (4, 3, (3, 3), [4, 8], 5, False),      # a window row a beat
    (3, 9, (3, 3), [2, 8, 4], 4, True),    # the whole window a beat
    (2, 5, (1, 5), [8], 8, False),         # 1-D kernel, whole window
    (5, 2, (2, 3), [3, 8], 6, True),       # two positions a beat across rows
]


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["flow", "backpressure"])
@pytest.mark.parametrize("case", TAP_CASES, ids=lambda c: "c{}_taps{}_k{}x{}".format(
    c[0], c[1], *c[2]))
def test_depthwise_with_several_positions_per_beat_matches_numpy(case, backpressure):
    channels, taps, kernel, bits, in_bits, in_signed = case
    seed = 20 + TAP_CASES.index(case)
    rng = np.random.default_rng(seed)
    weight, bias, weight_bits, x, padding, windows = random_frames(rng, channels, kernel,
                                                                   bits, in_bits, in_signed)
    unit = DepthwiseUnit(weight=weight, bias=bias, weight_bits=weight_bits, in_bits=in_bits,
                         in_signed=in_signed, simd=channels, taps=taps, pixels=20)
    assert (unit.in_lanes, unit.beats) == (taps * channels, kernel[0] * kernel[1] // taps)
    got, offered, taken, when = rtl_depthwise(unit, windows.reshape(-1, windows.shape[-1]),
                                              backpressure=backpressure, seed=seed)
    expected = np.moveaxis(ref_depthwise(x, weight, bias, (1, 1), padding), 1, -1)
    assert_equal(got.reshape(expected.shape), expected, seed)
    if backpressure == 0:
        ends = when[unit.out_beats - 1::unit.out_beats]
        assert list(np.diff(ends)) == [unit.cycles_per_frame] == [unit.in_beats]
        assert unit.beat_times(taken) == when


def test_depthwise_extremes_reach_accumulator_bounds():
    """All weights at ±max and windows at the input range ends: no wrap-around."""
    rng = np.random.default_rng(7)
    weight, bias, weight_bits = random_depthwise(rng, 4, (3, 3), [8, 4], extreme=True)
    unit = DepthwiseUnit(weight=weight, bias=bias, weight_bits=weight_bits, in_bits=8,
                         in_signed=True, simd=2)
    w = weight.reshape(4, 9).T                                        # (K, C)
    windows = np.stack([np.where(w > 0, 127, -128), np.where(w > 0, -128, 127),
                        rng.choice([-128, 127, 0], (9, 4))]).reshape(3, -1)
    got, *_ = rtl_depthwise(unit, windows, backpressure=0.3, seed=7)
    expected = unit.reference(windows)
    assert_equal(got, expected, 7)
    assert expected.max() == unit.acc_range[1] or expected.min() == unit.acc_range[0]
    assert unit.acc_bits == numerics.bits_for_range(*unit.acc_range)[0]


def test_depthwise_timing():
    rng = np.random.default_rng(2)
    weight, bias, weight_bits = random_depthwise(rng, 4, (2, 2), [4])
    unit = DepthwiseUnit(weight=weight, bias=bias, weight_bits=weight_bits, in_bits=4,
                         in_signed=False, simd=2, pixels=3)
    windows = rng.integers(0, 16, (12, 16))
    _, _, _, when = rtl_depthwise(unit, windows)
    ends = when[unit.out_beats - 1::unit.out_beats]
    assert list(np.diff(ends)) == [unit.cycles_per_frame] * 3 == [unit.in_beats] * 3
    _, offered, taken, when = rtl_depthwise(unit, windows[:3], backpressure=0.0, seed=2)
    assert unit.beat_times(taken) == when
    assert when[0] - taken[unit.window_beats - unit.folds] == unit.latency


class WindowThenDepthwise(wiring.Component):
    """A depthwise convolution layer's dataflow: SlidingWindow -> DepthwiseUnit."""

    def __init__(self, window, unit):
        self.window, self.unit = window, unit
        super().__init__({"i_stream": In(window.i_stream.signature.flip()),
                          "o_stream": Out(unit.o_stream.signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.window, m.submodules.unit = self.window, self.unit
        wiring.connect(m, wiring.flipped(self.i_stream), self.window.i_stream)
        wiring.connect(m, producer=self.window.o_stream, consumer=self.unit.i_stream)
        wiring.connect(m, producer=self.unit.o_stream, consumer=wiring.flipped(self.o_stream))
        return m


@pytest.mark.parametrize("case", [
    # channels, simd, height, width, kernel, stride, padding
    (3, 1, 5, 6, (3, 3), (1, 1), (1, 1)),
    (4, 2, 6, 5, (3, 3), (2, 2), (1, 1)),
    (2, 2, 1, 10, (1, 5), (1, 1), (0, 2)),
], ids=["c3_k3_s1_p1", "c4_simd2_k3_s2_p1", "1d_c2_k5"])
def test_window_then_depthwise_is_a_depthwise_convolution(case):
    channels, simd, height, width, kernel, stride, padding = case
    seed = channels + simd
    rng = np.random.default_rng(seed)
    weight, bias, weight_bits = random_depthwise(rng, channels, kernel, [4, 8])
    window = SlidingWindow(channels=channels, height=height, width=width, kernel=kernel,
                           stride=stride, padding=padding, shape=element_shape(5, False),
                           simd=simd)
    unit = DepthwiseUnit(weight=weight, bias=bias, weight_bits=weight_bits, in_bits=5,
                         in_signed=False, simd=simd,
                         pixels=window.out_height * window.out_width)
    layer = WindowThenDepthwise(window, unit)
    x = rng.integers(0, 32, (2, channels, height, width))
    out, *_ = run_stream(layer, hwc_beats(x, simd), 2 * unit.out_beats, in_bits=5,
                         out_bits=unit.acc_bits, out_signed=True, out_count=simd,
                         in_gaps=0.3, out_stalls=0.3, seed=seed)
    got = np.moveaxis(out.reshape(2, window.out_height, window.out_width, channels), -1, 1)
    assert_equal(got, ref_depthwise(x, weight, bias, stride, padding), seed)


def test_depthwise_rejects_bad_parameters():
    weight = np.zeros((6, 3, 3), np.int64)
    common = {"weight": weight, "bias": np.zeros(6, np.int64),
              "weight_bits": np.full(6, 4), "in_bits": 4, "in_signed": False}
    with pytest.raises(FoldingError, match=r"layer 'depthwise': taps 2 does not divide the "
                                           r"3x3 window's 9 positions; choose one of 1, 3, 9"):
        DepthwiseUnit(**common, simd=6, taps=2)
    with pytest.raises(FoldingError, match=r"with taps 3 a beat carries whole positions, so "
                                           r"SIMD must be channels 6, not 2"):
        DepthwiseUnit(**common, simd=2, taps=3)
    common = dict(weight=weight, bias=np.zeros(6, np.int64), weight_bits=np.full(6, 4),
                  in_bits=5, in_signed=False, name="dw1")
    with pytest.raises(FoldingError, match=r"layer 'dw1': SIMD 4 does not divide channels 6; "
                                           r"choose one of 1, 2, 3, 6"):
        DepthwiseUnit(simd=4, **common)
    with pytest.raises(FoldingError, match=r"layer 'dw1': PE must be SIMD 3 .*, not 6"):
        DepthwiseUnit(simd=3, pe=6, **common)
    bad = common | {"weight": np.full((6, 3, 3), 8)}
    with pytest.raises(ValueError, match=r"layer 'dw1': channel 0 has weights outside its "
                                         r"4-bit range ±7"):
        DepthwiseUnit(simd=1, **bad)
    with pytest.raises(TypeError, match=r"layer 'dw1': bias must be an integer array of "
                                        r"shape \(6,\)"):
        DepthwiseUnit(simd=1, **(common | {"bias": np.zeros(5, np.int64)}))
    with pytest.raises(TypeError, match=r"weight must be an integer array of shape"):
        DepthwiseUnit(simd=1, **(common | {"weight": np.zeros((6, 9))}))
    unit = DepthwiseUnit(simd=2, pe=2, **(common | {"weight": np.zeros((6, 1, 3, 3), int)}))
    assert unit.kernel == (3, 3) and unit.pe == 2
