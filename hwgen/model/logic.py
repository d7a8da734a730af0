"""The small pieces every block is made of, and what synthesis turns them into.

Widths of counters and ranges, LUTs of counters, and three rules of ``synth_xilinx``:
delay chains become shift-register LUTs (:func:`delay_cost`), behavioral products become DSP
slices above a size (:func:`multiplier_dsps`), and on xc7 operand and product registers move
into the slices (:func:`dsp_absorbs_registers`).
"""

from math import ceil

from .resources import Resources

__all__ = ["counter_bits", "counter_luts", "delay_cost", "dsp_absorbs_registers",
           "multiplier_dsps", "range_bits"]


def counter_bits(n):
    """Bits of ``Signal(range(n))``: 0 for a single value."""
    return max(0, (n - 1).bit_length())


def range_bits(lo, hi):
    """Bits of ``Signal(range(lo, hi))`` (signed when ``lo < 0``)."""
    hi -= 1
    if lo >= 0:
        return max(0, hi.bit_length())
    return max((-lo - 1).bit_length(), hi.bit_length()) + 1


def counter_luts(n):
    """LUTs of a counter that wraps at ``n``: one per bit (the incrementer on the carry chain;
    the wrap compare merges into it)."""
    return counter_bits(n)


def delay_cost(family, bits, length):
    """``length`` registers in a row on ``bits`` bits, without reset, each feeding only the
    next: from 3 on, ``synth_xilinx`` makes each bit one shift-register LUT (SRL16E up to 16
    deep, SRLC32E up to 32); ECP5 keeps flip-flops.
    """
    if length >= 3 and family != "ecp5":
        return Resources(lutram=bits * ceil(length / 32))
    return Resources(ff=bits * length)


def dsp_absorbs_registers(family):
    """Whether Yosys moves operand and product registers into the DSP slices (xc7 only)."""
    return family == "xc7"


def multiplier_dsps(family, a_bits, b_bits):
    """Hardware multipliers synthesis spends on a behavioral ``a * b``.

    ``a_bits`` and ``b_bits`` are the operands' own widths (an unsigned operand extended to
    a signed one keeps its width: synthesis drops the known-zero sign bit). ``synth_xilinx``
    maps a product onto DSP slices when both operands have 2 bits or more and the product
    has 9 or more, splitting operands wider than the slice; narrower products stay in LUTs.
    ``synth_ecp5`` has no product minimum.
    """
    if min(a_bits, b_bits) < 2 or (family != "ecp5" and a_bits + b_bits < 9):
        return 0
    a_port, b_port = {"xc7": (25, 18), "xcup": (27, 18), "ecp5": (18, 18)}[family]
    a_bits, b_bits = max(a_bits, b_bits), min(a_bits, b_bits)
    if b_bits > b_port:
        a_bits, b_bits = b_bits, a_bits
    return ceil(a_bits / a_port) * ceil(b_bits / b_port)
