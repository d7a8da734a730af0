"""The parameters of one fold (or channel group), as the compiler writes them and the hardware
and the reference read them: one :class:`~amaranth.lib.data.StructLayout`, so the three agree
by construction.

Each fold's parameters are ``param_words(config)`` bus words at the head of the fold: the
requantizer's ``tm`` multipliers and offsets, then for each of :data:`MAX_PASSES` passes the
``tm`` lane biases and, for each output position, the lane its sum comes from and whether it
does (the fold's crossbar table). The offsets are fixed, so the hardware reads them without
arithmetic.
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from quant.graph import OFFSET_BITS

__all__ = ["MULTIPLIER_BITS", "OFFSET_BITS", "MAX_PASSES", "VECTOR_WEIGHT_BITS", "VECTOR_IN_BITS", "param_layout", "param_words",
           "encode_params", "decode_params"]

#: Width of a requantizer multiplier.
MULTIPLIER_BITS = 24
#: Width of a depthwise weight in the vector unit's weight words.
VECTOR_WEIGHT_BITS = 8
#: Widest element the vector lanes read.
VECTOR_IN_BITS = 16
#: Passes a fold may take (the crossbar table has this many rows).
MAX_PASSES = 4


def position_bits(config):
    return max(1, (config.tm - 1).bit_length())


def param_layout(config):
    tm = config.tm
    source = data.StructLayout({"lane": unsigned(position_bits(config)), "valid": 1})
    return data.StructLayout({
        "mult": data.ArrayLayout(unsigned(MULTIPLIER_BITS), tm),
        "offset": data.ArrayLayout(signed(OFFSET_BITS + 1), tm),
        "bias": data.ArrayLayout(data.ArrayLayout(signed(config.acc_bits), tm), MAX_PASSES),
        "source": data.ArrayLayout(data.ArrayLayout(source, tm), MAX_PASSES),
    })


def param_words(config):
    """Bus words of one fold's parameters."""
    return -(-param_layout(config).size // config.data_bits)


def encode_params(config, *, mult, offset, bias, source):
    """One fold's parameter bytes. ``mult`` and ``offset`` have ``tm`` entries, ``bias``
    :data:`MAX_PASSES` rows of ``tm``, ``source`` as many rows of ``tm`` ``(lane, valid)``."""
    layout = param_layout(config)
    value = layout.const({
        "mult": [int(v) for v in mult], "offset": [int(v) for v in offset],
        "bias": [[int(v) for v in row] for row in bias],
        "source": [[{"lane": lane, "valid": valid} for lane, valid in row] for row in source],
    }).as_bits()
    return value.to_bytes(param_words(config) * config.data_bytes, "little")


def decode_params(config, raw):
    """``(mult, offset, bias, source)`` of one fold's parameter bytes, as :func:`encode_params`
    takes them."""
    tm = config.tm
    view = param_layout(config).from_bits(int.from_bytes(bytes(raw), "little")
                                          & ((1 << param_layout(config).size) - 1))
    mult = [view.mult[j] for j in range(tm)]
    offset = [view.offset[j] for j in range(tm)]
    bias = [[view.bias[q][j] for j in range(tm)] for q in range(MAX_PASSES)]
    source = [[(view.source[q][j].lane, view.source[q][j].valid) for j in range(tm)]
              for q in range(MAX_PASSES)]
    return mult, offset, bias, source
