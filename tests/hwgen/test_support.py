"""What the hardware builds: one check for generate, compile, estimate and inspect."""

import numpy as np
import pytest

import quant
from hwgen import UnsupportedLayerError, check_hardware_support, hardware_problems
from hwgen.explore import compile as compile_design, estimate
from quant import GraphError, graph as qgraph

from ..quant.test_graph_conv import conv_graph, rand_filters, signal_graph


def test_supported_graphs_have_no_hardware_problems():
    assert hardware_problems(conv_graph()) == []
    assert hardware_problems(signal_graph()) == []


def test_padded_max_pools_and_requantizers_anywhere_are_supported():
    g = qgraph.QGraph(qgraph.InputSpec((2, 9, 9), 4, False), [
        qgraph.requantize("scale", np.array([3, 5]), 2, 4, out_signed=True),
        qgraph.maxpool2d("stem_pool", 3, 2, 1),
        qgraph.global_avgpool("gap"),
        qgraph.dense("fc", rand_filters(np.random.default_rng(0), (3, 2), [4] * 3),
                     np.zeros(3, np.int64), np.full(3, 4))])
    assert hardware_problems(g) == []


def unsupported_graph():
    rng = np.random.default_rng(6)
    spec = qgraph.InputSpec((4, 32, 32), 4, False)

    def conv(name, kernel, stride=1, padding=0, out=4, groups=1, inputs=None):
        shape = (out, 4 // groups) + kernel
        return qgraph.conv2d(name, rand_filters(rng, shape, [4] * out),
                             np.zeros(out, np.int64), np.full(out, 4), stride=stride,
                             padding=padding, groups=groups, inputs=inputs or ["input"])

    return qgraph.QGraph(spec, [
        conv("big", (9, 9), padding=4),
        conv("fast", (3, 3), stride=3, padding=1),
        conv("pad", (3, 3), padding=2),
        conv("even", (4, 4), padding=2),
        conv("dw", (3, 3), padding=1, out=8, groups=4),
        conv("same", (5, 3), stride=(2, 1), padding=(2, 1)),
        qgraph.maxpool2d("gappy", 2, 3, inputs=["input"]),
        qgraph.avgpool2d("wide", 8, inputs=["input"]),
    ])


PROBLEMS = [
    "layer 'big': kernel 9x9 is not supported by the hardware; kernels must be 1..7 per axis",
    "layer 'fast': stride 3x3 is not supported by the hardware; strides must be 1 or 2",
    "layer 'pad': padding 2x2 with kernel 3x3 is not supported by the hardware; padding "
    "must be 0, or kernel // 2 for an odd kernel ('same')",
    "layer 'even': padding 2x2 with kernel 4x4 is not supported by the hardware; padding "
    "must be 0, or kernel // 2 for an odd kernel ('same')",
    "layer 'dw': a depthwise convolution with 8 filters on 4 channels is not supported by "
    "the hardware; out_channels must equal in_channels",
    "layer 'gappy': pool stride 3x3 with kernel 2x2 is not supported by the hardware; the "
    "stride must not exceed the kernel",
    "layer 'wide': pool kernel 8x8 is not supported by the hardware; kernels must be 1..7 "
    "per axis",
]


def test_hardware_problems_lists_all():
    assert hardware_problems(unsupported_graph()) == PROBLEMS


def test_generate_compile_and_estimate_refuse_with_the_same_message():
    graph = unsupported_graph()
    message = "\n".join(PROBLEMS)
    for refuse in (check_hardware_support, lambda g: compile_design(g, "xc7z020"),
                   lambda g: estimate(g, {}, "xc7z020")):
        with pytest.raises(UnsupportedLayerError) as info:
            refuse(graph)
        assert str(info.value) == message


def test_hardware_problems_validates_first():
    g = conv_graph()
    g["fc"].tensors["weight"][0, 0] = 99
    with pytest.raises(GraphError, match=r"weight\[0, 0\] = 99"):
        hardware_problems(g)


def test_a_model_without_weights_has_nothing_to_accelerate():
    g = quant.QGraph(quant.InputSpec((2, 4, 4), 4, False), [qgraph.maxpool2d("pool", 2)])
    assert hardware_problems(g) == ["the model has no dense or convolution layer; there is "
                                    "nothing to accelerate"]
