"""PackedMultiplier: several exact low-bit products from one hardware multiplier per cycle."""

import numpy as np
from amaranth.hdl import Cat, Const, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .. import packing
from ._util import element_shape

__all__ = ["PackedMultiplier"]


def _sign_extended(value, width, start, stop):
    """Bits ``[start, stop)`` of a signed ``value`` of ``width`` bits, sign-extended above."""
    if stop <= width:
        return value[start:stop]
    if start >= width:
        return value[width - 1].replicate(stop - start)
    return Cat(value[start:width], value[width - 1].replicate(stop - width))


class PackedMultiplier(wiring.Component):
    """Multiply one activation by the weights of ``lanes`` filters with one hardware multiplier.

    The weights of a lane group come pre-packed from ROM (:func:`hwgen.packing.rom_word`): the
    packed constant ``A = sum_i w_i 2^(k i)`` in the low bits and the plan's auxiliary bits above
    it. The multiplication is behavioral (``x * A``, plus the sign correction ``C`` for the
    ``"postadd"`` scheme), so a simulator runs it as written and synthesis maps it onto one
    DSP48 / MULT18X18D; the lane recovery is fabric logic (see :mod:`hwgen.packing` for why
    every lane is exact for every input).

    Pipeline: the multiplier result is registered (the DSP's P register) together with the
    correction flags, and the lanes are extracted from that register (latency 1); with
    ``registered`` the extracted lanes are registered again (latency 2). Every register
    advances only while ``en`` is high, so a stalling pipeline holds the multiplier by dropping
    ``en``.

    Parameters
    ----------
    multiplier : Multiplier or str
        Target multiplier, or a key of :data:`hwgen.packing.MULTIPLIERS`.
    weight_bits, act_bits : int
        Weight and activation widths.
    act_signed : bool
        Signed or unsigned activations.
    narrow : bool
        Narrow-range (``±(2^(W-1) - 1)``) or full-range weights.
    scheme : {None, "borrow", "postadd"}
        Lane recovery scheme; ``None`` lets :func:`hwgen.packing.plan_lanes` choose.
    registered : bool
        Register the extracted lanes (latency 2), or drive them from the multiplier register
        through the extraction logic (latency 1, the default).

    Members
    -------
    x : In(unsigned(act_bits) or signed(act_bits))
        The activation.
    word : In(unsigned(plan.word_bits))
        One ROM word: the packed weight constant, then the auxiliary bits.
    en : In(1, init=1)
        Clock enable of every register.
    products : Out(data.ArrayLayout(signed(product_bits), lanes))
        ``products[i] = w_i * x``, ``latency`` enabled cycles after ``x`` and ``word``.
    """

    def __init__(self, *, multiplier, weight_bits, act_bits, act_signed=False, narrow=True,
                 scheme=None, registered=False):
        if not isinstance(registered, bool):
            raise TypeError(f"registered must be a bool, not {registered!r}")
        plan = packing.plan_lanes(multiplier, weight_bits, act_bits, act_signed=act_signed,
                                  narrow=narrow, scheme=scheme)
        self._plan = plan
        self._registered = registered
        super().__init__({
            "x": In(element_shape(plan.act_bits, plan.act_signed)),
            "word": In(plan.word_bits),
            "en": In(1, init=1),
            "products": Out(data.ArrayLayout(signed(plan.product_bits), plan.lanes)),
        })

    plan = property(lambda self: self._plan)
    multiplier = property(lambda self: self._plan.multiplier)
    weight_bits = property(lambda self: self._plan.weight_bits)
    act_bits = property(lambda self: self._plan.act_bits)
    act_signed = property(lambda self: self._plan.act_signed)
    narrow = property(lambda self: self._plan.narrow)
    scheme = property(lambda self: self._plan.scheme)
    lanes = property(lambda self: self._plan.lanes)
    field_bits = property(lambda self: self._plan.field_bits)
    product_bits = property(lambda self: self._plan.product_bits)
    word_bits = property(lambda self: self._plan.word_bits)
    registered = property(lambda self: self._registered)

    @property
    def latency(self):
        """Enabled clock cycles from ``x`` and ``word`` to ``products``."""
        return 2 if self._registered else 1

    def rom_word(self, weights):
        """The ROM word that feeds ``word`` for one lane group of weights (lane 0 first)."""
        return packing.rom_word(self._plan, weights)

    def reference(self, x, weights):
        """``weights * x`` per lane: ``x`` of shape ``(N,)``, ``weights`` ``(N, lanes)``."""
        return np.asarray(weights, dtype=np.int64) * np.asarray(x, dtype=np.int64)[..., None]

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        k, L = plan.field_bits, plan.lanes
        a = self.word[:plan.packed_bits].as_signed()
        aux = self.word[plan.packed_bits:]
        x = self.x
        x_nonzero = Signal()
        x_negative = Signal()
        m.d.comb += x_nonzero.eq(x.any())
        if plan.act_signed:
            m.d.comb += x_negative.eq(x[-1])

        # Stage 1: the multiplier result (DSP P register) and the per-lane correction flags.
        result = Signal(signed(plan.result_bits))
        flags = Signal(max(L - 1, 1))
        if plan.scheme == "postadd":
            # n_i = [w_i x < 0] for i < L-1; C has n_i at bit k (i + 1).
            n = []
            for i in range(L - 1):
                if plan.act_signed:
                    w_neg, w_pos = aux[2 * i], aux[2 * i + 1]
                    n.append(x_nonzero & ((x_negative & w_pos) | (~x_negative & w_neg)))
                else:
                    n.append(x_nonzero & aux[i])
            correction = Signal(k * (L - 1) + 1 if L > 1 else 1)
            parts = [Const(0, k)]
            for i in range(L - 1):
                parts.append(n[i])
                if i < L - 2:
                    parts.append(Const(0, k - 1))
            if L > 1:
                m.d.comb += [correction.eq(Cat(*parts)), flags.eq(Cat(*n))]
            with m.If(self.en):
                m.d.sync += result.eq(x * a + correction)
        else:
            # d_i = [lanes below i are negative] for 0 < i < L, from the operands.
            d = []
            for i in range(1, L):
                below_negative = a[k * i - 1]
                if plan.act_signed:
                    d.append(x_nonzero & aux[i - 1] & (below_negative ^ x_negative))
                else:
                    d.append(x_nonzero & below_negative)
            if L > 1:
                m.d.comb += flags.eq(Cat(*d))
            with m.If(self.en):
                m.d.sync += result.eq(x * a)
        flags_q = Signal.like(flags, name="flags_q")
        with m.If(self.en):
            m.d.sync += flags_q.eq(flags)

        # Stage 2: extract the lanes.
        width = plan.result_bits
        lanes = []
        for i in range(L):
            field = _sign_extended(result, width, k * i, k * i + k)
            if plan.scheme == "postadd":
                if i < L - 1:
                    lanes.append(Cat(field, flags_q[i]).as_signed())
                else:
                    lanes.append(_sign_extended(result, width, k * i, k * i + k + 1).as_signed())
            else:
                above = flags_q[i] if i < L - 1 else result[-1]      # d_{i+1}
                value = Cat(field, above).as_signed()
                lanes.append(value + flags_q[i - 1] if i > 0 else value)   # + d_i
        for i, lane in enumerate(lanes):
            if self._registered:
                with m.If(self.en):
                    m.d.sync += self.products[i].eq(lane)
            else:
                m.d.comb += self.products[i].eq(lane)
        return m
