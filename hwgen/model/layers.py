"""Resource estimates of layers, without building any hardware.

A :class:`Layer` describes one layer as the accelerator lowers it (shapes, folding, weight and
activation bits); :func:`layer_blocks` prices the blocks it becomes with the formulas of
:mod:`hwgen.model.costs`, the same ones :func:`~hwgen.model.blocks.block_cost` applies to block
instances. Weights are not needed: ROMs are taken to be of random content (every column
varies; biases use half the accumulator's bits) and the accumulator as wide as the worst
case of the layer's fan-in, weight and activation ranges. A ResNet-50 is priced in about a
second (most of it finding the line-buffer depths of the large feature maps).
"""

from dataclasses import dataclass, field, replace
from functools import lru_cache
from math import lcm, prod

import numpy as np

from quant import numerics

from .. import packing
from ..blocks import requantizer
from ..blocks import matvec as _matvec_module
from ..blocks._util import divisors
from ..blocks.weightrom import weight_layout as _weight_layout
from ..blocks import SlidingWindow
from ..blocks.window import window_beat, window_beats
from ..blocks.map_window import group_window, pool_positions
from ..errors import FoldingError
from ..folding import fold_order
from . import costs
from .devices import FAMILIES
from .memory import random_rom_columns, random_rom_reset_columns
from .resources import Resources

__all__ = ["Layer", "OPS", "layer_blocks", "layer_cost", "weight_layout"]

#: Layer kinds and the blocks they become.
OPS = {
    "dense": "MatVecUnit",
    "conv": "SlidingWindow + MatVecUnit (ParallelWindow or ParallelMapWindow + MatVecLanes "
            "for whole windows of several positions a beat)",
    "depthwise": "SlidingWindow + DepthwiseUnit",
    "maxpool": "MaxPool",
    "avgpool": "SumPool",
    "global_avgpool": "GlobalSumPool",
    "requantize": "Requantizer",
    "add": "Add (+ StreamFifo on the skip path)",
}


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


