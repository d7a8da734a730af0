"""Resource cost model: device table, memory placement, block and layer formulas, and a few
blocks against yosys."""

import importlib.util
from dataclasses import replace
import json
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Shape, signed, unsigned

from hwgen import FoldingError
from hwgen.blocks import (Add, DepthwiseUnit, GlobalSumPool, MatVecUnit, MaxPool,
                          PackedMultiplier, ParallelMapWindow, Requantizer, SlidingWindow,
                          StreamFifo, WidthConverter)
from hwgen.model import (DEVICES, Layer, Resources, block_cost, device, layer_blocks,
                         layer_cost, lutram_luts, map_memory, rom_columns)
from hwgen.folding import fold_order
from hwgen.model.logic import delay_cost, multiplier_dsps
from hwgen.model.logic import counter_bits, range_bits
from hwgen.model.memory import random_rom_reset_columns, rom_logic_luts, rom_reset_columns

FAMILIES = ("xc7", "xcup", "ecp5")


# Device table ----------------------------------------------------------------------------

def test_devices_hold_the_design_numbers():
    pynq, zcu, ulx3s = device("xc7z020"), device("xczu9eg"), device("lfe5u-85f")
    assert (pynq.family, pynq.dsp, pynq.lut, pynq.ff, pynq.bram18) == ("xc7", 220, 53_200,
                                                                      106_400, 280)
    assert (zcu.family, zcu.dsp, zcu.lut, zcu.ff, zcu.bram18) == ("xcup", 2_520, 274_080,
                                                                  548_160, 1_824)
    assert (ulx3s.family, ulx3s.dsp, ulx3s.lut, ulx3s.bram18) == ("ecp5", 156, 83_640, 208)
    arty = device("xc7a35t")
    assert (arty.lut, arty.ff, arty.dsp, arty.bram18, arty.lutram) == (20_800, 41_600, 90, 100,
                                                                       6_400)


@pytest.mark.parametrize("name", sorted(DEVICES))
def test_every_part_is_complete(name):
    d = DEVICES[name]
    assert d.family in ("xc7", "xcup", "ecp5")
    assert all(v > 0 for v in d.capacity().values()), d
    assert d.lutram <= d.lut and d.dsp > 0
    lo, hi = d.clock_mhz
    assert 0 < lo < 10 and 300 <= hi <= 800
    assert d.part.lower().startswith(d.name)


@pytest.mark.parametrize("alias, name", [("XC7Z020", "xc7z020"), ("xc7z020clg400-1", "xc7z020"),
                                         ("pynq-z2", "xc7z020"), ("pynq_z2", "xc7z020"),
                                         ("zcu102", "xczu9eg"), ("ulx3s-85f", "lfe5u-85f"),
                                         ("xc7a35ti", "xc7a35t"), ("Arty_A7_35", "xc7a35t"),
                                         ("versa_ecp5", "lfe5u-45f"), ("LFE5UM-45F", "lfe5u-45f"),
                                         ("kcu105", "xcku040"), ("kc705", "xc7k325t")])
def test_device_aliases(alias, name):
    assert device(alias).name == name


def test_unknown_device_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"^device must be a part \(xc7z010, xc7z020, .*, "
                                         r"lfe5u-85f\), a part number or a board of `hwgen "
                                         r"boards`, not 'xc7a75t'$"):
        device("xc7a75t")
    with pytest.raises(TypeError, match=r"device must be a part name such as 'xc7z020', not 7"):
        device(7)


def test_clock_range():
    zcu = device("xczu9eg")
    assert zcu.check_clock(200) == 200.0
    with pytest.raises(ValueError, match=r"clock_mhz must be within 6.25..725 MHz on xczu9eg, "
                                         r"not 900"):
        zcu.check_clock(900)
    with pytest.raises(TypeError, match=r"clock_mhz must be a number, not '200'"):
        zcu.check_clock("200")


