"""The engine in the Amaranth simulator: every tensor it writes to DRAM equals the reference
(which equals the golden, test_compiler), for each op, tiling and fold shape, with random
stalls on every AXI channel; and its registers report what ran."""

import numpy as np
import pytest

import quant
from hwgen.engine import EngineConfig, compile_program, run_image
from hwgen.engine.control import MAGIC
from quant import graph as g
from tests.graphgen import random_case, random_inputs

from .bench import clear_faults, run_engine, three_dense_layers

SMALL = EngineConfig(tm=4, tn=4, lane_bits=(4, 4, 4, 8), input_words=512, output_words=256,
                     weight_words=256, addr_bits=20)


def run_and_compare(graph, config, x, *, stall=0.0, seed=0, base=0, **memory_options):
    """Run ``graph`` on ``x`` with the image loaded at ``base``; every tensor checked."""
    program = compile_program(graph, config)
    image = program.load_input(bytearray(program.image), x)
    want = run_image(bytearray(image), config)
    memory = bytearray(1 << config.addr_bits)
    memory[base:base + len(image)] = image
    result = run_engine(config, memory, program=base, stall=stall, seed=seed,
                        **memory_options)
    loaded = memory[base:base + len(image)]
    for layer in program.layers:
        got, expected = program.read(loaded, layer.output), program.read(want, layer.output)
        assert np.array_equal(got, expected), (layer.name, np.argwhere(got != expected)[:5])
    golden = quant.run(graph, x[None])[graph.output][0]
    assert np.array_equal(program.read(loaded, graph.output).reshape(golden.shape), golden)
    assert len(result["layers"]) == len(program.layers) == result["layers_register"]
    return program, result


def graph_of(shape, nodes, bits=8, signed=False):
    """A graph of ``nodes`` on a ``bits``-bit input of ``shape``."""
    return quant.QGraph(quant.InputSpec(shape, bits, signed), nodes)


def _conv(name, rng, outs, ins, k, bits, **kwargs):
    w = rng.integers(-7, 8, (outs, ins, k, k))
    wide = np.flatnonzero(bits == 8)
    w[wide] = rng.integers(-127, 128, (len(wide), ins, k, k))
    return g.conv2d(name, w, rng.integers(-99, 99, outs), bits, **kwargs)


def test_conv_with_passes_stride_padding_bands_and_a_requantizer():
    rng = np.random.default_rng(0)
    bits = np.array([8, 8, 4, 8, 4, 8, 4])              # 3 wide filters on one wide lane
    graph = graph_of((5, 9, 7), [
        _conv("conv", rng, 7, 5, 3, bits, stride=[2, 1], padding=1),
        g.requantize("act", rng.integers(1, 1 << 12, 7), 14, 5, False,
                     offset=rng.integers(-5000, 5000, 7), rounding="half_even"),
    ])
    config = EngineConfig(tm=4, tn=4, lane_bits=(4, 4, 4, 8), input_words=60,
                          output_words=24, weight_words=64, addr_bits=18)
    x = rng.integers(0, 256, (5, 9, 7))
    # Loaded 64 bytes short of a 4 KiB boundary: bursts split there, addresses relocate.
    program, _ = run_and_compare(graph, config, x, stall=0.3, seed=1, base=3 * 4096 - 64)
    d = program.layers[0].descriptor
    assert (d.passes, d.folds) == (3, 2) and d.bands > 1 and d.rounding == 1


#: Buffers small enough for one output row a band.
NARROW = EngineConfig(tm=4, tn=4, lane_bits=(4, 4, 4, 8), input_words=60, output_words=24,
                      weight_words=64, addr_bits=18)


def uneven_passes(rng):
    """A convolution whose three folds of four filters take 2, 1 and 3 passes over one 8-bit
    lane, and its requantizer."""
    bits = np.array([8, 4, 8, 4, 4, 4, 4, 4, 8, 8, 8, 4])
    return graph_of((5, 8, 6), [
        _conv("conv", rng, 12, 5, 3, bits, padding=1),
        g.requantize("act", rng.integers(1, 1 << 12, 12), 14, 6, True),
    ])