@dataclass(frozen=True)
class Layer:
    """One layer, as the accelerator builds it.

    Parameters
    ----------
    op : str
        One of :data:`OPS`.
    in_shape : tuple of int
        ``(features,)``, ``(channels, length)`` or ``(channels, height, width)``.
    in_bits, in_signed : int, bool
        Input elements.
    out_channels : int
        Filters of a dense layer or convolution.
    kernel, stride, padding : int or (int, int)
        Window geometry of a convolution or a pool (``(1, k)`` for 1-D).
    pe, simd : int
        Folding: outputs and inputs per cycle. Pools, requantizers and adds take ``simd`` as
        their elements per beat. A depthwise convolution's ``simd`` divides its channels, or
        is ``taps * channels`` for ``taps`` dividing ``kh * kw`` (its window brings ``taps``
        whole positions per beat); another convolution's divides ``kh * kw * channels`` (its
        window splits a larger beat where needed); one whose windows tile its rows may be
        ``positions * kh * kw * channels`` (whole windows of ``positions`` outputs per beat,
        ``pe == out_channels``).
    weight_bits : dict
        ``{bits: filters}`` of a dense layer or convolution (``{4: 61, 8: 3}``); each lane is
        as wide as the widest filter it serves after ``reorder_filters``.
    lut_lanes : dict
        ``{bits: lanes}`` built from LUT multipliers instead of packed DSP lanes.
    rom_style : {None, "block", "logic"}
        Where the weight ROMs of a dense layer or convolution go (None: synthesis's choice).
    multiplier : str or None
        Family whose multipliers MAC lanes are packed onto (defaults to the estimate's
        family); None for LUT multipliers only.
    acc_bits : int, optional
        Accumulator width; by default that of the worst case of fan-in, weights and inputs
        (random weights and a bias leave a real layer within it).
    out_bits, out_signed : int, bool
        Output of a requantizer.
    scale : {"per_channel", "power_of_two"}
        Requantizer multipliers: one per channel (hardware multipliers) or a shift.
    multiplier_bits, shift : int
        Width of a requantizer's per-channel multipliers, and its right shift.
    offset_bits : int
        Width of a requantizer's per-channel offsets (0: none); they change from channel to
        channel, so a lane selects its offset by the fold when it serves several channels.
    skip_bits, skip_signed, fifo_depth : int, bool, int
        Second input of an add and the depth of the FIFO on its skip path.
    weight_values : tuple
        ``((bits, ((value, count), ...)), ...)``: how often each weight value occurs among
        the filters of each width. An unfolded layer's LUT lanes multiply by constants, whose
        cost depends on the values; without them, values are uniform over each width's range.
    name : str
    """

    op: str
    in_shape: tuple
    in_bits: int
    in_signed: bool = False
    out_channels: int = 0
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    pe: int = 1
    simd: int = 1
    weight_bits: dict = field(default_factory=dict)
    lut_lanes: dict = field(default_factory=dict)
    rom_style: str = None
    multiplier: object = "family"
    acc_bits: int = None
    out_bits: int = None
    out_signed: bool = False
    scale: str = "per_channel"
    multiplier_bits: int = 16
    shift: int = 16
    offset_bits: int = 0
    skip_bits: int = None
    skip_signed: bool = None
    fifo_depth: int = 0
    weight_values: tuple = ()
    name: str = ""

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"layer '{self.name}': op must be one of "
                             f"{', '.join(map(repr, OPS))}, not {self.op!r}")
        for attr in ("kernel", "stride", "padding"):
            object.__setattr__(self, attr, _pair(getattr(self, attr)))
        object.__setattr__(self, "in_shape", tuple(int(v) for v in self.in_shape))

    @property
    def map_shape(self):
        """``(channels, height, width)`` of a feature-map input (a 1-D input is one row)."""
        shape = self.in_shape
        return (shape[0], 1, shape[1]) if len(shape) == 2 else shape

    @property
    def in_features(self):
        """Inputs of one dot product (``kh * kw * channels`` for a convolution)."""
        if self.op == "conv":
            return self.kernel[0] * self.kernel[1] * self.map_shape[0]
        return prod(self.in_shape)

    @property
    def signal(self):
        """Whether the layer is 1-D: one row, a kernel one row high, stride 1 along y."""
        return self.map_shape[1] == 1 and self.kernel[0] == 1 and self.stride[0] == 1

    @property
    def whole_windows(self):
        """Whether a convolution takes whole windows of output positions from a parallel
        window: one whose windows tile its input's rows, with ``simd`` a multiple of its
        window (above it for a map: one whole window a beat is the sliding window's taps)."""
        width = self.map_shape[2]
        (_, kw), (_, sw), (_, pw) = self.kernel, self.stride, self.padding
        return (self.op == "conv" and
                numerics.conv_output_size(width, kw, sw, pw) * sw == width and
                self.simd % self.in_features == 0 and
                (self.signal or self.simd > self.in_features))

    @property
    def positions(self):
        """Output positions per beat (whole windows of several positions)."""
        return self.simd // self.in_features if self.whole_windows else 1

    @property
    def window_split(self):
        """``(channels per beat, positions per beat)`` of the beats the layer's window reads:
        ``simd`` elements, or for a convolution the smallest window beat ``simd`` divides,
        which the window splits (:func:`~hwgen.blocks.window.window_beat`)."""
        channels = self.map_shape[0]
        if self.op not in ("conv", "depthwise"):
            return self.simd, 1
        beat = self.simd
        if self.op == "conv":
            beat = window_beat(channels, self.kernel[0] * self.kernel[1], self.simd)
        return (channels, beat // channels) if beat > channels else (beat, 1)

    def _check_window_simd(self):
        """A convolution's ``simd``: a divisor of its window's elements (of its channels or
        whole positions for a depthwise one)."""
        channels = self.map_shape[0]
        positions = self.kernel[0] * self.kernel[1]
        if self.op == "conv":
            options = divisors(positions * channels)
            rule = (f"the window's {positions * channels} elements ({positions} positions of "
                    f"{channels} channels)")
        else:
            options = window_beats(channels, positions)
            rule = (f"{channels} nor is it {channels} times a divisor of the window's "
                    f"{positions} positions")
        if self.simd not in options:
            raise FoldingError(f"layer '{self.name}': SIMD {self.simd} does not divide {rule}; "
                               f"choose one of {', '.join(map(str, options))}")

    def _check(self, what, count, value):
        if value < 1 or count % value:
            raise FoldingError(f"layer '{self.name}': {what.upper()} {value} does not divide "
                               f"{count}; choose one of {', '.join(map(str, divisors(count)))}")


def _window(family, layer, padding):
    if layer.op in ("conv", "depthwise"):
        layer._check_window_simd()
    else:
        layer._check("simd", layer.map_shape[0], layer.simd)
    lanes, taps = layer.window_split
    split = lanes * taps // layer.simd if layer.op == "conv" else 1
    return _window_cost(family, layer.map_shape, lanes, layer.kernel, layer.stride,
                        padding, layer.in_bits, taps, split)


@lru_cache(maxsize=None)   # the search prices one window under many lane and ROM choices
def _window_cost(family, map_shape, simd, kernel, stride, padding, in_bits, taps=1, split=1):
    channels, height, width = map_shape
    timing = SlidingWindow.timing_of(channels=channels, height=height, width=width,
                                     kernel=kernel, stride=stride, padding=padding, simd=simd,
                                     taps=taps, split=split)
    g = timing.geometry
    cost = costs.window_cost(
        family, height=height, width=width, folds=g.folds, kernel=kernel, stride=stride,
        padding=padding, out_height=g.out_h, out_width=g.out_w, element_bits=in_bits,
        lanes=simd, buffer_rows=timing.buffer_rows, taps=taps)
    if split > 1:
        cost += costs.width_converter_cost(family, element_bits=in_bits,
                                           in_count=simd * taps, out_count=simd * taps // split)
    return cost, g


def _accumulator_bits(layer, weight_bits):
    if layer.acc_bits is not None:
        return layer.acc_bits
    lo, hi = numerics.int_range(layer.in_bits, layer.in_signed)
    w = (1 << (max(weight_bits) - 1)) - 1
    fan_in = layer.in_features if layer.op != "depthwise" else \
        layer.kernel[0] * layer.kernel[1]
    reach = fan_in * w * max(-lo, hi)
    return numerics.bits_for_range(-reach, reach)[0]


def _map_window_cost(family, map_shape, kernel, stride, padding, in_bits, positions):
    """A :class:`~hwgen.blocks.ParallelMapWindow`: its window of pixel groups (the outputs
    are wires), priced as that :class:`SlidingWindow`."""
    channels, height, width = map_shape
    p = group_window(width, kernel, stride, padding, positions).window_params(
        channels, height, width)
    return _window_cost(family, (p["channels"], p["height"], p["width"]), p["simd"],
                        p["kernel"], p["stride"], p["padding"], in_bits, p["taps"])[0]


def _pool(family, layer):
    kh, kw = layer.kernel
    count = kh * kw
    channels, _, width = layer.map_shape
    op = "max" if layer.op == "maxpool" else "sum"
    if layer.op == "maxpool":
        out_bits = layer.in_bits
    else:
        lo, hi = numerics.int_range(layer.in_bits, layer.in_signed)
        out_bits = numerics.bits_for_range(count * lo, count * hi)[0]
    if layer.simd > channels:
        # Several whole pixels a beat: whole windows of output positions, reduced in the beat.
        positions = pool_positions(channels, width, layer.kernel, layer.stride, layer.padding,
                                   layer.simd)
        if positions is None:
            raise FoldingError(f"layer '{layer.name}': a pool takes at most one pixel a beat, "
                               f"or whole pixels whose windows tile its rows; not SIMD "
                               f"{layer.simd} over {channels} channels")
        window = _map_window_cost(family, layer.map_shape, layer.kernel, layer.stride,
                                  layer.padding, layer.in_bits, positions)
        reduce = costs.reduce_cost(family, count=1, folds=1, lanes=positions * channels,
                                   in_bits=layer.in_bits, out_bits=out_bits, op=op, taps=count)
        return [("window", window), ("reduce", reduce)]
    window, _ = _window(family, layer, layer.padding)
    reduce = costs.reduce_cost(family, count=count, folds=channels // layer.simd,
                               lanes=layer.simd, in_bits=layer.in_bits, out_bits=out_bits,
                               op=op)
    return [("window", window), ("reduce", reduce)]


def _global_pool(family, layer):
    channels, height, width = layer.map_shape
    layer._check("simd", channels, layer.simd)
    lo, hi = numerics.int_range(layer.in_bits, layer.in_signed)
    pixels = height * width
    return [("reduce", costs.reduce_cost(
        family, count=pixels, folds=channels // layer.simd, lanes=layer.simd,
        in_bits=layer.in_bits, out_bits=numerics.bits_for_range(pixels * lo, pixels * hi)[0],
        op="sum"))]


def _depthwise(family, layer):
    channels = layer.map_shape[0]
    window, g = _window(family, layer, layer.padding)
    bits = sorted(layer.weight_bits) or [8]
    # Each lane's width is the widest of its channels; the wide channels are taken to share
    # as few lanes as possible (the order reorder_filters gives the layer before).
    simd, taps = layer.window_split
    folds = channels // simd
    lane_bits = []
    remaining = dict(layer.weight_bits)
    for b in reversed(bits):
        lanes = min(simd - len(lane_bits), -(-remaining.get(b, 0) // folds))
        lane_bits += [b] * lanes
    lane_bits += [bits[0]] * (simd - len(lane_bits))
    acc_bits = _accumulator_bits(layer, bits)
    positions = layer.kernel[0] * layer.kernel[1]
    words = positions // taps * folds
    roms = [random_rom_columns(b * lane_bits.count(b) * taps, words)
            for b in sorted(set(lane_bits))]
    unit = costs.depthwise_cost(
        family, channels=channels, positions=positions, lanes=simd,
        lane_bits=lane_bits, in_bits=layer.in_bits, acc_bits=acc_bits, rom_columns=roms,
        bias_columns=_bias_columns(simd, acc_bits, folds), taps=taps)
    return [("window", window), ("depthwise", unit)]


def _add(family, layer):
    skip_bits = layer.skip_bits or layer.in_bits
    skip_signed = layer.in_signed if layer.skip_signed is None else layer.skip_signed
    lo_x, hi_x = numerics.int_range(layer.in_bits, layer.in_signed)
    lo_s, hi_s = numerics.int_range(skip_bits, skip_signed)
    out_bits, _ = numerics.bits_for_range(lo_x + lo_s, hi_x + hi_s)
    layer._check("simd", prod(layer.in_shape), layer.simd)
    blocks = [("add", costs.add_cost(family, lanes=layer.simd, x_bits=layer.in_bits,
                                     skip_bits=skip_bits, out_bits=out_bits))]
    if layer.fifo_depth:
        blocks.append(("skip_fifo", costs.fifo_cost(family, width=layer.simd * skip_bits,
                                                    depth=layer.fifo_depth)))
    return blocks


def _bias_columns(lanes, acc_bits, words):
    """ROM columns of random biases taken to use half the accumulator's bits (the others
    copy their sign)."""
    nonconstant, distinct = random_rom_columns(lanes * acc_bits, words)
    return nonconstant, min(distinct, lanes * -(-acc_bits // 2))


@lru_cache(maxsize=None)
def _lane_widths(weight_bits, pe):
    """Bits of each lane for ``((bits, filters), ...)`` in :func:`fold_order`."""
    bits = np.repeat(*zip(*weight_bits))
    return bits[fold_order(bits, pe)].reshape(-1, pe).max(axis=0)


def _lane_groups(layer, multiplier):
    """Per lane width: ``(plan, packs, dsp_lanes, lut_lanes, bits)`` of one fold.

    A lane is as wide as the widest filter it serves, with the filters in the order
    ``reorder_filters`` gives them (:func:`~hwgen.folding.fold_order`).
    """
    out = layer.out_channels
    layer._check("pe", out, layer.pe)
    if sum(layer.weight_bits.values()) != out:
        raise ValueError(f"layer '{layer.name}': weight_bits counts "
                         f"{sum(layer.weight_bits.values())} filters, not out_channels {out}")
    widths = _lane_widths(tuple(sorted(layer.weight_bits.items())), layer.pe)
    groups = []
    for b in sorted(set(widths.tolist())):
        lanes = int((widths == b).sum())
        lut = lanes if multiplier is None else min(layer.lut_lanes.get(b, 0), lanes)
        plan = packing.plan_group(multiplier, b, layer.in_bits, layer.in_signed) \
            if lanes - lut else None
        if plan is not None:
            groups.append((plan, -(-(lanes - lut) // plan.lanes), lanes - lut, lut, b))
        else:   # every lane in LUTs (by choice, or no multiplier port holds the activation)
            groups.append((None, 0, 0, lanes, b))
    return groups


def _constants(groups, simd, values):
    """Weights for an unfolded unit's LUT lanes, ``(lanes, simd)``, drawn from ``values``
    (``{bits: ((value, count), ...)}``), or uniform over a width's narrow range where it
    has none; a fixed seed, so that a layer's price never changes."""
    rng = np.random.default_rng(0)
    rows = []
    for _, _, _, lut, bits in groups:
        if not lut:
            continue
        if bits in values:
            drawn, counts = np.asarray(values[bits]).T
            rows.append(rng.choice(drawn, (lut, simd), p=counts / counts.sum()))
        else:
            rows.append(rng.integers(-(1 << (bits - 1)) + 1, 1 << (bits - 1), (lut, simd)))
    return np.concatenate(rows) if rows else np.zeros((0, simd), dtype=np.int64)


def weight_layout(layer):
    """The :class:`~hwgen.blocks.weightrom.WeightLayout` of a dense layer's or a convolution's
    weight memories: its lanes at their widths (as :func:`_lane_groups` orders them),
    ``simd``, one word per (output fold, input fold)."""
    in_features = layer.in_features
    layer._check("pe", layer.out_channels, layer.pe)
    widths = _lane_widths(tuple(sorted(layer.weight_bits.items())), layer.pe)
    return _weight_layout(widths.tolist(), layer.simd,
                          (layer.out_channels // layer.pe) * (in_features // layer.simd))


def _matvec(family, layer):
    multiplier = family if layer.multiplier == "family" else layer.multiplier
    in_features = layer.in_features
    if layer.op == "conv":
        layer._check_window_simd()
    else:
        layer._check("simd", in_features, layer.simd)
    groups = _lane_groups(layer, multiplier)
    acc_bits = _accumulator_bits(layer, list(layer.weight_bits))
    folds, words = layer.out_channels // layer.pe, (layer.out_channels // layer.pe) * (
        in_features // layer.simd)
    roms = [random_rom_columns(width, words) for width in weight_layout(layer).widths]
    resets = [random_rom_reset_columns(distinct, words) for _, distinct in roms]
    sf = in_features // layer.simd
    return costs.matvec_cost(
        family, in_features=in_features, out_features=layer.out_channels, pe=layer.pe,
        simd=layer.simd, in_bits=layer.in_bits, in_signed=layer.in_signed, acc_bits=acc_bits,
        groups=groups, rom_columns=roms,
        bias_columns=_bias_columns(layer.pe, acc_bits, folds),
        pipeline_depth=_matvec_module.PIPELINE_DEPTH,
        # As MatVecUnit.queue_depth: room for every result in flight.
        queue_depth=-(-_matvec_module.PIPELINE_DEPTH // sf) + 1, rom_style=layer.rom_style,
        reset_columns=resets, constant_weights=_constants(groups, layer.simd,
                                                         dict(layer.weight_values))
        if words == 1 else None)


def _dense(family, layer):
    return [("matvec", _matvec(family, layer))]


def _conv(family, layer):
    if not layer.whole_windows:
        window, _ = _window(family, layer, layer.padding)
        return [("window", window), ("matvec", _matvec(family, layer))]
    # Whole windows from a ParallelWindow; several positions a beat take one unfolded unit
    # each (MatVecLanes).
    positions = layer.positions
    channels, _, width = layer.map_shape
    (_, kw), (_, sw), (_, pw) = layer.kernel, layer.stride, layer.padding
    out_width = width // sw
    if out_width % positions:
        raise FoldingError(
            f"layer '{layer.name}': SIMD {layer.simd} is {positions} whole windows a beat, "
            f"which must divide its {out_width} output positions")
    layer._check("pe", layer.out_channels, layer.pe)
    if positions > 1 and layer.pe != layer.out_channels:
        raise FoldingError(f"layer '{layer.name}': PE must be out_channels "
                           f"{layer.out_channels} with {positions} whole windows a beat, not "
                           f"{layer.pe}")
    if layer.signal:
        window = costs.parallel_window_cost(
            family, channels=channels, width=width, kernel=kw, stride=sw, padding=pw,
            element_bits=layer.in_bits, positions=positions)
    elif layer.kernel == layer.stride == (1, 1):
        window = Resources()        # each pixel is its own window: the stream, regrouped
    else:
        window = _map_window_cost(family, layer.map_shape, layer.kernel, layer.stride,
                                  layer.padding, layer.in_bits, positions)
    unit = _matvec(family, replace(layer, simd=layer.in_features))
    return [("window", window), ("matvec", unit * positions)]


def _requantize(family, layer):
    # The multipliers repeat every channel (or feature) and are taken a beat at a time: one
    # period of the stream that is a whole number of beats (as the lowering gives them).
    layer._check("simd", prod(layer.in_shape), layer.simd)
    geometry = packing.as_multiplier(family)
    a_port, b_port = geometry.a_bits, geometry.b_bits
    folds = lcm(layer.in_shape[0], layer.simd) // layer.simd
    factor_bits = 0
    if layer.scale == "power_of_two":
        pieces = [("shift", 0)] * layer.simd
    else:
        a = 1 if layer.in_bits <= a_port else \
            1 + -(-(layer.in_bits - a_port) // (a_port - 1))
        b = -(-layer.multiplier_bits // (b_port - 1))
        pieces = [("multiply", a, b, layer.multiplier_bits)] * layer.simd
        if folds > 1:
            factor_bits = min(layer.simd * layer.multiplier_bits, 2 ** min(folds, 62) - 2)
    return [("requantizer", costs.requantizer_cost(
        family, lanes=layer.simd, folds=folds, in_bits=layer.in_bits,
        out_bits=layer.out_bits or 8, shift=layer.shift, pieces=pieces,
        factor_bits=factor_bits, a_port=a_port, b_port=b_port,
        stages=requantizer.LATENCY - 2, queue_depth=requantizer.QUEUE_DEPTH,
        offsets=[(layer.offset_bits, folds > 1)] * layer.simd))]


_BLOCKS = {
    "dense": _dense, "conv": _conv, "requantize": _requantize,
    "depthwise": _depthwise, "maxpool": _pool, "avgpool": _pool,
    "global_avgpool": _global_pool, "add": _add,
}


def layer_blocks(layer, family):
    """``[(block, Resources), ...]``: the blocks ``layer`` becomes on ``family`` and their costs.

    Raises
    ------
    ValueError
        For an unknown family.
    FoldingError
        When ``pe`` or ``simd`` does not divide what it folds.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(map(repr, FAMILIES))}, not "
                         f"{family!r}")
    return _BLOCKS[layer.op](family, layer)


def layer_cost(layer, family):
    """Total :class:`~hwgen.model.resources.Resources` of ``layer`` on ``family``."""
    return sum((r for _, r in layer_blocks(layer, family)), Resources())
