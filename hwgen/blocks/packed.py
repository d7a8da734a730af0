"""PackedMultiplier: several exact low-bit products from one hardware multiplier per cycle."""

import numpy as np
from amaranth.hdl import Cat, Const, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .. import packing
from ._util import delayed, element_shape, registered_product
from .packer import packed_word

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

    The weights of a lane group come as one ROM word (:func:`hwgen.packing.rom_word`): the
    packed constant ``A = sum_i w_i 2^(k i)`` in the low bits and the plan's auxiliary bits above
    it; with ``raw``, as the lanes' own weights, from which the word is formed in front of the
    operand registers (:func:`~hwgen.blocks.packer.packed_word`: a subtraction that a DSP48E1's
    pre-adder takes, in one module with the multiplier so that synthesis can map it). The
    multiplication is behavioral (``x * A``, plus the sign correction ``C`` for the
    ``"postadd"`` scheme), so a simulator runs it as written and synthesis maps it onto one
    DSP48 / MULT18X18D; the lane recovery is fabric logic (see :mod:`hwgen.packing` for why
    every lane is exact for every input).

    Pipeline: the multiplier result is registered (the DSP's P register) together with the
    correction flags, and the lanes are extracted from that register (latency 1). With
    ``pipelined``, the operands are registered first (the DSP's A and B registers) and the
    result twice more in fabric, so that the multiplier's own registers hold its inputs and
    output and the route from the DSP to the fabric that uses its result, which can cross the
    die, has two clock cycles (latency 4; on ECP5 see
    :func:`~hwgen.blocks._util.registered_product`). With ``registered`` the extracted lanes
    are registered again (one cycle more). Every register advances only while ``en`` is high,
    so a stalling pipeline holds the multiplier by dropping ``en``.

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
        Register the extracted lanes (one cycle more), or drive them from the multiplier
        register through the extraction logic (the default).
    pipelined : bool
        Register the operands and the result in the multiplier and the result twice again in
        fabric (latency 4 instead of 1), for clocks that a route to and from a distant DSP
        would not meet otherwise.
    raw : bool
        Take the lanes' weights (member ``weights``) instead of a ROM word (``word``).

    Members
    -------
    x : In(unsigned(act_bits) or signed(act_bits))
        The activation.
    word : In(unsigned(plan.word_bits))
        One ROM word: the packed weight constant, then the auxiliary bits (without ``raw``).
    weights : In(data.ArrayLayout(signed(weight_bits), lanes))
        The weights of the lanes, lane 0 first (with ``raw``).
    en : In(1, init=1)
        Clock enable of every register.
    products : Out(data.ArrayLayout(signed(product_bits), lanes))
        ``products[i] = w_i * x``, ``latency`` enabled cycles after ``x`` and the weights.
    """

    def __init__(self, *, multiplier, weight_bits, act_bits, act_signed=False, narrow=True,
                 scheme=None, registered=False, pipelined=False, raw=False):
        for what, value in (("registered", registered), ("pipelined", pipelined),
                            ("raw", raw)):
            if not isinstance(value, bool):
                raise TypeError(f"{what} must be a bool, not {value!r}")
        plan = packing.plan_lanes(multiplier, weight_bits, act_bits, act_signed=act_signed,
                                  narrow=narrow, scheme=scheme)
        self._plan = plan
        self._registered = registered
        self._pipelined = pipelined
        self._raw = raw
        weights = ({"weights": In(data.ArrayLayout(signed(plan.weight_bits), plan.lanes))}
                   if raw else {"word": In(plan.word_bits)})
        super().__init__({
            "x": In(element_shape(plan.act_bits, plan.act_signed)),
            **weights,
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
    pipelined = property(lambda self: self._pipelined)
    raw = property(lambda self: self._raw)

    @property
    def latency(self):
        """Enabled clock cycles from ``x`` and ``word`` to ``products``."""
        return 1 + 3 * self._pipelined + self._registered

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
        word = (packed_word(plan, [self.weights[i] for i in range(L)]) if self._raw
                else self.word)
        a = word[:plan.packed_bits].as_signed()
        aux = word[plan.packed_bits:]
        x = self.x
        x_nonzero = Signal()
        x_negative = Signal()
        m.d.comb += x_nonzero.eq(x.any())
        if plan.act_signed:
            m.d.comb += x_negative.eq(x[-1])

        def stage(value, cycles, name):     # data flops, clocked with ``en``
            return delayed(m, value, cycles, f"{name}_d", en=self.en, reset_less=True)

        # The per-lane correction flags, from the operands.
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
        else:
            # d_i = [lanes below i are negative] for 0 < i < L, from the operands.
            n = []
            for i in range(1, L):
                below_negative = a[k * i - 1]
                if plan.act_signed:
                    n.append(x_nonzero & aux[i - 1] & (below_negative ^ x_negative))
                else:
                    n.append(x_nonzero & below_negative)
        if L > 1:
            m.d.comb += flags.eq(Cat(*n))

        # Stage 1: the multiplier result (DSP P register), with the flags beside it.
        result = Signal(signed(plan.result_bits))
        if self._pipelined and plan.scheme != "postadd":
            # Operands and product in the multiplier's registers, then the product twice in
            # fabric.
            product = registered_product(m, x, a, en=self.en, platform=platform, name="p")
            m.d.comb += result.eq(stage(product, 2, "p")[:plan.result_bits].as_signed())
            flags_q = stage(flags, 4, "flags")
        else:
            if self._pipelined:
                x, a, flags = (stage(x, 1, "x"), stage(a, 1, "a"),
                               stage(flags, 1, "flags"))
            raw = x * a
            if plan.scheme == "postadd" and L > 1:
                parts = [Const(0, k)]
                for i in range(L - 1):
                    parts.append(flags[i])
                    if i < L - 2:
                        parts.append(Const(0, k - 1))
                raw = raw + Cat(*parts)
            stage1 = Signal(signed(plan.result_bits), reset_less=True)
            with m.If(self.en):
                m.d.sync += stage1.eq(raw)
            flags_q = stage(flags, 1, "flags")
            if self._pipelined:
                stage1 = stage(stage1, 2, "result")
                flags_q = stage(flags_q, 2, "flags_q")
            m.d.comb += result.eq(stage1)

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
                lane = stage(lane, 1, f"lane{i}")
            m.d.comb += self.products[i].eq(lane)
        return m
