"""The engine's weight k-steps as DRAM stores them and the weight buffer holds them: every
weight at its lane's own width, no packing.

A matrix product's k-step is ``tm`` x ``tn`` weights: lane ``p``'s ``tn`` weights (input
element 0 first), each a ``lane_bits[p]``-bit two's complement field, lane 0 in the low bits.
It takes ``sum(lane_bits) * tn`` bits (:func:`kstep_bits`), padded to a whole number of bus
words, the only padding. The MAC array forms each multiplier's packed operand from these
fields as it reads them (:class:`~hwgen.blocks.packer.WeightPacker`'s arithmetic), so the image
holds each weight once at its lane's width.

:func:`pack_fields` and :func:`unpack_fields` turn rows of such fields into bytes and back,
as array bit operations, for the compiler and the reference.
"""

import numpy as np

__all__ = ["kstep_bits", "kstep_widths", "lane_field", "pack_fields", "unpack_fields"]


def kstep_bits(config):
    """Bits of one matrix k-step's weights."""
    return sum(config.lane_bits) * config.tn


def kstep_widths(config):
    """The width of each field of a k-step, in order: lane 0's ``tn`` fields, lane 1's, ..."""
    return np.repeat(np.asarray(config.lane_bits), config.tn)


def lane_field(config, lane, element):
    """``(offset, width)`` of the weight of ``lane`` for input ``element`` in a k-step."""
    width = config.lane_bits[lane]
    return config.tn * sum(config.lane_bits[:lane]) + element * width, width


def _bit_map(widths):
    """For each bit of a row of fields: its field and its place in that field."""
    widths = np.asarray(widths, np.int64)
    starts = np.cumsum(widths) - widths
    field = np.repeat(np.arange(widths.size), widths)
    return field, np.arange(int(widths.sum())) - starts[field], starts


def pack_fields(values, widths, row_bytes):
    """Rows of two's complement fields as bytes: row ``r`` is ``row_bytes`` little-endian
    bytes holding ``values[r, n]`` in ``widths[n]`` bits, field 0 in the low bits.

    ``values`` is ``(rows, fields)``; every value must fit its signed width."""
    values = np.asarray(values, np.int64)
    widths = np.asarray(widths, np.int64)
    if values.ndim != 2 or values.shape[1] != widths.size:
        raise ValueError(f"pack_fields takes (rows, {widths.size}) values, not {values.shape}")
    field, bit, _ = _bit_map(widths)
    if field.size > 8 * row_bytes:
        raise ValueError(f"{field.size} bits of fields do not fit {row_bytes} bytes")
    lo, hi = -(1 << (widths - 1)), (1 << (widths - 1)) - 1
    if values.size and ((values < lo).any() or (values > hi).any()):
        raise ValueError("a value does not fit its field's signed width")
    bits = np.zeros((values.shape[0], 8 * row_bytes), np.uint8)
    bits[:, :field.size] = (values[:, field] >> bit) & 1
    return np.packbits(bits, axis=1, bitorder="little").tobytes()


def unpack_fields(data, widths, rows, row_bytes):
    """The ``(rows, fields)`` signed values of :func:`pack_fields`'s bytes ``data``."""
    widths = np.asarray(widths, np.int64)
    raw = np.frombuffer(bytes(data), np.uint8).reshape(rows, row_bytes)
    field, bit, starts = _bit_map(widths)
    if not rows or not field.size:
        return np.zeros((rows, widths.size), np.int64)
    bits = np.unpackbits(raw, axis=1, bitorder="little")[:, :field.size].astype(np.int64)
    values = np.add.reduceat(bits << bit, starts, axis=1)
    return values - (((values >> (widths - 1)) & 1) << widths)
