"""Weight memories: every weight at its own width, split for the fewest 18 Kbit block RAMs."""

import numpy as np
import pytest

from hwgen.blocks import MatVecUnit
from hwgen.blocks.weightrom import (BLOCK_GEOMETRIES, MEMORY_COLUMNS, block_units, split_word,
                                    weight_layout)
from hwgen.model import map_memory

DEPTHS = [1, 7, 16, 64, 288, 500, 512, 513, 700, 1024, 1500, 2048, 3000, 4096, 9000, 20000]


def test_block_units_is_the_finn_style_count():
    # 64 bits x 2048 words: eight 9-bit RAMB18 columns; 128 x 64: four 36-bit ones.
    assert block_units(64, 2048) == 8
    assert block_units(128, 64) == 4
    assert block_units(1, 16384) == 1 and block_units(1, 16385) == 2
    assert block_units(36, 512) == 1 and block_units(37, 512) == 2


@pytest.mark.parametrize("depth", DEPTHS)
def test_split_covers_the_word_with_no_more_block_rams_than_one_geometry(depth):
    for width in range(1, 300):
        widths = split_word(width, depth)
        assert sum(widths) == width and min(widths) >= 1, (width, depth, widths)
        assert sum(block_units(w, depth) for w in widths) <= block_units(width, depth), \
            (width, depth, widths)


def test_split_mixes_geometries_where_that_saves_block_ram():
    # 1,500 words: a 36-bit column is three RAMB18 (512 deep), a 4-bit one a single 4096-deep
    # RAMB18; one geometry for all 40 bits needs five (9 bits x 2048).
    assert split_word(40, 1500) == (36, 4)
    assert block_units(40, 1500) == 5
    assert sum(block_units(w, 1500) for w in split_word(40, 1500)) == 4


def test_memories_hold_at_most_a_few_columns():
    # 16,384 bits x 16 words: 36-bit columns, four to a memory (one address counter each).
    widths = split_word(16384, 16)
    assert max(widths) == 36 * MEMORY_COLUMNS and sum(widths) == 16384
    assert len(widths) == -(-16384 // (36 * MEMORY_COLUMNS))
    assert split_word(64, 2048) == (64,)          # two 36-bit columns (eight RAMB18)


def test_wide_words_are_split_as_fast_as_narrow_ones():
    assert sum(split_word(100_000, 700)) == 100_000
    assert sum(block_units(w, 700) for w in split_word(100_000, 700)) <= \
        block_units(100_000, 700)


@pytest.mark.parametrize("family", ["xc7", "xcup", "ecp5"])
def test_synthesis_maps_each_memory_within_the_count(family):
    """Yosys's choice (the memory map) puts each memory of the split in as many block RAMs
    as the geometry count says, or fewer."""
    for depth in DEPTHS:
        for width in (4, 16, 40, 64, 100, 128, 320, 1000):
            for w in split_word(width, depth):
                placed = map_memory(w, depth, family, rom=True, style="block")
                assert placed.bram18 <= block_units(w, depth), (family, width, depth, w)


def _unit(rng, out_features, in_features, lane_bits, pe, simd):
    bits = np.tile(lane_bits, out_features // pe)
    hi = (1 << (bits - 1)) - 1
    weight = rng.integers(-hi[:, None], hi[:, None] + 1, (out_features, in_features))
    return MatVecUnit(weight=weight, bias=np.zeros(out_features, np.int64), weight_bits=bits,
                      in_bits=5, in_signed=False, pe=pe, simd=simd, multiplier="xcup"), weight


@pytest.mark.parametrize("shape", [(8, 12, [4, 8], 2, 3), (24, 30, [4, 4, 8], 3, 10),
                                   (16, 64, [4] * 8, 8, 16), (6, 5, [2, 3, 5, 6, 7, 8], 6, 5),
                                   (4, 700, [4, 4, 4, 8], 4, 7)], ids=str)
def test_memories_hold_every_weight_at_its_lane_width(shape):
    """The memories' words, read back field by field, give the weight matrix; the unit
    stores ``simd * sum(lane_bits)`` bits per word and nothing else."""
    out_features, in_features, lane_bits, pe, simd = shape
    rng = np.random.default_rng(sum(lane_bits))
    unit, weight = _unit(rng, out_features, in_features, np.array(lane_bits), pe, simd)
    layout = unit.rom_layout
    nf, sf = out_features // pe, in_features // simd
    assert layout.depth == nf * sf and layout.word_bits == simd * sum(lane_bits)
    assert layout.stored_bits == in_features * out_features // pe * sum(lane_bits)
    words = [0] * layout.depth
    for start, init in zip(layout.starts, layout.init(weight)):
        assert len(init) == layout.depth
        for i, value in enumerate(init):
            words[i] |= value << start
    for f in range(nf):
        for g in range(sf):
            word = words[f * sf + g]
            for s in range(simd):
                for p in range(pe):
                    first, bits = layout.field(p, s)
                    value = (word >> first) & ((1 << bits) - 1)
                    value -= (value >> (bits - 1)) << bits
                    assert value == weight[f * pe + p, g * simd + s], (f, g, s, p)
    fields = unit.rom_fields()
    assert [sum(bits for bits, _ in memory) for memory in fields] == list(layout.widths)


def test_four_and_eight_bit_filters_store_one_bit_per_weight_bit():
    """Uniform 4-bit and 8-bit lanes, and 4/8 lanes after reordering: the memories hold
    exactly the weight bits (stored bits per weight bit 1)."""
    rng = np.random.default_rng(3)
    for lane_bits, pe, simd in (([4] * 4, 4, 8), ([8, 8], 2, 8), ([8] + [4] * 7, 8, 4)):
        unit, weight = _unit(rng, 32, 64, np.array(lane_bits), pe, simd)
        weight_bits = int((unit.weight_bits * unit.in_features).sum())
        assert unit.rom_layout.stored_bits == weight_bits
        assert unit.rom_layout.block_units <= block_units(simd * pe * max(lane_bits),
                                                          unit.rom_layout.depth)


def test_geometries_are_the_18_kbit_ones():
    assert all(w * d in (16384, 18432) for w, d in BLOCK_GEOMETRIES)
    assert weight_layout([4, 8], 3, 10).widths == split_word(36, 10)
