"""DepthwiseUnit: per-channel dot products over convolution windows (depthwise convolution)."""

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from quant import numerics

from ..errors import FoldingError
from .timing import Gather, Timed
from ._util import (accumulator_bits, accumulator_range, check_count, divisors, element_shape,
                    pack_words)
from .pool import FoldPartials

__all__ = ["DepthwiseUnit"]

#: Cycles from a window's last beat of a channel fold to that fold's output beat.
PIPELINE_DEPTH = 3


class DepthwiseUnit(Timed, wiring.Component):
    """``y[c] = b[c] + sum_k w[c, k] * window[k, c]``: a depthwise convolution's arithmetic.

    The input is the output of a :class:`~hwgen.blocks.window.SlidingWindow` with the same
    ``simd``: for each output pixel, its window in ``(ky, kx, c)`` order, ``simd`` channels per
    beat. Lane ``p`` multiplies channel ``fold * simd + p`` by that channel's weight for the
    window position; one running sum per channel fold is kept (a register, or a memory of
    ``channels / simd`` words) and leaves after the window's last position, so each output
    pixel gives ``channels / simd`` beats of ``simd`` accumulators. The output has as many
    lanes as the input (``pe == simd``); a :class:`~hwgen.blocks.stream.WidthConverter` regroups
    it if the next block wants another width. One input beat per cycle; pipeline: weight ROM
    read, products, accumulate.

    With ``taps > 1`` (the window's ``taps``: whole positions per beat, ``simd == channels``)
    an input beat holds ``taps`` consecutive window positions of all channels, ``taps * simd``
    elements; each is multiplied by its weight, the ``taps`` products of a channel are summed
    into its running sum, and a pixel takes ``kh * kw / taps`` beats. The output is still
    ``simd`` channels a beat.

    Weights are signed, narrow range, with per-channel bits (each lane's multiplier is as wide
    as the widest channel it serves); the accumulator width comes from the worst case of every
    partial sum (:func:`~hwgen.blocks.matvec.accumulator_range`). Padding zeros are valid
    inputs.

    Parameters
    ----------
    weight : ndarray of int, shape (channels, kh, kw) or (channels, 1, kh, kw)
        1-D kernels are ``(channels, 1, k)``.
    bias : ndarray of int, shape (channels,)
    weight_bits : ndarray of int, shape (channels,)
    in_bits, in_signed : int, bool
    simd : int
        Channels per beat, in and out; divides ``channels``.
    pe : int or None
        Output channels per beat; must equal ``simd`` (``None`` means ``simd``).
    taps : int
        Window positions per input beat; divides ``kh * kw``, and above 1 needs
        ``simd == channels``.
    pixels : int
        Output pixels (windows) per frame, for the frame counts.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(in_shape, taps * simd)))
        ``pixels * kh * kw * channels / (taps * simd)`` beats per frame.
    o_stream : Out(stream.Signature(ArrayLayout(signed(acc_bits), simd)))
        ``pixels * channels / simd`` beats per frame.
    """

    def __init__(self, *, weight, bias, weight_bits, in_bits, in_signed, simd, pe=None,
                 taps=1, pixels=1, name="depthwise"):
        weight = np.asarray(weight)
        if weight.ndim == 4 and weight.shape[1] == 1:
            weight = weight[:, 0]
        if not np.issubdtype(weight.dtype, np.integer) or weight.ndim != 3:
            raise TypeError(f"layer '{name}': weight must be an integer array of shape "
                            f"(channels, kh, kw) or (channels, 1, kh, kw), not {weight.dtype} "
                            f"{weight.shape}")
        channels = weight.shape[0]
        bias = np.asarray(bias)
        weight_bits = np.asarray(weight_bits)
        for what, value in (("bias", bias), ("weight_bits", weight_bits)):
            if not np.issubdtype(value.dtype, np.integer) or value.shape != (channels,):
                raise TypeError(f"layer '{name}': {what} must be an integer array of shape "
                                f"({channels},), not {value.dtype} {value.shape}")
        in_bits = check_count("in_bits", in_bits, name)
        simd = check_count("simd", simd, name)
        pixels = check_count("pixels", pixels, name)
        taps = check_count("taps", taps, name)
        if channels % simd:
            raise FoldingError(f"layer '{name}': SIMD {simd} does not divide channels "
                               f"{channels}; choose one of "
                               f"{', '.join(map(str, divisors(channels)))}")
        if pe is not None and pe != simd:
            raise FoldingError(f"layer '{name}': PE must be SIMD {simd} (a depthwise unit "
                               f"outputs the channels it takes in), not {pe}; put a "
                               f"WidthConverter after it for another width")
        positions = weight.shape[1] * weight.shape[2]
        if positions % taps:
            raise FoldingError(f"layer '{name}': taps {taps} does not divide the "
                               f"{weight.shape[1]}x{weight.shape[2]} window's {positions} "
                               f"positions; choose one of "
                               f"{', '.join(map(str, divisors(positions)))}")
        if taps > 1 and simd != channels:
            raise FoldingError(f"layer '{name}': with taps {taps} a beat carries whole "
                               f"positions, so SIMD must be channels {channels}, not {simd}")
        if (weight_bits < 2).any():
            raise ValueError(f"layer '{name}': weight_bits must be at least 2, not "
                             f"{int(weight_bits.min())}")
        weight = weight.astype(np.int64)
        weight_bits = weight_bits.astype(np.int64)
        limit = (np.int64(1) << (weight_bits - 1)) - 1
        outside = (np.abs(weight) > limit[:, None, None]).any(axis=(1, 2))
        if outside.any():
            c = int(np.flatnonzero(outside)[0])
            raise ValueError(f"layer '{name}': channel {c} has weights outside its "
                             f"{weight_bits[c]}-bit range ±{limit[c]}")

        self._name = name
        self._weight = weight
        self._bias = bias.astype(np.int64)
        self._weight_bits = weight_bits
        self._in_bits, self._in_signed = in_bits, bool(in_signed)
        self._simd, self._pixels, self._taps = simd, pixels, taps
        x_lo, x_hi = numerics.int_range(in_bits, in_signed)
        self._acc_range = accumulator_range(weight.reshape(channels, -1), self._bias, x_lo,
                                            x_hi)
        self._acc_bits = accumulator_bits(weight, self._bias, in_bits, in_signed)
        super().__init__({
            "i_stream": In(stream.Signature(
                data.ArrayLayout(element_shape(in_bits, in_signed), taps * simd))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(signed(self._acc_bits), simd))),
        })

    channels = property(lambda self: self._weight.shape[0])
    kernel = property(lambda self: self._weight.shape[1:])
    simd = property(lambda self: self._simd)
    pe = property(lambda self: self._simd)
    pixels = property(lambda self: self._pixels)
    taps = property(lambda self: self._taps)
    #: Elements per input beat (``taps * simd``).
    in_lanes = property(lambda self: self._taps * self._simd)
    in_bits = property(lambda self: self._in_bits)
    in_signed = property(lambda self: self._in_signed)
    acc_bits = property(lambda self: self._acc_bits)
    acc_range = property(lambda self: self._acc_range)
    weight_bits = property(lambda self: self._weight_bits.copy())
    folds = property(lambda self: self.channels // self._simd)
    #: Input beats per window position group: ``kh * kw / taps``.
    beats = property(lambda self: self.kernel[0] * self.kernel[1] // self._taps)
    window_beats = property(lambda self: self.beats * self.folds)
    in_beats = property(lambda self: self._pixels * self.window_beats)
    out_beats = property(lambda self: self._pixels * self.folds)

    @classmethod
    def timing_of(cls, *, weight, simd, pixels=1, taps=1, **_):
        """One input beat per cycle; each window's last beats leave :data:`PIPELINE_DEPTH`
        cycles after they arrive."""
        weight = np.asarray(weight)
        count = int(np.prod(weight.shape[-2:])) // taps
        folds = weight.shape[0] // simd
        return Gather(pixels * count * folds, count, folds, PIPELINE_DEPTH)

    timing = property(lambda self: self.timing_of(weight=self._weight, simd=self._simd,
                                                  pixels=self._pixels, taps=self._taps))

    bias = property(lambda self: self._bias.copy())

    @property
    def weight_table(self):
        """The weight ROM: word ``beat * folds + fold`` holds, in lane ``t * simd + p``, the
        weight of channel ``fold * simd + p`` at window position ``beat * taps + t``."""
        beats, taps = self.beats, self._taps
        table = self._weight.reshape(self.folds, self._simd, beats, taps).transpose(2, 0, 3, 1)
        return table.reshape(beats * self.folds, taps * self._simd)

    @property
    def lane_bits(self):
        """Multiplier width of each lane: the widest weights among the channels it serves."""
        return self._weight_bits.reshape(self.folds, self._simd).max(axis=0)

    @property
    def multiplier_bits(self):
        """Width of each of the ``taps * simd`` multipliers (a lane's, once per tap)."""
        return np.tile(self.lane_bits, self._taps)

    def reference(self, windows):
        """``(..., kh*kw*channels)`` windows in ``(ky, kx, c)`` order to ``(..., channels)``."""
        windows = np.asarray(windows, dtype=np.int64)
        cols = windows.reshape(windows.shape[:-1] + (-1, self.channels))   # (..., K, C)
        w = self._weight.reshape(self.channels, -1).T                      # (K, C)
        return (cols * w).sum(axis=-2) + self._bias

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_stream, self.o_stream
        simd, folds, taps = self._simd, self.folds, self._taps
        positions = self.beats    # input beats per window and channel fold
        acc_shape = signed(self._acc_bits)

        stall = Signal()
        m.d.comb += [stall.eq(o.valid & ~o.ready), i.ready.eq(~stall)]
        take = i.valid & i.ready

        # Stage 0: the input beat's position and fold; weight ROM read.
        position, fold = Signal(range(positions)), Signal(range(folds))
        word = Signal(range(positions * folds))
        with m.If(take):
            m.d.sync += word.eq(Mux(word == positions * folds - 1, 0, word + 1))
            with m.If(fold == folds - 1):
                m.d.sync += [fold.eq(0),
                             position.eq(Mux(position == positions - 1, 0, position + 1))]
            with m.Else():
                m.d.sync += fold.eq(fold + 1)

        lane_bits = self.multiplier_bits
        table = self.weight_table
        weights = [None] * (taps * simd)
        for bits in sorted(set(lane_bits.tolist())):
            lanes = np.flatnonzero(lane_bits == bits)
            rom = Memory(shape=unsigned(len(lanes) * bits), depth=positions * folds,
                         init=pack_words(table[:, lanes], bits))
            m.submodules[f"weights_w{bits}"] = rom
            port = rom.read_port()
            m.d.comb += [port.addr.eq(word), port.en.eq(~stall)]
            for n, lane in enumerate(lanes):
                weights[lane] = port.data.word_select(n, bits).as_signed()

        # Control travels with the data: stage 1 (ROM out, input registered), 2 (products).
        valid = [take, Signal(name="valid1"), Signal(name="valid2")]
        first = [position == 0, Signal(name="first1"), Signal(name="first2")]
        last = [position == positions - 1, Signal(name="last1"), Signal(name="last2")]
        fold_at = [fold, Signal(range(folds), name="fold1"), Signal(range(folds), name="fold2")]
        x1 = Signal.like(i.payload, name="x1")
        with m.If(~stall):
            for ctl in (valid, first, last, fold_at):
                m.d.sync += [ctl[n + 1].eq(ctl[n]) for n in range(2)]
            m.d.sync += x1.eq(i.payload)

        bias_rom = Memory(shape=unsigned(simd * self._acc_bits), depth=folds,
                          init=pack_words(self._bias.reshape(folds, simd), self._acc_bits))
        m.submodules.bias = bias_rom
        bias_port = bias_rom.read_port()
        m.d.comb += [bias_port.addr.eq(fold_at[1]), bias_port.en.eq(~stall)]

        partials = FoldPartials(m, folds=folds, shape=data.ArrayLayout(acc_shape, simd),
                                fold=fold_at[2], next_fold=fold_at[1], advance=~stall,
                                commit=valid[2] & ~stall, name="partials")
        total = Signal(data.ArrayLayout(acc_shape, simd))
        products = []
        for n in range(taps * simd):
            product = Signal(signed(int(lane_bits[n]) + self._in_bits + 1), name=f"prod{n}")
            with m.If(~stall):
                m.d.sync += product.eq(weights[n] * x1[n])
            products.append(product)
        for p in range(simd):
            start = Mux(first[2], bias_port.data.word_select(p, self._acc_bits).as_signed(),
                        partials.head[p])
            # The taps' products of a channel at full width; the running sum fits acc_bits
            # at every beat (a prefix of the window's sum), so truncating to it is exact.
            m.d.comb += total[p].eq(sum((products[t * simd + p] for t in range(taps)), start))
        partials.write(total)

        with m.If(o.ready):
            m.d.sync += o.valid.eq(0)
        with m.If(valid[2] & last[2] & ~stall):
            m.d.sync += [o.valid.eq(1), o.payload.eq(total)]
        return m
