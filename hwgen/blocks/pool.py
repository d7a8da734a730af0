"""Pooling: MaxPool, SumPool (windowed) and GlobalSumPool on HWC streams."""

import numpy as np
from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from quant import numerics

from ..errors import FoldingError
from ._util import check_count, check_pair, check_shape, divisors, element_shape
from .timing import Gather, Timed
from .map_window import ParallelMapWindow
from .window import SlidingWindow, im2col

__all__ = ["MaxPool", "SumPool", "GlobalSumPool"]


class FoldPartials:
    """One partial result per channel fold, for beats that visit folds ``0, 1, ...`` in turn.

    ``head`` is the partial of ``fold``, the fold of the beat in the consuming stage;
    ``write(value)`` replaces it when that beat is done (``commit``). ``advance`` says the
    stage holds the beat of fold ``next_fold`` in the next cycle (else it keeps ``fold``). One
    fold is a register; more are a memory read one cycle ahead (two beats in a row never have
    the same fold, so the fold just written is never the one being read: no bypass).
    """

    def __init__(self, m, *, folds, shape, fold, next_fold, advance, commit, name):
        self.head = Signal(shape, name=f"{name}_head")
        self._m, self._commit = m, commit
        if folds == 1:
            self._wr = None
            return
        store = Memory(shape=unsigned(len(self.head.as_value())), depth=folds, init=[])
        m.submodules[name] = store
        self._wr, rd = store.write_port(), store.read_port()
        m.d.comb += [
            rd.addr.eq(Mux(advance, next_fold, fold)),
            self.head.eq(rd.data),
            self._wr.addr.eq(fold),
            self._wr.en.eq(commit),
        ]

    def write(self, value):
        if self._wr is None:
            with self._m.If(self._commit):
                self._m.d.sync += self.head.eq(value)
        else:
            self._m.d.comb += self._wr.data.eq(value)


class _Reduce(wiring.Component):
    """Per-channel max or sum over groups of ``count`` pixels, ``simd`` channels per beat.

    Input beats come in (pixel, fold) order, ``count * folds`` beats per group; each group's
    last pixel sends one output beat per fold, one cycle after it arrives. With ``taps > 1``
    a beat holds whole windows: for each group of ``channels`` output lanes, ``taps`` pixels
    of ``channels`` elements each, reduced within the beat first.
    """

    def __init__(self, *, count, folds, simd, in_shape, out_shape, op, taps=1, channels=None):
        self._count, self._folds, self._op = count, folds, op
        self._taps, self._group = taps, channels or simd
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(in_shape, simd * taps))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(out_shape, simd))),
        })

    def _combine(self, a, b):
        return Mux(a > b, a, b) if self._op == "max" else a + b

    def _beat_value(self, payload, lane):
        """Lane ``lane``'s value in one beat: its ``taps`` elements reduced by a tree."""
        window, c = divmod(lane, self._group)
        values = [payload[(window * self._taps + k) * self._group + c]
                  for k in range(self._taps)]
        while len(values) > 1:
            pairs = [self._combine(a, b) for a, b in zip(values[::2], values[1::2])]
            values = pairs + ([values[-1]] if len(values) % 2 else [])
        return values[0]

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_stream, self.o_stream
        count, folds = self._count, self._folds
        pixel, fold = Signal(range(count)), Signal(range(folds))
        first, last = pixel == 0, pixel == count - 1
        m.d.comb += i.ready.eq(~last | ~o.valid | o.ready)
        take = i.valid & i.ready
        lanes = o.payload.shape().length
        partials = FoldPartials(m, folds=folds, shape=o.payload.shape(), fold=fold,
                                next_fold=Mux(fold == folds - 1, 0, fold + 1), advance=take,
                                commit=take, name="partials")
        value = Signal(o.payload.shape())
        for p in range(lanes):
            x = self._beat_value(i.payload, p)
            m.d.comb += value[p].eq(Mux(first, x, self._combine(partials.head[p], x)))
        partials.write(value)

        with m.If(o.ready):
            m.d.sync += o.valid.eq(0)
        with m.If(take):
            with m.If(fold == folds - 1):
                m.d.sync += [fold.eq(0), pixel.eq(Mux(last, 0, pixel + 1))]
            with m.Else():
                m.d.sync += fold.eq(fold + 1)
            with m.If(last):
                m.d.sync += [o.valid.eq(1), o.payload.eq(value)]
        return m


