"""ParallelWindow in the Amaranth simulator against im2col, with its exact cycle model."""

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from hwgen import FoldingError
from hwgen.blocks import ParallelWindow
from quant.numerics import im2col

from .streams import run_stream
from .test_window import assert_equal, random_frames


def make_window(channels, width, k, s, p, positions, shape=unsigned(4), pad_value=0):
    return ParallelWindow(channels=channels, height=1, width=width, kernel=(1, k),
                          stride=(1, s), padding=(0, p), shape=shape, positions=positions,
                          pad_value=pad_value)


def rtl_parallel(window, x, *, in_gaps=0.0, out_stalls=0.0, seed=0, drain=0):
    """Frames ``x`` (frames, C, H, W) through a parallel window (1-D or of a map): ``(windows
    (frames, out_height, out_width, kh * kw * C), input offer cycles, input transfer cycles,
    output transfer cycles)``."""
    bits, is_signed = window.shape.width, window.shape.signed
    beats = np.moveaxis(np.asarray(x), -3, -1).reshape(-1, window.in_lanes)
    out, offered, taken, when = run_stream(
        window, beats, len(x) * window.out_beats, in_bits=bits, out_bits=bits,
        out_signed=is_signed, out_count=window.out_lanes, in_gaps=in_gaps,
        out_stalls=out_stalls, seed=seed, drain=drain)
    return out.reshape(len(x), window.out_height, window.out_width, -1), offered, taken, when


def frames_for(window, rng, frames):
    return random_frames(rng, frames, window.channels, 1, window.width, window.shape)


# The layers of the `peaks` example (widths shortened where the simulation would be slow):
# channels, width, kernel, stride, padding.
PEAKS = {"conv1": (1, 64, 7, 1, 3), "conv2": (6, 64, 5, 2, 2), "conv3": (12, 32, 5, 1, 2),
         "head": (8, 32, 1, 1, 0)}
PEAKS_CASES = [(layer, positions) for layer in PEAKS for positions in (1, 2, 4, 8, 16)]


@pytest.mark.parametrize("layer,positions", PEAKS_CASES,
                         ids=[f"{layer}_P{positions}" for layer, positions in PEAKS_CASES])
def test_parallel_window_peaks_layers(layer, positions):
    """Three frames with random input gaps and back-pressure: every element as im2col."""
    channels, width, k, s, p = PEAKS[layer]
    seed = PEAKS_CASES.index((layer, positions))
    window = make_window(channels, width, k, s, p, positions)
    assert window.out_beats == window.in_beats == width // s // positions
    x = frames_for(window, np.random.default_rng(seed), 3)
    got, *_ = rtl_parallel(window, x, in_gaps=0.4, out_stalls=0.4, seed=seed, drain=8)
    assert_equal(got, im2col(x, (1, k), (1, s), (0, p)), seed)


def test_parallel_window_full_length_conv1():
    """conv1 of `peaks` at its full 256 samples, 16 positions a beat."""
    window = make_window(1, 256, 7, 1, 3, 16)
    x = frames_for(window, np.random.default_rng(7), 2)
    got, *_ = rtl_parallel(window, x, in_gaps=0.3, out_stalls=0.3, seed=7)
    assert_equal(got, im2col(x, (1, 7), (1, 1), (0, 3)), 7)


