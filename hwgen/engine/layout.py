"""How the engine stores a tensor in DRAM: HWC, channels padded to a group, elements packed at
their own width, rows aligned to bus words.

A ``(C, H, W)`` map (a vector ``(F,)`` is a 1 x 1 map of ``F`` channels; a signal ``(C, L)`` a
map of one row) is stored row by row; a row is its ``W`` pixels in order, each pixel its ``Cp``
channels (``C`` rounded up to a multiple of the channel group, the extra channels 0), each
element ``bits`` bits wide, two's complement when signed, element ``e`` of a row at bit
``e * bits`` of the row, little endian. Each row starts on a bus word: its size is rounded up
to whole ``data_bits`` words. This is FILM-QNN's data packing with rows the engine can fetch as
bursts.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["TensorLayout", "map_shape"]


def map_shape(shape):
    """``(C, H, W)`` of a tensor of IR ``shape`` (a vector is 1 x 1, a signal one row)."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 1:
        return shape[0], 1, 1
    if len(shape) == 2:
        return shape[0], 1, shape[1]
    return shape


@dataclass(frozen=True)
class TensorLayout:
    """The DRAM layout of one tensor (see the module documentation)."""
    shape: tuple           # the IR shape
    bits: int
    signed: bool
    group: int             # channels are padded to a multiple of this
    data_bits: int         # bus width: rows start on words of this many bits

    @property
    def map(self):
        return map_shape(self.shape)

    def to_metadata(self):
        return {"shape": list(self.shape), "bits": self.bits, "signed": self.signed,
                "group": self.group, "data_bits": self.data_bits, "nbytes": self.nbytes}

    @classmethod
    def from_metadata(cls, entry):
        return cls(tuple(entry["shape"]), int(entry["bits"]), bool(entry["signed"]),
                   int(entry["group"]), int(entry["data_bits"]))

    @property
    def channels(self):
        """Stored channels per pixel (``C`` rounded up to the group)."""
        return -(-self.map[0] // self.group) * self.group

    @property
    def groups(self):
        """Channel groups per pixel."""
        return self.channels // self.group

    @property
    def row_bits(self):
        return self.map[2] * self.channels * self.bits

    @property
    def row_words(self):
        return -(-self.row_bits // self.data_bits)

    @property
    def row_bytes(self):
        return self.row_words * self.data_bits // 8

    @property
    def nbytes(self):
        return self.map[1] * self.row_bytes

    def pack(self, x):
        """The bytes of one tensor ``x`` (IR shape, integers in range)."""
        c, h, w = self.map
        x = np.asarray(x, dtype=np.int64).reshape(c, h, w)
        lo, hi = (-(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1) if self.signed \
            else (0, (1 << self.bits) - 1)
        if x.size and (x.min() < lo or x.max() > hi):
            raise ValueError(f"tensor values must lie in the {self.bits}-bit "
                             f"{'signed' if self.signed else 'unsigned'} range {lo}..{hi}, not "
                             f"{int(x.min())}..{int(x.max())}")
        hwc = np.zeros((h, w, self.channels), dtype=np.int64)
        hwc[:, :, :c] = np.moveaxis(x, 0, -1)
        mask = (1 << self.bits) - 1
        out = bytearray()
        for row in hwc.reshape(h, -1):
            value = 0
            for e, v in enumerate(row.tolist()):
                value |= (v & mask) << (e * self.bits)
            out += value.to_bytes(self.row_bytes, "little")
        return bytes(out)

    def unpack(self, data):
        """The tensor (IR shape, int64) stored in ``data`` (:attr:`nbytes` bytes)."""
        c, h, w = self.map
        data = bytes(data)
        if len(data) != self.nbytes:
            raise ValueError(f"a tensor of layout {self.shape} takes {self.nbytes} bytes, not "
                             f"{len(data)}")
        mask, half = (1 << self.bits) - 1, 1 << (self.bits - 1)
        hwc = np.zeros((h, w * self.channels), dtype=np.int64)
        for y in range(h):
            value = int.from_bytes(data[y * self.row_bytes:(y + 1) * self.row_bytes], "little")
            for e in range(w * self.channels):
                v = (value >> (e * self.bits)) & mask
                hwc[y, e] = v - (1 << self.bits) if self.signed and v >= half else v
        x = np.moveaxis(hwc.reshape(h, w, self.channels)[:, :, :c], -1, 0)
        return x.reshape(self.shape)
