"""Convolutional chains in the Amaranth simulator against the golden; their passes and rules."""

import numpy as np
import pytest

import quant
from hwgen import FoldingError, check_folding, choose_folding
from hwgen.blocks import Broadcast
from hwgen.folding import fixed_order_filters
from hwgen import compile_graph, metadata
from hwgen.blocks import DepthwiseUnit, MatVecUnit, SlidingWindow
from hwgen.explore import estimate
from hwgen.passes import reorder_filters
from quant import graph as g

from .streams import run_stream


class Builder:
    """Appends layers with random per-filter precision; each requantize is calibrated on the
    golden so that its outputs use the whole range without clamping most of them."""

    def __init__(self, seed, shape, in_bits=4):
        self.rng = np.random.default_rng(seed)
        self.graph = quant.QGraph(quant.InputSpec(tuple(shape), in_bits, False), [])
        self.x = self.rng.integers(0, 1 << in_bits, (16, *shape))
        self.source = None   # the value the next layer reads: the last layer's by default

    def _reads(self):
        return self.source or (self.graph.nodes[-1].name if self.graph.nodes else "input")

    def _append(self, node):
        node.inputs = [self._reads()]
        self.graph.nodes.append(node)
        self.source = None
        return self

    def branch(self, name):
        """The next layer reads ``name`` (a fork)."""
        self.source = name
        return self

    def join(self, name, other):
        """An add of the last layer and ``other``."""
        self.graph.nodes.append(g.add(name, [self.graph.nodes[-1].name, other]))
        return self

    def _filters(self, shape, high):
        out = shape[0]
        bits = np.full(out, 4)
        bits[self.rng.choice(out, high, replace=False)] = 8
        hi = (1 << (bits - 1)) - 1
        hi = hi.reshape((-1,) + (1,) * (len(shape) - 1))
        weight = self.rng.integers(-hi, hi + 1, shape)
        return dict(weight=weight, bias=self.rng.integers(-50, 50, out), weight_bits=bits)

    def conv(self, name, out, kernel, high=0, stride=1, padding=0, depthwise=False):
        shape = self.graph.shapes()[self._reads()]
        channels, dims = shape[0], len(shape) - 1
        w_shape = (out, 1 if depthwise else channels) + (kernel,) * dims
        make = g.conv2d if dims == 2 else g.conv1d
        return self._append(make(name, **self._filters(w_shape, high), stride=stride,
                                 padding=padding, groups=channels if depthwise else 1))

    def dense(self, name, out, high=0):
        fan_in = self.graph.shapes()[self._reads()][0]
        return self._append(g.dense(name, **self._filters((out, fan_in), high)))

    def requantize(self, name, out_bits=4, offset=False):
        """With ``offset``, per-channel offsets (up to a quarter of the output range either
        way) and ties to even."""
        values = quant.run(self.graph, self.x)[self._reads()]
        channels = values.shape[1]
        peak = max(int(np.abs(values).max()), 1)
        multiplier = self.rng.integers(16, 64, channels)
        shift = max(0, int(np.ceil(np.log2(peak * 64 / (1 << out_bits)))))
        if not offset:
            return self._append(g.requantize(name, multiplier, shift, out_bits))
        reach = 1 << (shift + out_bits - 2)
        return self._append(g.requantize(name, multiplier, shift, out_bits,
                                         offset=self.rng.integers(-reach, reach + 1, channels),
                                         rounding="half_even"))

    def then(self, node):
        return self._append(node)


def cnn2d():
    b = Builder(1, (2, 6, 6))
    b.conv("conv1", 4, 3, high=2, padding=1).requantize("act1")
    b.then(g.maxpool2d("pool1", 2)).conv("conv2", 6, 3, high=3, padding=1).requantize("act2")
    b.then(g.global_avgpool("gap")).requantize("act3")
    return b.then(g.flatten("flat")).dense("fc", 3, high=1).graph


def cnn1d():
    b = Builder(2, (1, 32))
    b.conv("conv1", 4, 3, high=2, padding=1).requantize("act1")
    b.then(g.maxpool1d("pool1", 2)).conv("conv2", 4, 3, high=1, stride=2).requantize("act2")
    b.then(g.avgpool1d("pool2", 2)).requantize("act3")
    return b.then(g.flatten("flat")).dense("fc", 3).graph


