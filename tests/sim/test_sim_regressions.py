"""Graphs that once gave RTL different from the golden, crashed, or were refused though legal:
each now builds and equals the golden in cocotb, with the frame interval of the model."""

import numpy as np
import pytest

import hwgen
import quant
import sim
from quant import graph as g

from ..graphgen import random_inputs


def filters(rng, shape, bits):
    bits = np.broadcast_to(np.asarray(bits), shape[:1]).astype(np.int64)
    hi = ((1 << (bits - 1)) - 1).reshape((-1,) + (1,) * (len(shape) - 1))
    return rng.integers(-hi, hi + 1, shape), bits


def conv(rng, name, shape, bits, **attrs):
    weight, bits = filters(rng, shape, bits)
    op = g.conv1d if len(shape) == 3 else g.conv2d
    return op(name, weight, rng.integers(-20, 20, shape[0]), bits, **attrs)


def dense(rng, name, shape, bits, **attrs):
    weight, bits = filters(rng, shape, bits)
    return g.dense(name, weight, rng.integers(-20, 20, shape[0]), bits, **attrs)


def requantize(rng, name, channels, shift, out_bits=5, signed=False, **attrs):
    return g.requantize(name, rng.integers(1, 64, channels), shift, out_bits, signed, **attrs)


def flatten_ends_a_depthwise_chain(rng):
    graph = quant.QGraph(quant.InputSpec((1, 30), 6, False), [
        conv(rng, "conv1", (7, 1, 7), [4, 8, 4, 4, 4, 4, 4]), requantize(rng, "act1", 7, 10),
        conv(rng, "dw", (7, 1, 6), 4, groups=7), requantize(rng, "act2", 7, 8),
        g.flatten("flat")])
    return graph, {"folding": {"conv1": (7, 1)}, "device": "ecp5"}


def flatten_ends_a_padded_conv(rng):
    graph = quant.QGraph(quant.InputSpec((3, 25), 3, True), [
        conv(rng, "conv1", (4, 3, 3), 4, padding=1), requantize(rng, "act1", 4, 7),
        g.flatten("flat")])
    return graph, {"folding": {"conv1": (1, 3)}, "device": "xc7"}


def map_output_of_a_strided_pointwise_conv(rng):
    graph = quant.QGraph(quant.InputSpec((1, 3, 5), 8, False), [
        g.maxpool2d("pool", 1), conv(rng, "conv1", (3, 1, 1, 1), 4, stride=(1, 2)),
        requantize(rng, "act1", 3, 9)])
    design = hwgen.compile(graph, device="lfe5u-85f")
    return graph, design.build_options


def per_feature_requantize_after_flatten(rng, bits=4):
    graph = quant.QGraph(quant.InputSpec((3, 8), 5, False), [
        conv(rng, "conv1", (4, 3, 3), bits, padding=1), requantize(rng, "act1", 4, 8),
        g.flatten("flat"), requantize(rng, "act2", 32, 6),
        dense(rng, "fc", (5, 32), 4)])
    return graph, {"folding": {"conv1": (4, 3), "fc": (5, 4)}}


def per_feature_requantize_after_flatten_mixed(rng):
    return per_feature_requantize_after_flatten(rng, bits=[8, 4, 4, 4])


def dense_on_raw_accumulators(rng):
    graph = quant.QGraph(quant.InputSpec((16,), 8, False), [
        dense(rng, "fc1", (12, 16), 8), dense(rng, "fc2", (3, 12), [4, 8, 6])])
    return graph, {"folding": {"fc1": (4, 4), "fc2": (3, 2)}, "device": "xc7"}


def global_pool_into_a_dense(rng):
    graph = quant.QGraph(quant.InputSpec((4, 7, 7), 8, True), [
        conv(rng, "conv1", (6, 4, 3, 3), 8, padding=1), g.global_avgpool("gap"),
        dense(rng, "fc", (3, 6), 4)])
    return graph, {"device": "ecp5"}


def add_of_raw_values_into_a_dense(rng):
    graph = quant.QGraph(quant.InputSpec((10,), 8, False), [
        dense(rng, "a", (8, 10), 8, inputs=["input"]), dense(rng, "b", (8, 10), 7,
                                                             inputs=["input"]),
        g.add("sum", ["a", "b"]), dense(rng, "fc", (2, 8), 4)])
    return graph, {"device": "xcup"}


