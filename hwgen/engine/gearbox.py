"""Gearboxes between bus words and channel groups: the engine's tensors are packed at their
own element width (:mod:`hwgen.engine.layout`), its buffers hold one group of ``lanes``
elements a word.

:class:`Unpacker` turns the words of tensor rows into groups of elements, :class:`Packer`
groups into the words of rows. The element width is a run-time input (it changes from layer to
layer); a row is a run-time number of groups, and every row starts on a fresh word, so the
bits after a row's last group are dropped (unpacking) or written as zeros (packing).
"""

import functools
import math
import operator

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.numerics import is_int

__all__ = ["ONE_HOT_FAMILIES", "Unpacker", "Packer", "compact_group", "granule"]

#: Families whose groups are compacted by a one-hot of the element width
#: (:func:`compact_group`): on ECP5 the open flow's routing, not the LUTs, bounds the clock;
#: elsewhere the LUTs are scarcer.
ONE_HOT_FAMILIES = frozenset({"ecp5"})


def _check(name, value, least):
    if not is_int(value) or value < least:
        raise ValueError(f"{name} must be an integer of at least {least}, not {value!r}")
    return int(value)


def granule(*counts):
    """The largest power of two dividing every one of ``counts``: ``granule(data_bits, lanes)``
    divides every count of bits a gearbox's buffer holds (sums of its words and of its groups
    of ``lanes`` elements of any width), ``granule(lanes)`` every group's width."""
    common = math.gcd(*counts)
    return common & -common


def _shift(value, by, step, *, left):
    """``value`` shifted by ``by`` bits, a multiple of ``step`` (a power of two): the amount's
    low bits are constant zeros, so the shifter has a stage only per bit above them."""
    low = step.bit_length() - 1
    by = Cat(C(0, low), by[low:])
    return value << by if left else value >> by


def _select(m, options, index, width, name):
    """``options[index]`` for a run-time ``index`` (a mux over the options)."""
    out = Signal(width, name=name)
    with m.Switch(index):
        for key, value in options.items():
            with m.Case(key):
                m.d.comb += out.eq(value)
    return out


def compact_group(m, elements, bits, *, one_hot, name="group"):
    """A group as rows store it (what :class:`Packer` takes): the low ``bits`` bits of each of
    ``elements`` (values of one width), the first lowest, from bit 0, for a run-time ``bits``
    (1 to the elements' width) that the choice registers (set it a cycle ahead). The
    choice is a multiplexer on the width or, ``one_hot``, each width gated by a one-hot flag
    and the choices ORed (shallower logic, a third more LUTs)."""
    top = len(elements[0])
    at = {b: Cat(*(element[:b] for element in elements)) for b in range(1, top + 1)}
    group = Signal(len(elements) * top, name=name)
    if one_hot:
        chosen = Signal(top + 1, name=f"{name}_width")
        m.d.sync += chosen.eq(1 << bits)
        m.d.comb += group.eq(functools.reduce(operator.or_, (
            Mux(chosen[b], value, 0) for b, value in at.items())))
    else:
        width = Signal.like(bits, name=f"{name}_bits")
        m.d.sync += width.eq(bits)
        m.d.comb += group.eq(_select(m, at, width, len(group), f"{name}_chosen"))
    return group


