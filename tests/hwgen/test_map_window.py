"""ParallelMapWindow in the Amaranth simulator against im2col, with its exact cycle model."""

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from hwgen import FoldingError
from hwgen.blocks import ParallelMapWindow
from hwgen.blocks._util import divisors
from quant.numerics import conv_output_size, im2col

from .test_parallel_window import rtl_parallel
from .test_window import assert_equal, random_frames


# channels, height, width, kernel, stride, padding, positions: "same" convolutions (MNIST's
# 3x3), wider and asymmetric kernels, strides along x and y, pools (stride = kernel).
CASES = [
    (1, 6, 8, (3, 3), (1, 1), (1, 1), 2),
    (2, 5, 8, (3, 3), (1, 1), (1, 1), 4),
    (3, 4, 6, (3, 3), (1, 1), (1, 1), 3),
    (1, 4, 8, (3, 3), (1, 1), (1, 1), 8),
    (2, 5, 6, (5, 5), (1, 1), (2, 2), 2),
    (1, 6, 8, (1, 1), (1, 1), (0, 0), 4),
    (2, 6, 8, (3, 1), (2, 1), (1, 0), 2),
    (1, 7, 8, (2, 2), (2, 2), (0, 0), 1),
    (3, 6, 12, (2, 2), (2, 2), (0, 0), 3),
    (2, 6, 8, (3, 3), (2, 2), (1, 1), 2),
    (1, 5, 12, (3, 3), (3, 3), (0, 0), 2),
    (2, 4, 6, (1, 3), (1, 1), (0, 1), 6),
]
IDS = ["c{}_h{}_w{}_k{}x{}_s{}x{}_p{}x{}_P{}".format(c, h, w, *k, *s, *p, n)
       for c, h, w, k, s, p, n in CASES]


def make(case, shape=unsigned(4), pad_value=0):
    c, h, w, k, s, p, n = case
    return ParallelMapWindow(channels=c, height=h, width=w, kernel=k, stride=s, padding=p,
                             shape=shape, positions=n, pad_value=pad_value)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_map_window_is_im2col(case):
    """Three frames with random input gaps and back-pressure: every element as im2col, and
    with no gaps or stalls every beat when the cycle model says."""
    seed = CASES.index(case)
    window = make(case, signed(4), pad_value=-3)
    rng = np.random.default_rng(seed)
    x = random_frames(rng, 3, window.channels, window.height, window.width, window.shape)
    got, *_ = rtl_parallel(window, x, in_gaps=0.4, out_stalls=0.4, seed=seed, drain=8)
    c, h, w, k, s, p, n = case
    padded = np.pad(x, [(0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])], constant_values=-3)
    assert_equal(got, im2col(padded, k, s, 0), seed)
    for gaps in (0.0, 0.5):
        _, offered, taken, when = rtl_parallel(window, x, in_gaps=gaps, seed=seed, drain=8)
        assert window.beat_times(offered) == when, f"gaps {gaps}"
        assert window.input_times(offered) == taken, f"gaps {gaps}"


def test_map_window_beats_and_rate():
    """MNIST's first convolution at 2 positions a beat: 392 beats in and out a frame, one a
    cycle, so a frame every 392 cycles."""
    window = make((1, 28, 28, (3, 3), (1, 1), (1, 1), 2))
    assert (window.in_lanes, window.out_lanes) == (2, 18)
    assert window.in_beats == window.out_beats == window.cycles_per_frame == 392
    assert window.groups.kernel == (3, 3) and window.groups.padding == (1, 1)
    timing = ParallelMapWindow.timing_of(channels=1, height=28, width=28, kernel=(3, 3),
                                         stride=(1, 1), padding=(1, 1), positions=2)
    assert timing.cycles_per_frame == 392


@pytest.mark.parametrize("width,kernel,stride,padding,positions,rule", [
    (28, (3, 3), (1, 1), (0, 0), 2, "do not tile a row"),
    (28, (3, 3), (1, 1), (1, 1), 3, "do not divide its 28 output positions"),
    (7, (2, 2), (2, 2), (0, 0), 1, "do not tile a row"),
])
def test_map_window_refuses_what_does_not_tile(width, kernel, stride, padding, positions,
                                               rule):
    with pytest.raises(FoldingError, match=f"layer 'conv1'.*{rule}"):
        ParallelMapWindow(channels=1, height=8, width=width, kernel=kernel, stride=stride,
                          padding=padding, shape=unsigned(4), positions=positions,
                          name="conv1")


def random_tiling_geometry(rng):
    """A random window whose windows tile the rows, and a random divisor of its output width:
    ``(channels, height, width, kernel, stride, padding, positions)``, or None."""
    kh, kw = (int(k) for k in rng.integers(1, 6, 2))
    sh, sw = (int(s) for s in rng.integers(1, 4, 2))
    ph = int(rng.integers(0, kh))
    out_width = int(rng.integers(1, 7))
    width = sw * out_width
    pads = [p for p in range(kw) if kw <= width + 2 * p
            and conv_output_size(width, kw, sw, p) == out_width]
    height = int(rng.integers(max(1, kh - 2 * ph), 7))
    if not pads:
        return None
    positions = int(rng.choice(divisors(out_width)))
    return (int(rng.integers(1, 4)), height, width, (kh, kw), (sh, sw),
            (ph, int(rng.choice(pads))), positions)


@pytest.mark.parametrize("seed", range(40))
def test_random_map_windows_are_im2col(seed):
    """Random tiling geometries: every element as im2col under random gaps and
    back-pressure, every beat when the model says without them."""
    rng = np.random.default_rng(1000 + seed)
    case = None
    while case is None:
        case = random_tiling_geometry(rng)
    window = make(case, signed(3), pad_value=-2)
    c, h, w, k, s, p, n = case
    x = random_frames(rng, 2, c, h, w, window.shape)
    padded = np.pad(x, [(0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])], constant_values=-2)
    got, *_ = rtl_parallel(window, x, in_gaps=0.3, out_stalls=0.3, seed=seed, drain=6)
    assert_equal(got, im2col(padded, k, s, 0), f"{seed}: {case}")
    _, offered, taken, when = rtl_parallel(window, x, in_gaps=0.3, seed=seed, drain=6)
    assert window.beat_times(offered) == when, case
    assert window.input_times(offered) == taken, case
