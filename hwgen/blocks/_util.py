"""Small helpers shared by the blocks."""

import numpy as np
from amaranth.hdl import Shape, ShapeCastable, signed, unsigned

__all__ = ["element_shape", "tree_sum", "pack_words", "divisors", "check_pair", "check_count",
           "check_shape"]


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
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    try:
        pair = tuple(value)
    except TypeError:
        pair = None
    if (pair is None or len(pair) != 2 or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in pair)):
        raise TypeError(f"{_where(layer)}{name} must be an integer or a pair of integers, "
                        f"not {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{_where(layer)}{name} must be at least {minimum}, not {value!r}")
    return tuple(int(v) for v in pair)


def check_count(name, value, layer, minimum=1):
    """``value`` as an int ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{_where(layer)}{name} must be an integer, not {value!r}")
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
