"""Small helpers shared by the blocks."""

import numpy as np
from amaranth.hdl import signed, unsigned

__all__ = ["element_shape", "tree_sum", "pack_words", "divisors"]


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