def depthwise(seed=3):
    b = Builder(seed, (2, 5, 5))
    b.conv("conv1", 4, 1, high=2).requantize("act1")
    b.conv("dw", 4, 3, high=1, padding=1, depthwise=True).requantize("act2")
    return b.then(g.flatten("flat")).dense("fc", 3, high=1).graph


def depthwise1d():
    b = Builder(7, (2, 12))
    b.conv("conv1", 4, 1, high=2).requantize("act1")
    return b.conv("dw", 4, 3, high=1, padding=1, depthwise=True).requantize("act2").graph


def map_output():
    b = Builder(4, (2, 5, 5))
    return b.conv("conv1", 4, 3, high=2, padding=1).requantize("act1", out_bits=5).graph


def residual():
    """An identity shortcut, then a strided block with a 1x1 projection shortcut."""
    b = Builder(8, (2, 6, 6))
    b.conv("conv1", 4, 3, high=2, padding=1).requantize("act1")
    b.conv("body1", 4, 3, high=1, padding=1).requantize("body1_q", out_bits=5)
    b.join("join1", "act1").requantize("act2")
    b.conv("body2", 6, 3, stride=2, padding=1).requantize("body2_q", out_bits=5)
    b.branch("act2").conv("short2", 6, 1, stride=2).requantize("short2_q", out_bits=5)
    b.join("join2", "body2_q").requantize("act3")
    return b.then(g.flatten("flat")).dense("fc", 3, high=1).graph


def residual1d():
    """A 1-D residual block whose output is the join itself (a map)."""
    b = Builder(9, (2, 16))
    b.conv("conv1", 4, 3, high=2, padding=1).requantize("act1")
    b.conv("body1", 4, 3, padding=1).requantize("body1_q")
    return b.join("join1", "act1").graph


def offsets():
    """Requantizers with offsets and ties to even: per channel of a map, and per feature of a
    flattened map (taken in the stream's HWC order)."""
    b = Builder(11, (2, 5, 5))
    b.conv("conv1", 4, 3, high=2, padding=1).requantize("act1", offset=True)
    b.conv("conv2", 3, 3, high=1).requantize("act2")
    b.then(g.flatten("flat")).requantize("act3", out_bits=5, offset=True)
    return b.dense("fc", 3, high=1).graph


def taps():
    """Windows of several positions per beat: a 1-channel stem with the whole 3x3 window a
    beat, then a strided 3x3 with a row of it (three positions of 4 channels) a beat."""
    b = Builder(12, (1, 8, 8))
    b.conv("conv1", 4, 3, high=2, padding=1).requantize("act1")
    b.conv("conv2", 6, 3, high=1, stride=2, padding=1).requantize("act2")
    return b.then(g.flatten("flat")).dense("fc", 3, high=1).graph


def taps1d():
    """A 1-D signal: five positions of 2 channels a beat, then three of 4 with stride 2."""
    b = Builder(13, (2, 20))
    b.conv("conv1", 4, 5, high=2, padding=2).requantize("act1")
    return b.conv("conv2", 4, 3, high=1, stride=2).requantize("act2").graph


def dwtaps():
    """Depthwise windows of several positions per beat: the whole 3x3 window of 4 channels a
    beat, then a strided 3x3 with a window row a beat."""
    b = Builder(14, (3, 6, 6))
    b.conv("conv1", 4, 1, high=2).requantize("act1")
    b.conv("dw1", 4, 3, high=1, padding=1, depthwise=True).requantize("act2")
    b.conv("dw2", 4, 3, high=1, stride=2, padding=1, depthwise=True).requantize("act3")
    return b.then(g.flatten("flat")).dense("fc", 3, high=1).graph


def split():
    """Windows split off whole positions: 9 of a 3x3 window of 4 channels a beat (the window
    reads the whole window, 36 elements, a beat and splits it in 4), then 9 of a strided 3x3
    window of 6 channels (3 positions, 18 elements, split in 2)."""
    b = Builder(18, (4, 6, 6))
    b.conv("conv1", 6, 3, high=2, padding=1).requantize("act1")
    b.conv("conv2", 4, 3, high=1, stride=2, padding=1).requantize("act2")
    return b.then(g.flatten("flat")).dense("fc", 3, high=1).graph


