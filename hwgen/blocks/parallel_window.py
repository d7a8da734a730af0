"""ParallelWindow: 1-D convolution windows, several output positions per beat, from a shift
register."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.numerics import im2col

from ..errors import FoldingError
from ._util import check_count, check_pad_value, check_window, divisors, pack_words
from .timing import Timed

__all__ = ["ParallelWindow", "ParallelWindowTiming"]


class ParallelWindowTiming:
    """The exact cycle model of a :class:`ParallelWindow` of ``beats`` beats per frame whose
    output beat ``b`` is due after ``b + lookahead`` shifts of its frame (output always
    taken).

    The rules, cycle by cycle: the register shifts once a cycle unless the shift needs an input
    beat that is not offered, or would send a beat while the output is stalled; the shift that
    makes ``b + lookahead`` shifts of the frame sends output beat ``b`` (shown one cycle later).
    A shift takes the frame's next input beat, waiting for it, while the frame has input beats
    left. Past them (a frame's last ``lookahead - 1`` output beats need shifts of its right
    padding), a shift takes the next frame's first beat when it is offered and shifts no input
    otherwise; once the next frame has begun, its beats follow in a row. When a frame's last
    beat is sent, the next frame starts with the shifts of it already made.
    """

    def __init__(self, beats, lookahead):
        self.beats, self.lookahead = int(beats), int(lookahead)

    #: The last output beat of a frame, with no next frame, leaves ``lookahead`` cycles after
    #: the frame's last input beat is taken (``lookahead - 1`` shifts without input, then the
    #: output register); a beat that needs a later input beat leaves the cycle after it.
    latency = property(lambda self: self.lookahead)
    cycles_per_frame = property(lambda self: self.beats)

    def beat_times(self, times):
        return self.schedule(times)[1]

    def input_times(self, times):
        return self.schedule(times)[0]

    def schedule(self, times):
        """Input transfer cycles and output beat cycles of the frames whose input beats are
        first offered at ``times`` (``frames * beats`` of them, each held until taken)."""
        beats, c = self.beats, self.lookahead
        offers = [int(t) for t in times]
        if len(offers) % beats:
            raise ValueError(f"times must hold whole frames of {beats} beats, not "
                             f"{len(offers)}")
        taken, out = [], []
        # The frame's shifts, its next output beat, the shifts since the next frame began.
        shifted = beat = pre = 0
        cycle, index, expected = 0, 0, len(offers)
        while len(out) < expected:
            need = shifted < beats or pre > 0
            took = index < len(offers) and offers[index] <= cycle
            if need and not took:
                cycle = offers[index]         # nothing moves until the beat is offered
                continue
            if took:
                taken.append(cycle)
                index += 1
            if shifted >= beats:
                pre = pre + 1 if pre else int(took)
            shifted += 1
            if shifted == beat + c:           # the shift sends the beat, shown a cycle later
                out.append(cycle + 1)
                beat += 1
                if beat == beats:
                    shifted, beat, pre = pre, 0, 0
            cycle += 1
        return taken, out


class ParallelWindow(Timed, wiring.Component):
    """Windows of a 1-D signal, ``positions`` whole windows per beat, from a shift register.

    The input is a signal of ``width`` pixels (``height`` 1), each pixel all its ``channels``
    (HWC order), ``positions * stride`` consecutive pixels per beat. Each output beat carries
    the windows of ``positions`` consecutive output positions, each in ``(kx, c)`` order: the
    rows of :func:`im2col`, concatenated. Padding elements are ``pad_value``. The windows must
    tile the input (``out_width * stride == width``), so a frame has as many input beats as
    output beats, ``out_width / positions``, and the block takes and gives one beat per cycle:
    a frame every ``beats`` cycles, frames back to back.

    A register of pixels shifts in one input beat per shift. Output beat ``b`` of a frame is
    sent, into the output register, by the frame's shift number ``b + lookahead``: every pixel
    its windows read then sits at a fixed place in the register or in the beat shifting in, so
    each output element is a fixed wire, replaced by ``pad_value`` in the first and last beats
    where it falls in the padding. The register holds ``padding + (lookahead - 1) * positions
    * stride`` pixels, the output register one per window tap position. A frame's last
    ``lookahead - 1`` output beats read right padding past the frame's end: their shifts take
    the next frame's first beats when they are offered, and shift no input otherwise, so a
    frame never waits for the next one.

    Parameters
    ----------
    channels, height, width : int
        Input signal; ``height`` must be 1.
    kernel, stride, padding : int or (int, int)
        Window geometry ``(y, x)``; along y only 1, 1 and 0. ``padding`` pixels on each side,
        smaller than the kernel.
    shape : Amaranth shape
        Element type, e.g. ``unsigned(5)``.
    positions : int
        Output positions per beat; divides ``out_width``.
    pad_value : int
        The value of padding elements.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(shape, positions * stride * channels)))
    o_stream : Out(stream.Signature(ArrayLayout(shape, positions * kernel * channels)))
    """

    def __init__(self, *, channels, height, width, kernel, stride=1, padding=0, shape,
                 positions, pad_value=0, name="window"):
        channels, height, width, kernel, stride, padding, shape = check_window(
            name, channels=channels, height=height, width=width, kernel=kernel, stride=stride,
            padding=padding, shape=shape)
        positions = check_count("positions", positions, name)
        # (A padding along y is refused with the kernel height of 1: smaller than it.)
        for what, value, one in (("height", height, 1), ("kernel height", kernel[0], 1),
                                 ("stride along y", stride[0], 1)):
            if value != one:
                raise ValueError(f"layer '{name}': a parallel window is 1-D, so its {what} "
                                 f"must be {one}, not {value}")
        k, s, p = kernel[1], stride[1], padding[1]
        if k > width + 2 * p:
            raise ValueError(f"layer '{name}': kernel 1x{k} is larger than its padded input "
                             f"1x{width + 2 * p}")
        out_width = (width + 2 * p - k) // s + 1
        if out_width * s != width:
            paddings = [q for q in range(k) if k - s <= 2 * q < k]
            choices = (f"padding one of {', '.join(map(str, paddings))}" if paddings else
                       f"a kernel of {k} with stride {s} cannot, whatever the padding")
            raise FoldingError(
                f"layer '{name}': the windows must tile the input (out_width * stride == "
                f"width, so that a frame has as many output beats as input beats), but "
                f"width {width}, kernel {k}, stride {s}, padding {p} give {out_width} "
                f"outputs of stride {s} over {width} pixels; that needs a width divisible by "
                f"the stride and {choices}")
        if k - p - s > width:
            raise ValueError(f"layer '{name}': kernel {k} reaches too far past the frame for "
                             f"width {width}: kernel - padding - stride must be at most the "
                             f"width, not {k - p - s}")
        if out_width % positions:
            raise FoldingError(f"layer '{name}': positions {positions} does not divide "
                               f"out_width {out_width}; choose one of "
                               f"{', '.join(map(str, divisors(out_width)))}")
        pad_value = check_pad_value(pad_value, shape, name)
        self._name = name
        self._channels, self._width, self._shape = channels, width, shape
        self._kernel, self._stride, self._padding = kernel, stride, padding
        self._positions, self._out_width, self._pad_value = positions, out_width, pad_value
        self._timing = self.timing_of(channels=channels, height=height, width=width,
                                      kernel=kernel, stride=stride, padding=padding,
                                      positions=positions)
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(shape, self.in_lanes))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(shape, self.out_lanes))),
        })

    channels = property(lambda self: self._channels)
    height = property(lambda self: 1)
    width = property(lambda self: self._width)
    kernel = property(lambda self: self._kernel)
    stride = property(lambda self: self._stride)
    padding = property(lambda self: self._padding)
    shape = property(lambda self: self._shape)
    positions = property(lambda self: self._positions)
    out_height = property(lambda self: 1)
    out_width = property(lambda self: self._out_width)
    #: Elements per input beat (``positions * stride`` pixels).
    in_lanes = property(lambda self: self._positions * self._stride[1] * self._channels)
    #: Elements per output beat (``positions`` windows).
    out_lanes = property(lambda self: self._positions * self._kernel[1] * self._channels)
    in_beats = property(lambda self: self._out_width // self._positions)
    out_beats = property(lambda self: self._out_width // self._positions)
    pad_value = property(lambda self: self._pad_value)
    timing = property(lambda self: self._timing)
    #: Shifts of a frame before its first output beat is due.
    lookahead = property(lambda self: self._timing.lookahead)

    @staticmethod
    def lookahead_of(kernel, stride, padding, positions):
        """Input beats (shifts) a frame needs before its first output beat:
        ``ceil(((positions - 1) * stride + kernel - padding) / (positions * stride))``."""
        step = positions * stride
        return -(-((positions - 1) * stride + kernel - padding) // step)

    @classmethod
    def timing_of(cls, *, width, kernel, stride=1, padding=0, positions, **_):
        """The exact cycle model (:class:`ParallelWindowTiming`): ``out_width / positions``
        cycles per frame."""
        k, s, p = (v[1] if isinstance(v, (tuple, list)) else v
                   for v in (kernel, stride, padding))
        beats = ((width + 2 * p - k) // s + 1) // positions
        return ParallelWindowTiming(beats, cls.lookahead_of(k, s, p, positions))

    def reference(self, x):
        """Windows of ``(..., channels, 1, width)`` inputs, as :func:`im2col` with padding
        ``pad_value``."""
        shifted = im2col(x - self._pad_value, self._kernel, self._stride, self._padding)
        return shifted + self._pad_value

    def pad_bounds(self):
        """``{position: (first, end)}``: the output beats ``first <= b < end`` in which
        register position ``r`` (window ``j``'s tap ``t`` at ``r = j * stride + t``) holds a
        pixel of the frame, not padding, for every position some window reads."""
        k, s, p = self._kernel[1], self._stride[1], self._padding[1]
        step, beats = self._positions * s, self.out_beats
        bounds = {}
        for r in sorted({j * s + t for j in range(self._positions) for t in range(k)}):
            # Padded index b * step + r is a pixel when p <= b * step + r < p + width.
            first = max(0, -(-(p - r) // step))
            end = min(beats, beats - (r - p) // step)
            bounds[r] = (min(first, beats), max(end, 0))
        return bounds

    def elaborate(self, platform):
        m = Module()
        k, s, p = self._kernel[1], self._stride[1], self._padding[1]
        channels, bits = self._channels, self._shape.width
        step = self._positions * s                 # pixels per input beat
        beats, c = self.out_beats, self.lookahead
        pixel = channels * bits
        kept = p + (c - 1) * step                  # pixels the register holds
        i, o = self.i_stream, self.o_stream

        # The register and the beat shifting in: `window[r]` is padded index
        # newest - (kept + step - 1) + r after the shift. A shift keeps the newest `kept`.
        hist = Signal(kept * pixel, reset_less=True)
        window = Cat(hist, i.payload.as_value())

        # Control: `shifted` counts the frame's shifts, `beat` its next output beat; `pre` the
        # shifts since the next frame's first beat was taken (0: not yet). The shift that
        # brings a beat's last pixel sends the beat.
        shifted = Signal(range(beats + c - 1))
        beat = Signal(range(beats))
        pre = Signal(range(c))
        stall, due, need, shift, took, emit = (Signal(name=n) for n in
                                               ("stall", "due", "need", "shift", "took", "emit"))
        pre_next = Signal.like(shifted)
        tail = shifted >= beats
        m.d.comb += [
            stall.eq(o.valid & ~o.ready),
            due.eq(shifted == beat + (c - 1)),
            # A shift within the frame, or once the next frame has begun, needs its input beat.
            need.eq(~tail | (pre != 0)),
            i.ready.eq(~(due & stall)),
            took.eq(i.valid & i.ready),
            shift.eq(i.ready & (i.valid | ~need)),
            emit.eq(shift & due),
            pre_next.eq(Mux(tail & shift, Mux(pre == 0, took, pre + 1), pre)),
        ]
        with m.If(shift):
            m.d.sync += hist.eq(window[step * pixel:])
        with m.If(emit & (beat == beats - 1)):
            m.d.sync += [shifted.eq(pre_next), pre.eq(0), beat.eq(0)]
        with m.Else():
            m.d.sync += [shifted.eq(shifted + shift), pre.eq(pre_next)]
            with m.If(emit):
                m.d.sync += beat.eq(beat + 1)
        with m.If(~stall):
            m.d.sync += o.valid.eq(emit)

        # One output register per register position read; padding replaces it by beat.
        pad_pixel = Const(pack_words([[self._pad_value] * channels], bits)[0], pixel)
        compare = {}

        def beat_below(n):
            if n not in compare:
                compare[n] = Signal(name=f"beat_below_{n}")
                m.d.comb += compare[n].eq(beat < n)
            return compare[n]

        held = {}
        for r, (first, end_beat) in self.pad_bounds().items():
            if first >= end_beat:
                held[r] = pad_pixel                 # padding in every beat
                continue
            register = Signal(pixel, name=f"out{r}", reset_less=True)
            value = window[r * pixel:(r + 1) * pixel]
            pad = ([beat_below(first)] if first > 0 else []) + \
                  ([~beat_below(end_beat)] if end_beat < beats else [])
            if pad:
                value = Mux(Cat(*pad).any(), pad_pixel, value)
            with m.If(emit):
                m.d.sync += register.eq(value)
            held[r] = register
        m.d.comb += o.payload.eq(Cat(*(held[j * s + t] for j in range(self._positions)
                                       for t in range(k))))
        return m
