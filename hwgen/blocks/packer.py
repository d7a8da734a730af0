"""WeightPacker: a packed multiplier operand formed at run time from raw lane weights."""

from amaranth.hdl import Cat, Const, Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .. import packing

__all__ = ["WeightPacker", "packed_word"]


class WeightPacker(wiring.Component):
    """The ROM word of :func:`hwgen.packing.rom_word`, formed from the raw weights of one pack.

    Weights are stored at their own width (a ``W``-bit two's complement field per weight) and
    packed into the multiplier operand as they are read, so a weight memory holds ``W`` bits
    per weight instead of a pre-packed constant. Write lane ``i``'s weight as
    ``w_i = u_i - s_i 2^(W-1)``, with ``u_i`` its low ``W - 1`` bits and ``s_i`` its sign bit.
    Then the packed constant of the plan (``k`` its field width, ``L`` its lanes) is::

        A = sum_i w_i 2^(k i) = D - S
        D = sum_{i<L-1} u_i 2^(k i) + w_{L-1} 2^(k (L-1))     (the top weight sign-extended)
        S = sum_{i<L-1} s_i 2^(k i + W - 1)

    an exact integer identity. ``D`` and ``S`` are wiring: the fields of ``D`` do not overlap
    because ``k >= W - 1`` (a field holds the product of a weight and the activation 1, which
    needs ``W - 1`` bits of magnitude), and ``S`` has one bit per lane below the top. The only logic is the subtraction ``D - S``, written before the
    multiplier's operand register: on a DSP48E1 synthesis maps it onto the slice's pre-adder
    (``D`` on its D port, ``S`` on A, as ``(D - A) * B``); yosys leaves it in fabric on DSP48E2
    and MULT18X18D (Vivado maps it onto the DSP48E2's pre-adder too). The auxiliary bits of the
    plan come from the same fields: ``[w_i < 0]`` is ``s_i``, ``[w_i > 0]`` is ``~s_i`` and some
    bit of ``u_i``, and "a lane below ``i`` is nonzero" an OR over the lower weights. The word
    equals ``rom_word(plan, weights)`` bit for bit, for every input.

    The block is combinational (latency 0): its user registers the word, or feeds the
    registers of a :class:`~hwgen.blocks.packed.PackedMultiplier`.

    Parameters
    ----------
    multiplier, weight_bits, act_bits, act_signed, narrow, scheme
        The plan, as :class:`~hwgen.blocks.packed.PackedMultiplier` takes it
        (:func:`hwgen.packing.plan_lanes`).

    Members
    -------
    weights : In(data.ArrayLayout(signed(weight_bits), lanes))
        The raw weights of the pack, lane 0 first.
    word : Out(plan.word_bits)
        The packed constant, then the plan's auxiliary bits.
    """

    def __init__(self, *, multiplier, weight_bits, act_bits, act_signed=False, narrow=True,
                 scheme=None):
        plan = packing.plan_lanes(multiplier, weight_bits, act_bits, act_signed=act_signed,
                                  narrow=narrow, scheme=scheme)
        self._plan = plan
        super().__init__({
            "weights": In(data.ArrayLayout(signed(plan.weight_bits), plan.lanes)),
            "word": Out(plan.word_bits),
        })

    plan = property(lambda self: self._plan)
    lanes = property(lambda self: self._plan.lanes)
    weight_bits = property(lambda self: self._plan.weight_bits)
    word_bits = property(lambda self: self._plan.word_bits)

    def reference(self, weights):
        """The word for one pack of weights (lane 0 first): :func:`hwgen.packing.rom_word`."""
        return packing.rom_word(self._plan, weights)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.word.eq(packed_word(self._plan, [self.weights[i]
                                                          for i in range(self.lanes)]))
        return m


def packed_word(plan, weights):
    """The word of :class:`WeightPacker` as an expression of the raw lane weights (a list of
    ``plan.lanes`` signed values, lane 0 first), for a block that forms it inline (so that
    synthesis sees the subtraction and the multiplier in one module)."""
    k, lanes, bits = plan.field_bits, plan.lanes, plan.weight_bits
    sign = [v[bits - 1] for v in weights]
    low = [v[:bits - 1] for v in weights]
    d_parts, s_parts = [], [Const(0, bits - 1)]
    for i in range(lanes - 1):
        d_parts += [low[i], Const(0, k - (bits - 1))]
        s_parts += [sign[i]] + ([Const(0, k - 1)] if i < lanes - 2 else [])
    packed = Cat(*d_parts, weights[-1]).as_signed()
    if lanes > 1:
        packed = packed - Cat(*s_parts)
    aux = []
    if plan.scheme == "postadd":
        for i in range(lanes - 1):
            aux.append(sign[i])
            if plan.act_signed:
                aux.append(~sign[i] & low[i].any())
    elif plan.act_signed:
        below = Const(0, 1)
        for i in range(1, lanes):
            below = below | weights[i - 1].any()
            aux.append(below)
    return Cat(packed[:plan.packed_bits], *aux)
