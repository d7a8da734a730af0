"""Requantizer: the activation that rescales accumulators to the next layer's bit width."""

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from quant import numerics

from .. import packing
from ..errors import FoldingError
from .timing import Pipe, Timed
from ._util import delayed, divisors, element_shape, registered_product, tree_sum

__all__ = ["Requantizer", "LATENCY", "QUEUE_DEPTH"]


#: Cycles from taking a beat to offering its result: six stages and the queue's two.
LATENCY = 8
#: Beats the output queue holds: every beat in flight, so that one enters each cycle.
QUEUE_DEPTH = LATENCY + 1


class Requantizer(Timed, wiring.Component):
    """``y = clamp(round((acc * M[c] + B[c]) / 2^S), lo, hi)`` on ``lanes`` channels per beat.

    Channels arrive in order, ``lanes`` per beat, so beat ``k`` of a frame carries channels
    ``k * lanes ... k * lanes + lanes - 1``. One beat per cycle through six register stages
    that never stall: the accumulator and the channel's multiplier in fabric, then in the
    hardware multipliers' operand registers, the product pieces (their result registers), the
    pieces twice again in fabric (routes to and from a DSP can cross the die, so each has a
    clock cycle of its own), and the rounded and shifted sum (with the channel's offset, which
    keeps pace with its beat in a delay line); clamped, the results enter an
    output queue (two cycles). The queue has room for every beat in flight and the input is
    ready while a place is free, so back-pressure never stops the stages and
    ``i_stream.ready`` comes from a register, not from ``o_stream.ready``.

    Parameters
    ----------
    multiplier : ndarray of int, shape (channels,)
    shift : int
    offset : ndarray of int, shape (channels,), optional
        Added to ``acc * M[c]`` before the shift (zeros when None).
    rounding : {"half_up", "half_even"}
        Ties go up, or to the even result: the rounding constant is then ``2^(S-1) - 1``
        plus bit ``S`` of the sum (see :func:`quant.numerics.round_half_even_shift`).
    in_bits : int
        Width of the signed accumulators.
    lanes : int
    out_bits, out_signed : int, bool
    geometry : Multiplier or str
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
                 offset=None, rounding="half_up", geometry="xc7", name="requantize"):
        self._geometry = packing.as_multiplier(geometry)
        multiplier = np.asarray(multiplier, dtype=np.int64)
        channels = multiplier.size
        if lanes < 1 or channels % lanes:
            raise FoldingError(f"layer '{name}': lanes {lanes} does not divide channels "
                               f"{channels}; choose one of {', '.join(map(str, divisors(channels)))}")
        if (multiplier < 1).any():
            raise ValueError(f"layer '{name}': multiplier must be positive, not "
                             f"{int(multiplier.min())}")
        offset = np.zeros(channels, np.int64) if offset is None else \
            np.asarray(offset, dtype=np.int64)
        if offset.shape != (channels,):
            raise ValueError(f"layer '{name}': offset must have one entry per channel "
                             f"({channels}), not shape {offset.shape}")
        if rounding not in numerics.ROUNDING:
            raise ValueError(f"layer '{name}': rounding must be one of "
                             f"{', '.join(numerics.ROUNDING)}, not {rounding!r}")
        self._offset, self._rounding = offset, rounding
        self._multiplier, self._shift = multiplier, int(shift)
        self._in_bits, self._lanes = in_bits, lanes
        self._out_bits, self._out_signed = out_bits, out_signed
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(signed(in_bits), lanes))),
            "o_stream": Out(stream.Signature(
                data.ArrayLayout(element_shape(out_bits, out_signed), lanes))),
        })

    channels = property(lambda self: self._multiplier.size)
    multiplier = property(lambda self: self._multiplier.copy())
    offset = property(lambda self: self._offset.copy())
    rounding = property(lambda self: self._rounding)
    in_bits = property(lambda self: self._in_bits)
    geometry = property(lambda self: self._geometry)
    lanes = property(lambda self: self._lanes)
    shift = property(lambda self: self._shift)
    out_bits = property(lambda self: self._out_bits)
    out_signed = property(lambda self: self._out_signed)
    beats_per_frame = property(lambda self: self.channels // self._lanes)
    queue_depth = QUEUE_DEPTH

    @classmethod
    def timing_of(cls, **_):
        """Each beat leaves :data:`LATENCY` cycles after it is taken, one per cycle: a
        requantizer runs at its stream's rate (its multipliers repeat, so it knows no frame
        of its own; ``cycles_per_frame`` is 0)."""
        return Pipe(0, LATENCY)

    timing = property(lambda self: self.timing_of())

    def pieces(self, column):
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
        pieces = [self.pieces(mult[:, p].tolist()) for p in range(self._lanes)]
        return sum(p[1] * p[2] for p in pieces if p[0] == "multiply")

    def reference(self, acc):
        return numerics.requantize(acc, self._multiplier, self._shift, self._out_bits,
                                   self._out_signed, offset=self._offset,
                                   rounding=self._rounding)

    def elaborate(self, platform):
        m = Module()
        folds = self.beats_per_frame
        fold = Signal(range(folds))
        next_fold = Mux(fold == folds - 1, 0, fold + 1)
        lo, hi = numerics.int_range(self._out_bits, self._out_signed)
        out_shape = element_shape(self._out_bits, self._out_signed)
        mult = self._multiplier.reshape(folds, self._lanes)
        offsets = self._offset.reshape(folds, self._lanes)

        # Beats in flight or queued; a beat is taken only while the queue has room for it.
        m.submodules.queue = queue = SyncFIFOBuffered(width=self._lanes * self._out_bits,
                                                      depth=self.queue_depth)
        held = Signal(range(self.queue_depth + 1))
        taken = self.i_stream.valid & self.i_stream.ready
        sent = self.o_stream.valid & self.o_stream.ready
        m.d.comb += self.i_stream.ready.eq(held < self.queue_depth)
        m.d.sync += held.eq(held + taken - sent)
        with m.If(taken):
            m.d.sync += fold.eq(next_fold)
        valid = [taken] + [Signal(name=f"valid{i}") for i in range(1, 7)]
        m.d.sync += [valid[i + 1].eq(valid[i]) for i in range(6)]

        def stage(value, cycles, name):     # data flops: the valid chain carries the reset
            return delayed(m, value, cycles, f"{name}_d", reset_less=True)

        a_port, b_port = self._geometry.a_bits, self._geometry.b_bits
        results = []
        for p in range(self._lanes):
            column = mult[:, p].tolist()
            # Stage 1: the accumulator in fabric.
            acc = stage(self.i_stream.payload[p], 1, f"acc{p}")
            pieces = self.pieces(column)
            if pieces[0] == "shift":
                # Stages 2 to 5: nothing to multiply; the accumulator keeps pace.
                terms = [stage(acc, 4, f"acc{p}_q") << pieces[1]]
            else:
                m_bits = max(int(max(column)).bit_length(), 1)
                if len(set(column)) == 1:
                    factor = Const(column[0], m_bits)
                else:
                    # The multiplier of the channel at the input, from a register (stage 1
                    # beside the accumulator's).
                    select = Signal(m_bits, name=f"m{p}", init=column[0])
                    with m.If(taken):
                        m.d.sync += select.eq(Array(Const(v, m_bits) for v in column)[next_fold])
                    factor = stage(select, 1, f"m{p}")
                # Stages 2 and 3: the product pieces in the hardware multipliers' operand and
                # result registers. Low accumulator pieces are unsigned (a_port - 1 bits),
                # the top one signed.
                a_cuts = [(i * (a_port - 1), min((i + 1) * (a_port - 1), self._in_bits))
                          for i in range(pieces[1])]
                a_cuts[-1] = (a_cuts[-1][0], self._in_bits)
                b_cuts = [(j * (b_port - 1), min((j + 1) * (b_port - 1), m_bits))
                          for j in range(pieces[2])]
                terms = []
                for i, (a0, a1) in enumerate(a_cuts):
                    part = acc[a0:a1]
                    part = part.as_signed() if i == len(a_cuts) - 1 else part
                    for j, (b0, b1) in enumerate(b_cuts):
                        product = registered_product(m, part, factor[b0:b1], en=Const(1),
                                                     platform=platform, name=f"prod{p}_{i}_{j}")
                        # Stages 4 and 5: the piece in fabric.
                        terms.append(stage(product, 2, f"prod{p}_{i}_{j}") << (a0 + b0))
            offset = self._lane_offset(m, offsets[:, p].tolist(), taken, next_fold, p)
            if offset is not None:
                terms.append(offset)
            # Stage 6: summed, rounded and shifted.
            scaled = tree_sum(terms)
            if self._shift:
                half = 1 << (self._shift - 1)
                if self._rounding == "half_even":
                    # A tie rounds up only when the floor is odd: bit S of the sum (past a
                    # narrow sum's width, its sign).
                    odd = (scaled[self._shift] if self._shift < len(scaled)
                           else scaled[-1] if scaled.shape().signed else 0)
                    scaled = (scaled + (half - 1) + odd) >> self._shift
                else:
                    scaled = (scaled + half) >> self._shift
            y = stage(scaled, 1, f"scaled{p}")
            # Clamped into the queue.
            result = Signal(out_shape, name=f"result{p}")
            m.d.comb += result.eq(Mux(y < lo, lo, Mux(y > hi, hi, y)))
            results.append(result)
        m.d.comb += [
            queue.w_data.eq(Cat(*results)),
            queue.w_en.eq(valid[6]),
            self.o_stream.payload.eq(queue.r_data),
            self.o_stream.valid.eq(queue.r_rdy),
            queue.r_en.eq(self.o_stream.ready),
        ]
        return m

    def _lane_offset(self, m, column, taken, next_fold, p):
        """Lane ``p``'s offset at stage 5, beside its beat's product pieces: None when it is
        0 in every fold, a constant when it never changes, else selected with the fold (as the
        multiplier is) and delayed with the beat."""
        if not any(column):
            return None
        bits = numerics.bits_for_range(min(min(column), -1), max(max(column), 0))[0]
        if len(set(column)) == 1:
            return Const(column[0], signed(bits))
        select = Signal(signed(bits), name=f"b{p}", init=column[0])
        with m.If(taken):
            m.d.sync += select.eq(Array(Const(v, signed(bits)) for v in column)[next_fold])
        value = select
        for i in range(5):
            register = Signal(signed(bits), name=f"b{p}_d{i}", reset_less=True)
            m.d.sync += register.eq(value)
            value = register
        return value