class Unpacker(wiring.Component):
    """Words of rows in, groups of ``lanes`` elements out.

    Run-time inputs, constant over a row: ``bits`` (element width, 1..``max_bits``; what
    follows from it is registered, so it may change only while the buffer is empty: with
    nothing held no group leaves, and a word's place does not depend on it), ``is_signed``
    (likewise when ``one_hot``), ``row_groups`` (groups per row; likewise) and ``row_words``
    (words per row). Each element
    is sign- or zero-extended to ``element_bits`` (signed). ``one_hot`` chooses each element's
    bits by a registered one-hot of the width (and of the width of signed elements), gated
    and ORed, rather than by a multiplexer on the width (as :func:`compact_group` does).
    A word offered and not taken must be the next word offered, as a stream's rules make it.

    Members
    -------
    i_words : In(stream.Signature(data_bits))
    o_groups : Out(stream.Signature(ArrayLayout(signed(element_bits), lanes)))
    bits, is_signed, row_groups, row_words : In
    """

    def __init__(self, *, data_bits, lanes, max_bits=16, element_bits=17, one_hot=False):
        self._one_hot = bool(one_hot)
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
        # From ``bits`` and ``row_groups`` alone, registered (off the path from the buffer's
        # state to ``ready``, which goes on to the bus): the element width, a group's width,
        # the most bits held that leave room for a word once a group has left, and the index
        # of the row's last group.
        bits = Signal.like(self.bits)
        group_bits = Signal(range(lanes * top + 1))
        room_emit = Signal(range(width + 1))
        last_group = Signal(24)
        width_of = _select(m, {b: b * lanes for b in range(1, top + 1)}, self.bits,
                           range(lanes * top + 1), "width_of")
        m.d.sync += [bits.eq(self.bits), group_bits.eq(width_of),
                     room_emit.eq(width - d + width_of), last_group.eq(self.row_groups - 1)]
        out, inp = self.o_groups, self.i_words
        # A group leaves from the low bits when it is all there; a word comes in above the bits
        # held while it fits and belongs to this row. After the row's last group, what is left
        # of its last word is padding.
        emit = Signal()
        row_end = Signal()
        m.d.comb += [
            # (A group has bits: nothing leaves an empty buffer, whatever the registers still
            # hold from before ``bits`` was set.)
            out.valid.eq((have != 0) & (have >= group_bits)),
            emit.eq(out.valid & out.ready),
            row_end.eq(emit & (groups == last_group)),
        ]
        # Where a word goes, with and without a group leaving, both shifted from registers (the
        # choice comes last: it waits on the comparison of ``have``).
        after, after_emit = Signal(range(width + 1)), Signal(range(width + 1))
        m.d.comb += [after_emit.eq(have - group_bits), after.eq(Mux(emit, after_emit, have))]
        fits = Mux(emit, have <= room_emit, have <= width - d)
        m.d.comb += inp.ready.eq((words != self.row_words) & fits & ~row_end)
        take = inp.valid & inp.ready
        # A word offered goes into the buffer whether or not it is taken (so the handshake,
        # which waits on the buffer's state and on the bus, stays out of the buffer's logic):
        # untaken, it lands above the bits held, where nothing reads, and moves with them; a
        # stream's payload holds until taken, so it lands there again, the same, when it is.
        shifted = _shift(buf, group_bits, granule(lanes), left=False)
        kept = Mux(emit, shifted, buf)
        step = granule(d, lanes)
        placed = Mux(emit, _shift(inp.payload, after_emit, step, left=True),
                     _shift(inp.payload, have, step, left=True))
        with m.If(row_end):
            m.d.sync += [buf.eq(0), have.eq(0), groups.eq(0), words.eq(0)]
        with m.Else():
            m.d.sync += [buf.eq(kept | Mux(inp.valid, placed, 0)),
                         have.eq(after + Mux(take, d, 0)),
                         groups.eq(groups + emit), words.eq(words + take)]
        # Elements of the group at the bottom of the buffer.
        if self._one_hot:
            # Flags of the element width and, for signed elements, again (registered with
            # ``bits``; ``is_signed`` changes with it).
            is_width, is_signed_width = Signal(top + 1), Signal(top + 1)
            m.d.sync += [is_width.eq(1 << self.bits),
                         is_signed_width.eq(Mux(self.is_signed, 1 << self.bits, 0))]
        for e in range(lanes):
            element = Signal(signed(self._element_bits), name=f"element{e}")
            if self._one_hot:
                # Bit j: bit j of the element of width b > j, or the sign of one of b <= j.
                m.d.comb += element.eq(Cat(*(functools.reduce(operator.or_, (
                    (is_width[b] & buf[e * b + j]) if b > j else
                    (is_signed_width[b] & buf[e * b + b - 1]) for b in range(1, top + 1)))
                    for j in range(self._element_bits))))
            else:
                with m.Switch(bits):
                    for b in range(1, top + 1):
                        raw = buf[e * b:e * b + b]
                        with m.Case(b):
                            m.d.comb += element.eq(Mux(self.is_signed, raw.as_signed(),
                                                       raw.as_unsigned()))
            m.d.comb += out.payload[e].eq(element)
        return m


