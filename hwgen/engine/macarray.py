"""The engine's mixed-precision MAC array: ``tm`` lanes of ``tn`` exact products a cycle.

Lane ``p`` multiplies the ``tn`` activations by its ``tn`` weights of ``lane_bits[p]`` bits and
adds the products; lanes of one width are packed several to a hardware multiplier per input
element (:func:`hwgen.packing.plan_group`), so the array takes ``config.dsp_count``
multipliers. A k-step's weights arrive as one word, each at its lane's own width
(:mod:`hwgen.engine.weights`: lane 0's ``tn`` weights first); each multiplier forms its pack's
operand (packed constant and correction bits, equal to :func:`hwgen.packing.rom_word`) from
them in front of its operand registers (:func:`hwgen.blocks.packer.packed_word`), so the
weight buffer and DRAM hold every weight once at its lane's width.

Each lane accumulates its sums over the k-steps of a dot product: the first k-step starts from
the lane's bias, the last one sends the totals out. Control and tags travel with the data, so
the array never stalls (its consumer must take every result).
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..blocks import PackedMultiplier
from ..blocks._util import delayed, tree_sum
from .weights import kstep_bits, lane_field

__all__ = ["MacArray", "weight_word_bits"]


def weight_word_bits(config):
    """Bits of one k-step's weight word."""
    return kstep_bits(config)


class MacArray(wiring.Component):
    """``sums[p] = bias[p] + sum over k-steps of sum_i w[p, i] * x[i]``.

    Members
    -------
    x : In(ArrayLayout(signed(act_bits), tn))
    weights : In(weight_word_bits(config))
    bias : In(ArrayLayout(signed(acc_bits), tm))
        Taken with the first k-step.
    valid, first, last : In(1)
        A k-step is offered; it is a dot product's first; its last.
    tag : In(tag_bits)
        Rides along with each k-step.
    o_valid : Out(1)
        ``sums`` hold a dot product's totals (``latency`` cycles after its last k-step).
    o_tag : Out(tag_bits)
        The tag of that last k-step.
    sums : Out(ArrayLayout(signed(acc_bits), tm))
    """

    def __init__(self, config, *, tag_bits=1):
        self._config = config
        c = config
        super().__init__({
            "x": In(data.ArrayLayout(signed(c.act_bits), c.tn)),
            "weights": In(weight_word_bits(c)),
            "bias": In(data.ArrayLayout(signed(c.acc_bits), c.tm)),
            "valid": In(1), "first": In(1), "last": In(1),
            "tag": In(tag_bits),
            "o_valid": Out(1),
            "o_tag": Out(tag_bits),
            "sums": Out(data.ArrayLayout(signed(c.acc_bits), c.tm)),
        })

    #: Cycles from a k-step to its products: a :class:`~hwgen.blocks.PackedMultiplier`,
    #: pipelined and registered.
    MULTIPLY = 5

    @property
    def latency(self):
        """Cycles from a dot product's last k-step to ``o_valid``: products, then the lane sums,
        then the accumulator."""
        return self.MULTIPLY + 2

    def elaborate(self, platform):
        m = Module()
        c = self._config
        tm, tn = c.tm, c.tn
        products = [[None] * tn for _ in range(tm)]
        for bits, lanes, plan in c.groups:
            for start in range(0, len(lanes), plan.lanes):
                pack = lanes[start:start + plan.lanes]
                for i in range(tn):
                    unit = PackedMultiplier(multiplier=plan.multiplier, weight_bits=bits,
                                            act_bits=c.act_bits, act_signed=True,
                                            registered=True, pipelined=True, raw=True)
                    m.submodules[f"mul_w{bits}_{start}_{i}"] = unit
                    m.d.comb += unit.x.eq(self.x[i])
                    # A pack short of the plan's lanes multiplies zeros on the rest.
                    for n, lane in enumerate(pack):
                        at, width = lane_field(c, lane, i)
                        m.d.comb += unit.weights[n].eq(self.weights[at:at + width].as_signed())
                        products[lane][i] = unit.products[n]

        # Control and the bias ride along with the products.
        valid = delayed(m, self.valid, self.MULTIPLY, "valid")
        first = delayed(m, self.first, self.MULTIPLY, "first")
        last = delayed(m, self.last, self.MULTIPLY, "last")
        tag = delayed(m, self.tag, self.MULTIPLY, "tag")
        bias = delayed(m, self.bias.as_value(), self.MULTIPLY, "bias")
        # The lane sums (one register stage), then the accumulators.
        acc_shape = signed(c.acc_bits)
        dots = []
        for p in range(tm):
            dot = Signal(acc_shape, name=f"dot{p}")
            m.d.sync += dot.eq(tree_sum(products[p]))
            dots.append(dot)
        valid1, first1, last1 = (delayed(m, s, 1, n) for s, n in ((valid, "v"), (first, "f"),
                                                                  (last, "l")))
        tag1 = delayed(m, tag, 1, "t")
        bias1 = delayed(m, bias, 1, "b")
        for p in range(tm):
            acc = Signal(acc_shape, name=f"acc{p}")
            start = bias1.word_select(p, c.acc_bits).as_signed()
            total = Signal(acc_shape, name=f"total{p}")
            m.d.comb += total.eq(Mux(first1, start, acc) + dots[p])
            with m.If(valid1):
                m.d.sync += acc.eq(total)
            result = Signal(acc_shape, name=f"sum{p}")
            with m.If(valid1 & last1):
                m.d.sync += result.eq(total)
            m.d.comb += self.sums[p].eq(result)
        m.d.sync += [self.o_valid.eq(valid1 & last1)]
        with m.If(valid1 & last1):
            m.d.sync += self.o_tag.eq(tag1)
        return m
