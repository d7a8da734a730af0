"""The stream format: how a tensor travels on a valid/ready stream, and its packing into words.

One :class:`StreamFormat` says in which order a tensor's elements are streamed, how many go in
one beat and how a beat is packed into a payload word. The simulator, the self-test, the AXI
top's description and the PYNQ driver all pack and unpack through it, so they cannot disagree.

The hardware contract:

* Order ``"HWC"``: a feature map ``(C, H, W)`` (an image) or ``(C, L)`` (a signal) is streamed
  pixel by pixel in raster order, the ``C`` channels of a pixel together. ``map_shape`` is the
  map; the tensor is its C-order flattening or the map itself (a graph that ends with a
  ``flatten`` of a map has a ``(C*H*W,)`` output that the hardware still streams in HWC order).
* Order ``"C"``: the tensor is streamed as it is, in C order (vectors, and the streams of
  designs described before the order was recorded).
* A beat holds ``elements_per_beat`` consecutive stream elements of ``bits`` bits each,
  element 0 in the low bits, two's complement when ``signed``; a frame (one tensor) is
  ``beats_per_frame`` beats.

This module needs NumPy only and imports nothing else from the project: board builds ship
this one file beside the PYNQ driver.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ORDERS", "StreamFormat"]

#: The stream orders: feature maps pixel by pixel, or the tensor as it is.
ORDERS = ("HWC", "C")


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _shape(name, value):
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of integers, not {value!r}")
    if not all(_is_int(d) for d in value):
        raise TypeError(f"{name} must be a sequence of integers, not {value!r}")
    shape = tuple(int(d) for d in value)
    if not shape or min(shape) < 1:
        raise ValueError(f"{name} must have at least one axis, every axis at least 1, not "
                         f"{shape}")
    return shape


def _size(shape):
    return int(np.prod(shape, dtype=np.int64))


@dataclass(frozen=True)
class StreamFormat:
    """How a tensor of ``shape`` is streamed: its order, its beats and their payload words.

    Parameters
    ----------
    shape : tuple of int
        The tensor's shape in the IR: ``(C, H, W)`` image map, ``(C, L)`` signal map, ``(F,)``
        vector. No batch axis.
    bits : int
        Bits of one element: 1..64 when ``signed``, 1..63 otherwise (elements come back as
        int64).
    signed : bool
        Two's complement elements.
    elements_per_beat : int
        Elements in one beat; it divides the frame's element count.
    order : {"HWC", "C"}
        ``"HWC"``: the map streams pixel by pixel, the channels of a pixel together; ``"C"``:
        the tensor streams in C order.
    map_shape : tuple of int, optional
        For ``order == "HWC"``: the ``(C, *spatial)`` map whose C-order flattening is the
        tensor (same element count, at least two axes). By default ``shape``. Not used with
        ``order == "C"`` (``None``).

    Examples
    --------
    >>> f = StreamFormat((2, 1, 3), bits=4, signed=False, elements_per_beat=2, order="HWC")
    >>> f.to_stream(np.arange(6).reshape(2, 1, 3)).tolist()
    [[0, 3, 1, 4, 2, 5]]
    >>> [hex(w) for w in f.pack(np.arange(6).reshape(2, 1, 3))]
    ['0x30', '0x41', '0x52']
    """

    shape: tuple
    bits: int
    signed: bool
    elements_per_beat: int
    order: str = "C"
    map_shape: tuple | None = None

    def __post_init__(self):
        shape = _shape("shape", self.shape)
        if not isinstance(self.signed, (bool, np.bool_)):
            raise TypeError(f"signed must be a bool, not {self.signed!r}")
        signed = bool(self.signed)
        if not _is_int(self.bits):
            raise TypeError(f"bits must be an integer, not {self.bits!r}")
        limit = 64 if signed else 63
        if not 1 <= self.bits <= limit:
            kind = "signed" if signed else "unsigned"
            raise ValueError(f"bits must be in 1..{limit} for {kind} elements (they are "
                             f"returned as int64), not {self.bits}")
        if not _is_int(self.elements_per_beat):
            raise TypeError(f"elements_per_beat must be an integer, not "
                            f"{self.elements_per_beat!r}")
        k, size = int(self.elements_per_beat), _size(shape)
        if k < 1 or size % k:
            raise ValueError(f"elements_per_beat must divide the {size} elements of shape "
                             f"{shape}, not {k}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be \"HWC\" or \"C\", not {self.order!r}")
        map_shape = self.map_shape
        if self.order == "C":
            if map_shape is not None:
                raise ValueError(f"map_shape must be None for order \"C\" (a tensor streamed "
                                 f"as it is), not {map_shape!r}")
        else:
            map_shape = shape if map_shape is None else _shape("map_shape", map_shape)
            if len(map_shape) < 2:
                raise ValueError(f"map_shape must have a channel axis and at least one "
                                 f"spatial axis for order \"HWC\", not {map_shape}")
            if _size(map_shape) != size:
                raise ValueError(f"map_shape {map_shape} must hold the {size} elements of "
                                 f"shape {shape}, not {_size(map_shape)}")
        for name, value in (("shape", shape), ("bits", int(self.bits)), ("signed", signed),
                            ("elements_per_beat", k), ("map_shape", map_shape)):
            object.__setattr__(self, name, value)

    # -- constructors ----------------------------------------------------------------------

    @classmethod
    def for_tensor(cls, shape, bits, signed, elements_per_beat, map_shape=None):
        """The hardware's format for a tensor: HWC for a map (two or more axes, or a
        ``map_shape``), C for a vector."""
        hwc = map_shape is not None or (isinstance(shape, (Sequence, np.ndarray))
                                        and len(shape) >= 2)
        return cls(shape, bits, signed, elements_per_beat, "HWC" if hwc else "C", map_shape)

    @classmethod
    def from_metadata(cls, entry, *, name="stream"):
        """The format of a design metadata stream entry (see :meth:`to_metadata`).

        An entry without ``order`` is in C order (designs described before it was recorded).
        ``beats_per_frame`` must agree with the other fields; other keys are ignored.

        Raises
        ------
        TypeError
            When ``entry`` is not a mapping.
        ValueError
            Listing every problem of the entry, one per line, each starting with ``name``.
        """
        if not isinstance(entry, Mapping):
            raise TypeError(f"{name} must be a dict, not {entry!r}")
        missing = [key for key in ("shape", "elements_per_beat", "beats_per_frame", "bits",
                                   "signed") if key not in entry]
        if missing:
            raise ValueError(f"{name} is missing {', '.join(missing)}")
        problems = []
        shape, k, m = entry["shape"], entry["elements_per_beat"], entry["beats_per_frame"]
        bits, signed = entry["bits"], entry["signed"]
        order, map_shape = entry.get("order", "C"), entry.get("map_shape")
        if (not isinstance(shape, (list, tuple)) or not shape
                or not all(_is_int(d) and d >= 1 for d in shape)):
            problems.append(f"{name}.shape must be a list of positive integers, not {shape!r}")
        for key, value in (("elements_per_beat", k), ("beats_per_frame", m)):
            if not _is_int(value) or value < 1:
                problems.append(f"{name}.{key} must be a positive integer, not {value!r}")
        if not isinstance(signed, bool):
            problems.append(f"{name}.signed must be true or false, not {signed!r}")
        limit = 64 if signed is True else 63
        if not _is_int(bits) or not 1 <= bits <= limit:
            problems.append(f"{name}.bits must be an integer in 1..{limit}, not {bits!r}")
        if order not in ORDERS:
            problems.append(f"{name}.order must be \"HWC\" or \"C\", not {order!r}")
        if map_shape is not None and (
                not isinstance(map_shape, (list, tuple)) or not map_shape
                or not all(_is_int(d) and d >= 1 for d in map_shape)):
            problems.append(f"{name}.map_shape must be a list of positive integers, not "
                            f"{map_shape!r}")
        if problems:
            raise ValueError("\n".join(problems))
        size = _size(shape)
        if size != k * m:
            raise ValueError(f"{name}: elements_per_beat {k} * beats_per_frame {m} = {k * m} "
                             f"must equal the {size} elements of shape {tuple(shape)}")
        try:
            return cls(shape, bits, signed, k, order, map_shape)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name}: {error}") from None

    def to_metadata(self):
        """The design metadata entry: ``shape``, ``order``, ``elements_per_beat``,
        ``beats_per_frame``, ``bits``, ``signed``, and ``map_shape`` when it differs from
        ``shape``."""
        entry = {"shape": list(self.shape), "order": self.order,
                 "elements_per_beat": self.elements_per_beat,
                 "beats_per_frame": self.beats_per_frame, "bits": self.bits,
                 "signed": self.signed}
        if self.map_shape is not None and self.map_shape != self.shape:
            entry["map_shape"] = list(self.map_shape)
        return entry

    # -- sizes -----------------------------------------------------------------------------

    @property
    def frame_elements(self):
        """Elements in one frame (one tensor)."""
        return _size(self.shape)

    @property
    def beats_per_frame(self):
        """Beats in one frame."""
        return self.frame_elements // self.elements_per_beat

    @property
    def beat_bits(self):
        """Bits of one beat's payload word."""
        return self.bits * self.elements_per_beat

    @property
    def stream_shape(self):
        """The shape of a frame in stream order: ``(H, W, C)`` for an HWC map, else
        ``shape``."""
        if self.order == "HWC":
            return self.map_shape[1:] + self.map_shape[:1]
        return self.shape

    @property
    def range(self):
        """``(lo, hi)``: the element values the format can carry."""
        if self.signed:
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return 0, (1 << self.bits) - 1

    # -- element order ---------------------------------------------------------------------

    def _frames(self, x):
        """``x`` as ``(N, *shape)``, checking the shape and the integer type."""
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.integer):
            raise TypeError(f"x must hold integers, not {x.dtype}")
        if x.shape == self.shape:
            x = x[None]
        elif x.shape[1:] != self.shape:
            raise ValueError(f"x must have shape (N, {', '.join(map(str, self.shape))}) or "
                             f"{self.shape}, not {x.shape}")
        return x

    def to_stream(self, x):
        """Frames in stream order: ``(N, *shape)`` or ``shape`` -> ``(N, frame_elements)``
        int64."""
        x = self._frames(x)
        if x.dtype == np.uint64 and x.size and x.max() > np.iinfo(np.int64).max:
            raise ValueError(f"x must fit in int64, not hold {int(x.max())}")
        x = x.astype(np.int64, copy=False)
        if self.order == "HWC":
            x = np.moveaxis(x.reshape(len(x), *self.map_shape), 1, -1)
        return x.reshape(len(x), self.frame_elements)

    def from_stream(self, flat):
        """The inverse of :meth:`to_stream`: ``(N, frame_elements)`` (or one frame,
        ``(frame_elements,)``) -> ``(N, *shape)`` int64."""
        flat = np.asarray(flat)
        if not np.issubdtype(flat.dtype, np.integer):
            raise TypeError(f"flat must hold integers, not {flat.dtype}")
        if flat.ndim == 1 and len(flat) == self.frame_elements:
            flat = flat[None]
        if flat.ndim != 2 or flat.shape[1] != self.frame_elements:
            raise ValueError(f"flat must have shape (N, {self.frame_elements}), not "
                             f"{flat.shape}")
        flat = flat.astype(np.int64, copy=False)
        if self.order == "HWC":
            spatial = np.moveaxis(flat.reshape(len(flat), *self.stream_shape), -1, 1)
            return np.ascontiguousarray(spatial).reshape(len(flat), *self.shape)
        return flat.reshape(len(flat), *self.shape).copy()

    # -- words -----------------------------------------------------------------------------

    def _check_range(self, x):
        lo, hi = self.range
        if self.bits == 64 and x.dtype != np.uint64:
            return  # every int64 (and narrower) value is in range
        bad = (x < lo) | (x > hi)
        if bad.any():
            where = np.unravel_index(int(np.argmax(bad)), x.shape)
            index = tuple(int(i) for i in where[1:])
            kind = "signed" if self.signed else "unsigned"
            raise ValueError(f"frame {int(where[0])}, element {index} must lie in the "
                             f"{self.bits}-bit {kind} range {lo}..{hi}, not {int(x[where])}")

    def _groups(self):
        """Elements per 64-bit group of a word: ``(elements, bits)`` of one group."""
        per = min(self.elements_per_beat, 64 // self.bits)
        return per, per * self.bits

    def pack(self, x):
        """Pack frames into payload words, ``beats_per_frame`` words per frame.

        ``x`` is ``(N, *shape)`` or one frame ``shape`` of integers in :attr:`range`.

        Returns
        -------
        list of int
            ``N * beats_per_frame`` words, frame 0's first; element 0 of a beat in its low
            ``bits`` bits, two's complement.

        Raises
        ------
        ValueError
            A wrong shape, or an element out of range (the message gives the frame, the
            element's index in ``shape``, the value and the range).
        """
        x = self._frames(x)
        self._check_range(x)
        stream = self.to_stream(x)  # in range, so every value fits in int64
        k, bits = self.elements_per_beat, self.bits
        lanes = stream.reshape(-1, k).view(np.uint64)
        if bits < 64:
            lanes = lanes & np.uint64((1 << bits) - 1)
        per, group_bits = self._groups()
        groups = []
        for start in range(0, k, per):
            part = lanes[:, start:start + per]
            shifts = (np.arange(part.shape[1], dtype=np.uint64) * np.uint64(bits))
            groups.append(np.bitwise_or.reduce(part << shifts, axis=1))
        if len(groups) == 1:
            return groups[0].tolist()
        words = groups[0].astype(object)
        for j, group in enumerate(groups[1:], start=1):
            words = words | (group.astype(object) << (j * group_bits))
        return words.tolist()

    def _word_array(self, words):
        """``words`` as a flat array (uint64, or object when a beat exceeds 64 bits), checked."""
        if not isinstance(words, np.ndarray):
            given = words
            try:
                words = np.asarray(given)
            except OverflowError:  # Python ints beyond any NumPy integer type
                words = np.asarray(given, dtype=object)
            if words.size and not np.issubdtype(words.dtype, np.integer):
                # Ints on both sides of 2^63 become float64: keep them as Python ints.
                words = np.asarray(given, dtype=object)
        words = words.reshape(-1)
        if words.size == 0:
            words = words.astype(np.uint64)
        if words.dtype == object:
            kinds = {type(w).__name__ for w in words if not _is_int(w)}
            if kinds:
                raise TypeError(f"words must be integers, not {', '.join(sorted(kinds))}")
        elif not np.issubdtype(words.dtype, np.integer):
            raise TypeError(f"words must be integers, not {words.dtype}")
        limit = (1 << self.beat_bits) - 1
        bad = (words < 0) | (words > limit)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"word {i} must lie in 0..2^{self.beat_bits}-1 for "
                             f"{self.elements_per_beat} elements of {self.bits} bits, not "
                             f"{int(words[i]):#x}")
        if len(words) % self.beats_per_frame:
            raise ValueError(f"words must be a whole number of frames of "
                             f"{self.beats_per_frame} beats, not {len(words)} beats")
        return words.astype(np.uint64 if self.beat_bits <= 64 else object)

    def unpack(self, words):
        """Unpack payload words into frames: the inverse of :meth:`pack`.

        Returns
        -------
        numpy.ndarray
            ``(N, *shape)`` int64, sign-extended when ``signed``; ``len(words)`` must be a
            whole number of frames.
        """
        words = self._word_array(words)
        k, bits = self.elements_per_beat, self.bits
        per, group_bits = self._groups()
        lanes = np.empty((len(words), k), dtype=np.uint64)
        for j, start in enumerate(range(0, k, per)):
            if words.dtype == object:
                group = ((words >> (j * group_bits)) & ((1 << group_bits) - 1)).astype(np.uint64)
            else:
                group = words
            count = min(per, k - start)
            shifts = np.arange(count, dtype=np.uint64) * np.uint64(bits)
            lanes[:, start:start + count] = group[:, None] >> shifts
        if bits < 64:
            lanes &= np.uint64((1 << bits) - 1)
        values = lanes.view(np.int64)
        if self.signed and bits < 64:
            half = np.int64(1 << (bits - 1))
            values = (values ^ half) - half
        return self.from_stream(values.reshape(-1, self.frame_elements))
