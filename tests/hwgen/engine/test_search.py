"""The engine search: its cycles are the compiled program's, its pick fits the device and is
the fastest it priced, a target picks a cheaper one, the DRAM bandwidth bounds the rate, and
bad input gets an error naming the bound."""

import dataclasses
import math

import numpy as np
import pytest

from hwgen.design import DesignError
from hwgen.engine import compile_program
from hwgen.engine.model import program_cycles
from hwgen.engine.search import (BANDWIDTH_GBS, DEFAULT_BANDWIDTH_GBS, _Probe,
                                 default_bandwidth, search_engine)
from hwgen.errors import UnsupportedLayerError
from hwgen.model import device
from quant import graph as g

from .test_engine import SMALL, global_pool_graph
from .test_model import resnet18_shaped


@pytest.fixture(scope="module")
def graph():
    return resnet18_shaped(np.random.default_rng(0))


@pytest.fixture(scope="module")
def fastest(graph):
    return search_engine(graph, "xc7z020", 100.0)


def test_the_search_cycles_are_the_compiled_programs(graph, fastest):
    # Re-tiled descriptors and cached layer cycles give what compiling the picked
    # configuration and running the cycle model on it give, layer by layer.
    program = compile_program(graph, fastest.config)
    model = program_cycles(program)
    assert fastest.model_cycles == model.total
    assert [(l.name, l.total, l.start, l.end, l.bytes_read, l.bytes_written)
            for l in fastest.cycles.layers] == \
        [(l.name, l.total, l.start, l.end, l.bytes_read, l.bytes_written) for l in model.layers]
    assert fastest.cycles.macs == model.macs


def test_the_fastest_fits_and_nothing_priced_is_faster(fastest):
    part = device("xc7z020")
    assert all(share <= 0.8 for share in fastest.utilization().values())
    assert fastest.config.family == part.family
    assert fastest.explored and all(e["cycles_per_frame"] >= fastest.cycles_per_frame
                                    for e in fastest.explored)
    # Every larger array was priced and refused, each naming a resource beyond 0.8 of the part.
    larger = fastest.bounds()["larger_arrays_rejected"]
    assert larger and all(r["tm"] > fastest.config.tm for r in larger)
    for r in larger:
        assert all(used > allowed == int(0.8 * part.capacity()[k])
                   for k, (used, allowed) in r["over"].items())
    assert fastest.fps == pytest.approx(100e6 / fastest.cycles_per_frame)


def test_a_target_picks_the_cheapest_that_reaches_it(graph, fastest):
    target = fastest.fps / 8
    cheap = search_engine(graph, "xc7z020", 100.0, target_fps=target)
    assert cheap.fps >= target
    shares = cheap.utilization()
    assert max(shares.values()) < max(fastest.utilization().values())
    assert cheap.config.tm < fastest.config.tm


def test_an_unreachable_target_names_the_bounds(graph, fastest):
    with pytest.raises(DesignError, match=r"1e\+06 frames/s at 100 MHz needs 100 cycles per "
                                          r"frame; the fastest engine that fits xc7z020 "
                                          r"\(utilization 0.8, 1.6 GB/s\) takes .*: a \d+ x \d+ "
                                          r"array needs .*; DRAM .* GB/s .*; MAC array \d+% "
                                          r"busy"):
        search_engine(graph, "xc7z020", 100.0, target_fps=1e6)


def test_the_dram_bandwidth_is_the_parts_boards_unless_given(fastest):
    # PYNQ-Z2's 16-bit DDR3 from the fabric; ZCU102's 64-bit DDR4; a part on boards
    # without processor DDR gets the ZCU102-class default.
    assert fastest.bandwidth_gbs == default_bandwidth(device("xc7z020")) == 1.6
    assert default_bandwidth(device("zcu102")) == 13.0
    assert default_bandwidth(device("lfe5u-85f")) == DEFAULT_BANDWIDTH_GBS


def test_the_dram_bandwidth_bounds_each_layer(graph, fastest):
    slow = search_engine(graph, "xc7z020", 100.0, bandwidth_gbs=0.1)
    per_cycle = 0.1e9 / 100e6
    layers = slow.cycles.layers
    assert slow.cycles_per_frame == slow.model_cycles + sum(
        max(0, math.ceil((l.bytes_read + l.bytes_written) / per_cycle) - l.total)
        for l in layers)
    assert slow.cycles_per_frame > slow.model_cycles
    assert slow.bandwidth_used_gbs <= 0.1
    assert slow.bounds()["bandwidth"]["cycles_added"] == \
        slow.cycles_per_frame - slow.model_cycles
    # Plenty of bandwidth: the rate is the cycle model's alone.
    assert fastest.cycles_per_frame == fastest.model_cycles


def test_a_narrower_port_caps_the_bus_and_the_rate(graph, fastest):
    """An engine built on a 32-bit port: its bus is that wide, the cycle model moves a word
    of it a cycle each way, so it is slower than the one on the widest bus."""
    assert fastest.config.data_bits > 32
    narrow = search_engine(graph, "xc7z020", 100.0, max_data_bits=32)
    assert narrow.config.data_bits == 32
    assert narrow.cycles_per_frame > fastest.cycles_per_frame
    assert narrow.cycles.total == program_cycles(compile_program(graph, narrow.config)).total


