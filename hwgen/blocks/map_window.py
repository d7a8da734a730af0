"""ParallelMapWindow: whole windows of several output positions of a 2-D map per beat."""

from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.numerics import conv_output_size, im2col

from ..errors import FoldingError
from ._util import check_count, check_window, divisors
from .timing import Timed
from .window import SlidingWindow

__all__ = ["ParallelMapWindow", "GroupWindow", "group_window", "pool_positions"]


class GroupWindow:
    """The window over groups of pixels that holds ``positions`` consecutive windows.

    Read ``group`` consecutive pixels of a row as one pixel of ``group * channels`` channels
    (the HWC stream is the same): the map is ``width / group`` groups wide. The windows of
    output positions ``x = j * positions ... (j + 1) * positions - 1`` read only groups ``j -
    reach ... j + reach``, so a window of ``2 * reach + 1`` groups with ``reach`` groups of
    padding, stride 1 along x, gives them all at group ``j``; along y nothing changes.
    """

    def __init__(self, kernel, stride, padding, positions):
        (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
        self.positions, self.stride_x, self.pad_x, self.kernel = positions, sw, pw, (kh, kw)
        self.group = positions * sw
        # Left: the first pixel position 0 reads; right: the last pixel the last one reads.
        self.reach = max(-(-pw // self.group), ((positions - 1) * sw - pw + kw - 1) // self.group)
        self.group_kernel = (kh, 2 * self.reach + 1)
        self.group_stride = (sh, 1)
        self.group_padding = (ph, self.reach)

    def window_params(self, channels, height, width):
        """The :class:`SlidingWindow` parameters of the window over groups of a ``(channels,
        height, width)`` map (all but ``shape`` and ``pad_value``)."""
        lanes = self.group * channels
        return dict(channels=lanes, height=height, width=width // self.group,
                    kernel=self.group_kernel, stride=self.group_stride,
                    padding=self.group_padding, simd=lanes,
                    taps=self.group_kernel[0] * self.group_kernel[1])

    def source(self, p, ky, kx):
        """``(group tap, pixel in the group)`` of tap ``(ky, kx)`` of position ``p``'s window,
        the group tap in ``(ky, group column)`` order."""
        column = p * self.stride_x - self.pad_x + kx      # from the group's first pixel
        tap = ky * self.group_kernel[1] + self.reach + column // self.group
        return tap, column % self.group


def pool_positions(channels, width, kernel, stride, padding, lanes):
    """Output positions per beat of a pool given ``lanes`` elements a beat, each a whole
    window: when the beat is several whole pixels, a multiple of the stride, and the windows
    tile the rows; else None (the pool takes one pixel, or part of one, a beat)."""
    pixels, rest = divmod(lanes, channels)
    if pixels < 2 or rest or pixels % stride[1]:
        return None
    plan = group_window(width, kernel, stride, padding, pixels // stride[1])
    return None if isinstance(plan, str) else plan.positions


def group_window(width, kernel, stride, padding, positions):
    """The :class:`GroupWindow` of ``positions`` windows per beat, or why there is none: the
    windows must tile each row (``out_width * stride == width``) and ``positions`` divide
    ``out_width``."""
    (_, kw), (_, sw), (_, pw) = kernel, stride, padding
    out_width = conv_output_size(width, kw, sw, pw)
    if out_width * sw != width:
        return (f"its windows do not tile a row (out_width {out_width} * stride {sw} != width "
                f"{width})")
    if out_width % positions:
        return (f"{positions} positions a beat do not divide its {out_width} output positions; "
                f"choose one of {', '.join(map(str, divisors(out_width)))}")
    return GroupWindow(kernel, stride, padding, positions)


class ParallelMapWindow(Timed, wiring.Component):
    """Windows of a 2-D map, ``positions`` whole windows per beat, from a line buffer of pixel
    groups.

    The input is an HWC stream of ``positions * stride_x`` consecutive pixels per beat, each
    pixel all its ``channels``. Each output beat carries the windows of ``positions``
    consecutive output positions of a row, each in ``(ky, kx, c)`` order: the rows of
    :func:`im2col`, concatenated. The windows must tile each row (``out_width * stride_x ==
    width``); ``out_width / positions`` beats per output row.

    A :class:`SlidingWindow` over the map read as groups of ``positions * stride_x`` pixels
    (see :class:`GroupWindow`) gives a whole window of groups per beat; each output element
    is then a fixed wire from it. Its timing, memory and padding are that window's.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(shape, positions * stride_x * channels)))
    o_stream : Out(stream.Signature(ArrayLayout(shape, positions * kh * kw * channels)))
    """

    def __init__(self, *, channels, height, width, kernel, stride=1, padding=0, shape,
                 positions, pad_value=0, name="window"):
        channels, height, width, kernel, stride, padding, shape = check_window(
            name, channels=channels, height=height, width=width, kernel=kernel, stride=stride,
            padding=padding, shape=shape)
        positions = check_count("positions", positions, name)
        plan = group_window(width, kernel, stride, padding, positions)
        if isinstance(plan, str):
            raise FoldingError(f"layer '{name}': whole windows of {positions} positions a beat "
                               f"need a window that tiles the map's rows, but {plan}")
        self._plan, self._channels, self._shape, self._name = plan, channels, shape, name
        self._groups = SlidingWindow(**plan.window_params(channels, height, width),
                                     shape=shape, pad_value=pad_value, name=name)
        kh, kw = kernel
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(shape, plan.group * channels))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(
                shape, positions * kh * kw * channels))),
        })

    @classmethod
    def timing_of(cls, *, channels, height, width, kernel, stride=1, padding=0, positions,
                  **_):
        """The timing of the window of groups (:meth:`SlidingWindow.timing_of`)."""
        pairs = [tuple(v) if isinstance(v, (tuple, list)) else (v, v)
                 for v in (kernel, stride, padding)]
        plan = group_window(width, *pairs, positions)
        return SlidingWindow.timing_of(**plan.window_params(channels, height, width))

    channels = property(lambda self: self._channels)
    height = property(lambda self: self._groups.height)
    width = property(lambda self: self._groups.width * self._plan.group)
    kernel = property(lambda self: self._plan.kernel)
    stride = property(lambda self: (self._plan.group_stride[0], self._plan.stride_x))
    padding = property(lambda self: (self._groups.padding[0], self._plan.pad_x))
    positions = property(lambda self: self._plan.positions)
    shape = property(lambda self: self._shape)
    pad_value = property(lambda self: self._groups.pad_value)
    out_height = property(lambda self: self._groups.out_height)
    out_width = property(lambda self: self._groups.out_width * self._plan.positions)
    in_lanes = property(lambda self: self._plan.group * self._channels)
    out_lanes = property(lambda self: len(self.o_stream.payload))
    in_beats = property(lambda self: self._groups.in_beats)
    out_beats = property(lambda self: self._groups.out_beats)
    #: The :class:`SlidingWindow` over pixel groups that holds the line buffer.
    groups = property(lambda self: self._groups)
    timing = property(lambda self: self._groups.timing)

    def reference(self, x):
        """Windows of ``(..., channels, height, width)`` inputs, as :func:`im2col`."""
        return im2col(x, self.kernel, self.stride, self.padding)

    def elaborate(self, platform):
        m = Module()
        m.submodules.groups = groups = self._groups
        wiring.connect(m, wiring.flipped(self.i_stream), groups.i_stream)
        i, o = groups.o_stream, self.o_stream
        m.d.comb += [o.valid.eq(i.valid), i.ready.eq(o.ready)]
        plan, channels = self._plan, self._channels
        kh, kw = plan.kernel
        for p in range(plan.positions):
            for ky in range(kh):
                for kx in range(kw):
                    tap, pixel = plan.source(p, ky, kx)
                    for c in range(channels):
                        out = ((p * kh + ky) * kw + kx) * channels + c
                        m.d.comb += o.payload[out].eq(
                            i.payload[(tap * plan.group + pixel) * channels + c])
        return m
