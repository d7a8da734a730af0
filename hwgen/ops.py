"""One view per op: what the generator knows of a graph node, computed once from the node and
the graph's shapes.

Lowering, folding, hardware support, the cost model and the search all read a node through
its view (:func:`op_views`), never through its op string: a view has the node's geometry with a
1-D signal as a 2-D map of one row, its counts (channels, filters, pixels, MACs), and for a
layer with weights the cycles a folding gives (:meth:`FilterView.cycles`).
"""

from dataclasses import dataclass
from functools import cached_property
from math import prod

import numpy as np

from quant import numerics
from quant.numerics import is_int

from .blocks._util import divisors
from .blocks.map_window import pool_positions
from .blocks.window import window_beat, window_beats

__all__ = ["Geometry", "OpView", "FilterView", "PoolView", "op_view", "op_views",
           "filter_views"]


@dataclass(frozen=True)
class Geometry:
    """A window over a ``(channels, height, width)`` map; a 1-D signal is one row.

    ``kernel``, ``stride`` and ``padding`` are ``(y, x)`` pairs; ``out_height`` and
    ``out_width`` follow PyTorch's floor rule.
    """
    channels: int
    height: int
    width: int
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)

    @classmethod
    def of_map(cls, shape, kernel=None, stride=None, padding=None):
        """The geometry of a ``(C, H, W)`` or ``(C, L)`` map, with per-axis window attributes
        as the IR stores them (one entry per spatial axis, ``None`` for the defaults)."""
        shape = tuple(int(d) for d in shape)
        channels, spatial = shape[0], shape[1:]

        def pair(value, default):
            value = (default,) * len(spatial) if value is None else tuple(int(v) for v in value)
            return value if len(value) == 2 else (default, value[0])

        height, width = spatial if len(spatial) == 2 else (1, spatial[0])
        return cls(channels, height, width, pair(kernel, 1), pair(stride, 1), pair(padding, 0))

    @property
    def out_height(self):
        return numerics.conv_output_size(self.height, self.kernel[0], self.stride[0],
                                         self.padding[0])

    @property
    def out_width(self):
        return numerics.conv_output_size(self.width, self.kernel[1], self.stride[1],
                                         self.padding[1])

    @property
    def window(self):
        """Pixels in one window (``kh * kw``)."""
        return self.kernel[0] * self.kernel[1]

    @property
    def pixels(self):
        """Input pixels (``height * width``)."""
        return self.height * self.width

    @property
    def out_pixels(self):
        return self.out_height * self.out_width


class OpView:
    """A node seen by the generator: its kind, shapes and geometry.

    ``kind`` is one of ``"dense"``, ``"conv"``, ``"depthwise"``, ``"maxpool"``, ``"avgpool"``,
    ``"global_avgpool"``, ``"requantize"``, ``"add"``, ``"flatten"``.
    """

    has_weights = False

    def __init__(self, node, kind, in_shapes, out_shape):
        self.node, self.kind, self.name = node, kind, node.name
        self.in_shapes = tuple(tuple(int(d) for d in s) for s in in_shapes)
        self.out_shape = tuple(int(d) for d in out_shape)

    @property
    def in_shape(self):
        return self.in_shapes[0]

    @property
    def in_elements(self):
        return prod(self.in_shape)

    @property
    def out_elements(self):
        return prod(self.out_shape)

    @property
    def channels(self):
        """Channels of the input (features of a vector)."""
        return self.in_shape[0]

    @cached_property
    def geometry(self):
        """The input map's :class:`Geometry` (with the node's window, if it has one)."""
        return Geometry.of_map(self.in_shape)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r} {self.kind}>"