def test_a_bus_wider_than_a_port_is_spread_over_ports(graph, fastest):
    """On 32-bit ports the bus may be up to four ports wide: the engine gets one port per
    32 bits of its bus, and runs as fast as on one port of the whole width."""
    one = search_engine(graph, "xc7z020", 100.0, max_data_bits=32)
    spread = search_engine(graph, "xc7z020", 100.0, port_bits=32)
    config = spread.config
    assert config.data_bits == min(128, fastest.config.data_bits) > 32
    assert config.ports == config.data_bits // 32 and config.port_bits == 32
    assert spread.cycles_per_frame == search_engine(
        graph, "xc7z020", 100.0, max_data_bits=config.data_bits).cycles_per_frame
    assert spread.cycles_per_frame < one.cycles_per_frame
    capped = search_engine(graph, "xc7z020", 100.0, port_bits=32, max_data_bits=64)
    assert (capped.config.data_bits, capped.config.ports) == (64, 2)


@pytest.mark.parametrize("bits", [0, 48, 1024, True, "128"])
def test_a_bus_width_that_is_not_one_is_refused(graph, bits):
    with pytest.raises(ValueError, match=r"widest AXI data width must be one of 32, 64, 128, "
                                         r"256, 512 bits"):
        search_engine(graph, "xc7z020", 100.0, max_data_bits=bits)


@pytest.mark.parametrize("bandwidth", [0, 0.05, 2000.0, float("nan"), float("inf")])
def test_a_bandwidth_out_of_range_is_refused(graph, bandwidth):
    lo, hi = BANDWIDTH_GBS
    with pytest.raises(ValueError, match=rf"DRAM bandwidth must be within {lo:g}\.\.{hi:g} "
                                         rf"GB/s, not {bandwidth:g}"):
        search_engine(graph, "xc7z020", 100.0, bandwidth_gbs=bandwidth)


def test_a_clock_out_of_range_is_refused(graph):
    with pytest.raises(ValueError, match=r"clock_mhz must be within 4.69..464 MHz on xc7z020, "
                                         r"not 1000"):
        search_engine(graph, "xc7z020", 1000.0)


def test_a_device_too_small_for_any_engine(graph):
    # Every resource the smallest engine needs beyond the limit, with the numbers.
    with pytest.raises(DesignError, match=r"the network does not run on xc7z020 at any engine "
                                          r"configuration within utilization 0.01: the "
                                          r"smallest engine that runs it \(tm 4, \d+-bit bus, "
                                          r"least buffers: [\d,]+ input, [\d,]+ output and "
                                          r"[\d,]+ weight words\) needs lut [\d,]+ > 532, "
                                          r"ff [\d,]+ > 1,064, dsp \d+ > 2, bram18 \d+ > 2, "
                                          r"lutram [\d,]+ > 174$"):
        search_engine(graph, "xc7z020", 100.0, utilization=0.01)


def test_a_layer_no_engine_runs(graph):
    wide = g.QGraph(g.InputSpec((6,), 12, False),
                    [g.dense("fc", np.ones((4, 6), int), np.zeros(4, int), np.full(4, 4))])
    with pytest.raises(UnsupportedLayerError, match=r"layer 'fc': reads 12-bit unsigned "
                                                    r"activations; the engine's multipliers"):
        search_engine(wide, "xc7z020", 100.0)


def test_a_pool_split_for_a_small_input_buffer_is_priced_as_compiled():
    # The search compiles once with unbounded buffers; the layers it prices for a buffer too
    # small for the global pool's map are those the compiler gives that buffer.
    graph, _ = global_pool_graph(np.random.default_rng(8))
    probe = _Probe(graph, dataclasses.replace(SMALL, input_words=1 << 20,
                                              output_words=1 << 20, weight_words=1 << 20))
    assert probe.input_words == 14 * 3          # the column sums: 14 rows of 3 groups
    for words, names in ((64, ["gap.rows", "gap", "fc"]), (1024, ["gap", "fc"])):
        config = dataclasses.replace(SMALL, input_words=words)
        program = compile_program(graph, config)
        priced = probe.layers_for(config)
        assert [name for name, *_ in priced] == [layer.name for layer in program.layers] == names
        assert [_placed(d) for _, d, *_ in priced] == \
            [_placed(layer.descriptor) for layer in program.layers]


def test_a_pool_whose_row_sums_no_lane_takes_stays_whole():
    # 14-bit inputs, 13 a row: 18-bit row sums. The search keeps the pool whole and sizes the
    # input buffer for the whole map, as before pools were split.
    graph, _ = global_pool_graph(np.random.default_rng(8), bits=14, signed=False)
    probe = _Probe(graph, dataclasses.replace(SMALL, input_words=1 << 20,
                                              output_words=1 << 20, weight_words=1 << 20))
    assert probe.split == {} and probe.input_words == 3 * 14 * 13
    design = search_engine(graph, "xczu9eg", 200.0)
    assert design.config.input_words >= 3 * 14 * 13
    assert [layer.name for layer in compile_program(graph, design.config).layers] == \
        ["gap", "fc"]


def _placed(d):
    """A descriptor without its addresses (the probe's image lies elsewhere)."""
    return dataclasses.replace(d, param_addr=0, in_addr=0, in2_addr=0, out_addr=0, last=0)
