"""Band geometry: the products of a layer's descriptor fields, and the rows of its current band
in registers, stepped band by band.

A band's rows, the input rows it reads and their offsets in DRAM and in the input buffer are
products of the band number and descriptor fields. Computed from scratch each band they were
chains of multipliers in one cycle (the engine's slowest path on ECP5) and took DSP slices
from the MAC array. Here :class:`LayerGeometry` forms the products of descriptor fields once
per layer, by shift and add, one multiplier bit a cycle, while the units' ``go`` waits
:data:`SETUP_CYCLES` cycles after the descriptor; each unit's :class:`Bands` then steps from
band to band by additions, and the units see the geometry as registers at the same cycles as
before.
"""

from amaranth.hdl import Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .program import DESCRIPTOR_LAYOUT

__all__ = ["SETUP_CYCLES", "LayerGeometry", "Bands", "band_rows", "geometry_layout"]

#: Multiplier bits of the first round of products (descriptor fields by descriptor fields) and
#: of the second (by a product of the first).
_FIRST_BITS, _SECOND_BITS = 16, 20

#: Cycles from a layer's descriptor to its units' ``go``: the two rounds of products, each
#: loaded in a cycle.
SETUP_CYCLES = _FIRST_BITS + _SECOND_BITS + 2


def band_rows(d, band):
    """``(first output row, output rows, first input row, input rows end)`` of ``band`` of the
    layer of descriptor ``d`` (integers; what :class:`Bands` holds for each band)."""
    oy0 = band * d.band_rows
    rows = min(d.out_height - oy0, d.band_rows)
    r0 = max(0, oy0 * d.stride_h - d.pad_h)
    r1 = min(d.in_height, (oy0 + rows - 1) * d.stride_h - d.pad_h + d.kernel_h)
    return oy0, rows, r0, r1


def geometry_layout(addr_bits):
    """The layer's constants :class:`LayerGeometry` forms (byte counts modulo
    ``2 ** addr_bits``, like the addresses)."""
    return data.StructLayout({
        "step": 20,                   # band_rows * stride_h: input rows from band to band
        "row_groups": 24,             # in_width * in_groups: groups of an input row
        "out_row_groups": 24,         # out_width * out_groups
        "sh_groups": 24,              # stride_h * row_groups
        "sw_groups": 16,              # stride_w * in_groups
        "pw_groups": 16,              # pad_w * in_groups
        "step_in": addr_bits,         # step * the input's row bytes
        "step_in2": addr_bits,        # step * the second operand's row bytes
        "pad_in": addr_bits,          # pad_h * the input's row bytes
        "pad_in2": addr_bits,
        "step_pad": 26,               # step * row_groups
        "pad_groups": 26,             # pad_h * row_groups
        "step_out": addr_bits,        # band_rows * the output's row bytes
        "full_span": signed(20),      # input rows end minus top of a whole band
        "last_bottom": signed(20),    # the last band's input rows end, before clipping
        "last_rows": 16,              # the last band's output rows
        "full_total": 24,             # output groups of a whole band
        "last_total": 24,             # of the last band
        "kstep_total": 24,            # ksteps * kstep_words
    })


def _serial_product(m, a, b, width, load, name):
    """``a * b`` modulo ``2 ** width``, ``len(b)`` cycles after the cycle of ``load`` (and held
    until the next ``load``): one bit of ``b`` a cycle, an adder deep, no multiplier."""
    acc, mcand, mplier = Signal(width, name=name), Signal(width), Signal(len(b))
    with m.If(load):
        m.d.sync += [acc.eq(0), mcand.eq(a), mplier.eq(b)]
    with m.Else():
        m.d.sync += [mcand.eq(mcand << 1), mplier.eq(mplier >> 1)]
        with m.If(mplier[0]):
            m.d.sync += acc.eq(acc + mcand)
    return acc