def test_resources_add_up_and_scale():
    a, b = Resources(lut=10, ff=5, dsp=1), Resources(lut=1, bram18=2, lutram=4)
    assert a + b == Resources(11, 5, 1, 2, 4)
    assert sum([a, b, a]) == Resources(21, 10, 2, 2, 4)
    assert 3 * b == Resources(3, 0, 0, 6, 12)
    share = Resources(lut=5_320, dsp=110).utilization(device("xc7z020"))
    assert share["lut"] == pytest.approx(0.1) and share["dsp"] == pytest.approx(0.5)


# Widths and memories -----------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 16, 17, 1000])
def test_counter_bits_match_amaranth(n):
    assert counter_bits(n) == Shape.cast(range(n)).width


@pytest.mark.parametrize("lo, hi", [(-1, 4), (-3, 52), (0, 9), (-2, 2)])
def test_range_bits_match_amaranth(lo, hi):
    assert range_bits(lo, hi) == Shape.cast(range(lo, hi)).width


@pytest.mark.parametrize("width, depth, rom, kind, bram18, lutram", [
    (32, 256, True, "logic", 0, 0),      # 8192 bits / 64 = 128 < RAMB18 (129 + 2)
    (33, 256, True, "block", 1, 0),      # 132 > 131: one RAMB18 (36 x 512)
    (48, 1024, True, "block", 3, 0),     # three 18-bit RAMB18s (1024 deep) beat RAMB36s
    (20, 16, False, "distributed", 0, 16),   # four RAM32M (6 bits each) of 4 LUTs
    (32, 1024, False, "block", 2, 0),    # one RAMB36 (36 x 1024)
    (72, 512, False, "block", 2, 0),     # one RAMB36 in 72-bit simple dual port mode
])
def test_xc7_memory_placement(width, depth, rom, kind, bram18, lutram):
    placed = map_memory(width, depth, "xc7", rom=rom)
    assert (placed.kind, placed.bram18, placed.lutram) == (kind, bram18, lutram)


def test_memory_placement_differs_by_family():
    # LUT RAM is twice as wide per LUT on UltraScale+, and an ECP5 ROM goes to block RAM
    # sooner (a ROM bit in logic costs 1/16 there, 1/64 on Xilinx).
    assert map_memory(64, 64, "xc7", rom=False).lutram == 88
    assert map_memory(64, 64, "xcup", rom=False).lutram == 80
    assert map_memory(16, 256, "xc7", rom=True).kind == "logic"
    assert map_memory(16, 256, "ecp5", rom=True).bram18 == 1
    with pytest.raises(ValueError, match=r"family must be one of 'xc7', 'xcup', 'ecp5', not "
                                         r"'ice40'"):
        map_memory(8, 8, "ice40", rom=True)


def test_rom_logic_luts():
    assert rom_logic_luts(16, 256, "xc7") == 64          # 4 LUT6 + MUXF7/F8 per bit
    assert rom_logic_luts(130, 64, "xc7") == 130
    assert rom_logic_luts(32, 32, "xc7", counter=True) == 32
    assert rom_logic_luts(32, 128, "xc7", counter=True) == 256


def test_rom_columns_skip_constant_and_count_distinct():
    # Column 3 of the 4-bit fields is constant (all values small and positive); the two
    # fields are equal, so each column appears twice.
    values = np.array([[1, 1], [2, 2], [5, 5], [0, 0]])
    assert rom_columns(values, 4) == (6, 3)
    assert rom_columns(np.zeros((4, 3), dtype=int), 8) == (0, 0)


def test_rom_reset_columns_need_exactly_one_constant_side():
    # 10 words: the top address bit selects words 8 and 9 (its other side words 0 to 7).
    columns = np.array([
        [0, 1, 0, 1, 0, 1, 0, 1, 1, 1],     # the same in words 8 and 9: a reset
        [0, 0, 0, 0, 0, 0, 0, 0, 1, 0],     # the same in words 0 to 7: a reset
        [1, 1, 1, 1, 1, 1, 1, 1, 0, 0],     # both sides constant: the address bit itself
        [0, 1, 1, 0, 1, 0, 0, 1, 0, 1],     # neither
    ]).T
    assert rom_reset_columns(columns) == 2
    assert rom_reset_columns(columns[:2]) == 0          # two words: the address bit
    assert rom_reset_columns(np.zeros((10, 0), dtype=np.uint8)) == 0