class _WindowPool(Timed, wiring.Component):
    """A SlidingWindow followed by a per-channel reduction over each window."""

    _op = None

    def __init__(self, *, channels, height, width, kernel, stride=None, padding=0, shape,
                 simd=1, buffer_rows=None, positions=None, name="pool"):
        kernel = check_pair("kernel", kernel, 1, name)
        stride = kernel if stride is None else check_pair("stride", stride, 1, name)
        padding = check_pair("padding", padding, 0, name)
        shape = check_shape("shape", shape, name)
        pad_value = self._pad_value(shape, padding, name)
        self._name, self._positions = name, positions
        self._out_shape = self.out_shape_of(shape, kernel[0] * kernel[1])
        if positions is None:
            self._window = SlidingWindow(channels=channels, height=height, width=width,
                                         kernel=kernel, stride=stride, padding=padding,
                                         shape=shape, simd=simd, pad_value=pad_value,
                                         buffer_rows=buffer_rows, name=name)
            self._reduce = _Reduce(count=kernel[0] * kernel[1], folds=channels // simd,
                                   simd=simd, in_shape=shape, out_shape=self._out_shape,
                                   op=self._op)
            in_lanes, out_lanes = simd, simd
        else:
            self._window = ParallelMapWindow(channels=channels, height=height, width=width,
                                             kernel=kernel, stride=stride, padding=padding,
                                             shape=shape, positions=positions,
                                             pad_value=pad_value, name=name)
            in_lanes, out_lanes = self._window.in_lanes, positions * channels
            self._reduce = _Reduce(count=1, folds=1, simd=out_lanes, in_shape=shape,
                                   out_shape=self._out_shape, op=self._op,
                                   taps=kernel[0] * kernel[1], channels=channels)
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(shape, in_lanes))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(self._out_shape, out_lanes))),
        })

    channels = property(lambda self: self._window.channels)
    height = property(lambda self: self._window.height)
    width = property(lambda self: self._window.width)
    kernel = property(lambda self: self._window.kernel)
    stride = property(lambda self: self._window.stride)
    padding = property(lambda self: self._window.padding)
    #: Channels per beat of one pixel (all of them with ``positions``).
    simd = property(lambda self: self.channels if self._positions else self._window.simd)
    #: Output positions per beat, each a whole window reduced within the beat (None: one
    #: window tap per beat, from a line buffer of ``simd`` channels).
    positions = property(lambda self: self._positions)
    #: The window in front: a SlidingWindow, or a ParallelMapWindow with ``positions``.
    window = property(lambda self: self._window)
    in_lanes = property(lambda self: len(self.i_stream.payload))
    out_lanes = property(lambda self: len(self.o_stream.payload))
    shape = property(lambda self: self._window.shape)
    out_height = property(lambda self: self._window.out_height)
    out_width = property(lambda self: self._window.out_width)
    in_beats = property(lambda self: self._window.in_beats)
    #: The SlidingWindow that holds the line buffer.
    lines = property(lambda self: self._window if self._positions is None else
                     self._window.groups)
    buffer_rows = property(lambda self: self.lines.buffer_rows)
    buffer_depth = property(lambda self: self.lines.buffer_depth)
    buffer_bits = property(lambda self: self.lines.buffer_bits)
    out_bits = property(lambda self: self._out_shape.width)
    out_signed = property(lambda self: self._out_shape.signed)
    out_shape = property(lambda self: self._out_shape)

    @property
    def out_beats(self):
        return self.out_height * self.out_width * self.channels // self.out_lanes

    @classmethod
    def timing_of(cls, *, channels, height, width, kernel, stride=None, padding=0, simd=1,
                  buffer_rows=None, positions=None, **_):
        """The window's timing (its cycles per frame: ``max(in_beats, windows * kh * kw *
        channels / simd)``), then each window's last beats one cycle later; with
        ``positions``, the whole windows of a beat one cycle later."""
        stride = kernel if stride is None else stride
        if positions is not None:
            window = ParallelMapWindow.timing_of(
                channels=channels, height=height, width=width, kernel=kernel, stride=stride,
                padding=padding, positions=positions)
            return Gather(window.geometry.out_beats, 1, 1, 1, inner=window)
        window = SlidingWindow.timing_of(channels=channels, height=height, width=width,
                                         kernel=kernel, stride=stride, padding=padding,
                                         simd=simd, buffer_rows=buffer_rows)
        g = window.geometry
        return Gather(g.out_beats, g.kh * g.kw, g.folds, 1, inner=window)

    @property
    def timing(self):
        # With positions, each beat is whole windows: one beat a group, one fold.
        count, folds = (1, 1) if self._positions is not None else \
            (self.kernel[0] * self.kernel[1], self.channels // self.simd)
        return Gather(self._window.out_beats, count, folds, 1, inner=self._window.timing)

    def _windows(self, x):
        """``(..., C, out_h, out_w, kh * kw)`` windows of a ``(..., C, H, W)`` input, the
        padding at :attr:`SlidingWindow.pad_value`."""
        x = np.asarray(x, dtype=np.int64)
        ph, pw = self.padding
        if ph or pw:
            pad = [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)]
            x = np.pad(x, pad, constant_values=self._window.pad_value)
        cols = im2col(x, self.kernel, self.stride, 0)               # (..., oh, ow, K*C)
        cols = cols.reshape(cols.shape[:-1] + (-1, self.channels))  # (..., oh, ow, K, C)
        return np.moveaxis(cols, -1, -4)

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = self._window
        m.submodules.reduce = self._reduce
        wiring.connect(m, wiring.flipped(self.i_stream), self._window.i_stream)
        wiring.connect(m, producer=self._window.o_stream, consumer=self._reduce.i_stream)
        wiring.connect(m, producer=self._reduce.o_stream, consumer=wiring.flipped(self.o_stream))
        return m


