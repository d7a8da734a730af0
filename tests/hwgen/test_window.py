"""SlidingWindow in the Amaranth simulator against im2col, with its exact cycle model."""

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from hwgen import FoldingError
from hwgen.blocks.window import SlidingWindow, im2col

from .streams import run_stream


def assert_equal(got, expected, seed, what="element"):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, f"shape {got.shape} != {expected.shape} (seed {seed})"
    bad = np.argwhere(got != expected)
    assert not bad.size, (f"{what} {tuple(int(v) for v in bad[0])}: expected "
                          f"{expected[tuple(bad[0])]}, got {got[tuple(bad[0])]} (seed {seed})")


def hwc_beats(x_chw, simd):
    """Beats of a (frames, C, H, W) batch in stream order (HWC, ``simd`` channels a beat)."""
    return np.moveaxis(np.asarray(x_chw), -3, -1).reshape(-1, simd)


def rtl_window(window, x, *, in_gaps=0.0, out_stalls=0.0, seed=0, drain=0):
    bits, is_signed = window.shape.width, window.shape.signed
    out, offered, taken, when = run_stream(
        window, hwc_beats(x, window.simd), len(x) * window.out_beats, in_bits=bits,
        out_bits=bits, out_signed=is_signed, out_count=window.out_lanes, in_gaps=in_gaps,
        out_stalls=out_stalls, seed=seed, drain=drain)
    return out.reshape(len(x), window.out_height, window.out_width, -1), offered, taken, when


def ref_window(x, kernel, stride, padding):
    return im2col(x, kernel, stride, padding)


def random_frames(rng, frames, channels, height, width, shape):
    lo = -(1 << (shape.width - 1)) if shape.signed else 0
    hi = (1 << (shape.width - 1)) - 1 if shape.signed else (1 << shape.width) - 1
    return rng.integers(lo, hi + 1, (frames, channels, height, width))