# channels, width, kernel, stride, padding, positions, shape, pad_value
EDGES = [
    (2, 12, 7, 1, 3, 1, unsigned(4), 0),     # 4 beats of lookahead
    (3, 12, 7, 1, 3, 2, signed(4), -8),      # lookahead 3, the smallest pad value
    (2, 16, 5, 2, 2, 1, signed(5), 3),       # stride 2, one window a beat
    (2, 12, 2, 2, 0, 3, unsigned(3), 5),     # kernel == stride, no padding
    (1, 12, 3, 3, 0, 4, signed(3), 0),       # kernel == stride, one beat a frame
    (2, 12, 1, 2, 0, 2, unsigned(4), 9),     # kernel smaller than the stride
    (3, 10, 3, 1, 1, 10, signed(4), -3),     # one beat a frame
    (1, 8, 7, 1, 3, 8, unsigned(4), 0),      # one beat a frame, two beats of lookahead
    (1, 4, 9, 1, 4, 4, unsigned(4), 1),      # kernel wider than the signal: next frame's
    (2, 4, 9, 1, 4, 1, signed(4), 2),        # beats all shifted in before the frame ends
    (2, 12, 4, 2, 1, 2, unsigned(4), 0),     # even kernel, stride 2
    (1, 18, 5, 3, 1, 3, unsigned(4), 0),     # stride 3
]
EDGE_IDS = [f"c{c}_w{w}_k{k}_s{s}_p{p}_P{pos}_{'s' if sh.signed else 'u'}{sh.width}_pad{v}"
            for c, w, k, s, p, pos, sh, v in EDGES]


@pytest.mark.parametrize("case", EDGES, ids=EDGE_IDS)
def test_parallel_window_edges(case):
    """Edge geometries with random gaps and back-pressure, then frames back to back at one
    beat a cycle: every element as im2col padded with ``pad_value``."""
    channels, width, k, s, p, positions, shape, pad_value = case
    seed = 100 + EDGES.index(case)
    rng = np.random.default_rng(seed)
    window = make_window(channels, width, k, s, p, positions, shape, pad_value)
    x = frames_for(window, rng, 4)
    lo = -(1 << (shape.width - 1)) if shape.signed else 0
    x[0, :, 0, 0] = lo                       # extreme values survive the register
    x[1, :, 0, -1] = lo + (1 << shape.width) - 1
    expected = im2col(x - pad_value, (1, k), (1, s), (0, p)) + pad_value
    assert_equal(window.reference(x), expected, seed, "reference element")
    got, *_ = rtl_parallel(window, x, in_gaps=0.5, out_stalls=0.5, seed=seed, drain=8)
    assert_equal(got, expected, seed)
    got, _, _, when = rtl_parallel(window, x, seed=seed, drain=8)
    assert_equal(got, expected, seed)
    ends = when[window.out_beats - 1::window.out_beats]
    assert list(np.diff(ends)) == [window.cycles_per_frame] * 3