def positions1d():
    """A 1-D signal at several output positions per cycle (peaks' shape): whole windows of a
    1-channel stem, a strided layer, a 1x1 head, a residual add and a pool."""
    b = Builder(15, (1, 32))
    b.conv("conv1", 4, 7, high=2, padding=3).requantize("act1")
    b.conv("conv2", 6, 5, high=1, stride=2, padding=2).requantize("act2")
    b.conv("conv3", 6, 5, padding=2).requantize("act3")
    b.join("join", "act2").requantize("act4")
    b.conv("head", 3, 1, high=1).requantize("act5")
    return b.then(g.maxpool1d("pool", 2)).graph


def positions2d():
    """A map at several output positions per cycle: whole windows of 4 positions of a
    1-channel stem a beat, a 2x2 max pool that takes the 4 pixels a beat, a layer at 2
    positions a beat, a residual add, a strided layer at 2 positions and a 2x2 sum pool
    after a 1x1 layer."""
    b = Builder(17, (1, 8, 8))
    b.conv("conv1", 4, 3, high=2, padding=1).requantize("act1")
    b.then(g.maxpool2d("pool1", 2)).conv("conv2", 4, 3, high=1, padding=1)
    b.requantize("act2").join("join", "pool1").requantize("act3")
    b.conv("conv3", 6, 3, high=1, stride=2, padding=1).requantize("act4")
    b.conv("conv4", 4, 1).requantize("act5")
    return b.then(g.avgpool2d("pool2", 2)).graph


def signal_cnn(seed=16, length=64):
    """The peaks network's shape on a shorter signal: a 7-tap stem, a strided 5-tap layer, a
    5-tap layer and a 1x1 head whose accumulators are the output."""
    b = Builder(seed, (1, length))
    b.conv("conv1", 4, 7, high=1, padding=3).requantize("act1")
    b.conv("conv2", 6, 5, high=1, stride=2, padding=2).requantize("act2")
    b.conv("conv3", 6, 5, high=1, padding=2).requantize("act3")
    return b.conv("head", 3, 1).graph


NETWORKS = {"cnn2d": cnn2d, "cnn1d": cnn1d, "depthwise": depthwise, "depthwise1d": depthwise1d,
            "map_output": map_output, "residual": residual, "residual1d": residual1d,
            "offsets": offsets, "taps": taps, "taps1d": taps1d, "dwtaps": dwtaps,
            "split": split, "positions1d": positions1d, "positions2d": positions2d}
FOLDINGS = {"cnn2d": {"conv1": (2, 2), "conv2": (2, 2), "fc": (3, 2)},
            "cnn1d": None, "depthwise": {"conv1": (4, 1), "dw": (2, 2)},
            "depthwise1d": None, "map_output": {"conv1": (4, 2)},
            # Operands of 2 and 3 channels per beat meet through a 6-channel beat.
            "residual": {"conv1": (4, 2), "body1": (4, 4), "body2": (2, 4), "short2": (3, 2),
                         "fc": (3, 3)},
            "residual1d": {"conv1": (4, 1), "body1": (2, 2)},
            "offsets": {"conv1": (2, 2), "conv2": (3, 4), "fc": (3, 3)},
            "taps": {"conv1": (4, 9), "conv2": (6, 12), "fc": (3, 6)},
            "taps1d": {"conv1": (2, 10), "conv2": (4, 12)},
            "dwtaps": {"conv1": (4, 3), "dw1": (4, 36), "dw2": (4, 12), "fc": (3, 4)},
            "split": {"conv1": (3, 9), "conv2": (2, 9), "fc": (3, 4)},
            # 8 positions of the stem a beat, 4 of each layer after the stride, 2 of the
            # head; the pool takes one pixel a beat (the stream is split for it).
            "positions1d": {"conv1": (4, 56), "conv2": (6, 80), "conv3": (6, 120),
                            "head": (3, 12)},
            # 4 positions of the stem a beat, so the pool takes 4 pixels and gives 2; then 2
            # positions a beat to the end (the strided layer's windows read groups of 4).
            "positions2d": {"conv1": (4, 36), "conv2": (4, 72), "conv3": (6, 72),
                            "conv4": (4, 12)}}


