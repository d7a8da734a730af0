"""The engine's program: one 64-byte descriptor per layer, read from DRAM.

A descriptor is sixteen little-endian 32-bit words; :data:`FIELDS` gives each field's word,
bit offset and width, in one place for the compiler, the hardware's decoder and the tests.
The program is a run of descriptors; the last one has ``last`` set.

Ops (``op``):

- :data:`MATMUL`: a convolution or dense layer on the MAC array (a dense layer is a 1 x 1
  convolution, or one whose kernel covers the whole map it reads after a flatten);
- :data:`POOL_MAX`, :data:`POOL_SUM`: a per-channel maximum or sum over each window on the
  vector unit (a global pool is one window over the whole map; a requantizer alone is a 1 x 1
  sum);
- :data:`DEPTHWISE`: a depthwise convolution on the vector unit;
- :data:`ADD`: the elementwise sum of two tensors on the vector unit.

Every op may end in a requantizer (``requant``): per-channel multiplier and offset, a shift
rounding half up or half to even (``rounding``), clamp to ``out_bits``; without it the sum is
stored as it is, ``out_bits`` wide.
"""

from dataclasses import dataclass, fields

from amaranth.hdl import unsigned
from amaranth.lib import data

__all__ = ["MATMUL", "POOL_MAX", "POOL_SUM", "DEPTHWISE", "ADD", "OPS", "ROUNDING", "FIELDS",
           "DESCRIPTOR_BYTES", "DESCRIPTOR_LAYOUT", "Descriptor"]

MATMUL, POOL_MAX, POOL_SUM, DEPTHWISE, ADD = 1, 2, 3, 4, 5
OPS = {MATMUL: "matmul", POOL_MAX: "pool_max", POOL_SUM: "pool_sum", DEPTHWISE: "depthwise",
       ADD: "add"}

#: The ``rounding`` field's codes, by :mod:`quant.numerics` rounding mode.
ROUNDING = {"half_up": 0, "half_even": 1}

DESCRIPTOR_WORDS = 16
DESCRIPTOR_BYTES = 4 * DESCRIPTOR_WORDS

#: ``name: (word, bit, width)``.
FIELDS = {
    "op": (0, 0, 4), "last": (0, 4, 1), "requant": (0, 5, 1), "in_signed": (0, 6, 1),
    "in2_signed": (0, 7, 1), "out_signed": (0, 8, 1), "rounding": (0, 9, 1),
    "in_addr": (1, 0, 32), "in2_addr": (2, 0, 32), "out_addr": (3, 0, 32),
    "param_addr": (4, 0, 32),
    "in_height": (5, 0, 16), "in_width": (5, 16, 16),
    "out_height": (6, 0, 16), "out_width": (6, 16, 16),
    "in_groups": (7, 0, 16), "out_groups": (7, 16, 16),
    "kernel_h": (8, 0, 8), "kernel_w": (8, 8, 8), "stride_h": (8, 16, 4), "stride_w": (8, 20, 4),
    "pad_h": (8, 24, 4), "pad_w": (8, 28, 4),
    "in_bits": (9, 0, 8), "in2_bits": (9, 8, 8), "out_bits": (9, 16, 8), "shift": (9, 24, 8),
    "in_row_words": (10, 0, 16), "out_row_words": (10, 16, 16),
    "band_rows": (11, 0, 16), "bands": (11, 16, 16),
    "folds": (12, 0, 12), "passes": (12, 12, 4), "ksteps": (12, 16, 16),
    "kstep_words": (13, 0, 16), "fold_words": (13, 16, 16),
    "pad_value": (14, 0, 32),
    "in2_row_words": (15, 0, 16), "first_passes": (15, 16, 4),
}

#: The descriptor as the hardware holds it: a 512-bit word with the fields at their places.
DESCRIPTOR_LAYOUT = data.FlexibleLayout(
    32 * DESCRIPTOR_WORDS,
    {name: data.Field(unsigned(width), 32 * word + bit)
     for name, (word, bit, width) in FIELDS.items()})


@dataclass
class Descriptor:
    """One layer's descriptor (every field an unsigned integer; see :data:`FIELDS`).

    ``param_addr`` points at the layer's parameters: for each fold (MATMUL) or channel group
    (the other ops), ``fold_words`` bus words of parameters (:mod:`hwgen.engine.params`),
    then the fold's pass count times ``ksteps`` weight words of ``kstep_words`` bus words each.
    A fold's parameters give its own pass count and the next fold's; ``first_passes`` is the
    first fold's, and ``passes`` the most any fold has (1 for the other ops).
    ``pad_value`` is the value of padding elements (two's complement, ``in_bits`` wide; a max
    pool pads with its smallest element).
    """
    op: int = 0
    last: int = 0
    requant: int = 0
    in_signed: int = 0
    in2_signed: int = 0
    out_signed: int = 0
    rounding: int = 0
    in_addr: int = 0
    in2_addr: int = 0
    out_addr: int = 0
    param_addr: int = 0
    in_height: int = 0
    in_width: int = 0
    out_height: int = 0
    out_width: int = 0
    in_groups: int = 0
    out_groups: int = 0
    kernel_h: int = 1
    kernel_w: int = 1
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    in_bits: int = 0
    in2_bits: int = 0
    out_bits: int = 0
    shift: int = 0
    in_row_words: int = 0
    out_row_words: int = 0
    band_rows: int = 0
    bands: int = 0
    folds: int = 0
    passes: int = 1
    ksteps: int = 0
    kstep_words: int = 0
    fold_words: int = 0
    pad_value: int = 0
    in2_row_words: int = 0
    first_passes: int = 1

    def encode(self):
        """The descriptor's 64 bytes; a field too wide for its bits raises ValueError."""
        words = [0] * DESCRIPTOR_WORDS
        for f in fields(self):
            word, bit, width = FIELDS[f.name]
            value = getattr(self, f.name)
            if not 0 <= value < (1 << width):
                raise ValueError(f"descriptor field {f.name} must fit {width} bits, not {value}")
            words[word] |= value << bit
        return b"".join(w.to_bytes(4, "little") for w in words)

    @classmethod
    def decode(cls, data):
        words = [int.from_bytes(data[4 * i:4 * i + 4], "little")
                 for i in range(DESCRIPTOR_WORDS)]
        return cls(**{name: (words[word] >> bit) & ((1 << width) - 1)
                      for name, (word, bit, width) in FIELDS.items()})
