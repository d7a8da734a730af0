"""Gearboxes: rows of packed words to groups of elements and back, against the DRAM layout."""

import random

import numpy as np
import pytest

from amaranth.hdl import Module, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.engine.gearbox import Packer, Unpacker, compact_group
from hwgen.engine.layout import TensorLayout

from ..streams import run_unit

CASES = [(bits, signed) for bits in (1, 3, 5, 8, 11, 16) for signed in (False, True)
         if bits > 1 or not signed]


def tensor(rng, bits, signed, channels=6, height=3, width=5):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return rng.integers(lo, hi + 1, (channels, height, width))


#: Lanes and bus widths whose shift amounts are multiples of 1, 4 and 16 bits (the
#: gearboxes' shifters have a stage only per bit above those).
GEOMETRIES = [(3, 64), (4, 64), (16, 32)]


@pytest.mark.parametrize("one_hot", [False, True], ids=["mux", "one_hot"])
@pytest.mark.parametrize("bits,signed", CASES)
@pytest.mark.parametrize("stall", [0.0, 0.4], ids=["flow", "stalls"])
@pytest.mark.parametrize("lanes,data_bits", GEOMETRIES)
def test_unpacker_gives_each_rows_groups(bits, signed, stall, lanes, data_bits, one_hot):
    rng = np.random.default_rng(bits)
    layout = TensorLayout((6, 3, 5), bits, signed, lanes, data_bits)
    x = tensor(rng, bits, signed)
    raw = layout.pack(x)
    step = data_bits // 8
    words = [int.from_bytes(raw[i:i + step], "little") for i in range(0, len(raw), step)]
    dut = Unpacker(data_bits=data_bits, lanes=lanes, one_hot=one_hot)
    got = []
    expected_groups = 3 * 5 * layout.groups
    pauses = random.Random(bits)

    async def bench(ctx):
        ctx.set(dut.bits, bits)
        ctx.set(dut.is_signed, signed)
        ctx.set(dut.row_groups, 5 * layout.groups)
        ctx.set(dut.row_words, layout.row_words)
        k = 0
        for _ in range(5000):
            offer = k < len(words) and pauses.random() >= stall
            ctx.set(dut.i_words.valid, offer)
            if offer:
                ctx.set(dut.i_words.payload, words[k])
            ready = pauses.random() >= stall
            ctx.set(dut.o_groups.ready, ready)
            _, _, in_ready, valid, group = await ctx.tick().sample(
                dut.i_words.ready, dut.o_groups.valid, dut.o_groups.payload)
            if offer and in_ready:
                k += 1
            if ready and valid:
                got.append([int(v) for v in group])
            if len(got) == expected_groups:
                break

    run_unit(dut, bench)
    assert len(got) == expected_groups
    hwc = np.zeros((3, 5, layout.channels), np.int64)
    hwc[:, :, :6] = np.moveaxis(x, 0, -1)
    np.testing.assert_array_equal(np.array(got).reshape(3, 5, -1), hwc)


def _tensor_words(rng, bits, signed, lanes, data_bits, shape):
    """A random tensor of ``shape``, its layout, its words and its groups in HWC order."""
    layout = TensorLayout(shape, bits, signed, lanes, data_bits)
    x = tensor(rng, bits, signed, *shape)
    raw = layout.pack(x)
    step = data_bits // 8
    words = [int.from_bytes(raw[i:i + step], "little") for i in range(0, len(raw), step)]
    channels, height, width = shape
    hwc = np.zeros((height, width, layout.channels), np.int64)
    hwc[:, :, :channels] = np.moveaxis(x, 0, -1)
    return layout, words, hwc.reshape(-1, lanes)


@pytest.mark.parametrize("one_hot", [False, True], ids=["mux", "one_hot"])
@pytest.mark.parametrize("first,second", [((5, True), (3, False)), ((8, False), (16, True)),
                                          ((1, False), (11, True))])