class LayerGeometry(wiring.Component):
    """The constants of a layer (:func:`geometry_layout`) from its descriptor.

    ``prepare`` is high the cycle the descriptor is in (``desc`` holds it from then on);
    ``start`` pulses :data:`SETUP_CYCLES` cycles later, when ``geometry`` holds the layer's
    constants (until the next ``prepare``); ``busy`` in between.

    Members
    -------
    desc : In(DESCRIPTOR_LAYOUT)
    prepare : In(1)
    geometry : Out(geometry_layout(addr_bits))
    start, busy : Out(1)
    """

    def __init__(self, *, addr_bits, word_shift):
        self._shift = word_shift
        super().__init__({
            "desc": In(DESCRIPTOR_LAYOUT), "prepare": In(1),
            "geometry": Out(geometry_layout(addr_bits)), "start": Out(1), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        d, g, s = self.desc, self.geometry, self._shift
        count = Signal(range(SETUP_CYCLES + 1))
        with m.If(self.prepare):
            m.d.sync += count.eq(1)
        with m.Elif(count == SETUP_CYCLES):
            m.d.sync += count.eq(0)
        with m.Elif(count != 0):
            m.d.sync += count.eq(count + 1)
        m.d.comb += [self.busy.eq(count != 0), self.start.eq(count == SETUP_CYCLES)]

        def product(a, b, field, load, rnd):
            assert len(b) <= rnd, (field, len(b))
            m.d.comb += g[field].eq(_serial_product(m, a, b, len(Value.cast(g[field])), load,
                                                    field))

        first, second = self.prepare, count == _FIRST_BITS + 1
        in_rb, in2_rb = d.in_row_words << s, d.in2_row_words << s
        last_oy0 = Signal(32)
        height_span = Signal(20)
        # Round 1: descriptor fields by descriptor fields.
        for a, b, field in ((d.band_rows, d.stride_h, "step"),
                            (d.in_width, d.in_groups, "row_groups"),
                            (d.out_width, d.out_groups, "out_row_groups"),
                            (d.in_groups, d.stride_w, "sw_groups"),
                            (d.in_groups, d.pad_w, "pw_groups"),
                            (in_rb, d.pad_h, "pad_in"), (in2_rb, d.pad_h, "pad_in2"),
                            (d.out_row_words << s, d.band_rows, "step_out"),
                            (d.kstep_words, d.ksteps, "kstep_total")):
            product(a, b, field, first, _FIRST_BITS)
        m.d.comb += [
            last_oy0.eq(_serial_product(m, d.band_rows, (d.bands - 1)[:16], 32, first,
                                          "last_oy0")),
            height_span.eq(_serial_product(m, d.out_height - 1, d.stride_h, 20, first,
                                           "height_span")),
        ]
        # Round 2: by products of round 1.
        last_rows = Signal(16)
        with m.If(second):
            m.d.sync += [last_rows.eq(d.out_height - last_oy0),
                         g.full_span.eq(g.step - d.stride_h + d.kernel_h),
                         g.last_bottom.eq(height_span - d.pad_h + d.kernel_h)]
        m.d.comb += g.last_rows.eq(last_rows)
        for a, b, field in ((in_rb, g.step, "step_in"), (in2_rb, g.step, "step_in2"),
                            (g.row_groups, g.step, "step_pad"),
                            (g.row_groups, d.pad_h, "pad_groups"),
                            (g.row_groups, d.stride_h, "sh_groups"),
                            (g.out_row_groups, d.band_rows, "full_total"),
                            (g.out_row_groups, d.out_height - last_oy0[:16], "last_total")):
            product(a, b, field, second, _SECOND_BITS)
        return m


class Bands(wiring.Component):
    """The current band of a layer and its geometry, for a unit that goes through the bands in
    order.

    ``geometry`` holds the layer's constants (:class:`LayerGeometry`) from ``start`` on,
    ``desc`` its descriptor from a cycle before (the last band's number is registered from
    it), and the layer's bands are ``ceil(out_height / band_rows)`` (only the last one is
    short). From the cycle after ``start`` the outputs describe band 0, from the cycle after
    ``advance`` the next band (``advance`` may come every cycle).

    Members
    -------
    desc : In(DESCRIPTOR_LAYOUT)
    geometry : In(geometry_layout(addr_bits))
    start, advance : In(1)
    band : Out(16)
    rows : Out(16)
        The band's output rows.
    top : Out(signed(18))
        Its first window's first input row (``oy0 * stride_h - pad_h``, negative in the top
        padding).
    r0, r1 : Out(16)
        The input rows it reads, ``r0 <= row < r1``.
    in_offset, in2_offset : Out(addr_bits)
        Bytes of rows before ``r0`` in the first and the second operand (``r0 * row bytes``).
    pad_offset : Out(signed(26))
        ``(top - r0) * in_width * in_groups``: where the band's first window starts in the
        input buffer, relative to row ``r0`` (``<= 0``).
    out_offset : Out(addr_bits)
        Bytes of output rows before the band.
    out_total : Out(24)
        The band's output groups (``rows * out_width * out_groups``).
    """

    def __init__(self, *, addr_bits):
        self._addr_bits = addr_bits
        super().__init__({
            "desc": In(DESCRIPTOR_LAYOUT), "geometry": In(geometry_layout(addr_bits)),
            "start": In(1), "advance": In(1),
            "band": Out(16), "rows": Out(16), "top": Out(signed(18)),
            "r0": Out(16), "r1": Out(16),
            "in_offset": Out(addr_bits), "in2_offset": Out(addr_bits),
            "pad_offset": Out(signed(26)), "out_offset": Out(addr_bits),
            "out_total": Out(24),
        })

    def elaborate(self, platform):
        m = Module()
        d, g, a = self.desc, self.geometry, self._addr_bits
        # A band's running values: its number, its first window's first input row
        # (unclipped), that row's bytes in each operand and groups in the buffer, a whole
        # band's input rows end, and the bytes of output rows before it.
        running = data.StructLayout({
            "band": 16, "top": signed(18), "top_in": a, "top_in2": a, "top_pad": signed(26),
            "bottom": signed(20), "out_offset": a})
        first = Signal(running)              # band 0's, from the layer's constants
        m.d.comb += [first.band.eq(0), first.top.eq(-d.pad_h), first.top_in.eq(-g.pad_in),
                     first.top_in2.eq(-g.pad_in2), first.top_pad.eq(-g.pad_groups),
                     first.bottom.eq(g.full_span - d.pad_h), first.out_offset.eq(0)]

        def step(v, to):
            """``to`` takes the running values of the band after ``v``'s."""
            return [to.band.eq(v.band + 1), to.top.eq(v.top + g.step),
                    to.top_in.eq(v.top_in + g.step_in), to.top_in2.eq(v.top_in2 + g.step_in2),
                    to.top_pad.eq(v.top_pad + g.step_pad), to.bottom.eq(v.bottom + g.step),
                    to.out_offset.eq(v.out_offset + g.step_out)]

        final = Signal(16)                   # the last band's number
        m.d.sync += final.eq(d.bands - 1)

        def outputs(v):
            """The outputs for the band of running values ``v``."""
            last = v.band == final
            inside = v.top >= 0
            end = Mux(last, g.last_bottom, v.bottom)
            return [
                self.band.eq(v.band), self.top.eq(v.top), self.out_offset.eq(v.out_offset),
                self.rows.eq(Mux(last, g.last_rows, d.band_rows)),
                self.out_total.eq(Mux(last, g.last_total, g.full_total)),
                self.r0.eq(Mux(inside, v.top, 0)),
                self.r1.eq(Mux(end > d.in_height, d.in_height, end)),
                self.in_offset.eq(Mux(inside, v.top_in, 0)),
                self.in2_offset.eq(Mux(inside, v.top_in2, 0)),
                self.pad_offset.eq(Mux(inside, 0, v.top_pad)),
            ]

        # The next band's running values are held ahead, so that ``start`` and ``advance``
        # only choose and load registers: no adder or comparison sits behind a unit's
        # handshakes (on ECP5 that was the engine's slowest path).
        following = Signal(running)
        with m.If(self.start):
            m.d.sync += [*step(first, following), *outputs(first)]
        with m.Elif(self.advance):
            m.d.sync += [*step(following, following), *outputs(following)]
        return m