def test_random_rom_reset_columns():
    assert random_rom_reset_columns(100, 9) == 100      # word 8 alone on its side
    assert random_rom_reset_columns(100, 10) == 50      # words 8 and 9 equal half the time
    assert random_rom_reset_columns(100, 36) == 13      # words 32 to 35: 1 in 8
    assert random_rom_reset_columns(100, 64) == 0
    assert random_rom_reset_columns(100, 2) == 0


def test_lutram_luts_of_cells():
    assert lutram_luts({"RAM32M": 4, "RAM64X1D": 2, "FDRE": 9}) == 20
    assert lutram_luts({"RAM32M16": 2, "TRELLIS_DPR16X4": 1, "SRL16E": 3}) == 23


@pytest.mark.parametrize("a, b, family, dsps", [(4, 5, "xc7", 1), (3, 5, "xc7", 0),
                                                (2, 8, "xcup", 1), (1, 16, "xc7", 0),
                                                (30, 8, "xc7", 2), (30, 8, "xcup", 2),
                                                (26, 8, "xcup", 1), (3, 5, "ecp5", 1)])
def test_multiplier_dsps(a, b, family, dsps):
    assert multiplier_dsps(family, a, b) == dsps


def test_delay_chains_become_shift_registers():
    assert delay_cost("xc7", 8, 2) == Resources(ff=16)
    assert delay_cost("xcup", 8, 5) == Resources(lutram=8)      # one SRL16E per bit
    assert delay_cost("xc7", 3, 40) == Resources(lutram=6)      # two SRLC32E per bit
    assert delay_cost("ecp5", 8, 5) == Resources(ff=40)


def test_collisions_that_need_no_care_are_not_emulated():
    # ECP5 block RAM cannot read the old word while writing it through the other port:
    # synthesis adds read-first logic, which makes LUT RAM cheaper, unless the memory says
    # the result of such a read does not matter.
    assert map_memory(16, 96, "ecp5", rom=False).kind == "distributed"
    assert map_memory(16, 96, "ecp5", rom=False, no_rw_check=True).bram18 == 1


def test_a_memory_style_overrides_the_cheapest_placement():
    assert map_memory(32, 256, "xc7", rom=True).kind == "logic"
    assert map_memory(32, 256, "xc7", rom=True, style="block").bram18 == 1
    assert map_memory(2, 4, "xcup", rom=True, style="block").bram18 == 1
    assert map_memory(48, 1024, "xc7", rom=True, style="logic").kind == "logic"
    with pytest.raises(ValueError, match=r"style must be None, 'block' or 'logic', not 'bram'"):
        map_memory(8, 8, "xc7", rom=True, style="bram")


# Blocks ---------------------------------------------------------------------------------------

def _matvec(family, seed=0, in_features=32, out_features=16, pe=4, simd=4, bits=4, in_bits=5,
            lut_lanes=None, high=0, rom_style=None):
    rng = np.random.default_rng(seed)
    lane_bits = np.array([8] * high + [bits] * (pe - high))
    weight_bits = np.tile(lane_bits, out_features // pe)
    hi = (1 << (weight_bits - 1)) - 1
    weight = rng.integers(-hi[:, None], hi[:, None] + 1, (out_features, in_features))
    return MatVecUnit(weight=weight, bias=rng.integers(-99, 99, out_features),
                      weight_bits=weight_bits, in_bits=in_bits, in_signed=False, pe=pe,
                      simd=simd, multiplier=family, lut_lanes=lut_lanes, rom_style=rom_style)


@pytest.mark.parametrize("family", FAMILIES)
def test_weight_roms_go_where_the_style_says(family):
    auto, block, logic = (block_cost(_matvec(family, rom_style=style), family)
                          for style in (None, "block", "logic"))
    assert auto.bram18 == logic.bram18 == 0 < block.bram18
    assert block.lut < logic.lut and auto == logic
    with pytest.raises(ValueError, match=r"layer 'dense': rom_style must be one of None, "
                                         r"'block', 'logic', not 'ultra'"):
        _matvec(family, rom_style="ultra")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kwargs", [dict(), dict(pe=8, simd=2, high=2), dict(bits=2, in_bits=2),
                                    dict(bits=8, in_bits=8, pe=2, simd=8),
                                    dict(lut_lanes={4: 2})], ids=str)