def to_stream(acc, x):
    """Frames ``(N, *input.shape)`` as input beats: feature maps channel-last (HWC)."""
    if acc.in_order == "HWC":
        x = np.moveaxis(x, 1, -1)
    return x.reshape(-1, acc.in_elements)


def from_stream(acc, beats, count):
    """Output beats as frames ``(N, *output shape)`` (HWC maps back to CHW)."""
    shape = acc.graph.shapes()[acc.graph.output]
    if acc.out_order == "HWC":
        return np.moveaxis(beats.reshape(count, *shape[1:], shape[0]), -1, 1)
    return beats.reshape(count, *shape)


def rtl_accelerator(acc, x, backpressure, seed):
    out, _, _, when = run_stream(acc, to_stream(acc, x), len(x) * acc.out_beats,
                                 in_bits=acc.graph.input.bits, out_bits=acc.out_bits,
                                 out_signed=acc.out_signed, out_count=acc.out_elements,
                                 in_gaps=backpressure, out_stalls=backpressure, seed=seed)
    return from_stream(acc, out, len(x)), when


def ref_accelerator(graph, x):
    return quant.run(graph, x)[graph.output]


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["flow", "backpressure"])
@pytest.mark.parametrize("net", NETWORKS)
def test_conv_accelerator_matches_golden(net, backpressure):
    seed = list(NETWORKS).index(net)
    graph = NETWORKS[net]()
    acc = compile_graph(graph, FOLDINGS[net])
    x = np.random.default_rng(seed).integers(0, 16, (4, *graph.input.shape))
    got, when = rtl_accelerator(acc, x, backpressure, seed)
    expected = ref_accelerator(graph, x)
    bad = np.argwhere(got != expected)
    assert not bad.size, (f"input {bad[0][0]} output {tuple(bad[0][1:])}: expected "
                          f"{expected[tuple(bad[0])]}, got {got[tuple(bad[0])]} (seed {seed})")
    if backpressure == 0:
        frame_ends = when[acc.out_beats - 1::acc.out_beats]
        assert frame_ends[-1] - frame_ends[-2] == acc.cycles_per_frame, (
            f"frame ends {frame_ends}, cycles_per_frame {acc.cycles_per_frame}")
        assert frame_ends[0] == acc.latency   # the first input beat transfers in cycle 0


def test_reorder_filters_through_pools_depthwise_and_flatten():
    for graph, folding in ((cnn2d(), {"conv1": (2, 2), "conv2": (2, 2), "fc": (3, 2)}),
                           (depthwise(5), {"conv1": (2, 1), "dw": (2, 2), "fc": (3, 2)})):
        reordered = reorder_filters(graph, folding)
        assert any(not np.array_equal(reordered[n].tensors["weight_bits"],
                                      graph[n].tensors["weight_bits"])
                   for n in folding if n.startswith("conv"))
        check_folding(reordered, folding)
        x = np.random.default_rng(5).integers(0, 16, (20, *graph.input.shape))
        before, after = quant.run(graph, x), quant.run(reordered, x)
        np.testing.assert_array_equal(after[graph.output], before[graph.output])
        np.testing.assert_array_equal(reordered["fc"].tensors["weight_bits"],
                                      graph["fc"].tensors["weight_bits"])


def test_reorder_filters_carries_requantize_offsets():
    graph = offsets()
    reordered = reorder_filters(graph, FOLDINGS["offsets"])
    order = [graph["conv1"].tensors["weight"].tolist().index(w)
             for w in reordered["conv1"].tensors["weight"].tolist()]
    assert order != sorted(order)
    for key in ("multiplier", "offset"):
        np.testing.assert_array_equal(reordered["act1"].tensors[key],
                                      graph["act1"].tensors[key][order])
    x = np.random.default_rng(7).integers(0, 16, (20, *graph.input.shape))
    np.testing.assert_array_equal(quant.run(reordered, x)["fc"], quant.run(graph, x)["fc"])