def test_folds_with_their_own_pass_counts():
    rng = np.random.default_rng(6)
    program, _ = run_and_compare(uneven_passes(rng), NARROW, rng.integers(0, 256, (5, 8, 6)),
                                 stall=0.3, seed=3)
    layer = program.layers[0]
    assert layer.fold_passes == (2, 1, 3) and layer.descriptor.bands > 1


def short_fold_after_a_long_one(rng):
    """A 1 x 1 convolution on six pixels whose first fold takes 4 passes (24 k-steps) and
    whose second takes 1 (6 k-steps, fewer than the output path's latency): its third fold
    reaches the first one's weight bank before that fold's last output is out (the cycle
    model's events say by how much: test_model)."""
    bits = np.array([8, 8, 8, 8, 4, 4, 4, 4, 8, 4, 4, 4])
    return graph_of((4, 1, 6), [
        _conv("conv", rng, 12, 4, 1, bits),
        g.requantize("act", rng.integers(1, 1 << 12, 12), 14, 6, True),
    ])


@pytest.mark.parametrize("latency", [0, 4])
def test_a_fold_waits_for_its_bank_to_be_given_back(latency):
    rng = np.random.default_rng(2)
    program, _ = run_and_compare(short_fold_after_a_long_one(rng), SMALL,
                                 rng.integers(0, 256, (4, 1, 6)), latency=latency)
    assert program.layers[0].fold_passes == (4, 1, 1)


def vector_graph():
    """Depthwise convolution, max and sum pools, an add and a dense layer after a flatten."""
    rng = np.random.default_rng(1)
    return graph_of((6, 8, 8), [
        g.conv2d("dw", rng.integers(-7, 8, (6, 1, 3, 3)), rng.integers(-9, 9, 6), np.full(6, 4),
                 padding=1, groups=6),
        g.requantize("dw_act", np.full(6, 5), 6, 6, True),
        g.maxpool2d("pool", 2, 2, padding=0, inputs=["dw_act"]),
        g.avgpool2d("avg", 2, 1, inputs=["pool"]),
        g.requantize("avg_act", np.full(6, 3), 3, 6, True),
        g.add("sum", ["avg_act", "avg_act"]),
        g.flatten("flat"),
        g.dense("fc", rng.integers(-7, 8, (5, 54)), rng.integers(-9, 9, 5), np.full(5, 4)),
    ], bits=6, signed=True)


def test_pools_depthwise_add_and_dense_after_a_flatten():
    # (A global pool is in the random graphs: seed 2.)
    x = np.random.default_rng(1).integers(-32, 32, (6, 8, 8))
    program, _ = run_and_compare(vector_graph(), SMALL, x, stall=0.25, seed=2)
    assert [layer.name for layer in program.layers][:2] == ["dw", "pool"]


def global_pool_graph(rng, channels=12, size=(14, 13), bits=6, signed=True):
    """A global average pool (and its requantizer and a classifier) over a map of
    ``channels`` x ``size``: with tn 4, its 3 channel groups of 14 x 13 pixels are more than
    512 input words."""
    lo, hi = (-(1 << bits - 1), (1 << bits - 1) - 1) if signed else (0, (1 << bits) - 1)
    return quant.QGraph(quant.InputSpec((channels, *size), bits, signed), [
        g.global_avgpool("gap"),
        g.requantize("gap_act", rng.integers(1, 1 << 10, channels), 14, 5, True,
                     offset=rng.integers(-500, 500, channels)),
        g.dense("fc", rng.integers(-7, 8, (5, channels)), rng.integers(-9, 9, 5),
                np.full(5, 4)),
    ]), lambda n: rng.integers(lo, hi + 1, (n, channels, *size))


def test_a_global_pool_as_row_sums_then_the_column():
    rng = np.random.default_rng(9)
    graph, inputs = global_pool_graph(rng)
    program, _ = run_and_compare(graph, SMALL, inputs(1)[0], stall=0.3, seed=4)
    assert [layer.name for layer in program.layers] == ["gap.rows", "gap", "fc"]


