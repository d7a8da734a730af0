"""MaxPool, SumPool and GlobalSumPool in the Amaranth simulator against NumPy."""

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from hwgen import FoldingError
from hwgen.blocks.pool import GlobalSumPool, MaxPool, SumPool

from .streams import run_stream
from .test_map_window import random_tiling_geometry
from .test_window import assert_equal, hwc_beats, random_frames


def rtl_pool(pool, x, *, in_gaps=0.0, out_stalls=0.0, seed=0):
    """Outputs as ``(frames, C, ...)`` arrays, plus offer and output cycles."""
    out, offered, _, when = run_stream(
        pool, hwc_beats(x, pool.simd), len(x) * pool.out_beats, in_bits=pool.shape.width,
        out_bits=pool.out_bits, out_signed=pool.out_signed, out_count=pool.simd,
        in_gaps=in_gaps, out_stalls=out_stalls, seed=seed)
    return out, offered, when


def ref_max_pool(x, kernel, stride):
    """Direct loops over windows (independent of im2col)."""
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = (x.shape[-2] - kh) // sh + 1, (x.shape[-1] - kw) // sw + 1
    out = np.empty(x.shape[:-2] + (oh, ow), dtype=np.int64)
    for oy in range(oh):
        for ox in range(ow):
            patch = x[..., oy * sh:oy * sh + kh, ox * sw:ox * sw + kw]
            out[..., oy, ox] = patch.max(axis=(-2, -1))
    return out


def ref_sum_pool(x, kernel, stride):
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = (x.shape[-2] - kh) // sh + 1, (x.shape[-1] - kw) // sw + 1
    out = np.empty(x.shape[:-2] + (oh, ow), dtype=np.int64)
    for oy in range(oh):
        for ox in range(ow):
            patch = x[..., oy * sh:oy * sh + kh, ox * sw:ox * sw + kw]
            out[..., oy, ox] = patch.sum(axis=(-2, -1))
    return out


def hwc_frames(out, frames, channels, height, width):
    """Stream beats of HWC frames back to (frames, C, H, W)."""
    return np.moveaxis(out.reshape(frames, height, width, channels), -1, -3)


POOLS = [
    # channels, simd, height, width, kernel, stride, element shape
    (3, 1, 6, 6, (2, 2), (2, 2), unsigned(4)),      # k == s
    (4, 2, 7, 5, (2, 2), (2, 2), signed(5)),        # odd sizes: floor mode drops a row/column
    (2, 1, 7, 7, (3, 3), (2, 2), signed(4)),        # overlapping windows
    (5, 5, 5, 6, (3, 3), (3, 3), unsigned(3)),      # k == s == 3, all channels in one beat
    (1, 1, 4, 5, (2, 3), (1, 2), unsigned(5)),      # non-square kernel and stride
    (3, 1, 1, 12, (1, 4), (1, 4), signed(6)),       # 1-D, k == s
    (2, 2, 1, 11, (1, 3), (1, 2), unsigned(4)),     # 1-D, overlapping
]
IDS = ["c{}_simd{}_{}x{}_k{}x{}_s{}x{}_{}{}".format(c, p, h, w, *k, *s, "s" if t.signed else "u",
                                                    t.width) for c, p, h, w, k, s, t in POOLS]


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["flow", "backpressure"])
@pytest.mark.parametrize("kind", ["max", "sum"])
@pytest.mark.parametrize("case", POOLS, ids=IDS)
def test_pool_matches_numpy(case, kind, backpressure):
    channels, simd, height, width, kernel, stride, shape = case
    seed = POOLS.index(case)
    rng = np.random.default_rng(seed)
    cls, ref = (MaxPool, ref_max_pool) if kind == "max" else (SumPool, ref_sum_pool)
    pool = cls(channels=channels, height=height, width=width, kernel=kernel, stride=stride,
               shape=shape, simd=simd)
    x = random_frames(rng, 2, channels, height, width, shape)
    x[0] = x.min() if kind == "max" else x[0]
    lo = -(1 << (shape.width - 1)) if shape.signed else (1 << shape.width) - 1
    x[1, :, :kernel[0], :kernel[1]] = lo                 # a window at the range end
    out, *_ = rtl_pool(pool, x, in_gaps=backpressure, out_stalls=backpressure, seed=seed)
    got = hwc_frames(out, 2, channels, pool.out_height, pool.out_width)
    expected = ref(x, kernel, stride)
    assert_equal(got, expected, seed)
    assert_equal(pool.reference(x), expected, seed)


