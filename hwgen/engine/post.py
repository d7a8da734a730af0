"""The engine's output path and vector lanes.

:class:`OutputPath` turns a vector of sums into stored values: the requantizer
``clamp(round((sum * M[c] + B[c]) / 2^S), lo, hi)`` with per-channel multipliers and offsets
and a per-layer shift, rounding mode and range, all given at run time (or the sums as they
are). :class:`VectorLanes` are the
per-channel reductions of the ops the MAC array does not do: maximum and sum over a window,
depthwise multiply-accumulate, and the elementwise add of two tensors.
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..blocks._util import delayed, registered_product
from .params import MULTIPLIER_BITS, OFFSET_BITS

__all__ = ["OutputPath", "VectorLanes", "VECTOR_OPS", "PRODUCT_PIECE", "SPLIT_PRODUCT_FAMILIES",
           "product_pieces"]

#: Operations of :class:`VectorLanes` (its ``op`` input).
VECTOR_OPS = {"max": 0, "sum": 1, "mac": 2, "add": 3}


#: Families whose requantizer product is formed from registered partial products, each within
#: one 18 x 18 multiplier slice, a stage longer: on ECP5 the adders that join a 32 x 24-bit
#: product's slices would otherwise sit in one cycle with the slices.
SPLIT_PRODUCT_FAMILIES = frozenset({"ecp5"})

#: Bits of each operand piece below the top one (unsigned; a signed 18-bit port holds them).
PRODUCT_PIECE = 17


def product_pieces(acc_bits):
    """The pieces ``(low bit, width, signed)`` of a requantizer's value (``acc_bits``, signed)
    and multiplier (unsigned) whose products form the product on a family in
    :data:`SPLIT_PRODUCT_FAMILIES`: unsigned pieces of :data:`PRODUCT_PIECE` bits and the
    value's signed top piece of at most 18, so each product takes one 18 x 18 slice."""
    count = max(1, -(-(acc_bits - 1) // PRODUCT_PIECE))
    value = [(PRODUCT_PIECE * i, PRODUCT_PIECE, False) for i in range(count - 1)]
    value.append((PRODUCT_PIECE * (count - 1), acc_bits - PRODUCT_PIECE * (count - 1), True))
    mult = [(low, min(PRODUCT_PIECE, MULTIPLIER_BITS - low), False)
            for low in range(0, MULTIPLIER_BITS, PRODUCT_PIECE)]
    return value, mult


class OutputPath(wiring.Component):
    """``lanes`` sums in, ``lanes`` stored values out, ``latency`` cycles later, one vector a
    cycle.

    Members
    -------
    valid : In(1)
    values : In(ArrayLayout(signed(acc_bits), lanes))
    mult : In(ArrayLayout(unsigned(24), lanes))
    offset : In(ArrayLayout(signed(49), lanes))
    tag : In(tag_bits)
    requant : In(1)
        Requantize; otherwise pass the sums on (they fit ``out_bits`` by the compiler).
    half_even : In(1)
        Round ties to even rather than up.
    shift : In(6)
    lo, hi : In(signed(34))
        The output range.
    o_valid : Out(1)
    o_values : Out(ArrayLayout(unsigned(out_bits), lanes))
        The low ``out_bits`` bits of each value (two's complement).
    o_tag : Out(tag_bits)

    ``family`` is the multipliers' family (a :data:`hwgen.packing.MULTIPLIERS` key):
    ``latency`` is 5 cycles, or 6 for a family in :data:`SPLIT_PRODUCT_FAMILIES`
    (:meth:`latency_for`), whose product is the sum of registered :func:`product_pieces`.
    """

    @staticmethod
    def latency_for(family):
        return 6 if family in SPLIT_PRODUCT_FAMILIES else 5

    def __init__(self, *, lanes, family, acc_bits=32, out_bits=32, tag_bits=1):
        self._lanes, self._acc_bits, self._out_bits = lanes, acc_bits, out_bits
        self._split = family in SPLIT_PRODUCT_FAMILIES
        self.latency = self.latency_for(family)
        super().__init__({
            "valid": In(1),
            "values": In(data.ArrayLayout(signed(acc_bits), lanes)),
            "mult": In(data.ArrayLayout(unsigned(MULTIPLIER_BITS), lanes)),
            "offset": In(data.ArrayLayout(signed(OFFSET_BITS + 1), lanes)),
            "tag": In(tag_bits),
            "requant": In(1), "half_even": In(1), "shift": In(6),
            "lo": In(signed(34)), "hi": In(signed(34)),
            "o_valid": Out(1),
            "o_values": Out(data.ArrayLayout(unsigned(out_bits), lanes)),
            "o_tag": Out(tag_bits),
        })

    def elaborate(self, platform):
        m = Module()
        stages = self.latency

        requant = [self.requant] + [delayed(m, self.requant, n, f"rq{n}_")
                                    for n in range(1, stages)]
        shift = [self.shift] + [delayed(m, self.shift, n, f"sh{n}_") for n in range(1, stages)]
        # Stage of the product with the offset: 1, or 2 after the partial products.
        at = 1 + self._split
        half_even = delayed(m, self.half_even, at, "half_even")
        lo = delayed(m, self.lo, stages - 1, "lo")
        hi = delayed(m, self.hi, stages - 1, "hi")
        m.d.comb += [self.o_valid.eq(delayed(m, self.valid, stages, "valid")),
                     self.o_tag.eq(delayed(m, self.tag, stages, "tag"))]
        product_shape = signed(max(self._acc_bits + MULTIPLIER_BITS + 1, OFFSET_BITS + 1) + 2)
        # Shared by the lanes, a stage ahead of their use: the rounding addend (the half below
        # the shift, one less where ties go to even, zero for a value passed on), the
        # one-hot pick of the quotient's lowest bit, and the shift (zero for a value passed
        # on). A tie goes to even as floor((x + half - 1 + q0) / 2^S), q0 the lowest bit of
        # floor(x / 2^S), a carry into the rounding adder: no tie compare, no subtraction.
        width = product_shape.width
        power = (Const(1, width + 1) << shift[at])[:width + 1]
        rounds = requant[at] & (shift[at] != 0)
        addend2, pick2, even2 = (Signal(width, name="addend2"), Signal(width, name="pick2"),
                                 Signal(name="even2"))
        m.d.sync += [addend2.eq(Mux(rounds, power[1:] - half_even, 0)),
                     pick2.eq(power[:width]), even2.eq(rounds & half_even)]
        amount = Signal(6, name="amount")
        m.d.sync += amount.eq(Mux(requant[at + 1], shift[at + 1], 0))
        for p in range(self._lanes):
            # 0: operands registered (a DSP's A, B and C registers); [1: the partial
            # products;] at: the product plus the offset, or the value (chosen ahead of the
            # adder, where the choice shares its LUTs); at + 1: rounded; at + 2: shifted;
            # at + 3: clamped.
            value = Signal(signed(self._acc_bits), name=f"value{p}")
            mult = Signal(unsigned(MULTIPLIER_BITS), name=f"mult{p}")
            offset = Signal(signed(OFFSET_BITS + 1), name=f"offset{p}")
            m.d.sync += [value.eq(self.values[p]), mult.eq(self.mult[p]),
                         offset.eq(self.offset[p])]
            if self._split:
                full = self._partial_products(m, value, mult, p)
                value, offset = (delayed(m, value, 1, f"value{p}_"),
                                 delayed(m, offset, 1, f"offset{p}_"))
            else:
                full = value * mult
            product = Signal(product_shape, name=f"product{p}")
            m.d.sync += product.eq(Mux(requant[at], full, value) +
                                   Mux(requant[at], offset, 0))
            rounded = Signal(product_shape, name=f"rounded{p}")
            odd = even2 & (product & pick2).any()
            m.d.sync += rounded.eq(product + addend2 + odd)
            shifted = Signal(product_shape, name=f"shifted{p}")
            m.d.sync += shifted.eq(rounded >> amount)
            out = Signal(signed(34), name=f"out{p}")
            with m.If(requant[at + 3] & (shifted < lo)):
                m.d.sync += out.eq(lo)
            with m.Elif(requant[at + 3] & (shifted > hi)):
                m.d.sync += out.eq(hi)
            with m.Else():
                m.d.sync += out.eq(shifted)
            m.d.comb += self.o_values[p].eq(out[:self._out_bits])
        return m

    def _partial_products(self, m, value, mult, p):
        """``value * mult`` as the sum of the registered products of their pieces."""
        def cut(operand, pieces):
            return [(low, operand[low:low + width].as_signed() if top
                     else operand[low:low + width]) for low, width, top in pieces]
        value_pieces, mult_pieces = product_pieces(self._acc_bits)
        total = 0
        for a_low, a in cut(value, value_pieces):
            for b_low, b in cut(mult, mult_pieces):
                partial = Signal((a * b).shape(), name=f"partial{p}_{a_low}_{b_low}")
                m.d.sync += partial.eq(a * b)
                total += partial << (a_low + b_low)
        return total


class VectorLanes(wiring.Component):
    """Per-lane reductions over the k-steps of one output: ``op`` ``max`` (of ``x``),
    ``sum`` (of ``x``), ``mac`` (``bias`` plus the sum of ``w * x``) or ``add`` (``x + y``,
    one k-step). The first k-step starts the reduction, the last sends it, ``latency`` cycles
    later, with its tag.

    Members
    -------
    valid, first, last : In(1)
    op : In(2)
    x, y : In(ArrayLayout(signed(element_bits), lanes))
    w : In(ArrayLayout(signed(weight_bits), lanes))
    bias : In(ArrayLayout(signed(acc_bits), lanes))
    tag : In(tag_bits)
    o_valid : Out(1)
    sums : Out(ArrayLayout(signed(acc_bits), lanes))
    o_tag : Out(tag_bits)
    """

    #: The operands registered, the terms (a product in a multiplier's output register),
    #: the reduction.
    latency = 3

    def __init__(self, *, lanes, element_bits=17, weight_bits=8, acc_bits=32, tag_bits=1):
        self._lanes, self._acc_bits = lanes, acc_bits
        super().__init__({
            "valid": In(1), "first": In(1), "last": In(1), "op": In(2),
            "x": In(data.ArrayLayout(signed(element_bits), lanes)),
            "y": In(data.ArrayLayout(signed(element_bits), lanes)),
            "w": In(data.ArrayLayout(signed(weight_bits), lanes)),
            "bias": In(data.ArrayLayout(signed(acc_bits), lanes)),
            "tag": In(tag_bits),
            "o_valid": Out(1),
            "sums": Out(data.ArrayLayout(signed(acc_bits), lanes)),
            "o_tag": Out(tag_bits),
        })

    def elaborate(self, platform):
        m = Module()
        acc_shape = signed(self._acc_bits)

        # Stages 1 and 2: the operands registered, then each lane's term (the product in the
        # multiplier's own registers, so a buffer's data never meets the multiplier in one
        # cycle), with the control beside them.
        valid2, first2, last2, tag2 = (
            delayed(m, s, 2, n) for s, n in ((self.valid, "valid"), (self.first, "first"),
                                             (self.last, "last"), (self.tag, "tag")))
        op1 = delayed(m, self.op, 1, "op1_")
        m.d.sync += self.o_valid.eq(valid2 & last2)
        with m.If(valid2 & last2):
            m.d.sync += self.o_tag.eq(tag2)
        # Sum, multiply-accumulate and add are one sum from a start (the bias for mac, zero
        # otherwise; an add is one k-step, its first): one adder a lane, its choices ahead
        # of it where they share its LUTs. The op's flags are registered, so no decoding
        # comes before the reduction's carry chains.
        is_max, is_mac = Signal(), Signal()
        m.d.sync += [is_max.eq(op1 == VECTOR_OPS["max"]), is_mac.eq(op1 == VECTOR_OPS["mac"])]
        for p in range(self._lanes):
            x1, y1 = delayed(m, self.x[p], 1, f"x{p}_"), delayed(m, self.y[p], 1, f"y{p}_")
            product = registered_product(m, self.w[p], self.x[p], en=1, platform=platform,
                                         name=f"product{p}")
            other = Signal(acc_shape, name=f"other{p}")
            start = Signal(acc_shape, name=f"start{p}")
            m.d.sync += [
                other.eq(x1 + Mux(op1 == VECTOR_OPS["add"], y1, 0)),
                start.eq(Mux(op1 == VECTOR_OPS["mac"],
                             delayed(m, self.bias[p], 1, f"bias{p}_"), 0)),
            ]
            term = Signal(acc_shape, name=f"term{p}")
            m.d.comb += term.eq(Mux(is_mac, product, other))
            acc = Signal(acc_shape, name=f"acc{p}")
            # The larger of the term and the running max is the term unless their difference,
            # one bit wider (it never overflows), is negative: the sign is the carry chain's
            # last bit, not a comparison built on it.
            difference = Signal(signed(self._acc_bits + 1), name=f"difference{p}")
            m.d.comb += difference.eq(term - acc)
            combined = Signal(acc_shape, name=f"combined{p}")
            m.d.comb += combined.eq(Mux(is_max, Mux(first2 | ~difference[-1], term, acc),
                                        Mux(first2, start, acc) + term))
            with m.If(valid2):
                m.d.sync += acc.eq(combined)
            with m.If(valid2 & last2):
                m.d.sync += self.sums[p].eq(combined)
        return m
