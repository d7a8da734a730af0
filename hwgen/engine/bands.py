"""Band geometry: the rows of a layer's current band, in registers, stepped band by band.

A band's rows, the input rows it reads and their offsets in DRAM and in the input buffer are
products of the band number and descriptor fields. Computed from scratch each band they are
chains of multipliers in one cycle (the engine's slowest path on ECP5). Here the products of
descriptor fields alone are registered while the layer's ``go`` waits :data:`SETUP_CYCLES`
cycles after its descriptor, and each band's values come from the band before's by additions:
the units see them as registers, at the same cycles as before.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .program import DESCRIPTOR_LAYOUT

__all__ = ["SETUP_CYCLES", "Bands", "band_rows"]

#: Cycles between a layer's descriptor and its units' ``go``: the descriptor's products, two
#: stages of registers.
SETUP_CYCLES = 2


def band_rows(d, band):
    """``(first output row, output rows, first input row, input rows end)`` of ``band`` of the
    layer of descriptor ``d`` (integers; what :class:`Bands` holds for each band)."""
    oy0 = band * d.band_rows
    rows = min(d.out_height - oy0, d.band_rows)
    r0 = max(0, oy0 * d.stride_h - d.pad_h)
    r1 = min(d.in_height, (oy0 + rows - 1) * d.stride_h - d.pad_h + d.kernel_h)
    return oy0, rows, r0, r1


class Bands(wiring.Component):
    """The current band of a layer and its geometry, for a unit that goes through the bands in
    order.

    ``desc`` must hold the layer's descriptor from :data:`SETUP_CYCLES` cycles before
    ``start``, and its bands must be ``ceil(out_height / band_rows)`` (only the last one is
    short). From the cycle after ``start`` the outputs describe band 0, from the cycle after
    ``advance`` the next band.

    Members
    -------
    desc : In(DESCRIPTOR_LAYOUT)
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
    row_groups, out_row_groups : Out(24)
        Groups of an input row, of an output row (descriptor products, for the units).
    """

    def __init__(self, *, addr_bits, word_shift):
        self._addr_bits, self._shift = addr_bits, word_shift
        super().__init__({
            "desc": In(DESCRIPTOR_LAYOUT), "start": In(1), "advance": In(1),
            "band": Out(16), "rows": Out(16), "top": Out(signed(18)),
            "r0": Out(16), "r1": Out(16),
            "in_offset": Out(addr_bits), "in2_offset": Out(addr_bits),
            "pad_offset": Out(signed(26)), "out_offset": Out(addr_bits),
            "out_total": Out(24), "row_groups": Out(24), "out_row_groups": Out(24),
        })

    def elaborate(self, platform):
        m = Module()
        d, s = self.desc, self._shift
        a = self._addr_bits

        # Stage 1: products of two descriptor fields (and the row sizes in bytes).
        step = Signal(20)                    # input rows from one band to the next
        in_rb, in2_rb, out_rb = Signal(a), Signal(a), Signal(a)
        last_oy0 = Signal(32)                # the last band's first output row
        height_span = Signal(20)             # (out_height - 1) * stride_h
        m.d.sync += [
            step.eq(d.band_rows * d.stride_h),
            in_rb.eq(d.in_row_words << s), in2_rb.eq(d.in2_row_words << s),
            out_rb.eq(d.out_row_words << s),
            self.row_groups.eq(d.in_width * d.in_groups),
            self.out_row_groups.eq(d.out_width * d.out_groups),
            last_oy0.eq((d.bands - 1) * d.band_rows),
            height_span.eq((d.out_height - 1) * d.stride_h),
        ]
        # Stage 2: what a band adds to the one before, and the first and the last band's.
        step_in, step_in2, step_pad = Signal(a), Signal(a), Signal(signed(26))
        pad_in, pad_in2, pad_groups = Signal(a), Signal(a), Signal(signed(26))
        step_out = Signal(a)
        full_span = Signal(signed(20))       # bottom - top of a whole band
        last_bottom = Signal(signed(20))     # the last band's input rows end (before clipping)
        last_rows = Signal(16)
        full_total, last_total = Signal(24), Signal(24)
        m.d.sync += [
            step_in.eq(step * in_rb), step_in2.eq(step * in2_rb),
            step_pad.eq(step * self.row_groups),
            pad_in.eq(d.pad_h * in_rb), pad_in2.eq(d.pad_h * in2_rb),
            pad_groups.eq(d.pad_h * self.row_groups),
            step_out.eq(d.band_rows * out_rb),
            full_span.eq(step - d.stride_h + d.kernel_h),
            last_bottom.eq(height_span - d.pad_h + d.kernel_h),
            last_rows.eq(d.out_height - last_oy0),
            full_total.eq(d.band_rows * self.out_row_groups),
            last_total.eq((d.out_height - last_oy0) * self.out_row_groups),
        ]

        # Per band: running values (the band before's plus a step, or band 0's at start).
        top_rows = Signal(signed(18))        # top, unclipped
        top_in, top_in2 = Signal(a), Signal(a)   # top * row bytes, modulo 2 ** addr_bits
        top_pad = Signal(signed(26))         # top * row groups
        bottom = Signal(signed(20))          # top + full_span: a whole band's rows end
        new = {
            "band": Mux(self.start, 0, self.band + 1),
            "top": Mux(self.start, -d.pad_h, top_rows + step),
            "top_in": Mux(self.start, -pad_in, top_in + step_in),
            "top_in2": Mux(self.start, -pad_in2, top_in2 + step_in2),
            "top_pad": Mux(self.start, -pad_groups, top_pad + step_pad),
            "bottom": Mux(self.start, full_span - d.pad_h, bottom + step),
            "out_offset": Mux(self.start, 0, self.out_offset + step_out),
        }
        last = new["band"] == d.bands - 1
        inside = new["top"] >= 0
        end = Mux(last, last_bottom, new["bottom"])
        with m.If(self.start | self.advance):
            m.d.sync += [
                self.band.eq(new["band"]), top_rows.eq(new["top"]), self.top.eq(new["top"]),
                top_in.eq(new["top_in"]), top_in2.eq(new["top_in2"]),
                top_pad.eq(new["top_pad"]), bottom.eq(new["bottom"]),
                self.out_offset.eq(new["out_offset"]),
                self.rows.eq(Mux(last, last_rows, d.band_rows)),
                self.out_total.eq(Mux(last, last_total, full_total)),
                self.r0.eq(Mux(inside, new["top"], 0)),
                self.r1.eq(Mux(end > d.in_height, d.in_height, end)),
                self.in_offset.eq(Mux(inside, new["top_in"], 0)),
                self.in2_offset.eq(Mux(inside, new["top_in2"], 0)),
                self.pad_offset.eq(Mux(inside, 0, new["top_pad"])),
            ]
        return m