# Every kernel 1..7 with stride 1..3 and each padding that tiles the input, on short signals
# of a few channels, at each position count that divides the output (up to three of them).
def _sweep():
    cases = []
    for k in range(1, 8):
        for s in range(1, 4):
            for p in range(k):
                if not k - s <= 2 * p < k:
                    continue
                width = s * (4 + (k + s + p) % 5)
                if k - p - s > width:
                    continue
                out_width = width // s
                counts = [n for n in range(1, out_width + 1) if out_width % n == 0]
                for positions in counts[::max(1, len(counts) // 3)]:
                    cases.append((1 + (k + p) % 3, width, k, s, p, positions))
    return cases


SWEEP = _sweep()


@pytest.mark.parametrize("case", SWEEP, ids=lambda c: "c{}_w{}_k{}_s{}_p{}_P{}".format(*c))
def test_parallel_window_sweep(case):
    """Random gaps and back-pressure: im2col; no gaps: the model's cycles exactly."""
    channels, width, k, s, p, positions = case
    seed = 500 + SWEEP.index(case)
    window = make_window(channels, width, k, s, p, positions, signed(3), pad_value=-2)
    x = frames_for(window, np.random.default_rng(seed), 3)
    expected = window.reference(x)
    got, *_ = rtl_parallel(window, x, in_gaps=0.3, out_stalls=0.3, seed=seed, drain=8)
    assert_equal(got, expected, seed)
    got, offered, taken, when = rtl_parallel(window, x, in_gaps=0.2, seed=seed, drain=8)
    assert_equal(got, expected, seed)
    assert (window.beat_times(offered), window.input_times(offered)) == (when, taken)


TIMING = [(*PEAKS[layer], positions) for layer, positions in
          [("conv1", 1), ("conv1", 4), ("conv1", 16), ("conv2", 2), ("conv2", 16),
           ("conv3", 8), ("head", 4)]] + [case[:6] for case in EDGES]


@pytest.mark.parametrize("case", TIMING, ids=lambda c: "c{}_w{}_k{}_s{}_p{}_P{}".format(*c))
def test_parallel_window_beat_times_are_exact(case):
    """Three frames with random input gaps (or none), output always ready: the model gives the
    cycle of every input transfer and every output beat, and frames back to back take
    ``cycles_per_frame`` cycles each."""
    channels, width, k, s, p, positions = case
    seed = 200 + TIMING.index(case)
    window = make_window(channels, width, k, s, p, positions, unsigned(3))
    assert window.cycles_per_frame == window.out_beats
    x = frames_for(window, np.random.default_rng(seed), 3)
    for gaps in (0.0, 0.3, 0.7):
        _, offered, taken, when = rtl_parallel(window, x, in_gaps=gaps, seed=seed, drain=8)
        assert window.beat_times(offered) == when, f"gaps {gaps} (seed {seed})"
        assert window.input_times(offered) == taken, f"gaps {gaps} (seed {seed})"
        assert when[-1] == taken[-1] + window.latency
        if gaps == 0.0:
            ends = when[window.out_beats - 1::window.out_beats]
            assert list(np.diff(ends)) == [window.out_beats] * 2
            assert taken == list(range(len(taken)))
    timing = ParallelWindow.timing_of(channels=channels, height=1, width=width, kernel=(1, k),
                                      stride=(1, s), padding=(0, p), positions=positions,
                                      shape=unsigned(3), name="x", pad_value=0)
    assert (timing.beats, timing.lookahead) == (window.out_beats, window.lookahead)


def test_parallel_window_properties():
    window = ParallelWindow(channels=8, height=1, width=256, kernel=(1, 5), stride=(1, 2),
                            padding=(0, 2), shape=signed(6), positions=4, pad_value=-1,
                            name="conv2")
    assert (window.out_height, window.out_width) == (1, 128)
    assert (window.in_lanes, window.out_lanes) == (4 * 2 * 8, 4 * 5 * 8)
    assert window.in_beats == window.out_beats == window.cycles_per_frame == 32
    assert (window.kernel, window.stride, window.padding) == ((1, 5), (1, 2), (0, 2))
    assert (window.channels, window.height, window.width) == (8, 1, 256)
    assert (window.positions, window.pad_value, window.shape) == (4, -1, signed(6))
    # Beat b's windows reach padded pixel 8b + 3 * 2 + 4, shifted in by the frame's shift
    # b + 2; the window's first pixel, padded pixel 8b, is then 2 + 8 pixels older than the
    # beat shifting in.
    assert window.lookahead == 2 and window.latency == 2
    square = ParallelWindow(channels=1, height=1, width=8, kernel=(1, 3), padding=(0, 1),
                            shape=unsigned(2), positions=8)
    assert square.lookahead == 2 and square.out_beats == 1


def test_parallel_window_rejects_bad_parameters():
    common = dict(channels=3, height=1, width=16, shape=unsigned(4), name="conv2")
    with pytest.raises(ValueError, match=r"layer 'conv2': a parallel window is 1-D, so its "
                                         r"height must be 1, not 2"):
        ParallelWindow(**(common | {"height": 2}), kernel=(1, 3), padding=(0, 1), positions=1)
    with pytest.raises(ValueError, match=r"layer 'conv2': a parallel window is 1-D, so its "
                                         r"kernel height must be 1, not 3"):
        ParallelWindow(**common, kernel=3, padding=(0, 1), positions=1)
    with pytest.raises(ValueError, match=r"so its stride along y must be 1, not 2"):
        ParallelWindow(**common, kernel=(1, 3), stride=(2, 1), padding=(0, 1), positions=1)
    with pytest.raises(ValueError, match=r"layer 'conv2': padding must be smaller than the "
                                         r"kernel, not 1 for a kernel of 1 along y"):
        ParallelWindow(**common, kernel=(1, 3), padding=1, positions=1)
    with pytest.raises(ValueError, match=r"layer 'conv2': padding must be smaller than the "
                                         r"kernel, not 3 for a kernel of 3 along x"):
        ParallelWindow(**common, kernel=(1, 3), padding=(0, 3), positions=1)
    with pytest.raises(ValueError, match=r"layer 'conv2': kernel 1x19 is larger than its "
                                         r"padded input 1x18"):
        ParallelWindow(**common, kernel=(1, 19), padding=(0, 1), positions=1)
    with pytest.raises(FoldingError, match=r"layer 'conv2': the windows must tile the input "
                                           r"\(out_width \* stride == width, .*\), but width "
                                           r"16, kernel 5, stride 1, padding 1 give 14 "
                                           r"outputs .*; that needs a width divisible by the "
                                           r"stride and padding one of 2$"):
        ParallelWindow(**common, kernel=(1, 5), padding=(0, 1), positions=1)
    with pytest.raises(FoldingError, match=r"width 15, kernel 5, stride 2, padding 2 give 8 "
                                           r"outputs .* padding one of 2$"):
        ParallelWindow(**(common | {"width": 15}), kernel=(1, 5), stride=(1, 2),
                       padding=(0, 2), positions=1)
    with pytest.raises(FoldingError, match=r"stride and a kernel of 4 with stride 1 cannot, "
                                           r"whatever the padding$"):
        ParallelWindow(**common, kernel=(1, 4), padding=(0, 1), positions=1)
    with pytest.raises(FoldingError, match=r"layer 'conv2': positions 3 does not divide "
                                           r"out_width 8; choose one of 1, 2, 4, 8$"):
        ParallelWindow(**common, kernel=(1, 5), stride=(1, 2), padding=(0, 2), positions=3)
    with pytest.raises(ValueError, match=r"layer 'conv2': kernel 11 reaches too far past the "
                                         r"frame for width 4: kernel - padding - stride must "
                                         r"be at most the width, not 5"):
        ParallelWindow(**(common | {"width": 4}), kernel=(1, 11), padding=(0, 5), positions=1)
    with pytest.raises(ValueError, match=r"layer 'conv2': pad_value must be in the element "
                                         r"range 0..15, not 16"):
        ParallelWindow(**common, kernel=(1, 3), padding=(0, 1), positions=1, pad_value=16)
    with pytest.raises(ValueError, match=r"positions must be at least 1, not 0"):
        ParallelWindow(**common, kernel=(1, 3), padding=(0, 1), positions=0)
    with pytest.raises(TypeError, match=r"kernel must be an integer or a pair of integers"):
        ParallelWindow(**common, kernel=2.5, positions=1)


@pytest.mark.synth
@pytest.mark.parametrize("family", ["xc7", "xcup"])
def test_parallel_window_cost_against_synthesis(family):
    """A conv2-like window (5 taps, stride 2, 8 channels) on 64 samples at 4 positions: the
    cost function's flip-flops are yosys's, its LUTs within 15%."""
    from hwgen.model.costs import parallel_window_cost
    from hwgen.synth import synthesize
    window = make_window(8, 64, 5, 2, 2, 4)
    estimate = parallel_window_cost(family, channels=8, width=64, kernel=window.kernel,
                                    stride=window.stride, padding=window.padding,
                                    element_bits=4, positions=4)
    result = synthesize(window, family)
    assert estimate.ff == result["FF"], result["cells"]
    assert abs(estimate.lut - result["LUT"]) <= 0.15 * result["LUT"], (estimate, result["LUT"])
    assert result["LUTRAM"] == result["SRL"] == result["RAMB"] == result["DSP"] == 0