def test_matvec_dsps_equal_the_blocks_count(family, kwargs):
    unit = _matvec(family, **kwargs)
    assert block_cost(unit, family).dsp == unit.dsp_count


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("pow2, in_bits", [(False, 18), (True, 16), (False, 30)])
def test_requantizer_dsps_equal_the_blocks_count(family, pow2, in_bits):
    rng = np.random.default_rng(1)
    multiplier = np.full(16, 8) if pow2 else rng.integers(1 << 8, 1 << 20, 16)
    block = Requantizer(multiplier=multiplier, shift=10, in_bits=in_bits, lanes=4, out_bits=5,
                        geometry=family)
    assert block_cost(block, family).dsp == block.dsp_count


@pytest.mark.parametrize("family", FAMILIES)
def test_requantizer_offsets_cost_logic_and_registers_not_dsps(family):
    """A constant offset is one more term of each lane's sum; an offset that changes between
    folds also has its selector and delay line. Ties to even cost the same as ties up."""
    multiplier = np.arange(1, 17) * 37
    common = dict(multiplier=multiplier, shift=10, in_bits=18, lanes=4, out_bits=5,
                  geometry=family)
    plain = block_cost(Requantizer(**common), family)
    even = block_cost(Requantizer(rounding="half_even", **common), family)
    constant = block_cost(Requantizer(offset=np.full(16, -700), **common), family)
    varying = block_cost(Requantizer(offset=np.arange(16) * 100 - 700, **common), family)
    assert even == plain
    assert plain.dsp == constant.dsp == varying.dsp
    assert plain.lut < constant.lut < varying.lut
    assert plain.ff == constant.ff < varying.ff
    layer = layer_cost(Layer("requantize", (16,), 18, True, simd=4, out_bits=5, shift=10,
                             offset_bits=12), family)
    assert layer.lut > layer_cost(Layer("requantize", (16,), 18, True, simd=4, out_bits=5,
                                        shift=10), family).lut


@pytest.mark.parametrize("family", FAMILIES)
def test_packed_multiplier_is_one_dsp(family):
    assert block_cost(PackedMultiplier(multiplier=family, weight_bits=4, act_bits=5),
                      family).dsp == 1


def test_window_buffer_placement():
    window = SlidingWindow(channels=16, height=32, width=32, kernel=5, stride=2, padding=2,
                           shape=unsigned(5), simd=8)
    word = window.simd * window.shape.width
    for family in FAMILIES:
        assert block_cost(window, family).bram18 == \
            map_memory(word, window.buffer_depth, family, rom=False).bram18
    assert block_cost(window, "xc7").bram18 == 2        # 40 x 384: a RAMB36 in 72-bit mode


def test_simple_blocks_count_their_registers():
    add = Add(elements=64, lanes=8, shape=signed(8), skip_shape=unsigned(5))
    assert block_cost(add, "xc7").ff == 8 * add.out_bits + 1
    assert block_cost(StreamFifo(shape=unsigned(5), lanes=4, depth=1), "xc7") == \
        Resources(lut=1, ff=21)
    assert block_cost(StreamFifo(shape=unsigned(5), lanes=4, depth=0), "xcup") == Resources()
    split = WidthConverter(shape=signed(12), in_count=8, out_count=2)
    assert block_cost(split, "xc7").ff == 96 + 1 + 2     # the held beat, full, part index