def test_a_layer_after_one_with_more_bands_starts():
    """The compute unit's end of a layer does not hang on the band count of the next
    descriptor, which replaces the finished layer's before the next start."""
    rng = np.random.default_rng(4)
    graph = graph_of((4, 8, 8), [
        g.conv2d("dw", rng.integers(-7, 8, (4, 1, 3, 3)), np.zeros(4, int), np.full(4, 4),
                 padding=1, groups=4),
        g.maxpool2d("pool", 2, 2, padding=0),
    ], bits=6, signed=True)
    config = EngineConfig(tm=4, tn=4, lane_bits=(4, 4, 4, 8), input_words=64,
                          output_words=32, weight_words=128, addr_bits=18)
    program, _ = run_and_compare(graph, config, rng.integers(-32, 32, (4, 8, 8)))
    dw, pool = (layer.descriptor for layer in program.layers)
    assert dw.bands > pool.bands                         # what this test is about


@pytest.mark.parametrize("seed, w_first", [(2, False), (5, False), (9, True), (20, True)])
def test_random_graphs_with_stalls(seed, w_first):
    """Random graphs on a memory stalling every channel; two of them on a memory that raises
    AWREADY only once it sees WVALID."""
    graph = random_case(seed).graph
    run_and_compare(graph, SMALL, random_inputs(graph, 3, seed)[2], stall=0.3, seed=seed,
                    w_first=w_first)


def test_registers_report_identity_layers_and_cycles():
    rng = np.random.default_rng(3)
    graph = graph_of((6,), [g.dense("fc", rng.integers(-7, 8, (4, 6)), np.zeros(4, int),
                                    np.full(4, 4))])
    _, result = run_and_compare(graph, SMALL, rng.integers(0, 256, 6))
    assert result["status"] == 0b10                       # done, not busy, no error
    assert 0 < result["layers"][0] <= result["cycles"]
    assert result["id"] == MAGIC


def test_a_memory_that_waits_for_write_data_before_its_address():
    """AXI lets a slave hold AWREADY until it sees WVALID: the engine's writes go through."""
    rng = np.random.default_rng(11)
    graph = three_dense_layers(rng)
    _, result = run_and_compare(graph, SMALL, rng.integers(0, 256, 6), stall=0.2, seed=4,
                                w_first=True)
    assert (result["status"], result["error"]) == (0b10, 0)


@pytest.mark.parametrize("layer, where, code", [
    (1, "descriptor", 2), (1, "params", 2), (1, "output", 2), (2, "params", 3),
    (2, "output", 3)])
def test_an_error_response_stops_the_run_before_the_next_layer(layer, where, code):
    """A read or write of a layer answered SLVERR (2) or DECERR (3): that layer ends (its
    bursts finished), the next does not start, and the engine reports done with error 3,
    the last layer too; a descriptor read with an error is not run. Started again on a
    memory without the fault, the engine runs the whole program (the error is cleared at
    the start)."""
    rng = np.random.default_rng(12)
    graph = three_dense_layers(rng)
    program = compile_program(graph, SMALL)
    x = rng.integers(0, 256, 6)
    image = program.load_input(bytearray(program.image), x)
    d = program.layers[layer].descriptor
    address = {"descriptor": 64 * layer, "params": d.param_addr, "output": d.out_addr}[where]
    memory = bytearray(1 << SMALL.addr_bits)
    memory[:len(image)] = image

    result = run_engine(SMALL, memory, stall=0.2, seed=3, faulty=range(address, address + 1),
                        fault_code=code, restart=clear_faults)
    first = result["first"]
    layers = layer + (where != "descriptor")
    assert (first["status"], first["error"]) == (0b110, 3)
    assert first["layers_register"] == len(first["layers"]) == layers
    assert (result["status"], result["error"], result["layers_register"]) == (0b10, 0, 3)
    golden = quant.run(graph, x[None])[graph.output][0]
    assert np.array_equal(program.read(memory, graph.output).reshape(golden.shape), golden)
