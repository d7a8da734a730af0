"""SlidingWindow: line buffers that turn a feature-map stream into convolution windows."""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from quant.numerics import im2col

from ..errors import FoldingError
from ._util import check_count, check_pad_value, check_window, divisors, pack_words
from .linebuffer import WindowGeometry, window_timing
from .stream import WidthConverter
from .timing import Timed

__all__ = ["SlidingWindow", "im2col", "window_beat", "window_beats"]


def window_beats(channels, positions):
    """Elements per output beat a :class:`SlidingWindow` over ``channels`` channels and a
    window of ``positions`` positions can give, ascending: a divisor of the channels, or
    whole positions (``taps * channels``, ``taps`` dividing ``positions``)."""
    return divisors(channels) + [t * channels for t in divisors(positions)[1:]]


def window_beat(channels, positions, elements):
    """The window beat that gives beats of ``elements`` (a divisor of ``positions *
    channels``): the smallest window beat that ``elements`` divides (the whole window is
    one), which the window's converter splits into beats of ``elements``; ``elements``
    itself when it divides none (a SIMD the folding checks refuse)."""
    beats = [b for b in window_beats(channels, positions)
             if b >= elements and b % elements == 0]
    return min(beats) if beats else elements


class SlidingWindow(Timed, wiring.Component):
    """Convolution windows of a feature-map stream, from line buffers in on-chip memory.

    The input is an HWC stream: pixels in raster order (row ``y``, then column ``x``), each
    pixel as ``channels / simd`` beats of ``simd`` consecutive channels. The output gives, for
    each output pixel in raster order, its window in ``(ky, kx, c)`` order, ``simd`` elements
    per beat: ``kh * kw * channels / simd`` beats per output pixel, the rows of
    :func:`im2col`. Padding (``pad_value``, 0 by default) is produced by the reader, never
    stored. A 1-D signal of length ``L`` is ``height=1, width=L, kernel=(1, k),
    padding=(0, p)``.

    With ``taps > 1`` the input beat is a whole pixel (``simd == channels``) and each output
    beat carries ``taps`` consecutive window positions in ``(ky, kx)`` order, each with all its
    channels: ``taps * channels`` elements a beat, ``kh * kw / taps`` beats per output pixel,
    still the rows of :func:`im2col` in order. The reader then has one read port per tap (the
    line buffer in ``taps`` copies, all written with the same beat), decides padding per tap,
    and issues a beat once every tap that is not padding has been written.

    The input is consumed once and written into a ring of ``buffer_rows`` rows, each
    ``width * channels / simd`` words of ``simd`` elements; only rows that some window reads
    are stored. The reader emits one beat per cycle whenever the beat's input has been
    written; the writer takes one beat per cycle while a row is free. By default
    ``buffer_rows`` is the smallest ring that keeps both sides busy, so that a frame takes
    ``max(in_beats, out_beats)`` cycles in the steady state. It is found with the exact cycle
    model behind :meth:`beat_times`: typically ``kh`` rows with "same" padding, and up to about
    ``2 * kh`` without padding, where the first rows of the next frame must be written while the
    last windows of a frame are still being read. ``buffer_depth`` gives the words.

    Parameters
    ----------
    channels, height, width : int
        Input feature map.
    kernel, stride, padding : int or (int, int)
        Window geometry ``(y, x)``; ``padding`` zeros on each side, smaller than the kernel.
    shape : Amaranth shape
        Element type, e.g. ``unsigned(5)``.
    simd : int
        Channels per input beat, and per window position of an output beat before ``split``;
        divides ``channels``.
    taps : int
        Window positions per output beat; divides ``kh * kw``. Above 1, ``simd`` must be
        ``channels``.
    split : int
        Each window beat leaves as ``split`` beats of ``simd * taps / split`` elements
        through a width converter (a part of the window that is neither whole positions nor
        a divisor of the channels); the reader waits while the converter is busy.
    buffer_rows : int or None
        Rows of the line buffer; ``None`` for the smallest full-rate ring. Fewer rows save
        memory at the cost of throughput (see ``cycles_per_frame``); at least
        ``window_rows``.

    pad_value : int
        The value of padding elements: 0 for a convolution, the smallest element for a max
        pool (so that padding never wins).

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(shape, simd)))
        ``in_beats`` beats per frame.
    o_stream : Out(stream.Signature(ArrayLayout(shape, simd * taps / split)))
        ``out_beats`` beats per frame.
    """

    def __init__(self, *, channels, height, width, kernel, stride=1, padding=0, shape, simd=1,
                 taps=1, split=1, buffer_rows=None, pad_value=0, name="window"):
        channels, height, width, kernel, stride, padding, shape = check_window(
            name, channels=channels, height=height, width=width, kernel=kernel, stride=stride,
            padding=padding, shape=shape)
        simd = check_count("simd", simd, name)
        taps = check_count("taps", taps, name)
        split = check_count("split", split, name)
        if (simd * taps) % split:
            raise FoldingError(f"layer '{name}': split {split} does not divide the "
                               f"{simd * taps} elements of a window beat")
        if channels % simd:
            raise FoldingError(f"layer '{name}': SIMD {simd} does not divide channels "
                               f"{channels}; choose one of "
                               f"{', '.join(map(str, divisors(channels)))}")
        padded = (height + 2 * padding[0], width + 2 * padding[1])
        if kernel[0] > padded[0] or kernel[1] > padded[1]:
            raise ValueError(f"layer '{name}': kernel {kernel[0]}x{kernel[1]} is larger than "
                             f"its padded input {padded[0]}x{padded[1]}")
        positions = kernel[0] * kernel[1]
        if positions % taps:
            raise FoldingError(f"layer '{name}': taps {taps} does not divide the "
                               f"{kernel[0]}x{kernel[1]} window's {positions} positions; "
                               f"choose one of {', '.join(map(str, divisors(positions)))}")
        if taps > 1 and simd != channels:
            raise FoldingError(f"layer '{name}': with taps {taps} a beat carries whole "
                               f"pixels, so SIMD must be channels {channels}, not {simd}")
        if buffer_rows is not None:
            buffer_rows = check_count("buffer_rows", buffer_rows, name)
            rows = WindowGeometry(height, width, channels // simd, kernel, stride,
                                  padding, taps).window_rows
            if buffer_rows < rows:
                raise ValueError(f"layer '{name}': buffer_rows must be at least {rows} (the "
                                 f"rows one window spans), not {buffer_rows}")
        pad_value = check_pad_value(pad_value, shape, name)
        self._timing = self.timing_of(channels=channels, height=height, width=width,
                                      kernel=kernel, stride=stride, padding=padding, simd=simd,
                                      taps=taps, split=split, buffer_rows=buffer_rows)
        self._name = name
        self._channels, self._shape, self._simd, self._taps = channels, shape, simd, taps
        self._split = split
        self._geometry = self._timing.geometry
        self._buffer_rows = self._timing.buffer_rows
        self._pad_value = pad_value
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(shape, simd))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(shape, simd * taps // split))),
        })

    channels = property(lambda self: self._channels)
    height = property(lambda self: self._geometry.height)
    width = property(lambda self: self._geometry.width)
    kernel = property(lambda self: (self._geometry.kh, self._geometry.kw))
    stride = property(lambda self: (self._geometry.sh, self._geometry.sw))
    padding = property(lambda self: (self._geometry.ph, self._geometry.pw))
    shape = property(lambda self: self._shape)
    simd = property(lambda self: self._simd)
    taps = property(lambda self: self._taps)
    split = property(lambda self: self._split)
    #: Elements per output beat (``simd * taps / split``).
    out_lanes = property(lambda self: self._simd * self._taps // self._split)
    out_height = property(lambda self: self._geometry.out_h)
    out_width = property(lambda self: self._geometry.out_w)
    in_beats = property(lambda self: self._geometry.in_beats)
    out_beats = property(lambda self: self._geometry.out_beats * self._split)
    window_beats = property(lambda self: self._geometry.window_beats)
    window_rows = property(lambda self: self._geometry.window_rows)
    buffer_rows = property(lambda self: self._buffer_rows)

    @property
    def buffer_depth(self):
        """Words of the line buffer (``buffer_rows * width * channels / simd``)."""
        return self._buffer_rows * self.width * (self._channels // self._simd)

    @property
    def buffer_bits(self):
        """Bits of the line buffer (``buffer_depth`` words of ``simd`` elements, in ``taps``
        copies)."""
        return self.buffer_depth * self._simd * self._shape.width * self._taps

    pad_value = property(lambda self: self._pad_value)
    timing = property(lambda self: self._timing)

    @classmethod
    def timing_of(cls, *, channels, height, width, kernel, stride=1, padding=0, simd=1,
                  taps=1, split=1, buffer_rows=None, **_):
        """The exact cycle model of the line buffer (:class:`~hwgen.blocks.timing.
        WindowTiming`): a beat offered while the buffer is full waits, and the beats after it
        in turn. ``cycles_per_frame`` is ``max(in_beats, out_beats)`` with the default
        ``buffer_rows``; with a smaller buffer, what the cycle model gives."""
        pairs = [tuple(v) if isinstance(v, (tuple, list)) else (v, v)
                 for v in (kernel, stride, padding)]
        return window_timing(height, width, channels // simd, *pairs, buffer_rows, taps, split)

    def reference(self, x):
        """Windows of ``(..., channels, height, width)`` inputs, as :func:`im2col`."""
        return im2col(x, self.kernel, self.stride, self.padding)

    def elaborate(self, platform):
        m = Module()
        g = self._geometry
        height, width, folds = g.height, g.width, g.folds
        kh, kw, sh, sw, ph, pw = g.kh, g.kw, g.sh, g.sw, g.ph, g.pw
        rows = self._buffer_rows
        row_words = width * folds
        depth = rows * row_words
        word = self._simd * self._shape.width

        # One copy of the line buffer per tap, each written with every stored beat and read by
        # its tap alone (a RAM of one write and one read port, as a single window's).
        copies = [Memory(shape=unsigned(word), depth=depth, init=[])
                  for _ in range(self._taps)]
        m.submodules.lines = copies[0]
        for j, copy in enumerate(copies[1:], 1):
            m.submodules[f"lines{j}"] = copy
        writes = [copy.write_port() for copy in copies]
        wr = writes[0]
        i, o = self.i_stream, self.o_stream
        if self._split > 1:
            # The window's beats leave in parts through a converter, whose refusals stall the
            # reader (``stall`` below), as the cycle model has it.
            m.submodules.split = split = WidthConverter(
                shape=self._shape, in_count=self._simd * self._taps, out_count=self.out_lanes,
                name=f"{self._name}_split")
            wiring.connect(m, split.o_stream, wiring.flipped(self.o_stream))
            o = split.i_stream

        # Rows held for the reader, counted from the first row its current output row reads:
        # complete stored rows written minus rows given back (-1 while the reader has given
        # back the row still being written, whose tail no window reads).
        held = Signal(range(-1, rows + 1))
        row_done, given_back = Signal(), Signal(range(rows + 1))
        m.d.sync += held.eq(held + row_done - given_back)

        # Writer: input position, write address (stored rows fill the ring in order).
        wy, wx, wc = Signal(range(height)), Signal(range(width)), Signal(range(folds))
        waddr = Signal(range(depth))
        stored = Signal()
        if g.sh > g.kh:
            phase = Signal(range(sh), init=ph % sh)
            m.d.comb += stored.eq((wy <= g.last_row) & (phase < kh))
        else:
            m.d.comb += stored.eq(wy <= g.last_row)
        row_start = (wx == 0) & (wc == 0)
        m.d.comb += [
            i.ready.eq(~stored | ~row_start | (held < rows)),
            wr.addr.eq(waddr),
            wr.data.eq(i.payload.as_value()),
            wr.en.eq(i.valid & i.ready & stored),
        ]
        for other in writes[1:]:
            m.d.comb += [other.addr.eq(wr.addr), other.data.eq(wr.data), other.en.eq(wr.en)]
        with m.If(i.valid & i.ready):
            with m.If(stored):
                m.d.sync += waddr.eq(Mux(waddr == depth - 1, 0, waddr + 1))
            with m.If(wc == folds - 1):
                m.d.sync += wc.eq(0)
                with m.If(wx == width - 1):
                    m.d.sync += wx.eq(0)
                    m.d.comb += row_done.eq(stored)
                    if g.sh > g.kh:
                        m.d.sync += phase.eq(Mux((phase == sh - 1) | (wy == height - 1),
                                                 Mux(wy == height - 1, ph % sh, 0), phase + 1))
                    m.d.sync += wy.eq(Mux(wy == height - 1, 0, wy + 1))
                with m.Else():
                    m.d.sync += wx.eq(wx + 1)
            with m.Else():
                m.d.sync += wc.eq(wc + 1)

        # Reader: output pixel (oy, ox); within its window, the beat's position (ky, kx) and
        # channel fold cf with one tap a beat, or the beat kb with several (one fold): tap j
        # reads window position kb * taps + j. The window's top-left input pixel is
        # (ybase, xbase); `first` is the ring address of the first row the output row reads.
        taps = self._taps
        oy, ox = Signal(range(g.out_h)), Signal(range(g.out_w))
        cf = Signal(range(folds))
        ybase = Signal(range(-ph, (g.out_h - 1) * sh - ph + 1), init=-ph)
        xbase = Signal(range(-pw, (g.out_w - 1) * sw - pw + 1), init=-pw)
        first = Signal(range(depth))
        if taps == 1:
            ky, kx = Signal(range(kh)), Signal(range(kw))
            positions = [(ky, kx)]
            window_done = (ky == kh - 1) & (kx == kw - 1)
        else:
            kb = Signal(range(g.window_beats))
            positions = [(Signal(range(kh), name=f"ky{j}"), Signal(range(kw), name=f"kx{j}"))
                         for j in range(taps)]
            with m.Switch(kb):
                for b in range(g.window_beats):
                    with m.Case(b):
                        for j, (ky_j, kx_j) in enumerate(positions):
                            m.d.comb += [ky_j.eq((b * taps + j) // kw),
                                         kx_j.eq((b * taps + j) % kw)]
            window_done = kb == g.window_beats - 1

        # Each tap: its input pixel, whether it is padding or written, its read port.
        stall = Signal()
        m.d.comb += stall.eq(o.valid & ~o.ready)
        row_addr_bits = range(2 * depth)
        ready_taps, words = [], []
        pad_word = pack_words([[self._pad_value] * self._simd], self._shape.width)[0]
        for j, (ky_j, kx_j) in enumerate(positions):
            iy, ix = (Signal(range(-ph, height + kh), name=f"iy{j}"),
                      Signal(range(-pw, width + kw), name=f"ix{j}"))
            rel = Signal(range(kh), name=f"rel{j}")          # row counted from `first`
            pad, written = Signal(name=f"pad{j}"), Signal(name=f"written{j}")
            m.d.comb += [
                iy.eq(ybase + ky_j),
                ix.eq(xbase + kx_j),
                rel.eq(Mux(ybase < 0, iy, ky_j)),
                pad.eq((iy < 0) | (iy >= height) | (ix < 0) | (ix >= width)),
                written.eq((rel < held) | ((rel == held) & stored
                                           & ((ix < wx) | ((ix == wx) & (cf < wc))))),
            ]
            rd = copies[j].read_port()
            row_addr = Signal(row_addr_bits, name=f"row_addr{j}")
            col = Signal(range(row_words), name=f"col{j}")
            m.d.comb += [
                row_addr.eq(first + rel * row_words),
                col.eq(ix * folds + cf),
                rd.addr.eq(Mux(pad, 0, Mux(row_addr >= depth, row_addr - depth, row_addr)
                               + col)),
                rd.en.eq(~stall),
            ]
            pad1 = Signal(name=f"pad1_{j}")
            with m.If(~stall):
                m.d.sync += pad1.eq(pad)
            ready_taps.append(pad | written)
            words.append(Mux(pad1, pad_word, rd.data))

        # Frames whose first beat has been taken and whose output is not finished. With none,
        # the reader waits until the next frame's first beat is offered, so padding beats never
        # run ahead of their frame.
        frames = Signal(range(rows + 2))
        frame_in, frame_out = Signal(), Signal()
        m.d.comb += frame_in.eq(i.valid & i.ready & (wy == 0) & row_start)
        m.d.sync += frames.eq(frames + frame_in - frame_out)
        issue = Signal()
        m.d.comb += issue.eq(Cat(*ready_taps).all()
                             & ((frames != 0) | (i.valid & (wy == 0) & row_start)) & ~stall)
        with m.If(~stall):
            m.d.sync += o.valid.eq(issue)
        m.d.comb += o.payload.eq(Cat(*words))

        release = Signal(range(rows + 1))
        special = {}
        common = max(set(g.release), key=g.release.count)
        for row, count in enumerate(g.release):
            if count != common:
                special.setdefault(count, []).append(row)
        with m.Switch(oy):
            for count, which in special.items():
                with m.Case(*which):
                    m.d.comb += release.eq(count)
            with m.Default():
                m.d.comb += release.eq(common)
        advanced = Signal(range(depth + rows * row_words))
        m.d.comb += advanced.eq(first + release * row_words)

        with m.If(issue):
            with m.If(cf == folds - 1):
                m.d.sync += cf.eq(0)
                with m.If(window_done):
                    if taps == 1:
                        m.d.sync += [ky.eq(0), kx.eq(0)]
                    else:
                        m.d.sync += kb.eq(0)
                    with m.If(ox == g.out_w - 1):
                        m.d.sync += [
                            ox.eq(0), xbase.eq(-pw),
                            oy.eq(Mux(oy == g.out_h - 1, 0, oy + 1)),
                            ybase.eq(Mux(oy == g.out_h - 1, -ph, ybase + sh)),
                            first.eq(Mux(advanced >= depth, advanced - depth, advanced)),
                        ]
                        m.d.comb += [given_back.eq(release),
                                     frame_out.eq(oy == g.out_h - 1)]
                    with m.Else():
                        m.d.sync += [ox.eq(ox + 1), xbase.eq(xbase + sw)]
                with m.Else():
                    if taps == 1:
                        with m.If(kx == kw - 1):
                            m.d.sync += [kx.eq(0), ky.eq(ky + 1)]
                        with m.Else():
                            m.d.sync += kx.eq(kx + 1)
                    else:
                        m.d.sync += kb.eq(kb + 1)
            with m.Else():
                m.d.sync += cf.eq(cf + 1)
        return m