class MaxPool(_WindowPool):
    """Per-channel maximum over each ``kernel`` window (floor mode), with optional padding.

    A :class:`SlidingWindow` presents each window (``stride`` defaults to ``kernel``; the
    windows may overlap); a comparator per lane keeps one running maximum per channel fold.
    ``padding`` pixels (at most ``kernel // 2`` per axis, as PyTorch) hold the smallest
    element value, so every window holds an input pixel and the padding never wins. The input
    is an HWC stream of ``simd`` channels per beat, and so is the output: one beat per channel
    fold per output pixel. Elements keep their type, signed or unsigned. 1-D: ``height=1,
    kernel=(1, k)``.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(shape, simd)))
    o_stream : Out(stream.Signature(ArrayLayout(shape, simd)))
    """

    _op = "max"

    @staticmethod
    def _pad_value(shape, padding, name):
        return numerics.int_range(shape.width, shape.signed)[0]

    @staticmethod
    def out_shape_of(shape, count):
        """Output element shape for inputs of ``shape`` and ``count`` pixels a window."""
        return shape

    def reference(self, x):
        """``(..., C, H, W)`` to ``(..., C, out_h, out_w)``."""
        return self._windows(x).max(axis=-1)


class SumPool(_WindowPool):
    """Per-channel exact sum over each ``kernel`` window (no padding, floor mode).

    The integer form of average pooling: the division by ``kh * kw`` belongs to the next
    Requantizer's scale. Built like :class:`MaxPool`. The output is wide enough for any window:
    ``[kh*kw*lo, kh*kw*hi]`` for inputs in ``[lo, hi]`` (``out_bits``, ``out_signed``).

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(shape, simd)))
    o_stream : Out(stream.Signature(ArrayLayout(out_shape, simd)))
    """

    _op = "sum"

    @staticmethod
    def _pad_value(shape, padding, name):
        if any(padding):
            raise ValueError(f"layer '{name}': a sum pool takes no padding, not "
                             f"{padding[0]}x{padding[1]}")
        return 0

    @staticmethod
    def out_shape_of(shape, count):
        """Output element shape for inputs of ``shape`` and ``count`` pixels a window."""
        lo, hi = numerics.int_range(shape.width, shape.signed)
        return element_shape(*numerics.bits_for_range(count * lo, count * hi))

    def reference(self, x):
        """``(..., C, H, W)`` to ``(..., C, out_h, out_w)``."""
        return self._windows(x).sum(axis=-1)


