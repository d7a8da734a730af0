"""Generated accelerators whose streams are easy to get wrong, in cocotb against the golden.

Maps with C == H == W look the same in CHW and HWC order, so the stream order must come from
the design metadata; a 1-bit port reads as a single cocotb ``Logic``, not a ``LogicArray``.
"""

import numpy as np
import pytest

import hwgen
import quant
import sim
from quant import graph as g

from ..hwgen.test_conv_accelerator import Builder

SEED = 7


def cube_output():
    """3x3x3 in, 1x1 convolution 3 -> 3, requantize: the output map is 3x3x3 too."""
    return Builder(11, (3, 3, 3)).conv("conv1", 3, 1, high=1).requantize("act1").graph


def cube_input():
    """5x5x5 in, 1x1 convolution 5 -> 2, requantize: a (2, 5, 5) output map."""
    return Builder(12, (5, 5, 5)).conv("conv1", 2, 1, high=1).requantize("act1").graph


def one_bit_ports():
    """A 1-bit input and a dense layer with all-zero weights and biases 0 and -1: its
    accumulators are signed 1-bit, one per beat."""
    nodes = [g.dense("fc1", np.zeros((3, 6), dtype=np.int64), np.array([0, -1, 0]),
                     np.array([4, 4, 8]))]
    return quant.QGraph(quant.InputSpec((6,), 1, False), nodes)


CASES = {"cube_output": (cube_output, None),
         "cube_input": (cube_input, {"conv1": (2, 5)}),
         "one_bit_ports": (one_bit_ports, {"fc1": (1, 1)})}


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["flow", "backpressure"])
@pytest.mark.parametrize("name", list(CASES))
def test_rtl_equals_golden(name, backpressure, tmp_path_factory):
    make, folding = CASES[name]
    graph = make()
    out = tmp_path_factory.mktemp(name)
    meta = hwgen.generate(graph, out / "rtl", folding=folding)
    lo, hi = graph.input.range
    x = np.random.default_rng(SEED).integers(lo, hi + 1, (5, *graph.input.shape))
    result = sim.simulate(graph, x, out_dir=out, design=meta, backpressure=backpressure,
                          seed=SEED, check=False)
    assert result.ok, result.describe()
    np.testing.assert_array_equal(result.outputs, result.golden)


def test_the_cases_are_what_they_claim():
    """The designs above have the streams the tests are about."""
    cube = hwgen.compile_graph(cube_output())
    assert cube.in_order == cube.out_order == "HWC"
    assert tuple(cube.graph.shapes()[cube.graph.output]) == (3, 3, 3)
    assert cube_input().input.shape == (5, 5, 5)
    tiny = hwgen.compile_graph(one_bit_ports(), folding={"fc1": (1, 1)})
    assert tiny.i_stream.payload.shape().size == 1
    assert tiny.o_stream.payload.shape().size == 1
    assert (tiny.out_bits, tiny.out_signed) == (1, True)
    # The golden has both values a 1-bit signed element can hold.
    golden = quant.run(one_bit_ports(), np.zeros((1, 6), dtype=np.int64))["fc1"]
    assert golden.tolist() == [[0, -1, 0]]