class Packer(wiring.Component):
    """Groups of ``lanes`` elements in, words of rows out.

    Each group comes compacted (:func:`compact_group`): its elements' ``bits`` bits each, from
    bit 0, so the packer only places it (the choice of element bits, made before the output
    buffer, stays out of the placing shifter's cycle).

    Run-time inputs, constant over a row: ``bits`` (element width, 1..``max_bits``; set a
    cycle before the row's first group, since what follows from it is registered) and
    ``row_groups`` (groups per row; likewise). A row's last word is padded with zeros. A group
    offered and not taken must be the next group offered, as a stream's rules make it.

    Members
    -------
    i_groups : In(stream.Signature(lanes * max_bits))
    o_words : Out(stream.Signature(data_bits))
    bits, row_groups : In
    """

    def __init__(self, *, data_bits, lanes, max_bits=32):
        self._data_bits = _check("data_bits", data_bits, 8)
        self._lanes = _check("lanes", lanes, 1)
        self._max_bits = _check("max_bits", max_bits, 1)
        super().__init__({
            "i_groups": In(stream.Signature(lanes * max_bits)),
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
        # From ``bits`` and ``row_groups`` alone, registered (off the path from the handshakes
        # to the buffer): a group's width, the most bits held that leave room for it (and
        # the most once a word has left), and the index of the row's last group.
        group_bits = Signal(range(lanes * top + 1))
        room, room_send = Signal(range(width + 1)), Signal(range(width + d + 1))
        last_group = Signal(24)
        width_of = _select(m, {b: b * lanes for b in range(1, top + 1)}, self.bits,
                           range(lanes * top + 1), "width_of")
        m.d.sync += [group_bits.eq(width_of), room.eq(width - width_of),
                     room_send.eq(width + d - width_of), last_group.eq(self.row_groups - 1)]
        packed = self.i_groups.payload
        out, inp = self.o_words, self.i_groups
        send, full_word = Signal(), Signal()
        m.d.comb += [
            full_word.eq(have >= d),
            out.valid.eq(full_word | (flushing & (have != 0))),
            out.payload.eq(buf[:d]),
            send.eq(out.valid & out.ready),
        ]
        # Where a group goes, with and without a word leaving, both shifted from registers (the
        # choice comes last).
        after, after_send = Signal(range(width + 1)), Signal(range(width + 1))
        m.d.comb += [after_send.eq(Mux(full_word, have - d, 0)),
                     after.eq(Mux(send, after_send, have))]
        # Whether the group fits, from comparisons of ``have`` alone (``send`` only chooses).
        fits = Mux(send, ~full_word | (have <= room_send), have <= room)
        m.d.comb += inp.ready.eq(~flushing & fits)
        take = inp.valid & inp.ready
        # A group offered goes into the buffer whether or not it is taken, as in the
        # unpacker (above the bits held, the same again when taken), except while the row's
        # last word is flushed: what lies above the bits held then leaves as its padding.
        kept = Mux(send, buf >> d, buf)
        step = granule(d, lanes)
        placed = Mux(send, _shift(packed, after_send, step, left=True),
                     _shift(packed, have, step, left=True))
        m.d.sync += [buf.eq(kept | Mux(inp.valid & ~flushing, placed, 0)),
                     have.eq(after + Mux(take, group_bits, 0))]
        last = take & (groups == last_group)
        with m.If(last):
            m.d.sync += [groups.eq(0), flushing.eq(1)]
        with m.Elif(take):
            m.d.sync += groups.eq(groups + 1)
        with m.If(flushing & ((after == 0) & ~take)):
            m.d.sync += flushing.eq(0)
        return m