def test_a_dense_after_a_flatten_reads_the_hwc_stream_as_the_golden_reads_chw():
    graph = depthwise()
    acc = compile_graph(graph, FOLDINGS["depthwise"])
    x = np.random.default_rng(6).integers(0, 16, (3, 2, 5, 5))
    values = quant.run(acc.graph, x)
    maps = values["act2"]                                      # (3, 4, 5, 5)
    hwc = np.moveaxis(maps, 1, -1).reshape(3, -1)              # the stream
    np.testing.assert_array_equal(dict(acc.blocks)["fc"].reference(hwc), values["fc"])


def test_lowering_and_metadata_of_a_convolution():
    acc = compile_graph(cnn2d(), FOLDINGS["cnn2d"])
    blocks = dict(acc.blocks)
    window, conv = blocks["conv1_window"], blocks["conv1"]
    assert isinstance(window, SlidingWindow) and isinstance(conv, MatVecUnit)
    assert (window.channels, window.height, window.width, window.simd) == (2, 6, 6, 2)
    assert (conv.in_features, conv.out_features, conv.pe, conv.simd) == (18, 4, 2, 2)
    assert acc.block_cycles()["conv1"] == 36 * 2 * 9
    meta = metadata(acc)
    assert meta["input"]["order"] == "HWC" and meta["output"]["order"] == "C"
    assert meta["input"]["elements_per_beat"] == 2 and meta["input"]["beats_per_frame"] == 36
    assert isinstance(meta["latency"], int) and meta["latency"] == acc.latency
    assert metadata(compile_graph(map_output()))["output"]["order"] == "HWC"
    dw = dict(compile_graph(depthwise(), FOLDINGS["depthwise"]).blocks)["dw"]
    assert isinstance(dw, DepthwiseUnit) and dw.simd == 2


def test_lowering_of_windows_with_several_positions_per_beat():
    """A SIMD above the channels: one pixel per input beat, ``simd / channels`` window
    positions per output beat, the frame at the input's pace (a beat per pixel)."""
    acc = compile_graph(taps(), FOLDINGS["taps"])
    blocks = dict(acc.blocks)
    stem, conv1 = blocks["conv1_window"], blocks["conv1"]
    assert (stem.simd, stem.taps, stem.out_lanes, conv1.simd) == (1, 9, 9, 9)
    window, conv2 = blocks["conv2_window"], blocks["conv2"]
    assert (window.simd, window.taps, window.out_lanes, conv2.simd) == (4, 3, 12, 12)
    assert "conv2_in" not in blocks          # the 4-channel beat goes in unchanged
    assert acc.block_cycles()["conv1"] == 64 and acc.block_cycles()["conv2"] == 16 * 3
    assert acc.cycles_per_frame == 64        # the input: one pixel per cycle
    assert metadata(acc)["input"]["elements_per_beat"] == 1
    # The same layers one position per beat take kh * kw times longer.
    assert compile_graph(taps(), {"conv1": (4, 1), "conv2": (6, 4), "fc": (3, 6)}) \
        .cycles_per_frame == 64 * 9


def test_lowering_of_windows_split_off_whole_positions():
    """A SIMD that divides the window's elements but is neither whole positions nor a
    divisor of the channels: the window reads the smallest beat of whole positions that SIMD
    divides and splits it; the layer takes ``kh * kw * channels / simd`` beats a pixel."""
    acc = compile_graph(split(), FOLDINGS["split"])
    blocks = dict(acc.blocks)
    window1, window2 = blocks["conv1_window"], blocks["conv2_window"]
    assert (window1.simd, window1.taps, window1.split, window1.out_lanes) == (4, 9, 4, 9)
    assert (window2.simd, window2.taps, window2.split, window2.out_lanes) == (6, 3, 2, 9)
    names = [name for name, _ in acc.blocks]      # no converter between window and unit
    assert names.index("conv1") == names.index("conv1_window") + 1
    assert names.index("conv2") == names.index("conv2_window") + 1
    # A SIMD that divides no window beat is the folding checks' to refuse, not a crash.
    assert choose_folding(split(), 8, fixed={"conv1": (3, 5)})["conv1"] == (3, 5)
    with pytest.raises(FoldingError, match=r"layer 'conv1': SIMD 5 does not divide the 3x3 "
                                           r"window's 36 elements"):
        check_folding(split(), {"conv1": (3, 5), "conv2": (2, 9), "fc": (3, 4)})
    # 36 pixels, 2 folds of 3 filters, 36 / 9 beats each.
    assert acc.block_cycles()["conv1"] == acc.cycles_per_frame == 36 * 2 * 4


