"""Requantizer: the activation that rescales accumulators to the next layer's bit width."""

import numpy as np
from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from quant import numerics

from .. import packing
from ..errors import FoldingError
from ._util import divisors, element_shape, tree_sum

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
    multiplier : Multiplier or str
        Hardware multiplier geometry (a :data:`hwgen.packing.MULTIPLIERS` key). Each lane's
        ``acc * M`` is split into pieces that fit it, so synthesis maps every piece onto exactly
        one multiplier and :attr:`dsp_count` is exact. Lanes whose multiplier is the same power
        of two in every fold become shifts.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(signed(in_bits), lanes)))
    o_stream : Out(stream.Signature(ArrayLayout(out_shape, lanes)))
    """

    def __init__(self, *, multiplier, shift, in_bits, lanes, out_bits, out_signed=False,
                 geometry="xc7", name="requantize"):
        self._geometry = packing.as_multiplier(geometry)
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

    def _pieces(self, column):
        """How lane ``acc * M`` is built: ``("shift", k)`` or ``("multiply", a, b)`` pieces.

        ``a`` pieces of the signed accumulator times ``b`` pieces of the unsigned multiplier;
        every piece fits the hardware multiplier's signed ports (unsigned pieces one bit
        narrower than the port).
        """
        values = set(column)
        if len(values) == 1 and (v := values.pop()) & (v - 1) == 0:
            return ("shift", v.bit_length() - 1)
        a_port, b_port = self._geometry.a_bits, self._geometry.b_bits
        m_bits = max(int(max(column)).bit_length(), 1)
        a = 1 if self._in_bits <= a_port else 1 + -(-(self._in_bits - a_port) // (a_port - 1))
        b = -(-m_bits // (b_port - 1))
        return ("multiply", a, b)

    @property
    def dsp_count(self):
        """Hardware multipliers used: one per accumulator piece x multiplier piece per lane."""
        mult = self._multiplier.reshape(self.beats_per_frame, self._lanes)
        pieces = [self._pieces(mult[:, p].tolist()) for p in range(self._lanes)]
        return sum(p[1] * p[2] for p in pieces if p[0] == "multiply")

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
        a_port, b_port = self._geometry.a_bits, self._geometry.b_bits
        for p in range(self._lanes):
            column = mult[:, p].tolist()
            acc = self.i_stream.payload[p]
            pieces = self._pieces(column)
            if pieces[0] == "shift":
                scaled = acc << pieces[1]
            else:
                m_bits = max(int(max(column)).bit_length(), 1)
                if len(set(column)) == 1:
                    factor = Const(column[0], m_bits)
                else:
                    factor = Array(Const(v, m_bits) for v in column)[fold]
                # Low accumulator pieces are unsigned (a_port - 1 bits), the top one signed.
                a_cuts = [(i * (a_port - 1), min((i + 1) * (a_port - 1), self._in_bits))
                          for i in range(pieces[1])]
                a_cuts[-1] = (a_cuts[-1][0], self._in_bits)
                b_cuts = [(j * (b_port - 1), min((j + 1) * (b_port - 1), m_bits))
                          for j in range(pieces[2])]
                terms = []
                for i, (a0, a1) in enumerate(a_cuts):
                    part = acc[a0:a1]
                    part = part.as_signed() if i == len(a_cuts) - 1 else part
                    for b0, b1 in b_cuts:
                        terms.append((part * factor[b0:b1]) << (a0 + b0))
                scaled = tree_sum(terms)
            if self._shift:
                scaled = (scaled + (1 << (self._shift - 1))) >> self._shift
            y = Signal.like(scaled, name=f"scaled{p}")
            m.d.comb += y.eq(scaled)
            with m.If(transfer):
                m.d.sync += self.o_stream.payload[p].eq(
                    Mux(y < lo, lo, Mux(y > hi, hi, y)))
        return m
