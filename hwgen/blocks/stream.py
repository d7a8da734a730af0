"""Stream helpers: width conversion between blocks with different beats, and a
reinterpretation of unsigned elements as signed ones."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..errors import FoldingError
from ._util import check_count, element_shape
from .timing import ConverterTiming, Pipe, Timed

__all__ = ["WidthConverter", "AsSigned"]


class WidthConverter(Timed, wiring.Component):
    """Regroups a stream of ``in_count`` elements per beat into ``out_count`` per beat.

    One count must divide the other: gathering ``k`` beats into one or splitting one beat into
    ``k``. Element order is kept; full throughput on the narrow side.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(shape, in_count)))
    o_stream : Out(stream.Signature(ArrayLayout(shape, out_count)))
    """

    def __init__(self, *, shape, in_count, out_count, elements=None, name="stream"):
        if max(in_count, out_count) % min(in_count, out_count):
            raise FoldingError(f"layer '{name}': a stream of {in_count} elements per beat cannot "
                               f"feed one of {out_count} per beat; one must divide the other")
        self._shape, self._in_count, self._out_count = shape, in_count, out_count
        self._elements = elements
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(shape, in_count))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(shape, out_count))),
        })

    in_count = property(lambda self: self._in_count)
    out_count = property(lambda self: self._out_count)

    @classmethod
    def timing_of(cls, *, in_count, out_count, elements=None, **_):
        """One narrow beat per cycle: gathering sends a beat a cycle after its last part;
        splitting takes a beat in the cycle the last part of the one before leaves.
        ``elements`` per frame sets ``cycles_per_frame`` (one beat if not given)."""
        return ConverterTiming(elements or max(in_count, out_count), in_count, out_count)

    @property
    def timing(self):
        return self.timing_of(in_count=self._in_count, out_count=self._out_count,
                              elements=self._elements)

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_stream, self.o_stream
        if self._in_count == self._out_count:
            wiring.connect(m, wiring.flipped(i), wiring.flipped(o))
            return m
        if self._out_count > self._in_count:
            k = self._out_count // self._in_count
            parts = [Signal.like(i.payload.as_value(), name=f"part{n}") for n in range(k - 1)]
            count = Signal(range(k))
            at_last = count == k - 1
            m.d.comb += i.ready.eq(~at_last | ~o.valid | o.ready)
            with m.If(o.ready):
                m.d.sync += o.valid.eq(0)
            with m.If(i.valid & i.ready):
                with m.If(at_last):
                    m.d.sync += [count.eq(0), o.valid.eq(1),
                                 o.payload.eq(Cat(*parts, i.payload.as_value()))]
                with m.Else():
                    m.d.sync += count.eq(count + 1)
                    with m.Switch(count):
                        for n in range(k - 1):
                            with m.Case(n):
                                m.d.sync += parts[n].eq(i.payload.as_value())
            return m
        k = self._in_count // self._out_count
        # The held beat shifts down one part per output beat: no variable-index multiplexer
        # (whose index scaling synthesis could map onto a DSP).
        held = Signal.like(i.payload.as_value())
        full = Signal()
        index = Signal(range(k))
        width = len(o.payload.as_value())
        m.d.comb += [o.valid.eq(full), o.payload.eq(held[:width])]
        done = o.ready & (index == k - 1)
        m.d.comb += i.ready.eq(~full | done)
        with m.If(o.valid & o.ready):
            m.d.sync += [index.eq(index + 1), held.eq(held >> width)]
            with m.If(index == k - 1):
                m.d.sync += [index.eq(0), full.eq(0)]
        with m.If(i.valid & i.ready):
            m.d.sync += [held.eq(i.payload.as_value()), full.eq(1)]
        return m


class AsSigned(Timed, wiring.Component):
    """Passes an unsigned stream on as signed elements one bit wider (wiring, no register).

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(unsigned(bits), lanes)))
    o_stream : Out(stream.Signature(ArrayLayout(signed(bits + 1), lanes)))
    """

    def __init__(self, *, bits, lanes, name="signed"):
        self._bits = check_count("bits", bits, name)
        self._lanes = check_count("lanes", lanes, name)
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(element_shape(bits, False),
                                                               lanes))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(element_shape(bits + 1, True),
                                                                lanes))),
        })

    @classmethod
    def timing_of(cls, **_):
        """Each beat passes in the cycle it arrives."""
        return Pipe(0, 0)

    timing = property(lambda self: self.timing_of())

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.o_stream.valid.eq(self.i_stream.valid),
                     self.i_stream.ready.eq(self.o_stream.ready)]
        for p in range(self._lanes):
            m.d.comb += self.o_stream.payload[p].eq(self.i_stream.payload[p])
        return m
