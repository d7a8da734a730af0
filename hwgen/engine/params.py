"""The parameters of one fold (or channel group), as the compiler writes them and the hardware
and the reference read them: one :class:`~amaranth.lib.data.StructLayout`, so the three agree
by construction.

Each fold's parameters are ``param_words(config)`` bus words at the head of the fold: the
fold's pass count (the compute unit runs that many passes) and the next fold's (the loader
reads that many passes of weights for it; the descriptor's ``first_passes`` gives the first
fold's), the requantizer's ``tm`` multipliers and offsets, then for each of
:data:`MAX_PASSES` passes the ``tm`` lane biases and, for each output position, the lane its
sum comes from and whether it does (the fold's crossbar table). The offsets are fixed, so the
hardware reads them without arithmetic.
"""

import functools
from dataclasses import dataclass

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from quant.graph import OFFSET_BITS

__all__ = ["MULTIPLIER_BITS", "OFFSET_BITS", "MAX_PASSES", "PASS_COUNT_BITS", "VECTOR_WEIGHT_BITS",
           "VECTOR_IN_BITS", "FoldParams", "param_layout", "param_words", "encode_params",
           "decode_params"]

#: Width of a requantizer multiplier.
MULTIPLIER_BITS = 24
#: Width of a depthwise weight in the vector unit's weight words.
VECTOR_WEIGHT_BITS = 8
#: Widest element the vector lanes read.
VECTOR_IN_BITS = 16
#: Passes a fold may take (the crossbar table has this many rows).
MAX_PASSES = 4
#: Width of a pass count (1 to :data:`MAX_PASSES`).
PASS_COUNT_BITS = MAX_PASSES.bit_length()


@dataclass
class FoldParams:
    """One fold's parameters: its pass count and the next fold's, ``tm`` multipliers and
    offsets, :data:`MAX_PASSES` rows of ``tm`` lane biases and as many rows of ``tm``
    ``(lane, valid)`` crossbar entries."""
    passes: int
    next_passes: int
    mult: list
    offset: list
    bias: list
    source: list


def position_bits(config):
    return max(1, (config.tm - 1).bit_length())


def param_layout(config):
    tm = config.tm
    source = data.StructLayout({"lane": unsigned(position_bits(config)), "valid": 1})
    return data.StructLayout({
        "passes": unsigned(PASS_COUNT_BITS),
        "next_passes": unsigned(PASS_COUNT_BITS),
        "mult": data.ArrayLayout(unsigned(MULTIPLIER_BITS), tm),
        "offset": data.ArrayLayout(signed(OFFSET_BITS + 1), tm),
        "bias": data.ArrayLayout(data.ArrayLayout(signed(config.acc_bits), tm), MAX_PASSES),
        "source": data.ArrayLayout(data.ArrayLayout(source, tm), MAX_PASSES),
    })


@functools.lru_cache(maxsize=None)
def param_words(config):
    """Bus words of one fold's parameters."""
    return -(-param_layout(config).size // config.data_bits)


def encode_params(config, params):
    """The bytes of one fold's :class:`FoldParams`: the fields of :func:`param_layout`, in its
    order, low bits first (packed as plain integers: building the layout's constant takes
    too long for ImageNet networks)."""
    tm, position = config.tm, position_bits(config)
    fields = [(params.passes, PASS_COUNT_BITS), (params.next_passes, PASS_COUNT_BITS)]
    fields += [(v, MULTIPLIER_BITS) for v in params.mult]
    fields += [(v, OFFSET_BITS + 1) for v in params.offset]
    fields += [(v, config.acc_bits) for row in params.bias for v in row]
    fields += [(int(lane) | int(valid) << position, position + 1)
               for row in params.source for lane, valid in row]
    if len(fields) != 2 + 2 * tm + 2 * MAX_PASSES * tm:
        raise ValueError(f"fold parameters must give {tm} values per lane field")
    value = shift = 0
    for v, width in fields:
        value |= (int(v) & ((1 << width) - 1)) << shift
        shift += width
    return value.to_bytes(param_words(config) * config.data_bytes, "little")


def decode_params(config, raw):
    """The :class:`FoldParams` of one fold's parameter bytes."""
    tm = config.tm
    view = param_layout(config).from_bits(int.from_bytes(bytes(raw), "little")
                                          & ((1 << param_layout(config).size) - 1))
    return FoldParams(
        passes=int(view.passes), next_passes=int(view.next_passes),
        mult=[view.mult[j] for j in range(tm)], offset=[view.offset[j] for j in range(tm)],
        bias=[[view.bias[q][j] for j in range(tm)] for q in range(MAX_PASSES)],
        source=[[(view.source[q][j].lane, view.source[q][j].valid) for j in range(tm)]
                for q in range(MAX_PASSES)])
