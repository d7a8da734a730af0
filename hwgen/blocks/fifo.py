"""StreamFifo: a first-in first-out buffer on a stream (the skip path of a residual block)."""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .timing import Pipe, Timed
from ._util import check_count, check_shape

__all__ = ["StreamFifo"]


class StreamFifo(Timed, wiring.Component):
    """Holds up to ``depth`` beats of a stream; ``depth == 0`` is a plain connection.

    With ``depth >= 1`` a beat taken in cycle ``t`` can leave in cycle ``t + 1`` (``latency``),
    and one beat per cycle passes through whatever the depth, even when full: a beat may enter
    in the cycle one leaves. The head sits in an output register; the other ``depth - 1`` beats
    in a memory (``memory_depth`` words, block or distributed RAM) that is read one cycle ahead.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(shape, lanes)))
    o_stream : Out(stream.Signature(ArrayLayout(shape, lanes)))
    """

    def __init__(self, *, shape, lanes, depth, name="fifo"):
        shape = check_shape("shape", shape, name)
        lanes = check_count("lanes", lanes, name)
        depth = check_count("depth", depth, name, minimum=0)
        self._shape, self._lanes, self._depth = shape, lanes, depth
        layout = data.ArrayLayout(shape, lanes)
        super().__init__({
            "i_stream": In(stream.Signature(layout)),
            "o_stream": Out(stream.Signature(layout)),
        })

    shape = property(lambda self: self._shape)
    lanes = property(lambda self: self._lanes)
    depth = property(lambda self: self._depth)
    memory_depth = property(lambda self: max(0, self._depth - 1))

    @classmethod
    def timing_of(cls, *, depth, **_):
        """A beat entering the empty FIFO leaves a cycle later (at once when ``depth`` is 0);
        ``cycles_per_frame`` is not the FIFO's (it passes any frame), so it is 0."""
        return Pipe(0, 1 if depth else 0)

    timing = property(lambda self: self.timing_of(depth=self._depth))

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_stream, self.o_stream
        if self._depth == 0:
            wiring.connect(m, wiring.flipped(i), wiring.flipped(o))
            return m
        room = Signal()
        m.d.comb += room.eq(~o.valid | o.ready)
        words = self._depth - 1
        if words == 0:
            m.d.comb += i.ready.eq(room)
            with m.If(room):
                m.d.sync += [o.valid.eq(i.valid), o.payload.eq(i.payload)]
            return m

        width = len(i.payload.as_value())
        m.submodules.storage = storage = Memory(shape=unsigned(width), depth=words, init=[])
        wr = storage.write_port()
        rd = storage.read_port(transparent_for=(wr,))
        count = Signal(range(words + 1))
        produce, consume = Signal(range(words)), Signal(range(words))
        from_memory, bypass, take, write = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [
            from_memory.eq(room & (count != 0)),
            bypass.eq(room & (count == 0)),
            i.ready.eq((count != words) | room),
            take.eq(i.valid & i.ready),
            write.eq(take & ~bypass),
            wr.addr.eq(produce),
            wr.data.eq(i.payload.as_value()),
            wr.en.eq(write),
            rd.addr.eq(Mux(from_memory, Mux(consume == words - 1, 0, consume + 1), consume)),
        ]
        with m.If(room):
            m.d.sync += [
                o.valid.eq(from_memory | take),
                o.payload.eq(Mux(from_memory, rd.data, i.payload.as_value())),
            ]
        with m.If(write):
            m.d.sync += produce.eq(Mux(produce == words - 1, 0, produce + 1))
        with m.If(from_memory):
            m.d.sync += consume.eq(Mux(consume == words - 1, 0, consume + 1))
        m.d.sync += count.eq(count + write - from_memory)
        return m
