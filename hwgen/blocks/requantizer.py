"""Requantizer: the activation that rescales accumulators to the next layer's bit width."""

import numpy as np
from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from quant import numerics

from ..errors import FoldingError
from ._util import divisors, element_shape

__all__ = ["Requantizer"]


class Requantizer(wiring.Component):
    """``y = clamp((acc * M[c] + 2^(S-1)) >> S, lo, hi)`` on ``lanes`` channels per beat.

    Channels arrive in order, ``lanes`` per beat, so beat ``k`` of a frame carries channels
    ``k * lanes ... k * lanes + lanes - 1``. One register stage; full throughput.

    Parameters
    ----------
    multiplier : ndarray of int, shape (channels,)
    shift : int
    in_bits : int
        Width of the signed accumulators.
    lanes : int
    out_bits, out_signed : int, bool

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(signed(in_bits), lanes)))
    o_stream : Out(stream.Signature(ArrayLayout(out_shape, lanes)))
    """

    def __init__(self, *, multiplier, shift, in_bits, lanes, out_bits, out_signed=False,
                 name="requantize"):
        multiplier = np.asarray(multiplier, dtype=np.int64)
        channels = multiplier.size
        if lanes < 1 or channels % lanes:
            raise FoldingError(f"layer '{name}': lanes {lanes} does not divide channels "
                               f"{channels}; choose one of {', '.join(map(str, divisors(channels)))}")
        if (multiplier < 1).any():
            raise ValueError(f"layer '{name}': multiplier must be positive, not "
                             f"{int(multiplier.min())}")
        self._multiplier, self._shift = multiplier, int(shift)
        self._in_bits, self._lanes = in_bits, lanes
        self._out_bits, self._out_signed = out_bits, out_signed
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(signed(in_bits), lanes))),
            "o_stream": Out(stream.Signature(
                data.ArrayLayout(element_shape(out_bits, out_signed), lanes))),
        })

    channels = property(lambda self: self._multiplier.size)
    lanes = property(lambda self: self._lanes)
    shift = property(lambda self: self._shift)
    out_bits = property(lambda self: self._out_bits)
    out_signed = property(lambda self: self._out_signed)
    beats_per_frame = property(lambda self: self.channels // self._lanes)
    latency = 1

    def beat_times(self, times):
        """Output beat cycles of one frame, given its input beat cycles."""
        return [t + 1 for t in times]

    def reference(self, acc):
        return numerics.requantize(acc, self._multiplier, self._shift, self._out_bits,
                                   self._out_signed)

    def elaborate(self, platform):
        m = Module()
        folds = self.beats_per_frame
        fold = Signal(range(folds))
        lo, hi = numerics.int_range(self._out_bits, self._out_signed)
        mult = self._multiplier.reshape(folds, self._lanes)
        transfer = self.i_stream.valid & self.i_stream.ready
        m.d.comb += self.i_stream.ready.eq(~self.o_stream.valid | self.o_stream.ready)
        with m.If(self.o_stream.ready):
            m.d.sync += self.o_stream.valid.eq(0)
        with m.If(transfer):
            m.d.sync += [self.o_stream.valid.eq(1),
                         fold.eq(Mux(fold == folds - 1, 0, fold + 1))]
        for p in range(self._lanes):
            column = mult[:, p].tolist()
            if len(set(column)) == 1:
                factor = Const(column[0])
            else:
                factor = Array(Const(v) for v in column)[fold]
            scaled = self.i_stream.payload[p] * factor
            if self._shift:
                scaled = (scaled + (1 << (self._shift - 1))) >> self._shift
            y = Signal.like(scaled, name=f"scaled{p}")
            m.d.comb += y.eq(scaled)
            with m.If(transfer):
                m.d.sync += self.o_stream.payload[p].eq(
                    Mux(y < lo, lo, Mux(y > hi, hi, y)))
        return m
