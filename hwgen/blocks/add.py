"""Add: the exact elementwise sum of two streams (the join of a residual connection)."""

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from quant import numerics

from ..errors import FoldingError
from .timing import Join, Timed
from ._util import check_count, check_shape, divisors, element_shape

__all__ = ["Add"]


class Add(Timed, wiring.Component):
    """``y = x + skip`` element by element, exact, ``lanes`` elements per beat.

    The two inputs may have different element widths and signedness; the output is wide
    enough for every sum: ``[lo_x + lo_skip, hi_x + hi_skip]`` gives ``out_bits`` and
    ``out_signed``. A beat is taken from both inputs in the same cycle, and only then; one
    register stage, one beat per cycle. On a residual connection the skip input comes through
    a :class:`~hwgen.blocks.fifo.StreamFifo` deep enough to hold the beats that enter the block
    while the main branch produces its first ones.

    Parameters
    ----------
    elements : int
        Elements per frame (``channels * height * width``).
    lanes : int
        Elements per beat; divides ``elements``.
    shape, skip_shape : Amaranth shapes
        Element types of ``i_stream`` and ``i_skip`` (``skip_shape`` defaults to ``shape``).

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(shape, lanes)))
    i_skip : In(stream.Signature(ArrayLayout(skip_shape, lanes)))
    o_stream : Out(stream.Signature(ArrayLayout(out_shape, lanes)))
    """

    def __init__(self, *, elements, lanes, shape, skip_shape=None, name="add"):
        elements = check_count("elements", elements, name)
        lanes = check_count("lanes", lanes, name)
        shape = check_shape("shape", shape, name)
        skip_shape = shape if skip_shape is None else check_shape("skip_shape", skip_shape, name)
        if elements % lanes:
            raise FoldingError(f"layer '{name}': lanes {lanes} does not divide elements "
                               f"{elements}; choose one of "
                               f"{', '.join(map(str, divisors(elements)))}")
        self._out_shape = self.out_shape_of(shape, skip_shape)
        self._elements, self._lanes, self._name = elements, lanes, name
        self._shape, self._skip_shape = shape, skip_shape
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(shape, lanes))),
            "i_skip": In(stream.Signature(data.ArrayLayout(skip_shape, lanes))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(self._out_shape, lanes))),
        })

    elements = property(lambda self: self._elements)
    lanes = property(lambda self: self._lanes)
    shape = property(lambda self: self._shape)
    skip_shape = property(lambda self: self._skip_shape)
    out_shape = property(lambda self: self._out_shape)
    out_bits = property(lambda self: self._out_shape.width)
    out_signed = property(lambda self: self._out_shape.signed)
    beats_per_frame = property(lambda self: self._elements // self._lanes)

    @staticmethod
    def out_shape_of(shape, skip_shape):
        """The element shape that holds every sum of elements of the two shapes."""
        lo_x, hi_x = numerics.int_range(shape.width, shape.signed)
        lo_s, hi_s = numerics.int_range(skip_shape.width, skip_shape.signed)
        return element_shape(*numerics.bits_for_range(lo_x + lo_s, hi_x + hi_s))

    @classmethod
    def timing_of(cls, *, elements, lanes, **_):
        """A beat leaves one cycle after both its halves are there (and after the previous
        beat); ``beat_times(times, skip_times)``, the skip input "always there" if omitted."""
        return Join(elements // lanes)

    timing = property(lambda self: self.timing_of(elements=self._elements, lanes=self._lanes))

    def reference(self, x, skip):
        x, skip = np.asarray(x, dtype=np.int64), np.asarray(skip, dtype=np.int64)
        if x.shape != skip.shape:
            raise ValueError(f"layer '{self._name}': inputs must have equal shapes, not "
                             f"{x.shape} and {skip.shape}")
        return x + skip

    def elaborate(self, platform):
        m = Module()
        x, skip, o = self.i_stream, self.i_skip, self.o_stream
        room = Signal()
        m.d.comb += [
            room.eq(~o.valid | o.ready),
            x.ready.eq(skip.valid & room),
            skip.ready.eq(x.valid & room),
        ]
        with m.If(o.ready):
            m.d.sync += o.valid.eq(0)
        with m.If(x.valid & skip.valid & room):
            m.d.sync += o.valid.eq(1)
            m.d.sync += [o.payload[p].eq(x.payload[p] + skip.payload[p])
                         for p in range(self._lanes)]
        return m
