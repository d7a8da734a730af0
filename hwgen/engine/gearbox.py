"""Gearboxes between bus words and channel groups: the engine's tensors are packed at their
own element width (:mod:`hwgen.engine.layout`), its buffers hold one group of ``lanes``
elements a word.

:class:`Unpacker` turns the words of tensor rows into groups of elements, :class:`Packer`
groups into the words of rows. The element width is a run-time input (it changes from layer to
layer); a row is a run-time number of groups, and every row starts on a fresh word, so the
bits after a row's last group are dropped (unpacking) or written as zeros (packing).
"""

import functools
import operator

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.numerics import is_int

__all__ = ["Unpacker", "Packer"]


def _check(name, value, least):
    if not is_int(value) or value < least:
        raise ValueError(f"{name} must be an integer of at least {least}, not {value!r}")
    return int(value)


def _select(m, options, index, width, name):
    """``options[index]`` for a run-time ``index`` (a mux over the options)."""
    out = Signal(width, name=name)
    with m.Switch(index):
        for key, value in options.items():
            with m.Case(key):
                m.d.comb += out.eq(value)
    return out


class Unpacker(wiring.Component):
    """Words of rows in, groups of ``lanes`` elements out.

    Run-time inputs, constant over a row: ``bits`` (element width, 1..``max_bits``),
    ``is_signed``, ``row_groups`` (groups per row) and ``row_words`` (words per row). Each
    element is sign- or zero-extended to ``element_bits`` (signed).

    Members
    -------
    i_words : In(stream.Signature(data_bits))
    o_groups : Out(stream.Signature(ArrayLayout(signed(element_bits), lanes)))
    bits, is_signed, row_groups, row_words : In
    """

    def __init__(self, *, data_bits, lanes, max_bits=16, element_bits=17):
        self._data_bits = _check("data_bits", data_bits, 8)
        self._lanes = _check("lanes", lanes, 1)
        self._max_bits = _check("max_bits", max_bits, 1)
        self._element_bits = _check("element_bits", element_bits, max_bits + 1)
        super().__init__({
            "i_words": In(stream.Signature(data_bits)),
            "o_groups": Out(stream.Signature(data.ArrayLayout(signed(element_bits), lanes))),
            "bits": In(range(max_bits + 1)),
            "is_signed": In(1),
            "row_groups": In(24),
            "row_words": In(16),
        })

    def elaborate(self, platform):
        m = Module()
        d, lanes, top = self._data_bits, self._lanes, self._max_bits
        width = d + lanes * top
        buf = Signal(width)
        have = Signal(range(width + 1))
        groups, words = Signal(24), Signal(16)      # emitted and taken in this row
        group_bits = _select(m, {b: b * lanes for b in range(1, top + 1)}, self.bits,
                             range(lanes * top + 1), "group_bits")
        out, inp = self.o_groups, self.i_words
        # A group leaves from the low bits when it is all there; a word comes in above the bits
        # held while it fits and belongs to this row. After the row's last group, what is left
        # of its last word is padding.
        emit = Signal()
        row_end = Signal()
        m.d.comb += [
            out.valid.eq(have >= group_bits),
            emit.eq(out.valid & out.ready),
            row_end.eq(emit & (groups == self.row_groups - 1)),
        ]
        # Where a word goes, with and without a group leaving, both shifted from registers (the
        # choice comes last: it waits on the comparison of ``have``).
        after, after_emit = Signal(range(width + 1)), Signal(range(width + 1))
        m.d.comb += [after_emit.eq(have - group_bits), after.eq(Mux(emit, after_emit, have))]
        m.d.comb += inp.ready.eq((words != self.row_words) & (after <= width - d) & ~row_end)
        take = inp.valid & inp.ready
        shifted = _select(m, {b: buf >> (b * lanes) for b in range(1, top + 1)}, self.bits,
                          width, "shifted")
        kept = Mux(emit, shifted, buf)
        placed, placed_emit, placed_kept = Signal(width), Signal(width), Signal(width)
        m.d.comb += [placed_emit.eq(inp.payload << after_emit),
                     placed_kept.eq(inp.payload << have),
                     placed.eq(Mux(emit, placed_emit, placed_kept))]
        with m.If(row_end):
            m.d.sync += [buf.eq(0), have.eq(0), groups.eq(0), words.eq(0)]
        with m.Else():
            m.d.sync += [buf.eq(kept | Mux(take, placed, 0)),
                         have.eq(after + Mux(take, d, 0)),
                         groups.eq(groups + emit), words.eq(words + take)]
        # Elements of the group at the bottom of the buffer.
        for e in range(lanes):
            options = {}
            for b in range(1, top + 1):
                raw = buf[e * b:e * b + b]
                options[b] = Mux(self.is_signed, raw.as_signed(), raw.as_unsigned())
            element = Signal(signed(self._element_bits), name=f"element{e}")
            with m.Switch(self.bits):
                for b, value in options.items():
                    with m.Case(b):
                        m.d.comb += element.eq(value)
            m.d.comb += out.payload[e].eq(element)
        return m


