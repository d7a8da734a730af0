"""How the engine stores a tensor in DRAM: HWC, channels padded to a group, elements packed at
their own width, rows aligned to bus words.

A ``(C, H, W)`` map (a vector ``(F,)`` is a 1 x 1 map of ``F`` channels; a signal ``(C, L)`` a
map of one row) is stored row by row; a row is its ``W`` pixels in order, each pixel its ``Cp``
channels (``C`` rounded up to a multiple of the channel group, the extra channels 0), each
element ``bits`` bits wide, two's complement when signed, element ``e`` of a row at bit
``e * bits`` of the row, little endian. Each row starts on a bus word: its size is rounded up
to whole ``data_bits`` words. This is FILM-QNN's data packing with rows the engine can fetch as
bursts.

A tensor stored as its ``patches`` (the network's input, when its first convolution reads few
channels) is stored as that convolution's windows: the map of its output positions, each pixel
the ``kh * kw * C`` elements of its window (window position major, channel minor, padding 0),
which the convolution then reads as a 1 x 1 convolution. Whoever writes the input lays it out
so, and the engine's k-steps then carry the window's positions as well as its channels.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["ImagePlanes", "PLANE_ALIGN", "PORT_COUNTS", "TensorLayout", "map_shape"]

#: Alignment of the image and of each plane when the engine has several ports (no port's
#: burst may cross 4 KiB; :mod:`hwgen.engine.ports`).
PLANE_ALIGN = 4096
#: AXI4 ports an engine may spread its bus over (a Zynq has four high-performance ports).
PORT_COUNTS = (1, 2, 4)


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
    patches: tuple = None  # (kh, kw, sh, sw, ph, pw): stored as these windows

    @property
    def map(self):
        """``(C, H, W)`` as stored: the windows' map when stored as patches."""
        c, h, w = map_shape(self.shape)
        if self.patches is None:
            return c, h, w
        kh, kw, sh, sw, ph, pw = self.patches
        return c * kh * kw, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1

    def to_metadata(self):
        return {"shape": list(self.shape), "bits": self.bits, "signed": self.signed,
                "group": self.group, "data_bits": self.data_bits, "nbytes": self.nbytes,
                "patches": None if self.patches is None else list(self.patches)}

    @classmethod
    def from_metadata(cls, entry):
        patches = entry.get("patches")
        return cls(tuple(entry["shape"]), int(entry["bits"]), bool(entry["signed"]),
                   int(entry["group"]), int(entry["data_bits"]),
                   None if patches is None else tuple(int(v) for v in patches))

    def _window_slices(self):
        """For each window position ``(ky, kx)``, the slices of the padded map it reads."""
        kh, kw, sh, sw, _, _ = self.patches
        _, oh, ow = self.map
        return [(slice(ky, ky + sh * (oh - 1) + 1, sh), slice(kx, kx + sw * (ow - 1) + 1, sw))
                for ky in range(kh) for kx in range(kw)]

    def _to_patches(self, x):
        _, _, _, _, ph, pw = self.patches
        x = np.pad(x, ((0, 0), (ph, ph), (pw, pw)))
        return np.concatenate([x[:, rows, cols] for rows, cols in self._window_slices()])

    def _from_patches(self, stored):
        """The map the windows were cut from; a pixel no window reads is 0."""
        c, h, w = map_shape(self.shape)
        _, _, _, _, ph, pw = self.patches
        x = np.zeros((c, h + 2 * ph, w + 2 * pw), dtype=np.int64)
        for k, (rows, cols) in enumerate(self._window_slices()):
            x[:, rows, cols] = stored[k * c:(k + 1) * c]
        return x[:, ph:ph + h, pw:pw + w]

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
        x = np.asarray(x, dtype=np.int64).reshape(map_shape(self.shape))
        lo, hi = (-(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1) if self.signed \
            else (0, (1 << self.bits) - 1)
        if x.size and (x.min() < lo or x.max() > hi):
            raise ValueError(f"tensor values must lie in the {self.bits}-bit "
                             f"{'signed' if self.signed else 'unsigned'} range {lo}..{hi}, not "
                             f"{int(x.min())}..{int(x.max())}")
        if self.patches is not None:
            x = self._to_patches(x)
        c, h, w = self.map
        hwc = np.zeros((h, w, self.channels), dtype=np.int64)
        hwc[:, :, :c] = np.moveaxis(x, 0, -1)
        # Each element's bits, least significant first, then each row's bits into bytes;
        # a row at a time keeps the bit array small on a board's processor.
        shifts = np.arange(self.bits, dtype=np.int64)
        pad = self.row_bytes * 8 - w * self.channels * self.bits
        rows = [np.packbits(np.pad(((row[:, None] >> shifts) & 1).astype(np.uint8).ravel(),
                                   (0, pad)), bitorder="little")
                for row in hwc.reshape(h, -1)]
        return b"".join(row.tobytes() for row in rows)

    def unpack(self, data):
        """The tensor (IR shape, int64) stored in ``data`` (:attr:`nbytes` bytes)."""
        c, h, w = self.map
        data = bytes(data)
        if len(data) != self.nbytes:
            raise ValueError(f"a tensor of layout {self.shape} takes {self.nbytes} bytes, not "
                             f"{len(data)}")
        weights = np.int64(1) << np.arange(self.bits, dtype=np.int64)
        hwc = np.zeros((h, w * self.channels), dtype=np.int64)
        for y in range(h):
            row = np.frombuffer(data, np.uint8, self.row_bytes, y * self.row_bytes)
            bits = np.unpackbits(row, bitorder="little")[:w * self.channels * self.bits]
            hwc[y] = bits.reshape(-1, self.bits).astype(np.int64) @ weights
        if self.signed:
            hwc = np.where(hwc >> (self.bits - 1) == 1, hwc - (1 << self.bits), hwc)
        x = np.moveaxis(hwc.reshape(h, w, self.channels)[:, :, :c], -1, 0)
        if self.patches is not None:
            x = self._from_patches(x)
        return x.reshape(self.shape)


@dataclass(frozen=True)
class ImagePlanes:
    """Where the DRAM image lies for an engine of ``ports`` AXI4 ports on a ``data_bytes``
    bus: plane ``k`` (lane ``k``, bytes ``k * lane .. (k + 1) * lane - 1``, of every bus word,
    word after word) at ``k * plane_bytes`` of a buffer of :attr:`nbytes`. With one port the
    buffer is the image itself."""
    ports: int
    data_bytes: int
    image_bytes: int

    def __post_init__(self):
        if isinstance(self.ports, bool) or self.ports not in PORT_COUNTS or \
                self.data_bytes % self.ports or \
                self.data_bytes // self.ports < 4:
            raise ValueError(f"an image in planes needs one of "
                             f"{', '.join(map(str, PORT_COUNTS))} ports of at least 4 bytes "
                             f"each, not {self.ports!r} on a {self.data_bytes}-byte bus")
        if self.ports > 1 and self.plane_bytes >= 1 << 32:
            raise ValueError(f"planes of {self.plane_bytes} bytes do not fit the 32-bit PLANE "
                             f"register")

    @property
    def lane_bytes(self):
        return self.data_bytes // self.ports if self.ports > 1 else 1

    @property
    def plane_bytes(self):
        """Bytes from one plane to the next (the ``PLANE`` register): whole 4 KiB pages."""
        if self.ports == 1:
            return self.image_bytes
        words = -(-self.image_bytes // self.data_bytes)
        return -(-words * self.lane_bytes // PLANE_ALIGN) * PLANE_ALIGN

    @property
    def nbytes(self):
        return self.ports * self.plane_bytes

    def view(self, buffer):
        """``buffer`` (:attr:`nbytes` writable bytes) as ``(words, ports, lane)``: word ``w``
        of the image is ``view[w]`` flattened."""
        flat = np.asarray(buffer, dtype=np.uint8).reshape(-1)
        if flat.size != self.nbytes:
            raise ValueError(f"the image's planes take {self.nbytes} bytes, not {flat.size}")
        lane = self.lane_bytes
        return flat.reshape(self.ports, self.plane_bytes // lane, lane).transpose(1, 0, 2)

    def _words(self, address, nbytes):
        size = self.ports * self.lane_bytes
        if address < 0 or address + nbytes > self.image_bytes:
            raise ValueError(f"bytes {address}..{address + nbytes} are not inside the image "
                             f"of {self.image_bytes} bytes")
        return address // size, -(-(address + nbytes) // size), size

    def write(self, buffer, address, data):
        """Store ``data`` at ``address`` of the image."""
        data = np.frombuffer(bytes(data), dtype=np.uint8)
        first, end, size = self._words(address, data.size)
        if not data.size:
            return
        view = self.view(buffer)
        words = view[first:end].reshape(-1).copy()
        words[address - first * size:address - first * size + data.size] = data
        view[first:end] = words.reshape(end - first, self.ports, -1)

    def read(self, buffer, address, nbytes):
        """The ``nbytes`` of the image at ``address``."""
        first, end, size = self._words(address, nbytes)
        words = self.view(buffer)[first:end].reshape(-1)
        return words[address - first * size:address - first * size + nbytes].tobytes()

    def planes(self, image):
        """The buffer that holds ``image`` (all :attr:`image_bytes` of it) in planes."""
        buffer = np.zeros(self.nbytes, dtype=np.uint8)
        self.write(buffer, 0, image)
        return buffer.tobytes()
