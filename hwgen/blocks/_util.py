"""Small helpers shared by the blocks."""

import numpy as np
from amaranth.hdl import (Cat, ClockSignal, Const, Instance, Mux, Shape, ShapeCastable, Signal,
                          Value, signed, unsigned)

from quant import numerics
from quant.numerics import is_int

__all__ = ["element_shape", "tree_sum", "pack_words", "divisors", "is_int", "check_int",
           "check_pair", "check_count", "check_shape", "check_window", "check_pad_value",
           "registered_product", "delayed", "rom_attrs",
           "accumulator_range", "accumulator_bits", "lut_multiply",
           "csd_digits", "const_multiply"]


def element_shape(bits, is_signed):
    return signed(bits) if is_signed else unsigned(bits)


def tree_sum(values):
    """Sum with a balanced adder tree, so the result grows by log2(n) bits, not n."""
    values = list(values)
    while len(values) > 1:
        pairs = [values[i] + values[i + 1] for i in range(0, len(values) - 1, 2)]
        values = pairs + ([values[-1]] if len(values) % 2 else [])
    return values[0]


def pack_words(elements, bits):
    """Pack rows of integers into words, element 0 in the low bits (two's complement)."""
    elements = np.asarray(elements, dtype=np.int64)
    mask = (1 << bits) - 1
    words = []
    for row in elements.reshape(len(elements), -1):
        word = 0
        for i, v in enumerate(row.tolist()):
            word |= (v & mask) << (i * bits)
        words.append(word)
    return words


def divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _where(layer):
    return f"layer '{layer}': " if layer is not None else ""


def check_pair(name, value, minimum, layer):
    """``value`` (an int or two ints) as a pair of ints ``>= minimum``."""
    if is_int(value):
        value = (value, value)
    try:
        pair = tuple(value)
    except TypeError:
        pair = None
    if (pair is None or len(pair) != 2 or any(
            not is_int(v) for v in pair)):
        raise TypeError(f"{_where(layer)}{name} must be an integer or a pair of integers, "
                        f"not {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{_where(layer)}{name} must be at least {minimum}, not {value!r}")
    return tuple(int(v) for v in pair)


def check_int(name, value, layer):
    """``value`` as an int (any sign)."""
    if not is_int(value):
        raise TypeError(f"{_where(layer)}{name} must be an integer, not {value!r}")
    return int(value)


def check_count(name, value, layer, minimum=1):
    """``value`` as an int ``>= minimum``."""
    value = check_int(name, value, layer)
    if value < minimum:
        raise ValueError(f"{_where(layer)}{name} must be at least {minimum}, not {value}")
    return int(value)


def check_shape(name, value, layer):
    """``value`` as an Amaranth shape of at least one bit."""
    if not isinstance(value, (Shape, ShapeCastable, int, range)) or isinstance(value, bool):
        raise TypeError(f"{_where(layer)}{name} must be an Amaranth shape such as "
                        f"unsigned(8) or signed(5), not {value!r}")
    shape = Shape.cast(value)
    if shape.width < 1:
        raise ValueError(f"{_where(layer)}{name} must be at least 1 bit wide, not {shape!r}")
    return shape


def check_window(layer, *, channels, height, width, kernel, stride, padding, shape):
    """The checked geometry of a window over a map: counts, ``(y, x)`` pairs with a padding
    smaller than the kernel along each axis, and the element shape, in that order."""
    channels = check_count("channels", channels, layer)
    height = check_count("height", height, layer)
    width = check_count("width", width, layer)
    kernel = check_pair("kernel", kernel, 1, layer)
    stride = check_pair("stride", stride, 1, layer)
    padding = check_pair("padding", padding, 0, layer)
    for axis, k, p in zip("yx", kernel, padding):
        if p >= k:
            raise ValueError(f"{_where(layer)}padding must be smaller than the kernel, not "
                             f"{p} for a kernel of {k} along {axis}")
    return channels, height, width, kernel, stride, padding, check_shape("shape", shape, layer)


def check_pad_value(pad_value, shape, layer):
    """``pad_value`` as an int within the range of the elements of ``shape``."""
    lo, hi = numerics.int_range(shape.width, shape.signed)
    pad_value = check_int("pad_value", pad_value, layer)
    if not lo <= pad_value <= hi:
        raise ValueError(f"{_where(layer)}pad_value must be in the element range {lo}..{hi}, "
                         f"not {pad_value}")
    return pad_value


def _is_ecp5(platform):
    from amaranth.vendor import LatticePlatform

    return isinstance(platform, LatticePlatform) and platform.family == "ecp5"


def rom_attrs(platform, depth):
    """Attributes for a ROM of ``depth`` words read through a registered port.

    On a Lattice ECP5 platform a ROM deeper than 16 words goes to block RAM: in logic its
    address would fan out to a multiplexer tree of several LUT levels, too slow for one cycle
    at the clocks the blocks are pipelined for (the block RAM's own slow output is registered
    again by its users). Elsewhere synthesis chooses.
    """
    return {"rom_style": "block"} if _is_ecp5(platform) and depth > 16 else {}


def _mult18_port(value):
    """``value`` sign- or zero-extended to a MULT18X18D port, or None if it does not fit the
    18-bit signed port."""
    shape = value.shape()
    if shape.width > (18 if shape.signed else 17):
        return None
    fill = value[-1] if shape.signed and shape.width else Const(0, 1)
    return Cat(value, fill.replicate(18 - shape.width))