def test_lowering_of_depthwise_windows_with_several_positions_per_beat():
    """A depthwise SIMD of ``taps`` whole positions: the window and the unit take ``taps``
    positions of all channels a beat and the unit sends the channels once per pixel."""
    acc = compile_graph(dwtaps(), FOLDINGS["dwtaps"])
    blocks = dict(acc.blocks)
    window1, dw1 = blocks["dw1_window"], blocks["dw1"]
    assert (window1.simd, window1.taps, dw1.simd, dw1.taps, dw1.in_lanes) == (4, 9, 4, 9, 36)
    window2, dw2 = blocks["dw2_window"], blocks["dw2"]
    assert (window2.simd, window2.taps, dw2.simd, dw2.taps, dw2.in_lanes) == (4, 3, 4, 3, 12)
    assert acc.block_cycles()["dw1"] == 36 and acc.block_cycles()["dw2"] == 9 * 3
    assert acc.cycles_per_frame == 36        # one input pixel per cycle
    assert compile_graph(dwtaps(), {"conv1": (4, 3), "dw1": (4, 4), "dw2": (4, 4),
                                    "fc": (3, 4)}).cycles_per_frame == 36 * 9


def test_folding_errors_name_the_simd_a_window_allows():
    with pytest.raises(FoldingError) as info:
        check_folding(taps(), {"conv1": (4, 2), "conv2": (6, 8), "fc": (3, 6)})
    message = str(info.value)
    assert ("layer 'conv1': SIMD 2 does not divide the 3x3 window's 9 elements (9 positions "
            "of in_channels 1) nor is it whole windows (9 elements) of a divisor of its 8 "
            "output positions a row; choose one of 1, 3, 9, 18, 36, 72") in message
    assert ("layer 'conv2': SIMD 8 does not divide the 3x3 window's 36 elements (9 positions "
            "of in_channels 4) nor is it whole windows (36 elements) of a divisor of its 4 "
            "output positions a row; choose one of 1, 2, 3, 4, 6, 9, 12, 18, 36, 72, 144") \
        in message
    with pytest.raises(FoldingError, match=r"layer 'dw': SIMD 8 does not divide in_channels "
                                           r"4 nor is it in_channels times a divisor of the "
                                           r"3x3 window's 9 positions; choose one of 1, 2, 4, "
                                           r"12, 36"):
        check_folding(depthwise(), {"conv1": (4, 1), "dw": (4, 8), "fc": (3, 1)})
    with pytest.raises(FoldingError, match=r"layer 'dw': PE 2 must equal the 4 channels of "
                                           r"each of SIMD 12's 3 window positions in a "
                                           r"depthwise convolution"):
        check_folding(depthwise(), {"conv1": (4, 1), "dw": (2, 12), "fc": (3, 1)})
    # The same message before any hardware is built, from generation and from the estimate.
    with pytest.raises(FoldingError, match=r"layer 'conv1': SIMD 2 does not divide the 3x3 "
                                           r"window's 9 elements"):
        compile_graph(taps(), {"conv1": (4, 2)})
    with pytest.raises(FoldingError, match=r"layer 'conv1': SIMD 2 does not divide the 3x3 "
                                           r"window's 9 elements"):
        estimate(taps(), {"conv1": (4, 2), "conv2": (6, 12), "fc": (3, 6)})


def test_choose_folding_for_convolutions():
    graph = cnn2d()
    folding = choose_folding(graph, mac_budget=4)
    check_folding(graph, folding)
    acc = compile_graph(graph, folding)
    macs = graph.macs()
    slowest = max(macs, key=macs.get)
    assert acc.block_cycles()[slowest] == macs[slowest] // 4 == acc.cycles_per_frame
    assert all(c <= acc.block_cycles()[slowest] for c in acc.block_cycles().values())