def test_sum_pool_width_covers_the_worst_case():
    pool = SumPool(channels=1, height=4, width=4, kernel=3, stride=1, shape=unsigned(5))
    assert (pool.out_bits, pool.out_signed) == ((9 * 31).bit_length(), False)
    pool = SumPool(channels=1, height=4, width=4, kernel=2, shape=signed(4))
    assert (pool.out_bits, pool.out_signed) == (6, True)        # [-32, 28]
    assert MaxPool(channels=1, height=4, width=4, kernel=2, shape=signed(4)).out_shape == signed(4)


@pytest.mark.parametrize("case", [POOLS[0], POOLS[2], POOLS[6]], ids=[IDS[0], IDS[2], IDS[6]])
def test_pool_timing(case):
    """Steady-state frame interval equals cycles_per_frame; beat_times gives every cycle."""
    channels, simd, height, width, kernel, stride, shape = case
    pool = MaxPool(channels=channels, height=height, width=width, kernel=kernel, stride=stride,
                   shape=shape, simd=simd)
    x = random_frames(np.random.default_rng(3), 4, channels, height, width, shape)
    _, _, when = rtl_pool(pool, x)
    ends = when[pool.out_beats - 1::pool.out_beats]
    assert list(np.diff(ends)[-2:]) == [pool.cycles_per_frame] * 2
    _, offered, when = rtl_pool(pool, x[:1], in_gaps=0.5, seed=3)
    assert pool.beat_times(offered) == when
    if kernel == stride:
        assert pool.cycles_per_frame == pool.in_beats


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["flow", "backpressure"])
@pytest.mark.parametrize("case", [
    (4, 1, 3, 3, unsigned(5)),
    (6, 3, 2, 5, signed(8)),
    (5, 5, 1, 7, signed(3)),      # 1-D, all channels in one beat
    (1, 1, 1, 1, unsigned(4)),    # one pixel, one channel
], ids=lambda c: "c{}_simd{}_{}x{}_{}{}".format(*c[:4], "s" if c[4].signed else "u",
                                                 c[4].width))
def test_global_sum_pool_matches_numpy(case, backpressure):
    channels, simd, height, width, shape = case
    seed = channels * 10 + simd
    pool = GlobalSumPool(channels=channels, height=height, width=width, shape=shape, simd=simd)
    x = random_frames(np.random.default_rng(seed), 3, channels, height, width, shape)
    x[2] = -(1 << (shape.width - 1)) if shape.signed else (1 << shape.width) - 1
    out, offered, when = rtl_pool(pool, x, in_gaps=backpressure, out_stalls=backpressure,
                                  seed=seed)
    expected = x.sum(axis=(-2, -1))
    assert_equal(out.reshape(3, channels), expected, seed)
    assert_equal(pool.reference(x), expected, seed)
    lo, hi = (-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1) if shape.signed else \
        (0, (1 << shape.width) - 1)
    bound = height * width * max(-lo, hi)
    assert (1 << (pool.out_bits - pool.out_signed)) > bound


def test_global_sum_pool_timing():
    pool = GlobalSumPool(channels=4, height=2, width=3, shape=unsigned(4), simd=2)
    x = random_frames(np.random.default_rng(8), 4, 4, 2, 3, unsigned(4))
    _, _, when = rtl_pool(pool, x)
    assert list(np.diff(when[1::2])[-2:]) == [pool.cycles_per_frame] * 2 == [pool.in_beats] * 2
    _, offered, when = rtl_pool(pool, x[:1], in_gaps=0.5, seed=8)
    assert pool.beat_times(offered) == when


def test_pools_reject_bad_parameters():
    with pytest.raises(FoldingError, match=r"layer 'pool1': SIMD 4 does not divide channels 6"):
        MaxPool(channels=6, height=4, width=4, kernel=2, shape=unsigned(4), simd=4,
                name="pool1")
    with pytest.raises(ValueError, match=r"layer 'pool1': kernel 3x3 is larger than its padded "
                                         r"input 2x2"):
        SumPool(channels=1, height=2, width=2, kernel=3, shape=unsigned(4), name="pool1")
    with pytest.raises(FoldingError, match=r"layer 'gap': SIMD 2 does not divide channels 3"):
        GlobalSumPool(channels=3, height=2, width=2, shape=unsigned(4), simd=2, name="gap")
    with pytest.raises(ValueError, match=r"layer 'gap': height must be at least 1, not 0"):
        GlobalSumPool(channels=3, height=0, width=2, shape=unsigned(4), name="gap")


