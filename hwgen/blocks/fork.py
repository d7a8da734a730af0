"""Broadcast: one stream to several consumers (the fork of a residual connection)."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .timing import Pipe, Timed
from ._util import check_count, check_shape

__all__ = ["Broadcast"]


class Broadcast(Timed, wiring.Component):
    """Offers every beat of ``i_stream`` on each of ``outputs`` streams; no register.

    Each output takes the beat when it is ready, in the same cycle as the others or later; a
    flag remembers which outputs have it, and the input beat is released in the cycle the last
    one takes it. So a consumer that waits never stops the others from taking the current beat
    (only the next one), and no output's ``valid`` depends on another output's ``ready``.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(shape, lanes)))
    o_streams : Out(stream.Signature(ArrayLayout(shape, lanes))).array(outputs)
    """

    def __init__(self, *, shape, lanes, outputs=2, name="fork"):
        shape = check_shape("shape", shape, name)
        lanes = check_count("lanes", lanes, name)
        outputs = check_count("outputs", outputs, name, minimum=2)
        self._outputs = outputs
        signature = stream.Signature(data.ArrayLayout(shape, lanes))
        super().__init__({
            "i_stream": In(signature),
            "o_streams": Out(signature).array(outputs),
        })

    outputs = property(lambda self: self._outputs)

    @classmethod
    def timing_of(cls, **_):
        """No register: a beat is offered on every output in the cycle it arrives (the
        scheduler delays it until every reader takes it)."""
        return Pipe(0, 0)

    timing = property(lambda self: self.timing_of())

    def elaborate(self, platform):
        m = Module()
        i = self.i_stream
        sent = Signal(self._outputs)   # outputs that already took the current beat
        done = [sent[n] | self.o_streams[n].ready for n in range(self._outputs)]
        m.d.comb += i.ready.eq(Cat(*done).all())
        for n, o in enumerate(self.o_streams):
            m.d.comb += [o.valid.eq(i.valid & ~sent[n]), o.payload.eq(i.payload)]
        with m.If(i.valid):
            with m.If(i.ready):
                m.d.sync += sent.eq(0)
            with m.Else():
                m.d.sync += [sent[n].eq(done[n]) for n in range(self._outputs)]
        return m