def test_block_cost_rejects_other_objects():
    with pytest.raises(TypeError, match=r"block must be one of MatVecUnit, MatVecLanes, Requantizer, .*, not "
                                        r"'adder'"):
        block_cost("adder", "xc7")
    with pytest.raises(ValueError, match=r"family must be one of 'xc7', 'xcup', 'ecp5', not "
                                         r"'xc7z020'"):
        block_cost(Add(elements=4, lanes=4, shape=unsigned(4)), "xc7z020")


def test_depthwise_small_products_stay_in_luts():
    def unit(bits):
        rng = np.random.default_rng(2)
        hi = (1 << (bits - 1)) - 1
        return DepthwiseUnit(weight=rng.integers(-hi, hi + 1, (8, 3, 3)),
                             bias=rng.integers(-9, 9, 8), weight_bits=np.full(8, bits),
                             in_bits=5, in_signed=False, simd=4)
    assert block_cost(unit(4), "xc7").dsp == 4       # 4 x 5 bits: a 9-bit product
    assert block_cost(unit(3), "xc7").dsp == 0       # 8 bits: LUTs


# Layers ---------------------------------------------------------------------------------------

def test_layer_and_block_estimates_agree():
    window = SlidingWindow(channels=16, height=16, width=16, kernel=3, padding=1,
                           shape=unsigned(5), simd=4)
    pool = MaxPool(channels=16, height=16, width=16, kernel=2, shape=unsigned(5), simd=4)
    gsp = GlobalSumPool(channels=32, height=7, width=7, shape=unsigned(5), simd=4)
    layer = Layer("maxpool", (16, 16, 16), in_bits=5, kernel=2, stride=2, simd=4)
    assert layer_cost(layer, "xc7") == block_cost(pool, "xc7")
    layer = Layer("global_avgpool", (32, 7, 7), in_bits=5, simd=4)
    assert layer_cost(layer, "xcup") == block_cost(gsp, "xcup")
    blocks = dict(layer_blocks(Layer("depthwise", (16, 16, 16), in_bits=5, kernel=3,
                                     padding=1, simd=4, weight_bits={4: 16}), "xc7"))
    assert blocks["window"] == block_cost(window, "xc7")