@pytest.mark.parametrize("stall", [0.0, 0.4], ids=["flow", "stalls"])
@pytest.mark.parametrize("lanes,data_bits", [(3, 64), (16, 32)])
def test_unpacker_changes_width_between_tensors(first, second, stall, lanes, data_bits,
                                                one_hot):
    """Two tensors of different widths and signedness back to back, as an add's operands
    come: the second's element width, signedness and row lengths are set the cycle after the
    first's last group leaves, while the second's words are already offered (each held until
    taken)."""
    rng = np.random.default_rng(first[0] + 17 * second[0])
    shapes = (6, 3, 5), (5, 2, 4)
    parts = [_tensor_words(rng, bits, signed, lanes, data_bits, shape)
             for (bits, signed), shape in zip((first, second), shapes)]
    words = parts[0][1] + parts[1][1]
    dut = Unpacker(data_bits=data_bits, lanes=lanes, one_hot=one_hot)
    got = []
    pauses = random.Random(lanes + first[0])

    def describe(ctx, index):
        (bits, signed), (layout, _, groups) = (first, second)[index], parts[index]
        ctx.set(dut.bits, bits)
        ctx.set(dut.is_signed, signed)
        ctx.set(dut.row_groups, len(groups) // shapes[index][1])
        ctx.set(dut.row_words, layout.row_words)

    async def bench(ctx):
        describe(ctx, 0)
        k, offered = 0, False
        for _ in range(8000):
            offered = k < len(words) and (offered or pauses.random() >= stall)
            ctx.set(dut.i_words.valid, offered)
            if offered:
                ctx.set(dut.i_words.payload, words[k])
            ready = pauses.random() >= stall
            ctx.set(dut.o_groups.ready, ready)
            _, _, in_ready, valid, group = await ctx.tick().sample(
                dut.i_words.ready, dut.o_groups.valid, dut.o_groups.payload)
            if offered and in_ready:
                k, offered = k + 1, False
            if ready and valid:
                got.append([int(v) for v in group])
                if len(got) == len(parts[0][2]):
                    describe(ctx, 1)
            if len(got) == len(parts[0][2]) + len(parts[1][2]):
                break

    run_unit(dut, bench)
    np.testing.assert_array_equal(np.array(got), np.concatenate([parts[0][2], parts[1][2]]))


class CompactingPacker(wiring.Component):
    """Groups of elements compacted (as the compute unit writes them) into a packer."""

    def __init__(self, *, data_bits, lanes, one_hot, max_bits=32):
        self.packer = Packer(data_bits=data_bits, lanes=lanes, max_bits=max_bits)
        self._one_hot = one_hot
        super().__init__({
            "i_groups": In(stream.Signature(data.ArrayLayout(unsigned(max_bits), lanes))),
            "o_words": Out(stream.Signature(data_bits)),
            "bits": In(range(max_bits + 1)), "row_groups": In(24),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.packer = packer = self.packer
        group = compact_group(m, list(self.i_groups.payload), self.bits, one_hot=self._one_hot)
        wiring.connect(m, wiring.flipped(self.o_words), packer.o_words)
        m.d.comb += [packer.i_groups.payload.eq(group),
                     packer.i_groups.valid.eq(self.i_groups.valid),
                     self.i_groups.ready.eq(packer.i_groups.ready),
                     packer.bits.eq(self.bits), packer.row_groups.eq(self.row_groups)]
        return m


@pytest.mark.parametrize("one_hot", [False, True], ids=["mux", "one_hot"])
@pytest.mark.parametrize("bits", [1, 5, 8, 17, 32])
@pytest.mark.parametrize("stall", [0.0, 0.4], ids=["flow", "stalls"])
@pytest.mark.parametrize("lanes,data_bits", GEOMETRIES)
def test_packer_writes_rows_as_the_layout_stores_them(bits, stall, one_hot, lanes, data_bits):
    rng = np.random.default_rng(bits)
    layout = TensorLayout((6, 3, 5), bits, True, lanes, data_bits)
    x = tensor(rng, bits, True)
    hwc = np.zeros((3, 5, layout.channels), np.int64)
    hwc[:, :, :6] = np.moveaxis(x, 0, -1)
    groups = hwc.reshape(-1, lanes)
    dut = CompactingPacker(data_bits=data_bits, lanes=lanes, one_hot=one_hot)
    words = []
    pauses = random.Random(bits)
    expected_words = 3 * layout.row_words

    async def bench(ctx):
        ctx.set(dut.bits, bits)
        ctx.set(dut.row_groups, 5 * layout.groups)
        await ctx.tick()                    # registers take what follows from bits
        k = 0
        for _ in range(5000):
            offer = k < len(groups) and pauses.random() >= stall
            ctx.set(dut.i_groups.valid, offer)
            if offer:
                for e in range(lanes):
                    ctx.set(dut.i_groups.payload[e], int(groups[k][e]) & 0xFFFFFFFF)
            ready = pauses.random() >= stall
            ctx.set(dut.o_words.ready, ready)
            _, _, in_ready, valid, word = await ctx.tick().sample(
                dut.i_groups.ready, dut.o_words.valid, dut.o_words.payload)
            if offer and in_ready:
                k += 1
            if ready and valid:
                words.append(word)
            if len(words) == expected_words:
                break

    run_unit(dut, bench)
    data = b"".join(w.to_bytes(data_bits // 8, "little") for w in words)
    assert data == layout.pack(x)