class Packer(wiring.Component):
    """Groups of ``lanes`` elements in, words of rows out.

    Run-time inputs, constant over a row: ``bits`` (element width, 1..``max_bits``; an
    element's low ``bits`` bits are stored; set a cycle before the row's first group, since
    the group width and the choice of element bits are registered from it) and ``row_groups``
    (groups per row). A row's last word is padded with zeros.

    ``one_hot`` chooses the elements' bits by a one-hot of the width, each choice gated and
    the choices ORed (shallower logic, a third more LUTs: where routing limits the clock, as
    on ECP5), rather than by a multiplexer on the width.

    Members
    -------
    i_groups : In(stream.Signature(ArrayLayout(element_bits, lanes)))
    o_words : Out(stream.Signature(data_bits))
    bits, row_groups : In
    """

    def __init__(self, *, data_bits, lanes, max_bits=32, one_hot=False):
        self._data_bits = _check("data_bits", data_bits, 8)
        self._lanes = _check("lanes", lanes, 1)
        self._max_bits = _check("max_bits", max_bits, 1)
        self._one_hot = bool(one_hot)
        super().__init__({
            "i_groups": In(stream.Signature(data.ArrayLayout(unsigned(max_bits), lanes))),
            "o_words": Out(stream.Signature(data_bits)),
            "bits": In(range(max_bits + 1)),
            "row_groups": In(24),
        })

    def elaborate(self, platform):
        m = Module()
        d, lanes, top = self._data_bits, self._lanes, self._max_bits
        width = d + lanes * top
        buf = Signal(width)
        have = Signal(range(width + 1))
        groups = Signal(24)                  # taken in this row
        flushing = Signal()                  # the row's groups are all in: empty the buffer
        # From ``bits`` alone, registered (off the path from the handshakes to the buffer):
        # a group's width, the room it needs, and which element width to pack.
        group_bits, room = Signal(range(lanes * top + 1)), Signal(range(width + 1))
        width_of = _select(m, {b: b * lanes for b in range(1, top + 1)}, self.bits,
                           range(lanes * top + 1), "width_of")
        m.d.sync += [group_bits.eq(width_of), room.eq(width - width_of)]
        groups_at = {b: Cat(*(self.i_groups.payload[e][:b] for e in range(lanes)))
                     for b in range(1, top + 1)}
        if self._one_hot:
            chosen = Signal(top + 1)
            m.d.sync += chosen.eq(1 << self.bits)
            packed = Signal(lanes * top)
            m.d.comb += packed.eq(functools.reduce(operator.or_, (
                Mux(chosen[b], group, 0) for b, group in groups_at.items())))
        else:
            bits = Signal.like(self.bits)
            m.d.sync += bits.eq(self.bits)
            packed = _select(m, groups_at, bits, lanes * top, "packed")
        out, inp = self.o_words, self.i_groups
        send = Signal()
        m.d.comb += [
            out.valid.eq((have >= d) | (flushing & (have != 0))),
            out.payload.eq(buf[:d]),
            send.eq(out.valid & out.ready),
        ]
        # Where a group goes, with and without a word leaving, both shifted from registers (the
        # choice comes last).
        after, after_send = Signal(range(width + 1)), Signal(range(width + 1))
        m.d.comb += [after_send.eq(Mux(have >= d, have - d, 0)),
                     after.eq(Mux(send, after_send, have))]
        m.d.comb += inp.ready.eq(~flushing & (after <= room))
        take = inp.valid & inp.ready
        kept = Mux(send, buf >> d, buf)
        placed, placed_send, placed_kept = Signal(width), Signal(width), Signal(width)
        m.d.comb += [placed_send.eq(packed << after_send), placed_kept.eq(packed << have),
                     placed.eq(Mux(send, placed_send, placed_kept))]
        m.d.sync += [buf.eq(kept | Mux(take, placed, 0)),
                     have.eq(after + Mux(take, group_bits, 0))]
        last = take & (groups == self.row_groups - 1)
        with m.If(last):
            m.d.sync += [groups.eq(0), flushing.eq(1)]
        with m.Elif(take):
            m.d.sync += groups.eq(groups + 1)
        with m.If(flushing & ((after == 0) & ~take)):
            m.d.sync += flushing.eq(0)
        return m