# Every kernel 1..7 x stride 1..2 x padding (0, k // 2), on small inputs whose sizes vary with
# the case (odd channel counts, one channel, non-square), with and without back-pressure.
def _sweep():
    cases = []
    sizes = [(1, 5, 7), (3, 7, 4), (5, 4, 6), (2, 6, 5)]
    for k in range(1, 8):
        for s in (1, 2):
            for p in sorted({0, k // 2}):
                c, h, w = sizes[(k + s + p) % len(sizes)]
                h, w = max(h, k - 2 * p), max(w, k - 2 * p + 1)
                cases.append((c, h, w, k, s, p))
    return cases


SWEEP = _sweep()


@pytest.mark.parametrize("case", SWEEP, ids=lambda c: "c{}_{}x{}_k{}_s{}_p{}".format(*c))
def test_window_matches_im2col(case):
    channels, height, width, k, s, p = case
    seed = SWEEP.index(case)
    rng = np.random.default_rng(seed)
    shape = unsigned(4)
    window = SlidingWindow(channels=channels, height=height, width=width, kernel=k, stride=s,
                           padding=p, shape=shape)
    x = random_frames(rng, 2, channels, height, width, shape)
    got, *_ = rtl_window(window, x, in_gaps=0.5 * (seed % 2), out_stalls=0.5 * (seed % 2),
                         seed=seed)
    assert_equal(got, ref_window(x, k, s, p), seed)


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["flow", "backpressure"])
@pytest.mark.parametrize("case", [
    # channels, simd, height, width, kernel, stride, padding
    (6, 2, 4, 5, (3, 3), (1, 1), (1, 1)),
    (6, 3, 5, 4, (2, 3), (2, 1), (1, 0)),
    (4, 4, 3, 3, (3, 3), (2, 2), (1, 1)),
    (5, 5, 4, 4, (1, 1), (1, 1), (0, 0)),
    (2, 1, 8, 7, (2, 2), (3, 3), (0, 1)),     # stride larger than the kernel: rows skipped
    (3, 3, 4, 5, (3, 4), (1, 2), (2, 3)),     # padding up to kernel - 1
], ids=lambda c: "c{}_simd{}_{}x{}_k{}x{}_s{}x{}_p{}x{}".format(*c[:4], *c[4], *c[5], *c[6]))
def test_window_simd_and_signed(case, backpressure):
    channels, simd, height, width, kernel, stride, padding = case
    seed = 100 + len(str(case))
    rng = np.random.default_rng(seed)
    shape = signed(5)
    window = SlidingWindow(channels=channels, height=height, width=width, kernel=kernel,
                           stride=stride, padding=padding, shape=shape, simd=simd)
    x = random_frames(rng, 2, channels, height, width, shape)
    x[0, :, 0, 0] = -16                                  # extreme values survive the buffer
    got, *_ = rtl_window(window, x, in_gaps=backpressure, out_stalls=backpressure, seed=seed)
    assert_equal(got, ref_window(x, kernel, stride, padding), seed)


@pytest.mark.parametrize("k,s,p", [(3, 1, 1), (5, 2, 0), (7, 1, 3), (2, 2, 0)])
def test_window_one_dimensional(k, s, p):
    """A CL signal is a 1-pixel-high image; the windows equal the 1-D im2col."""
    seed = 10 * k + s
    rng = np.random.default_rng(seed)
    channels, length = 3, 12
    window = SlidingWindow(channels=channels, height=1, width=length, kernel=(1, k),
                           stride=(1, s), padding=(0, p), shape=unsigned(6))
    x = rng.integers(0, 64, (2, channels, length))
    got, *_ = rtl_window(window, x[:, :, None, :], in_gaps=0.3, out_stalls=0.3, seed=seed)
    assert_equal(got[:, 0], im2col(x, (k,), s, p), seed)


TIMING = [
    # channels, simd, height, width, kernel, stride, padding
    (1, 1, 5, 5, 3, 1, 1),
    (2, 1, 5, 6, 3, 1, 0),
    (3, 1, 7, 7, 7, 2, 3),
    (2, 2, 6, 6, 2, 2, 0),
    (1, 1, 6, 5, 1, 2, 0),
    (2, 1, 4, 4, 1, 1, 0),
    (1, 1, 5, 9, 5, 1, 0),
    (1, 1, 1, 11, (1, 4), (1, 3), (0, 2)),
]


@pytest.mark.parametrize("case", TIMING, ids=lambda c: "c{}_simd{}_{}x{}_k{}_s{}_p{}".format(*c))
def test_window_steady_state_interval_is_cycles_per_frame(case):
    channels, simd, height, width, kernel, stride, padding = case
    window = SlidingWindow(channels=channels, height=height, width=width, kernel=kernel,
                           stride=stride, padding=padding, shape=unsigned(3), simd=simd)
    assert window.cycles_per_frame == max(window.in_beats, window.out_beats)
    x = random_frames(np.random.default_rng(1), 5, channels, height, width, unsigned(3))
    got, _, _, when = rtl_window(window, x, drain=3 * window.window_beats)
    assert_equal(got, ref_window(x, kernel, stride, padding), 1)
    ends = when[window.out_beats - 1::window.out_beats]
    assert list(np.diff(ends)[-2:]) == [window.cycles_per_frame] * 2


@pytest.mark.parametrize("case", TIMING, ids=lambda c: "c{}_simd{}_{}x{}_k{}_s{}_p{}".format(*c))
def test_window_beat_times_are_exact(case):
    """One frame into the empty block with random input gaps: the model gives every cycle."""
    channels, simd, height, width, kernel, stride, padding = case
    seed = TIMING.index(case)
    window = SlidingWindow(channels=channels, height=height, width=width, kernel=kernel,
                           stride=stride, padding=padding, shape=unsigned(3), simd=simd)
    x = random_frames(np.random.default_rng(seed), 1, channels, height, width, unsigned(3))
    for gaps in (0.0, 0.6):
        _, offered, taken, when = rtl_window(window, x, in_gaps=gaps, seed=seed)
        assert window.beat_times(offered) == when, f"gaps {gaps} (seed {seed})"
        assert window.input_times(offered) == taken, f"gaps {gaps} (seed {seed})"


# Several window positions a beat (whole pixels in): 2-D and 1-D, stride 1 and 2, with and
# without padding, taps = kw, the whole window, and other divisors of kh * kw.
TAPS = [
    # channels, height, width, kernel, stride, padding, taps
    (1, 6, 6, (3, 3), (1, 1), (1, 1), 3),
    (3, 7, 6, (3, 3), (2, 2), (1, 1), 9),
    (2, 5, 7, (3, 3), (1, 1), (0, 0), 9),
    (1, 6, 5, (2, 3), (1, 1), (1, 1), 2),      # beats straddle window rows
    (2, 7, 7, (5, 5), (2, 1), (2, 2), 5),
    (1, 8, 8, (5, 5), (1, 1), (2, 2), 25),
    (3, 5, 6, (2, 2), (2, 2), (0, 0), 4),
    (1, 6, 6, (3, 2), (3, 2), (0, 1), 3),      # stride equal to the kernel, taps over rows
    (1, 1, 12, (1, 4), (1, 1), (0, 2), 2),     # 1-D
    (2, 1, 13, (1, 6), (1, 2), (0, 3), 6),
    (1, 1, 11, (1, 5), (1, 3), (0, 0), 5),
]
TAPS_IDS = "c{}_{}x{}_k{}_s{}_p{}_taps{}"


@pytest.mark.parametrize("case", TAPS, ids=lambda c: TAPS_IDS.format(*c))
def test_window_taps_match_im2col(case):
    """Each output beat is ``taps`` consecutive (ky, kx) positions of all channels: the rows
    of im2col in order, with random gaps and back-pressure; steady state at the model's rate."""
    channels, height, width, kernel, stride, padding, taps = case
    seed = 300 + TAPS.index(case)
    rng = np.random.default_rng(seed)
    shape = signed(4)
    window = SlidingWindow(channels=channels, height=height, width=width, kernel=kernel,
                           stride=stride, padding=padding, shape=shape, simd=channels,
                           taps=taps)
    assert window.out_lanes == taps * channels
    assert window.out_beats == window.out_height * window.out_width * kernel[0] * kernel[1] \
        // taps
    x = random_frames(rng, 2, channels, height, width, shape)
    got, *_ = rtl_window(window, x, in_gaps=0.4, out_stalls=0.4, seed=seed)
    assert_equal(got, ref_window(x, kernel, stride, padding), seed)
    assert window.cycles_per_frame == max(window.in_beats, window.out_beats)
    x = random_frames(rng, 5, channels, height, width, shape)
    got, _, _, when = rtl_window(window, x, drain=3 * window.window_beats + 4, seed=seed)
    assert_equal(got, ref_window(x, kernel, stride, padding), seed)
    ends = when[window.out_beats - 1::window.out_beats]
    assert list(np.diff(ends)[-2:]) == [window.cycles_per_frame] * 2


@pytest.mark.parametrize("case", TAPS, ids=lambda c: TAPS_IDS.format(*c))
def test_window_taps_beat_times_are_exact(case):
    """One frame into the empty block with random input gaps: the model gives every cycle."""
    channels, height, width, kernel, stride, padding, taps = case
    seed = 400 + TAPS.index(case)
    window = SlidingWindow(channels=channels, height=height, width=width, kernel=kernel,
                           stride=stride, padding=padding, shape=unsigned(3), simd=channels,
                           taps=taps)
    x = random_frames(np.random.default_rng(seed), 1, channels, height, width, unsigned(3))
    for gaps in (0.0, 0.6):
        _, offered, taken, when = rtl_window(window, x, in_gaps=gaps, seed=seed)
        assert window.beat_times(offered) == when, f"gaps {gaps} (seed {seed})"
        assert window.input_times(offered) == taken, f"gaps {gaps} (seed {seed})"


def test_window_taps_smaller_buffer_is_exact():
    """A buffer of only the window's rows: frames back to back at the model's interval."""
    window = SlidingWindow(channels=2, height=6, width=5, kernel=3, stride=1, padding=0,
                           shape=unsigned(3), simd=2, taps=3, buffer_rows=3)
    assert window.cycles_per_frame > max(window.in_beats, window.out_beats)
    x = random_frames(np.random.default_rng(5), 4, 2, 6, 5, unsigned(3))
    got, _, _, when = rtl_window(window, x, seed=5)
    assert_equal(got, ref_window(x, 3, 1, 0), 5)
    ends = when[window.out_beats - 1::window.out_beats]
    assert np.diff(ends)[-1] == window.cycles_per_frame


def test_window_smaller_buffer_trades_throughput():
    full = SlidingWindow(channels=1, height=6, width=6, kernel=3, stride=1, padding=0,
                         shape=unsigned(3))
    small = SlidingWindow(channels=1, height=6, width=6, kernel=3, stride=1, padding=0,
                          shape=unsigned(3), buffer_rows=3)
    assert small.buffer_depth == 3 * 6 < full.buffer_depth
    assert small.cycles_per_frame > full.cycles_per_frame == full.out_beats
    x = random_frames(np.random.default_rng(4), 4, 1, 6, 6, unsigned(3))
    got, _, _, when = rtl_window(small, x, seed=4)
    assert_equal(got, ref_window(x, 3, 1, 0), 4)
    ends = when[small.out_beats - 1::small.out_beats]
    assert np.diff(ends)[-1] == small.cycles_per_frame


def test_window_properties():
    window = SlidingWindow(channels=6, height=5, width=7, kernel=(3, 2), stride=(2, 1),
                           padding=(1, 0), shape=unsigned(4), simd=3)
    assert (window.out_height, window.out_width) == (3, 6)
    assert window.in_beats == 5 * 7 * 2
    assert window.window_beats == 3 * 2 * 2
    assert window.out_beats == 3 * 6 * 12
    assert window.buffer_depth == window.buffer_rows * 7 * 2
    assert window.buffer_bits == window.buffer_depth * 3 * 4
    assert window.window_rows <= window.buffer_rows


def test_window_rejects_bad_parameters():
    common = dict(channels=3, height=4, width=4, shape=unsigned(4), name="conv2")
    with pytest.raises(ValueError, match=r"layer 'conv2': kernel 5x5 is larger than its "
                                         r"padded input 4x4"):
        SlidingWindow(kernel=5, **common)
    with pytest.raises(ValueError, match=r"kernel 3x7 is larger than its padded input 6x6"):
        SlidingWindow(kernel=(3, 7), padding=1, **common)
    with pytest.raises(FoldingError, match=r"layer 'conv2': SIMD 2 does not divide channels 3; "
                                           r"choose one of 1, 3"):
        SlidingWindow(kernel=3, simd=2, **common)
    with pytest.raises(ValueError, match=r"padding must be smaller than the kernel, not 3 for "
                                         r"a kernel of 3 along y"):
        SlidingWindow(kernel=3, padding=3, **common)
    with pytest.raises(ValueError, match=r"stride must be at least 1, not \(1, 0\)"):
        SlidingWindow(kernel=3, stride=(1, 0), **common)
    with pytest.raises(TypeError, match=r"kernel must be an integer or a pair of integers, "
                                        r"not 2.5"):
        SlidingWindow(kernel=2.5, **common)
    with pytest.raises(TypeError, match=r"shape must be an Amaranth shape"):
        SlidingWindow(kernel=3, **(common | {"shape": "u4"}))
    with pytest.raises(ValueError, match=r"buffer_rows must be at least 3 \(the rows one "
                                         r"window spans\), not 2"):
        SlidingWindow(kernel=3, buffer_rows=2, **common)
    with pytest.raises(ValueError, match=r"channels must be at least 1, not 0"):
        SlidingWindow(kernel=1, **(common | {"channels": 0}))
    with pytest.raises(FoldingError, match=r"layer 'conv2': taps 2 does not divide the 3x3 "
                                           r"window's 9 positions; choose one of 1, 3, 9"):
        SlidingWindow(kernel=3, simd=3, taps=2, **common)
    with pytest.raises(FoldingError, match=r"layer 'conv2': with taps 3 a beat carries whole "
                                           r"pixels, so SIMD must be channels 3, not 1"):
        SlidingWindow(kernel=3, simd=1, taps=3, **common)
    with pytest.raises(ValueError, match=r"taps must be at least 1, not 0"):
        SlidingWindow(kernel=3, taps=0, **common)


def test_im2col_order():
    """Row (oy, ox), column (ky, kx, c): checked element by element on a small case."""
    x = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    cols = im2col(x, 2, 1, 1)
    assert cols.shape == (4, 5, 2 * 2 * 2)
    for oy in range(4):
        for ox in range(5):
            for ky in range(2):
                for kx in range(2):
                    for c in range(2):
                        y, xx = oy - 1 + ky, ox - 1 + kx
                        inside = 0 <= y < 3 and 0 <= xx < 4
                        assert cols[oy, ox, (ky * 2 + kx) * 2 + c] == (x[c, y, xx] if inside
                                                                       else 0)
    with pytest.raises(ValueError, match=r"kernel 3x3 is larger than its padded input 2x2"):
        im2col(np.zeros((1, 2, 2), np.int64), 3)


# Window beats split into parts by the window's converter: (channels, height, width, kernel,
# stride, padding, simd, taps, split).
SPLIT = [
    (4, 6, 6, (3, 3), (1, 1), (1, 1), 4, 9, 4),       # the whole window, 9 elements a beat
    (6, 5, 7, (3, 3), (2, 2), (1, 1), 6, 3, 2),       # a row of it, 9 a beat
    (4, 6, 5, (3, 3), (1, 1), (0, 0), 4, 3, 2),
    (3, 1, 12, (1, 5), (1, 2), (0, 0), 3, 5, 3),      # 1-D, strided
    (2, 7, 6, (2, 2), (1, 1), (1, 1), 2, 2, 4),
]
SPLIT_IDS = "c{}_{}x{}_k{}_s{}_p{}_simd{}_taps{}_split{}"


@pytest.mark.parametrize("case", SPLIT, ids=lambda c: SPLIT_IDS.format(*c))
def test_window_split_beats_match_im2col_and_the_model(case):
    """Each window beat leaves in ``split`` parts, the rows of im2col in order, with random
    gaps and back-pressure; with the output always taken the model gives every cycle, and the
    steady state is its rate."""
    channels, height, width, kernel, stride, padding, simd, taps, split = case
    seed = 500 + SPLIT.index(case)
    rng = np.random.default_rng(seed)
    shape = signed(4)
    window = SlidingWindow(channels=channels, height=height, width=width, kernel=kernel,
                           stride=stride, padding=padding, shape=shape, simd=simd, taps=taps,
                           split=split)
    assert window.out_lanes == simd * taps // split
    x = random_frames(rng, 2, channels, height, width, shape)
    got, *_ = rtl_window(window, x, in_gaps=0.4, out_stalls=0.4, seed=seed)
    assert_equal(got, ref_window(x, kernel, stride, padding), seed)
    x = random_frames(rng, 1, channels, height, width, shape)
    for gaps in (0.0, 0.6):
        _, offered, taken, when = rtl_window(window, x, in_gaps=gaps, seed=seed)
        assert window.timing.beat_times(offered) == when, f"gaps {gaps} (seed {seed})"
        assert window.timing.input_times(offered) == taken, f"gaps {gaps} (seed {seed})"
    x = random_frames(rng, 5, channels, height, width, shape)
    _, _, _, when = rtl_window(window, x, drain=3 * window.out_beats, seed=seed)
    ends = when[window.out_beats - 1::window.out_beats]
    assert list(np.diff(ends)[-2:]) == [window.cycles_per_frame] * 2
