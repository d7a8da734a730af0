"""Convolutional chains in the Amaranth simulator against the golden; their passes and rules."""

import numpy as np
import pytest

import quant
from hwgen import FoldingError, UnsupportedLayerError, check_folding, choose_folding
from hwgen import compile_graph, metadata
from hwgen.accelerator import Accelerator
from hwgen.blocks import DepthwiseUnit, MatVecUnit, SlidingWindow
from hwgen.passes import reorder_filters, stream_columns
from quant import graph as g

from .amaranth_streams import run_stream


class Builder:
    """Appends layers with random per-filter precision; each requantize is calibrated on the
    golden so that its outputs use the whole range without clamping most of them."""

    def __init__(self, seed, shape, in_bits=4):
        self.rng = np.random.default_rng(seed)
        self.graph = quant.QGraph(quant.InputSpec(tuple(shape), in_bits, False), [])
        self.x = self.rng.integers(0, 1 << in_bits, (16, *shape))

    def _append(self, node):
        node.inputs = [self.graph.nodes[-1].name if self.graph.nodes else "input"]
        self.graph.nodes.append(node)
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
        shape = self.graph.shapes()[self.graph.output] if self.graph.nodes \
            else self.graph.input.shape
        channels, dims = shape[0], len(shape) - 1
        w_shape = (out, 1 if depthwise else channels) + (kernel,) * dims
        make = g.conv2d if dims == 2 else g.conv1d
        return self._append(make(name, **self._filters(w_shape, high), stride=stride,
                                 padding=padding, groups=channels if depthwise else 1))

    def dense(self, name, out, high=0):
        fan_in = self.graph.shapes()[self.graph.output][0]
        return self._append(g.dense(name, **self._filters((out, fan_in), high)))

    def requantize(self, name, out_bits=4):
        values = quant.run(self.graph, self.x)[self.graph.output]
        channels = values.shape[1]
        peak = max(int(np.abs(values).max()), 1)
        multiplier = self.rng.integers(16, 64, channels)
        shift = max(0, int(np.ceil(np.log2(peak * 64 / (1 << out_bits)))))
        return self._append(g.requantize(name, multiplier, shift, out_bits))

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


NETWORKS = {"cnn2d": cnn2d, "cnn1d": cnn1d, "depthwise": depthwise, "depthwise1d": depthwise1d,
            "map_output": map_output}
FOLDINGS = {"cnn2d": {"conv1": (2, 2), "conv2": (2, 2), "fc": (3, 2)},
            "cnn1d": None, "depthwise": {"conv1": (4, 1), "dw": (2, 2)},
            "depthwise1d": None, "map_output": {"conv1": (4, 2)}}


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
    out, when = run_stream(acc, to_stream(acc, x), len(x) * acc.out_beats,
                           in_bits=acc.graph.input.bits, out_bits=acc.out_bits,
                           out_signed=acc.out_signed, out_count=acc.out_elements,
                           backpressure=backpressure, seed=seed)
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
        # The first input beat transfers on cycle 1.
        assert frame_ends[0] - 1 == acc.latency


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


def test_stream_columns_read_hwc_maps_as_the_golden_reads_chw():
    graph = depthwise()
    order = stream_columns(graph)["fc"]
    x = np.random.default_rng(6).integers(0, 16, (3, 2, 5, 5))
    maps = quant.run(graph, x)["act2"]                         # (3, 4, 5, 5)
    hwc = np.moveaxis(maps, 1, -1).reshape(3, -1)              # the stream
    w = graph["fc"].tensors["weight"]
    np.testing.assert_array_equal(hwc @ w[:, order].T, maps.reshape(3, -1) @ w.T)
    assert set(stream_columns(cnn2d())) == set()               # fc reads a vector


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


def test_choose_folding_for_convolutions():
    graph = cnn2d()
    folding = choose_folding(graph, mac_budget=4)
    check_folding(graph, folding)
    acc = Accelerator(reorder_filters(graph, folding), folding)
    macs = graph.macs()
    slowest = max(macs, key=macs.get)
    assert acc.block_cycles()[slowest] == macs[slowest] // 4 == acc.cycles_per_frame
    assert all(c <= acc.block_cycles()[slowest] for c in acc.block_cycles().values())


def test_conv_folding_errors_list_every_problem():
    with pytest.raises(FoldingError) as info:
        check_folding(depthwise(), {"conv1": (3, 4), "dw": (2, 4), "fc": (3, 1)})
    message = str(info.value)
    assert "layer 'conv1': PE 3 does not divide out_channels 4; choose one of 1, 2, 4" in message
    assert "layer 'conv1': SIMD 4 does not divide in_channels 2; choose one of 1, 2" in message
    assert ("layer 'dw': PE 2 must equal SIMD 4 in a depthwise convolution (it outputs the "
            "channels it takes in)") in message
    with pytest.raises(FoldingError, match=r"layer 'conv2': PE 3 makes 2 output folds, which "
                                           r"cannot share 3 filters of 4 bits, 3 filters of 8 "
                                           r"bits evenly; choose a PE that makes out_channels"):
        check_folding(cnn2d(), {"conv1": (2, 2), "conv2": (3, 2), "fc": (3, 1)})


def test_residual_add_and_fork_are_not_supported_yet():
    graph = map_output()
    graph.nodes += [g.requantize("skip", np.full(4, 3), 2, 4, inputs=["conv1"]),
                    g.add("join", ["act1", "skip"])]
    with pytest.raises(UnsupportedLayerError) as info:
        compile_graph(graph)
    message = str(info.value)
    assert "layer 'join': add (a residual join) is not supported in hardware yet" in message
    assert ("layer 'conv1': its output feeds 2 layers (act1, skip); a fork is not supported in "
            "hardware yet") in message