# channels, height, width, kernel, stride, padding, positions: whole windows a beat from
# groups of positions * stride pixels (a pool after a layer that gives several pixels a beat).
PARALLEL = [
    (2, 6, 8, (2, 2), (2, 2), (0, 0), 1),       # MNIST's pools after 2 pixels a beat
    (3, 4, 12, (2, 2), (2, 2), (0, 0), 3),
    (1, 7, 8, (3, 3), (2, 2), (1, 1), 2),       # ResNet's 3x3 stride-2 max pool, padded
    (2, 5, 6, (3, 3), (1, 1), (1, 1), 3),       # overlapping, stride 1
    (2, 1, 12, (1, 3), (1, 3), (0, 0), 2),      # 1-D
]


# (A sum pool takes no padding.)
PARALLEL_KINDS = [(case, kind) for case in PARALLEL for kind in ("max", "sum")
                  if kind == "max" or not any(case[5])]


@pytest.mark.parametrize("case,kind", PARALLEL_KINDS, ids=[
    "{}_c{}_{}x{}_k{}x{}_s{}x{}_p{}x{}_P{}".format(kind, c[0], c[1], c[2], *c[3], *c[4], *c[5],
                                                   c[6]) for c, kind in PARALLEL_KINDS])
def test_parallel_pool_matches_numpy(case, kind):
    """Random gaps and back-pressure; then, with neither, every beat when the model says."""
    channels, height, width, kernel, stride, padding, positions = case
    seed = PARALLEL.index(case)
    cls = MaxPool if kind == "max" else SumPool
    shape = signed(5)
    pool = cls(channels=channels, height=height, width=width, kernel=kernel, stride=stride,
               padding=padding, shape=shape, positions=positions)
    assert (pool.in_lanes, pool.out_lanes) == (positions * stride[1] * channels,
                                               positions * channels)
    x = random_frames(np.random.default_rng(seed), 2, channels, height, width, shape)
    x[1, :, :kernel[0], :kernel[1]] = -16                # a window at the range end
    for gaps in (0.5, 0.0):
        out, offered, taken, when = run_stream(
            pool, hwc_beats(x, pool.in_lanes), len(x) * pool.out_beats, in_bits=5,
            out_bits=pool.out_bits, out_signed=pool.out_signed, out_count=pool.out_lanes,
            in_gaps=gaps, out_stalls=gaps, seed=seed, drain=6)
        got = hwc_frames(out, 2, channels, pool.out_height, pool.out_width)
        assert_equal(got, pool.reference(x), seed)
    assert pool.beat_times(offered) == when
    assert pool.input_times(offered) == taken
    plain = cls(channels=channels, height=height, width=width, kernel=kernel, stride=stride,
                padding=padding, shape=shape)
    assert_equal(pool.reference(x), plain.reference(x), seed)
    assert pool.cycles_per_frame == pool.in_beats == height * width // (positions * stride[1])


@pytest.mark.parametrize("seed", range(30))
def test_random_parallel_pools_match_the_pixel_at_a_time_pool(seed):
    """Random pools whose windows tile the rows, several pixels a beat: the same outputs as
    the pool that takes one pixel a beat (its reference), under gaps and back-pressure."""
    rng = np.random.default_rng(2000 + seed)
    kind = "max" if seed % 2 else "sum"
    case = None
    while case is None or any(2 * p > k for p, k in zip(case[5], case[3])) or \
            kind == "sum" and any(case[5]):
        case = random_tiling_geometry(rng)
    channels, height, width, kernel, stride, padding, positions = case
    cls = MaxPool if kind == "max" else SumPool
    pool = cls(channels=channels, height=height, width=width, kernel=kernel, stride=stride,
               padding=padding, shape=signed(4), positions=positions)
    plain = cls(channels=channels, height=height, width=width, kernel=kernel, stride=stride,
                padding=padding, shape=signed(4))
    x = random_frames(rng, 2, channels, height, width, signed(4))
    out, *_ = run_stream(
        pool, hwc_beats(x, pool.in_lanes), 2 * pool.out_beats, in_bits=4,
        out_bits=pool.out_bits, out_signed=pool.out_signed, out_count=pool.out_lanes,
        in_gaps=0.3, out_stalls=0.3, seed=seed, drain=6)
    got = hwc_frames(out, 2, channels, pool.out_height, pool.out_width)
    assert_equal(got, plain.reference(x), f"{seed}: {kind} {case}")