@pytest.mark.parametrize("family", FAMILIES)
def test_a_depthwise_layer_of_several_positions_per_beat_prices_its_blocks(family):
    """A depthwise SIMD of three whole positions: the layer's window is the lowering's (whole
    pixels in, three positions out) and its unit has a multiplier per channel and tap."""
    rng = np.random.default_rng(4)
    window = SlidingWindow(channels=16, height=16, width=16, kernel=3, padding=1,
                           shape=unsigned(5), simd=16, taps=3)

    def unit(taps):
        return DepthwiseUnit(weight=rng.integers(-7, 8, (16, 3, 3)),
                             bias=rng.integers(-9, 9, 16), weight_bits=np.full(16, 4),
                             in_bits=5, in_signed=False, simd=16, taps=taps, pixels=256)
    layer = Layer("depthwise", (16, 16, 16), in_bits=5, kernel=3, padding=1, pe=16,
                  simd=48, weight_bits={4: 16})
    blocks = dict(layer_blocks(layer, family))
    assert blocks["window"] == block_cost(window, family)
    assert blocks["depthwise"].dsp == block_cost(unit(3), family).dsp \
        == 3 * block_cost(unit(1), family).dsp
    with pytest.raises(FoldingError, match=r"layer 'dw': SIMD 32 does not divide 16 nor is it "
                                           r"16 times a divisor of the window's 9 positions"):
        layer_cost(Layer("depthwise", (16, 16, 16), in_bits=5, kernel=3, padding=1, pe=16,
                         simd=32, weight_bits={4: 16}, name="dw"), family)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_window_of_several_positions_per_beat_holds_a_buffer_per_tap(family):
    """A convolution whose SIMD spans window positions: the layer prices the window the
    lowering builds (whole pixels in, ``taps`` positions out), with one line buffer per tap."""
    common = dict(channels=3, height=32, width=32, kernel=3, padding=1, shape=unsigned(8),
                  simd=3)
    window = SlidingWindow(taps=9, **common)
    layer = Layer("conv", (3, 32, 32), in_bits=8, out_channels=8, kernel=3, padding=1, pe=2,
                  simd=27, weight_bits={4: 8})
    blocks = dict(layer_blocks(layer, family))
    assert blocks["window"] == block_cost(window, family)
    single = map_memory(3 * 8, window.buffer_depth, family, rom=False)
    assert (blocks["window"].bram18, blocks["window"].lutram) == \
        (9 * single.bram18, 9 * single.lutram)
    assert blocks["window"].lut > block_cost(SlidingWindow(**common), family).lut
    with pytest.raises(FoldingError, match=r"layer 'c': SIMD 6 does not divide the window's 27 "
                                           r"elements \(9 positions of 3 channels\); choose "
                                           r"one of 1, 3, 9, 27"):
        layer_cost(Layer("conv", (3, 8, 8), in_bits=8, out_channels=8, kernel=3, simd=6,
                         weight_bits={4: 8}, name="c"), family)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_window_split_off_whole_positions_prices_the_next_larger_window_beat(family):
    """SIMD 6 of a 3x3 window of 4 channels: the window reads 3 positions (12 elements) a
    beat and its converter splits each in two."""
    layer = Layer("conv", (4, 8, 8), in_bits=5, out_channels=8, kernel=3, padding=1, pe=2,
                  simd=6, weight_bits={4: 8})
    window = SlidingWindow(channels=4, height=8, width=8, kernel=3, padding=1,
                           shape=unsigned(5), simd=4, taps=3, split=2)
    whole = SlidingWindow(channels=4, height=8, width=8, kernel=3, padding=1,
                          shape=unsigned(5), simd=4, taps=3)
    assert layer.window_split == (4, 3)
    assert dict(layer_blocks(layer, family))["window"] == block_cost(window, family)
    assert block_cost(window, family).ff > block_cost(whole, family).ff


@pytest.mark.parametrize("family", FAMILIES)
def test_a_map_at_several_positions_per_beat_prices_the_lowerings_blocks(family):
    """Whole windows of 4 positions of a map a beat: the layer's window is the group window
    the lowering builds (its outputs are wires), a pool after it takes the 4 pixels a beat
    and gives 2, and a pool that cannot tile its rows is refused with the rule."""
    window = ParallelMapWindow(channels=3, height=32, width=32, kernel=3, padding=1,
                               shape=unsigned(8), positions=4)
    layer = Layer("conv", (3, 32, 32), in_bits=8, out_channels=8, kernel=3, padding=1, pe=8,
                  simd=4 * 27, weight_bits={4: 8})
    blocks = dict(layer_blocks(layer, family))
    assert blocks["window"] == block_cost(window, family) == block_cost(window.groups, family)
    one = dict(layer_blocks(replace(layer, simd=27), family))    # a window a beat
    assert blocks["matvec"] == one["matvec"] * 4
    pool = MaxPool(channels=8, height=32, width=32, kernel=2, shape=unsigned(5), positions=2)
    assert (pool.in_lanes, pool.out_lanes) == (32, 16)
    assert layer_cost(Layer("maxpool", (8, 32, 32), in_bits=5, kernel=2, stride=2, simd=32),
                      family) == block_cost(pool, family)
    # Four 2x2 windows' worth of comparators cost more than one window tap a beat.
    plain = MaxPool(channels=8, height=32, width=32, kernel=2, shape=unsigned(5), simd=8)
    assert block_cost(pool, family).lut > block_cost(plain, family).lut
    with pytest.raises(FoldingError, match=r"layer 'p': a pool takes at most one pixel a beat, "
                                           r"or whole pixels whose windows tile its rows"):
        layer_cost(Layer("maxpool", (8, 31, 31), in_bits=5, kernel=2, stride=2, simd=16,
                         name="p"), family)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("counts, pe", [({4: 61, 8: 3}, 8), ({4: 48, 8: 16}, 16),
                                        ({2: 20, 4: 12}, 4)], ids=str)