def requantize_after_a_global_pool_first(rng):
    graph = quant.QGraph(quant.InputSpec((3, 4, 4), 8, False), [
        g.global_avgpool("gap"), requantize(rng, "scale", 3, 9, 6, True),
        dense(rng, "fc", (4, 3), [4, 8, 4, 4])])
    return graph, {}


def one_output_dense(rng):
    graph = quant.QGraph(quant.InputSpec((6,), 4, False), [
        dense(rng, "fc1", (4, 6), 4), requantize(rng, "act1", 4, 6),
        g.dense("fc2", np.zeros((1, 4), np.int64), np.array([1]), np.array([4]))])
    return graph, {}


def dense_adds(rng):
    graph = quant.QGraph(quant.InputSpec((12,), 5, False), [
        dense(rng, "fc1", (12, 12), 4), requantize(rng, "act1", 12, 7, 5, True),
        dense(rng, "fc2", (12, 12), 4), requantize(rng, "act2", 12, 7, 5, True),
        g.add("add1", ["act2", "act1"]), dense(rng, "fc3", (12, 12), 4),
        requantize(rng, "act3", 12, 8, 5, True), g.add("add2", ["act3", "add1"]),
        dense(rng, "fc4", (4, 12), 4)])
    return graph, {"folding": {"fc1": (4, 3), "fc2": (2, 6), "fc3": (3, 4), "fc4": (2, 3)}}


def flattened_map_added_to_a_vector(rng):
    graph = quant.QGraph(quant.InputSpec((3, 2, 5), 6, False), [
        conv(rng, "conv1", (3, 3, 1, 3), 4, padding=(0, 1)), requantize(rng, "act1", 3, 8),
        g.flatten("flat"), dense(rng, "fc1", (30, 30), 4), requantize(rng, "act2", 30, 8),
        g.add("sum", ["act2", "flat"]), dense(rng, "fc2", (5, 30), 4)])
    return graph, {"folding": {"conv1": (3, 1), "fc1": (10, 15), "fc2": (5, 5)}}


def pool_bursts_into_a_split(rng):
    # The pools send a group's channel folds back to back; the next layer takes fewer
    # channels a beat, and the converter that splits them must not stall the pools (and the
    # convolutions before them, each at the frame interval).
    graph = quant.QGraph(quant.InputSpec((4, 6, 6), 6, False), [
        conv(rng, "conv1", (6, 4, 1, 1), 4), requantize(rng, "act1", 6, 6),
        g.maxpool2d("pool", 2), conv(rng, "conv2", (6, 6, 1, 1), 4),
        g.global_avgpool("gap"), dense(rng, "fc", (3, 6), 4)])
    return graph, {"folding": {"conv1": (2, 4), "conv2": (6, 1), "fc": (1, 1)}}


CASES = [flatten_ends_a_depthwise_chain, flatten_ends_a_padded_conv,
         map_output_of_a_strided_pointwise_conv, per_feature_requantize_after_flatten,
         per_feature_requantize_after_flatten_mixed, dense_on_raw_accumulators,
         global_pool_into_a_dense, add_of_raw_values_into_a_dense,
         requantize_after_a_global_pool_first, one_output_dense, dense_adds,
         flattened_map_added_to_a_vector, pool_bursts_into_a_split]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_rtl_equals_golden(case, tmp_path):
    rng = np.random.default_rng(CASES.index(case))
    graph, options = case(rng)
    graph.validate()
    meta = hwgen.generate(graph, tmp_path / "rtl", **options)
    x = random_inputs(graph, 5, CASES.index(case))
    result = sim.simulate(graph, x, out_dir=tmp_path, design=meta, seed=1, check=False)
    assert result.ok, result.describe()
    assert result.cycles_per_frame == meta["cycles_per_frame"]
    if not meta["latency_is_estimate"]:
        assert result.frame_latency == meta["latency"]
    bursty = sim.simulate(graph, x, out_dir=tmp_path / "bursty", design=meta, seed=2,
                          backpressure="bursty:3,4", check=False)
    assert bursty.ok, bursty.describe()