class FilterView(OpView):
    """A dense layer, a convolution or a depthwise convolution: filters with weights.

    Folding: ``pe`` filters and ``simd`` inputs per cycle. ``simd`` divides ``in_count``
    (``in_features``, or the input channels of a convolution, whose window brings ``simd``
    channels of one window position per beat), or, for a convolution (depthwise or not), is
    ``taps * in_channels`` for ``taps`` dividing ``kh * kw`` (its window brings ``taps``
    whole positions per beat), or, for a convolution (not depthwise), any other divisor of
    ``kh * kw * in_channels`` (its window reads a larger of those beats and splits it:
    :meth:`window_lanes`), or, for a convolution whose windows tile its rows,
    ``positions * kh * kw * in_channels`` (``positions`` whole windows per beat, with ``pe ==
    out_channels``):
    :attr:`simd_options`. A depthwise convolution outputs the channels it takes in: ``pe ==
    in_lanes(simd)``.
    """

    has_weights = True

    @property
    def weight(self):
        return self.node.tensors["weight"]

    @property
    def weight_bits(self):
        return self.node.tensors["weight_bits"]

    @property
    def out_channels(self):
        """Filters (output features or channels)."""
        return int(self.weight.shape[0])

    @property
    def depthwise(self):
        return self.kind == "depthwise"

    @property
    def in_count(self):
        return self.in_shape[0]

    @property
    def in_name(self):
        return "in_features" if self.kind == "dense" else "in_channels"

    @property
    def out_name(self):
        return "out_features" if self.kind == "dense" else "out_channels"

    @cached_property
    def geometry(self):
        if self.kind == "dense":
            return Geometry(self.in_shape[0], 1, 1)
        a = self.node.attrs
        return Geometry.of_map(self.in_shape, self.weight.shape[2:], a["stride"], a["padding"])

    @property
    def window(self):
        return self.geometry.window

    @property
    def pixels(self):
        """Output pixels: dot products per filter per frame."""
        return self.geometry.out_pixels

    @property
    def fan_in(self):
        """Inputs of one dot product."""
        return self.window if self.depthwise else self.window * self.in_count

    @property
    def macs(self):
        """Multiply-accumulates per frame."""
        return self.pixels * self.out_channels * self.fan_in

    @cached_property
    def matrix(self):
        """Weights as ``(filters, fan_in)``, the window in ``(ky, kx, c)`` order (the order a
        :class:`~hwgen.blocks.SlidingWindow` presents), or ``(channels, kh, kw)`` for a
        depthwise convolution."""
        w = self.weight
        g = self.geometry
        if self.kind == "dense":
            return w
        if self.depthwise:
            return w.reshape(w.shape[0], *g.kernel)
        w = w.reshape(w.shape[0], g.channels, *g.kernel)
        return np.moveaxis(w, 1, -1).reshape(w.shape[0], -1)

    @cached_property
    def simd_options(self):
        """Every legal ``simd``, ascending."""
        if self.kind == "conv":
            options = divisors(self.fan_in)
        else:
            options = self.window_options
        return options + [p * self.fan_in for p in self.position_options]

    @cached_property
    def window_options(self):
        """The beats a sliding window gives (:func:`~hwgen.blocks.window.window_beats`); a
        dense layer's divisors of its features."""
        if self.kind in ("conv", "depthwise"):
            return window_beats(self.in_count, self.window)
        return divisors(self.in_count)

    def window_lanes(self, simd):
        """Elements per beat the sliding window of the layer folded ``simd`` reads: ``simd``,
        or, when no window beat is ``simd`` elements (a part of the window that is neither
        whole positions nor a divisor of the channels), the smallest window beat that
        ``simd`` divides, which the window splits into beats of ``simd``
        (:func:`~hwgen.blocks.window.window_beat`)."""
        if self.kind == "dense" or self.whole_windows(simd):
            return simd
        return window_beat(self.in_count, self.window, simd)

    @cached_property
    def tiles(self):
        """Whether the layer is a convolution whose windows tile each row of its input
        (``out_width * stride == width``): it may then take whole windows of several output
        positions per beat, ``positions * stride`` pixels per input beat, from a
        :class:`~hwgen.blocks.ParallelWindow` (a 1-D signal, see :attr:`signal`) or a
        :class:`~hwgen.blocks.ParallelMapWindow` (a map)."""
        g = self.geometry
        return self.kind == "conv" and g.out_width * g.stride[1] == g.width

    @cached_property
    def signal(self):
        """Whether the layer is 1-D: one row, with a kernel one row high and stride 1 along y
        (a 2-D kernel over a map one row high, its other rows in the padding, is not)."""
        g = self.geometry
        return g.height == 1 and g.kernel[0] == 1 and g.stride[0] == 1

    @cached_property
    def position_options(self):
        """Output positions per beat above one the layer may take (``simd = positions * kh *
        kw * in_channels``): the divisors of a tiling layer's output width."""
        return divisors(self.geometry.out_width)[1:] if self.tiles else []

    def whole_windows(self, simd):
        """Whether the layer folded ``simd`` takes whole windows of output positions from a
        parallel window: a tiling layer with ``simd`` a multiple of its window, above it for a
        map (one whole window a beat is the sliding window's ``taps``)."""
        return self.tiles and simd % self.fan_in == 0 and (self.signal or simd > self.fan_in)

    def positions(self, simd):
        """Output positions per beat of the layer folded ``simd``."""
        return simd // self.fan_in if self.whole_windows(simd) else 1

    def in_lanes(self, simd):
        """Elements per beat of the input stream the layer folded ``simd`` takes: ``simd``,
        one whole pixel when its window brings several positions of a window per beat, or
        ``positions * stride`` whole samples when it takes whole windows."""
        if self.whole_windows(simd):
            return self.positions(simd) * self.geometry.stride[1] * self.in_count
        return min(self.window_lanes(simd), self.in_count)

    def out_lanes(self, pe, simd):
        """Elements per beat of the layer's output: ``pe`` channels of each output position
        the beat carries."""
        return pe * self.positions(simd)

    def cycles(self, pe, simd):
        """Clock cycles per frame of the layer folded ``pe`` x ``simd``: of its arithmetic,
        and for a convolution of its window taking the input map (a strided window takes
        more input beats than it gives windows)."""
        if self.depthwise:
            arithmetic = self.pixels * self.window * self.in_count // simd
        else:
            arithmetic = self.pixels * (self.out_channels // pe) * self.fan_in // simd
        if self.kind == "dense":
            return arithmetic
        return max(arithmetic, self.in_elements // self.in_lanes(simd))

    def folding_problems(self, pe, simd):
        """What is wrong with ``(pe, simd)`` for this layer, one message each."""
        problems = []
        if not is_int(pe) or pe < 1 or self.out_channels % pe:
            problems.append(f"layer '{self.name}': PE {pe} does not divide {self.out_name} "
                            f"{self.out_channels}; choose one of "
                            f"{', '.join(map(str, divisors(self.out_channels)))}")
        if not is_int(simd) or simd not in self.simd_options:
            kh, kw = self.geometry.kernel
            rules = []
            if self.kind == "conv" and self.window > 1:
                what = (f"the {kh}x{kw} window's {self.fan_in} elements ({self.window} "
                        f"positions of {self.in_name} {self.in_count})")
            else:
                what = f"{self.in_name} {self.in_count}"
            if self.kind == "depthwise" and self.window > 1:
                rules.append(f"{self.in_name} times a divisor of the {kh}x{kw} window's "
                             f"{self.window} positions")
            if self.position_options:
                rules.append(f"whole windows ({self.fan_in} elements) of a divisor of its "
                             f"{self.geometry.out_width} output positions a row")
            rule = " nor is it " + ", nor ".join(rules) if rules else ""
            problems.append(f"layer '{self.name}': SIMD {simd} does not divide {what}{rule}; "
                            f"choose one of "
                            f"{', '.join(map(str, self.simd_options))}")
        if not problems and self.positions(simd) > 1 and pe != self.out_channels:
            problems.append(f"layer '{self.name}': PE {pe} must be {self.out_name} "
                            f"{self.out_channels} with SIMD {simd} ({self.positions(simd)} "
                            f"whole windows a beat, each giving all its channels)")
        if not problems and self.depthwise and pe != self.in_lanes(simd):
            what = (f"SIMD {simd}" if simd <= self.in_count else
                    f"the {self.in_count} channels of each of SIMD {simd}'s "
                    f"{simd // self.in_count} window positions")
            problems.append(f"layer '{self.name}': PE {pe} must equal {what} in a "
                            f"depthwise convolution (it outputs the channels it takes in)")
        return problems


class PoolView(OpView):
    """A windowed max or sum pool, or a global sum pool (the whole map is its window).

    A windowed pool takes an input beat of one pixel or less, or of several pixels when its
    windows tile the rows (:meth:`positions`); a wider beat is regrouped to one pixel.
    """

    def positions(self, lanes):
        """Output positions per beat the pool gives from a stream of ``lanes`` elements per
        beat, each a whole window (:class:`~hwgen.blocks.ParallelMapWindow`); None when it
        takes one pixel, or part of one, per beat."""
        if self.kind == "global_avgpool":
            return None
        g = self.geometry
        return pool_positions(g.channels, g.width, g.kernel, g.stride, g.padding, lanes)

    def in_lanes(self, lanes):
        """Elements per beat the pool takes from a stream of ``lanes`` per beat."""
        return lanes if self.positions(lanes) else min(lanes, self.geometry.channels)

    def out_lanes(self, lanes):
        """Elements per beat the pool gives from a stream of ``lanes`` per beat."""
        positions = self.positions(lanes)
        return positions * self.geometry.channels if positions else \
            min(lanes, self.geometry.channels)

    @cached_property
    def geometry(self):
        if self.kind == "global_avgpool":
            g = Geometry.of_map(self.in_shape)
            return Geometry(g.channels, g.height, g.width, (g.height, g.width),
                            (g.height, g.width))
        a = self.node.attrs
        return Geometry.of_map(self.in_shape, a["kernel"], a["stride"], a.get("padding"))


_KINDS = {"dense": "dense", "requantize": "requantize", "add": "add", "flatten": "flatten",
          "maxpool1d": "maxpool", "maxpool2d": "maxpool", "avgpool1d": "avgpool",
          "avgpool2d": "avgpool", "global_avgpool": "global_avgpool"}


def op_view(node, shapes):
    """The view of ``node`` in a graph whose value shapes are ``shapes``."""
    in_shapes = [shapes[name] for name in node.inputs]
    out_shape = shapes[node.name]
    if node.op in ("conv1d", "conv2d"):
        kind = "depthwise" if node.attrs.get("groups", 1) > 1 else "conv"
        return FilterView(node, kind, in_shapes, out_shape)
    kind = _KINDS[node.op]
    if kind == "dense":
        return FilterView(node, kind, in_shapes, out_shape)
    if kind in ("maxpool", "avgpool", "global_avgpool"):
        return PoolView(node, kind, in_shapes, out_shape)
    return OpView(node, kind, in_shapes, out_shape)


def op_views(graph):
    """``{node name: view}`` of every node of a valid ``graph``, in order."""
    shapes = graph.shapes()
    return {node.name: op_view(node, shapes) for node in graph.nodes}


def filter_views(graph):
    """The views of the layers with weights, in order."""
    return [v for v in op_views(graph).values() if v.has_weights]