def test_dense_layer_matches_the_block(family, counts, pe):
    """A layer with uneven precisions: lanes as wide as their widest filter, as lowered."""
    bits = np.repeat(*zip(*sorted(counts.items())))
    widths = np.tile(bits[fold_order(bits, pe)].reshape(-1, pe).max(axis=0), bits.size // pe)
    rng = np.random.default_rng(4)
    hi = (1 << (bits[fold_order(bits, pe)] - 1)) - 1
    unit = MatVecUnit(weight=rng.integers(-hi[:, None], hi[:, None] + 1, (bits.size, 48)),
                      bias=rng.integers(-99, 99, bits.size), weight_bits=widths, in_bits=5,
                      in_signed=False, pe=pe, simd=8, multiplier=family)
    layer = layer_cost(Layer("dense", (48,), in_bits=5, out_channels=bits.size, pe=pe, simd=8,
                             weight_bits=counts), family)
    block = block_cost(unit, family)
    assert (layer.dsp, layer.bram18) == (block.dsp, block.bram18) == (unit.dsp_count,
                                                                      block.bram18)
    assert abs(layer.lut - block.lut) <= 0.15 * block.lut
    assert abs(layer.ff - block.ff) <= 0.15 * block.ff


def test_layer_errors():
    with pytest.raises(ValueError, match=r"layer 'x': op must be one of 'dense', 'conv', .*, "
                                         r"not 'lstm'"):
        Layer("lstm", (4,), in_bits=4, name="x")
    with pytest.raises(FoldingError, match=r"layer 'p': SIMD 3 does not divide 16; choose one "
                                           r"of 1, 2, 4, 8, 16"):
        layer_cost(Layer("maxpool", (16, 8, 8), in_bits=4, kernel=2, stride=2, simd=3,
                         name="p"), "xc7")


# Against yosys --------------------------------------------------------------------------------

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _recorded_synthesis(family):
    """The estimator benchmark's module and its recorded synthesis of each block of
    ``family`` (benchmarks/estimator.json), by block name."""
    rows = {r["block"]: r["synth"] for r in
            json.loads((BENCHMARKS / "estimator.json").read_text())["rows"]
            if r["family"] == family}
    return _estimator_benchmark(), rows


def _estimator_benchmark():
    spec = importlib.util.spec_from_file_location("estimator_benchmark",
                                                  BENCHMARKS / "estimator.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("family", ["xc7", "xcup"])
def test_lut_multiplier_units_against_their_recorded_synthesis(family):
    """The matrix-vector units with LUT multipliers that benchmarks/estimator.json records
    (2 to 8-bit weights, 4 to 8-bit activations, 1 to 4 products per lane): LUTs within 10%
    of yosys's count, DSPs and block RAM exact."""
    bench, rows = _recorded_synthesis(family)
    specs = [spec for spec in bench.SWEEP if "_lut" in spec[0]]
    assert len(specs) == 8
    for spec in specs:
        synth = rows[spec[0]]
        estimate = block_cost(bench.build(spec, family), family)
        assert abs(estimate.lut - synth["lut"]) <= 0.1 * synth["lut"], (spec[0], estimate)
        assert (estimate.dsp, estimate.bram18) == (synth["dsp"], synth["bram18"]), spec[0]


@pytest.mark.parametrize("family", ["xc7", "xcup"])
def test_matvec_registers_against_their_recorded_synthesis(family):
    """Every matrix-vector unit that benchmarks/estimator.json records: flip-flops within 6%
    and LUT RAM within 5% (or 2 LUTs) of yosys's count (weight ROMs in logic and in block
    RAM, of power-of-two depths and others, packed and LUT multipliers)."""
    bench, rows = _recorded_synthesis(family)
    specs = [spec for spec in bench.SWEEP if spec[0].startswith("mv_")]
    assert len(specs) == 22
    for spec in specs:
        synth = rows[spec[0]]
        estimate = block_cost(bench.build(spec, family), family)
        assert abs(estimate.ff - synth["ff"]) <= 0.06 * synth["ff"], (spec[0], estimate)
        assert abs(estimate.lutram - synth["lutram"]) <= max(0.05 * synth["lutram"], 2), \
            (spec[0], estimate)


@pytest.mark.parametrize("family", ["xc7", "xcup"])
def test_unfolded_matvec_against_its_recorded_synthesis(family):
    """Unfolded units (constant weights) that benchmarks/estimator.json records: LUTs within
    15% and flip-flops within 10% of yosys's count, DSPs exact (LUT lanes of 2 to 8 bits,
    signed inputs, beside packed lanes)."""
    bench, rows = _recorded_synthesis(family)
    specs = [spec for spec in bench.SWEEP if spec[0].startswith("cmv_")]
    assert len(specs) == 8
    for spec in specs:
        synth, unit = rows[spec[0]], bench.build(spec, family)
        assert unit.constant_weights, spec[0]
        estimate = block_cost(unit, family)
        assert abs(estimate.lut - synth["lut"]) <= 0.15 * synth["lut"], (spec[0], estimate)
        assert abs(estimate.ff - synth["ff"]) <= 0.10 * synth["ff"], (spec[0], estimate)
        assert estimate.dsp == synth["dsp"], spec[0]


@pytest.mark.synth
@pytest.mark.parametrize("family", ["xc7", "xcup"])
def test_weight_rom_of_ten_words_against_synthesis(family):
    """A weight ROM in logic whose depth is not a power of two: where one side of the top
    address bit is constant, the read register takes a synchronous reset and the delay
    behind it stays in flip-flops. Flip-flops and LUT RAM within 2% of yosys's count."""
    from hwgen.synth import synthesize
    unit = _matvec(family, in_features=40, out_features=8, pe=4, simd=8)
    assert unit.output_folds * unit.input_folds == 10
    estimate = block_cost(unit, family)
    result = synthesize(unit, family)
    lutram = lutram_luts(result["cells"])
    assert abs(estimate.ff - result["FF"]) <= 0.02 * result["FF"], (estimate, result["FF"])
    assert abs(estimate.lutram - lutram) <= 0.02 * lutram, (estimate, lutram)


@pytest.mark.synth
@pytest.mark.parametrize("family", ["xc7", "xcup"])
def test_estimates_against_synthesis(family):
    """Five small blocks: DSP and block RAM exactly; LUT, FF and LUT RAM within 30%."""
    from hwgen.synth import synthesize
    rng = np.random.default_rng(3)
    blocks = [
        _matvec(family, in_features=32, out_features=8, pe=4, simd=4),
        _matvec(family, in_features=32, out_features=8, pe=4, simd=4, rom_style="block"),
        StreamFifo(shape=unsigned(8), lanes=4, depth=600),
        DepthwiseUnit(weight=rng.integers(-7, 8, (8, 1, 5)), bias=rng.integers(-50, 50, 8),
                      weight_bits=np.full(8, 4), in_bits=5, in_signed=False, simd=2),
        SlidingWindow(channels=3, height=32, width=32, kernel=3, padding=1, shape=unsigned(8),
                      simd=3, taps=9),
    ]
    for block in blocks:
        estimate = block_cost(block, family)
        result = synthesize(block, family)
        cells = result["cells"]
        bram18 = sum(n * (2 if "36" in cell else 1) for cell, n in cells.items()
                     if cell.startswith("RAMB"))
        assert (estimate.dsp, estimate.bram18) == (result["DSP"], bram18), \
            (type(block).__name__, cells)
        for kind, measured in (("lut", result["LUT"]), ("ff", result["FF"]),
                               ("lutram", lutram_luts(cells))):
            assert abs(getattr(estimate, kind) - measured) <= 0.3 * measured, \
                (type(block).__name__, kind, getattr(estimate, kind), measured)