class GlobalSumPool(Timed, wiring.Component):
    """Per-channel exact sum over all pixels of a frame (global average pooling, undivided).

    The input is an HWC stream (``simd`` channels per beat, ``height * width`` pixels); the
    output is the vector of ``channels`` sums, ``simd`` per beat, each sent one cycle after the
    last pixel's beat of its channels. The sums need ``out_bits`` bits: ``[P*lo, P*hi]`` for
    ``P`` pixels with inputs in ``[lo, hi]``. One running sum per channel fold (a register, or a
    memory of ``channels / simd`` words).

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(shape, simd)))
        ``height * width * channels / simd`` beats per frame.
    o_stream : Out(stream.Signature(ArrayLayout(out_shape, simd)))
        ``channels / simd`` beats per frame.
    """

    def __init__(self, *, channels, height, width, shape, simd=1, name="global_pool"):
        channels = check_count("channels", channels, name)
        height = check_count("height", height, name)
        width = check_count("width", width, name)
        shape = check_shape("shape", shape, name)
        simd = check_count("simd", simd, name)
        if channels % simd:
            raise FoldingError(f"layer '{name}': SIMD {simd} does not divide channels "
                               f"{channels}; choose one of "
                               f"{', '.join(map(str, divisors(channels)))}")
        self._channels, self._height, self._width = channels, height, width
        self._shape, self._simd, self._name = shape, simd, name
        self._out_shape = SumPool.out_shape_of(shape, height * width)
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(shape, simd))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(self._out_shape, simd))),
        })

    channels = property(lambda self: self._channels)
    height = property(lambda self: self._height)
    width = property(lambda self: self._width)
    shape = property(lambda self: self._shape)
    simd = property(lambda self: self._simd)
    out_shape = property(lambda self: self._out_shape)
    out_bits = property(lambda self: self._out_shape.width)
    out_signed = property(lambda self: self._out_shape.signed)
    in_beats = property(lambda self: self._height * self._width * self._channels // self._simd)
    out_beats = property(lambda self: self._channels // self._simd)

    @classmethod
    def timing_of(cls, *, channels, height, width, simd=1, **_):
        """One input beat per cycle; each channel fold's sum leaves a cycle after its last
        pixel."""
        return Gather(height * width * channels // simd, height * width, channels // simd, 1)

    timing = property(lambda self: self.timing_of(channels=self._channels, height=self._height,
                                                  width=self._width, simd=self._simd))

    def reference(self, x):
        """``(..., C, H, W)`` to ``(..., C)``."""
        return np.asarray(x, dtype=np.int64).sum(axis=(-2, -1))

    def elaborate(self, platform):
        m = Module()
        m.submodules.reduce = reduce = _Reduce(
            count=self._height * self._width, folds=self._channels // self._simd,
            simd=self._simd, in_shape=self._shape, out_shape=self._out_shape, op="sum")
        wiring.connect(m, wiring.flipped(self.i_stream), reduce.i_stream)
        wiring.connect(m, producer=reduce.o_stream, consumer=wiring.flipped(self.o_stream))
        return m