def delayed(m, value, cycles, name, *, en=None, reset_less=False):
    """``value`` through ``cycles`` registers in the ``sync`` domain of ``m`` (named
    ``name0``, ``name1``, ...), clocked only while ``en`` (if given) is high; the last
    register, or ``value`` itself for none. ``reset_less`` registers are plain data flops
    (no reset logic), for pipelines whose valid flags carry the reset."""
    for n in range(cycles):
        register = Signal.like(value, name=f"{name}{n}", reset_less=reset_less)
        m.d.sync += register.eq(Mux(en, value, register) if en is not None else value)
        value = register
    return value


def registered_product(m, a, b, *, en, platform=None, name="product"):
    """``a * b``, two enabled clock cycles later: the operands are registered, then the product.

    This is how a hardware multiplier pipelines in its own registers (a DSP48's A/B and P
    registers, which vendor synthesis absorbs). Yosys does not absorb registers into an ECP5
    MULT18X18D, and placement then leaves the fabric flip-flops far from the DSP, so on a
    Lattice ECP5 platform, when both operands fit the 18-bit signed ports, the product is a
    MULT18X18D instance with its input and output registers enabled. Without a platform (the
    simulators, synthesis estimates) it is behavioral: the same registers and ``a * b``.

    Parameters
    ----------
    m : Module
    a, b : Value
        The operands; a constant is not registered.
    en : Value
        Clock enable of both stages (``sync`` domain).
    platform : object, optional
        The platform ``elaborate`` was given.
    name : str
        Name of the product signal.

    Returns
    -------
    Signal
        ``a * b`` with the shape Amaranth gives it. Like the DSP's, the registers have no
        reset: a reset net that reaches every pipeline register limits the clock.
    """
    a, b = Value.cast(a), Value.cast(b)
    product = Signal((a * b).shape(), name=name, reset_less=True)
    ports = [_mult18_port(a), _mult18_port(b)]
    if _is_ecp5(platform) and all(port is not None for port in ports):
        p = Signal(36, name=f"{name}_p")
        registers = {}
        for reg in ("INPUTA", "INPUTB", "OUTPUT"):
            registers.update({f"p_REG_{reg}_CLK": "CLK0", f"p_REG_{reg}_CE": "CE0",
                              f"p_REG_{reg}_RST": "RST0"})
        connections = {f"i_{port}{i}": ports[k][i] for k, port in enumerate("AB")
                       for i in range(18)}
        connections.update({f"i_C{i}": 0 for i in range(18)})
        connections.update({f"o_P{i}": p[i] for i in range(36)})
        m.submodules[name] = Instance(
            "MULT18X18D", **registers,
            p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE", p_RESETMODE="SYNC",
            p_GSR="DISABLED", p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED",
            p_CAS_MATCH_REG="FALSE", p_HIGHSPEED_CLK="NONE",
            i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
            i_CLK0=ClockSignal("sync"), i_CLK1=0, i_CLK2=0, i_CLK3=0,
            i_CE0=en, i_CE1=0, i_CE2=0, i_CE3=0, i_RST0=0, i_RST1=0, i_RST2=0, i_RST3=0,
            **connections)
        m.d.comb += product.eq(p[:len(product)])
        return product
    operands = []
    for operand, which in ((a, "a"), (b, "b")):
        if isinstance(operand, Const):
            operands.append(operand)
            continue
        register = Signal(operand.shape(), name=f"{name}_{which}", reset_less=True)
        with m.If(en):
            m.d.sync += register.eq(operand)
        operands.append(register)
    with m.If(en):
        m.d.sync += product.eq(operands[0] * operands[1])
    return product


def accumulator_range(weight, bias, x_lo, x_hi):
    """Bounds that every running sum of a folded dot product stays within.

    The unit adds the bias first and then the products fold by fold; it also holds each fold's
    partial dot product without the bias. Every product's range contains 0 (0 is a valid input),
    so all those partial sums lie between the bounds of the bias-free and biased full sums.
    """
    lo, hi = numerics.dense_range(weight, bias, x_lo, x_hi)
    bias = np.asarray(bias, dtype=np.int64)
    return (int(min(lo.min(), (lo - bias).min(), 0)),
            int(max(hi.max(), (hi - bias).max(), 0)))


def accumulator_bits(weight, bias, in_bits, in_signed):
    """Width of the signed accumulator of :func:`accumulator_range` for inputs of
    ``in_bits`` (signed or not); ``weight`` is ``(filters, ...)``."""
    weight = np.asarray(weight)
    lo, hi = accumulator_range(weight.reshape(weight.shape[0], -1), bias,
                               *numerics.int_range(in_bits, in_signed))
    return numerics.bits_for_range(min(lo, -1), hi)[0]


def csd_digits(value):
    """The canonical signed digits of an integer: ``[(shift, sign), ...]``, no two adjacent,
    so a product by a constant ``value`` takes the fewest shifted terms (7 is 8 - 1)."""
    digits, value, shift = [], int(value), 0
    while value:
        if value & 1:
            sign = 2 - (value & 3)          # 1 when value = 1 (mod 4), -1 when 3 (mod 4)
            digits.append((shift, sign))
            value -= sign
        value >>= 1
        shift += 1
    return digits


def const_multiply(weight, x):
    """``weight * x`` for a constant integer ``weight``: a sum of the shifted terms of its
    canonical signed digits (LUTs only, none for a zero weight)."""
    terms = [(x << shift) if sign > 0 else -(x << shift) for shift, sign in csd_digits(weight)]
    return tree_sum(terms) if terms else Const(0)


def lut_multiply(w, x, bits):
    """``w * x`` as shift-and-add, for a ``bits``-wide signed ``w``: LUTs, never a DSP."""
    terms = [Mux(w[b], x << b, 0) for b in range(bits - 1)]
    return tree_sum(terms) - Mux(w[bits - 1], x << (bits - 1), 0)