def test_conv_folding_errors_list_every_problem():
    with pytest.raises(FoldingError) as info:
        check_folding(depthwise(), {"conv1": (3, 4), "dw": (2, 4), "fc": (3, 1)})
    message = str(info.value)
    assert "layer 'conv1': PE 3 does not divide out_channels 4; choose one of 1, 2, 4" in message
    assert ("layer 'conv1': SIMD 4 does not divide in_channels 2 nor is it whole windows (2 "
            "elements) of a divisor of its 5 output positions a row; choose one of 1, 2, 10") \
        in message
    assert ("layer 'dw': PE 2 must equal SIMD 4 in a depthwise convolution (it outputs the "
            "channels it takes in)") in message


def test_residual_fifos_are_sized_from_the_beat_schedule():
    acc = compile_graph(residual(), FOLDINGS["residual"])
    depths = acc.fifo_depths
    assert set(depths) == {"join1_fifo0", "join1_fifo1", "join2_fifo0", "join2_fifo1"}
    # The identity shortcut waits while the body's line buffer and MatVecUnit fill: about
    # two rows of the 6x6 map (one beat per pixel); the body's operand never waits.
    assert depths["join1_fifo0"] == 1 and 6 < depths["join1_fifo1"] <= 36
    meta = metadata(acc)
    assert meta["fifo_depths"] == depths
    entry = next(e for e in meta["layers"] if e["name"] == "join1_fifo1")
    assert entry["block"] == "StreamFifo" and entry["depth"] == depths["join1_fifo1"]
    forks = [name for name, block in acc.blocks if isinstance(block, Broadcast)]
    assert forks == ["act1_fork", "act2_fork"]


def test_a_shallow_skip_fifo_deadlocks_the_join():
    """The sizing matters: with room for one beat, the fork waits on the join, which waits on
    the body, which waits on the fork."""
    graph = residual()
    folding = FOLDINGS["residual"]
    x = np.random.default_rng(3).integers(0, 16, (1, *graph.input.shape))
    shallow = compile_graph(graph, folding, fifo_depths={"join1_fifo1": 1})
    with pytest.raises(AssertionError, match=r"only 0 of \d+ output beats"):
        run_stream(shallow, to_stream(shallow, x), len(x) * shallow.out_beats,
                   in_bits=4, out_bits=shallow.out_bits, out_signed=shallow.out_signed,
                   out_count=shallow.out_elements, max_cycles=2000)
    with pytest.raises(ValueError, match=r"fifo_depths names join9_fifo0, which are not FIFOs "
                                         r"of this design; its FIFOs are join1_fifo0, "
                                         r"join1_fifo1, join2_fifo0, join2_fifo1"):
        compile_graph(graph, folding, fifo_depths={"join9_fifo0": 4})


def test_filters_whose_order_reaches_a_join_keep_it_and_widen_lanes():
    graph = residual()
    assert fixed_order_filters(graph) == {"conv1", "body1", "body2", "short2", "fc"}
    # conv1's two 8-bit filters: with PE 2 each fold's lanes serve one 8-bit filter or not,
    # by position; a lane is as wide as the widest filter it serves.
    bits = graph["conv1"].tensors["weight_bits"]
    widths = np.maximum(bits[:2], bits[2:])
    folding = FOLDINGS["residual"] | {"conv1": (2, 2)}
    acc = compile_graph(graph, folding)
    assert dict(acc.blocks)["conv1"].lane_bits.tolist() == widths.tolist()
    x = np.random.default_rng(7).integers(0, 16, (2, *graph.input.shape))
    got, _ = rtl_accelerator(acc, x, 0.0, 7)
    np.testing.assert_array_equal(got, ref_accelerator(graph, x))
    # The automatic folding prefers a PE that widens nothing when one is as fast.
    folding = choose_folding(graph, mac_budget=8)
    assert folding["conv1"][0] == 4


def test_residual_add_of_mismatched_shapes_is_rejected_before_generation():
    graph = residual()
    graph["join2"].inputs = ["body2_q", "act2"]
    with pytest.raises(quant.GraphError, match=r"layer 'join2': inputs have shapes"):
        compile_graph(graph)


