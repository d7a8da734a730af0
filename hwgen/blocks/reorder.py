"""Reorder: puts the elements of each frame of a stream in another order."""

import numpy as np
from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ._util import check_shape
from .timing import Pipe, Timed

__all__ = ["Reorder"]


class ReorderTiming(Pipe):
    """A frame leaves in its new order once all of it is in: the first beat two cycles after
    the last one arrives, then one per cycle."""

    def beat_times(self, times):
        start = times[-1] + 2
        return [start + k for k in range(len(times))]


class Reorder(Timed, wiring.Component):
    """Output element ``k`` of a frame is input element ``order[k]``; one element per beat.

    Two frame banks in one memory: a frame is written in arrival order into one bank while the
    frame before it is read out of the other in the new order (the order in a ROM), so frames
    pass at one element per cycle with a frame of delay. Used where two streams meet in
    different orders (a flattened feature map, which streams pixel by pixel, and a vector in
    C order at a residual add).

    Parameters
    ----------
    order : array of int
        A permutation of ``range(elements)``.
    shape : Amaranth shape
        Element type.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(shape, 1)))
    o_stream : Out(stream.Signature(ArrayLayout(shape, 1)))
    """

    def __init__(self, *, order, shape, name="reorder"):
        order = np.asarray(order)
        if (order.ndim != 1 or not np.issubdtype(order.dtype, np.integer) or order.size < 1
                or not np.array_equal(np.sort(order), np.arange(order.size))):
            raise ValueError(f"layer '{name}': order must be a permutation of "
                             f"range(elements), not {order!r}")
        self._order = order.astype(np.int64)
        self._shape = check_shape("shape", shape, name)
        layout = data.ArrayLayout(self._shape, 1)
        super().__init__({"i_stream": In(stream.Signature(layout)),
                          "o_stream": Out(stream.Signature(layout))})

    order = property(lambda self: self._order.copy())
    elements = property(lambda self: self._order.size)

    @classmethod
    def timing_of(cls, *, order, **_):
        return ReorderTiming(np.size(order), 2)

    timing = property(lambda self: self.timing_of(order=self._order))

    def reference(self, x):
        """``(..., elements)`` frames in the new order."""
        return np.asarray(x)[..., self._order]

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_stream, self.o_stream
        n = self.elements
        m.submodules.frames = frames = Memory(shape=unsigned(self._shape.width), depth=2 * n,
                                              init=[])
        m.submodules.order = order = Memory(shape=unsigned(max(1, (n - 1).bit_length())),
                                            depth=n, init=self._order.tolist())
        wr, rd = frames.write_port(), frames.read_port()
        source = order.read_port(domain="comb")

        full = Signal(2)
        set_full, clear_full = Signal(2), Signal(2)
        m.d.sync += full.eq((full | set_full) & ~clear_full)

        wbank, windex = Signal(), Signal(range(n))
        m.d.comb += [
            i.ready.eq(~full.bit_select(wbank, 1)),
            wr.addr.eq(Mux(wbank, n, 0) + windex),
            wr.data.eq(i.payload.as_value()),
            wr.en.eq(i.valid & i.ready),
        ]
        with m.If(wr.en):
            with m.If(windex == n - 1):
                m.d.sync += [windex.eq(0), wbank.eq(~wbank)]
                m.d.comb += set_full.bit_select(wbank, 1).eq(1)
            with m.Else():
                m.d.sync += windex.eq(windex + 1)

        # Reader: a beat is issued while the bank is full and the output register has room;
        # the memory's data then arrives with the output's valid, and both hold on a stall.
        rbank, rindex = Signal(), Signal(range(n))
        room, issue = Signal(), Signal()
        m.d.comb += [
            room.eq(~o.valid | o.ready),
            issue.eq(full.bit_select(rbank, 1) & room),
            source.addr.eq(rindex),
            rd.addr.eq(Mux(rbank, n, 0) + source.data),
            rd.en.eq(room),
            o.payload.eq(rd.data),
        ]
        with m.If(room):
            m.d.sync += o.valid.eq(issue)
        with m.If(issue):
            with m.If(rindex == n - 1):
                m.d.sync += [rindex.eq(0), rbank.eq(~rbank)]
                m.d.comb += clear_full.bit_select(rbank, 1).eq(1)
            with m.Else():
                m.d.sync += rindex.eq(rindex + 1)
        return m
