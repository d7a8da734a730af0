"""Resource estimates of block instances: :func:`block_cost` reads a block's parameters and
ROM contents and applies the formulas of :mod:`hwgen.model.costs`.

ROM contents come from the blocks themselves (:meth:`~hwgen.blocks.MatVecUnit.rom_fields`,
:attr:`~hwgen.blocks.DepthwiseUnit.weight_table`, :meth:`~hwgen.blocks.Requantizer.pieces`),
so the model counts exactly the words the hardware stores.
"""

import numpy as np

from quant import numerics

from ..blocks import (Add, AsSigned, Broadcast, DepthwiseUnit, GlobalSumPool, MatVecLanes,
                      MatVecUnit, MaxPool, PackedMultiplier, ParallelMapWindow, ParallelWindow,
                      Requantizer, SlidingWindow, StreamFifo, SumPool, WidthConverter)
from ..blocks import matvec as _matvec_module
from . import costs
from .devices import FAMILIES
from .memory import rom_reset_columns
from .resources import Resources

__all__ = ["block_cost", "rom_columns"]


def _bits(values, bits):
    """``(words, fields * bits)`` 0/1 matrix of integers stored as ``bits``-bit fields."""
    values = np.asarray(values, dtype=object if bits > 62 else np.int64)
    values = values.reshape(values.shape[0], -1)
    if values.dtype == object:
        return np.array([[(int(v) >> b) & 1 for v in row for b in range(bits)]
                         for row in values], dtype=np.uint8)
    values = values & ((1 << bits) - 1)
    return ((values[:, :, None] >> np.arange(bits)) & 1).reshape(values.shape[0], -1)


def _distinct_columns(columns):
    """The number of non-constant columns of a 0/1 matrix, and its distinct ones."""
    varying = columns[:, columns.min(axis=0) != columns.max(axis=0)]
    first = {}
    for i, column in enumerate(np.ascontiguousarray(varying.T)):
        first.setdefault(column.tobytes(), i)
    return varying.shape[1], varying[:, list(first.values())]


def _count_columns(columns):
    varying, distinct = _distinct_columns(columns)
    return varying, distinct.shape[1]


def rom_columns(values, bits):
    """``(non-constant, distinct non-constant)`` bit columns of a ROM.

    Synthesis drops the columns that are the same in every word; built from logic, equal
    columns also share their LUTs and read register. ``values`` is an integer array of shape
    ``(words, fields)``, each field stored as ``bits`` bits of two's complement.
    """
    values = np.asarray(values)
    if values.size == 0 or bits == 0:
        return 0, 0
    return _count_columns(_bits(values, bits))


def _payload(block, port="i_stream"):
    """``(element bits, elements per beat)`` of a stream port."""
    layout = block.signature.members[port].signature.members["payload"].shape
    return layout.elem_shape.width, layout.length


def _window(family, block):
    cost = costs.window_cost(
        family, height=block.height, width=block.width, folds=block.channels // block.simd,
        kernel=block.kernel, stride=block.stride, padding=getattr(block, "padding", (0, 0)),
        out_height=block.out_height, out_width=block.out_width,
        element_bits=block.shape.width, lanes=block.simd, buffer_rows=block.buffer_rows,
        taps=getattr(block, "taps", 1))
    if getattr(block, "split", 1) > 1:
        beat = block.simd * block.taps
        cost += costs.width_converter_cost(family, element_bits=block.shape.width,
                                           in_count=beat, out_count=block.out_lanes)
    return cost


def _pool(family, block):
    kh, kw = block.kernel
    op = "max" if isinstance(block, MaxPool) else "sum"
    if block.positions:     # whole windows a beat, reduced within it
        return _window(family, block.lines) + costs.reduce_cost(
            family, count=1, folds=1, lanes=block.out_lanes, in_bits=block.shape.width,
            out_bits=block.out_bits, op=op, taps=kh * kw)
    return _window(family, block) + costs.reduce_cost(
        family, count=kh * kw, folds=block.channels // block.simd, lanes=block.simd,
        in_bits=block.shape.width, out_bits=block.out_bits, op=op)


def _map_window(family, block):
    return _window(family, block.groups)    # its outputs are wires from the group window's


def _global_pool(family, block):
    return costs.reduce_cost(
        family, count=block.height * block.width, folds=block.channels // block.simd,
        lanes=block.simd, in_bits=block.shape.width, out_bits=block.out_bits, op="sum")


def _depthwise(family, block):
    folds, simd = block.folds, block.simd
    positions = block.kernel[0] * block.kernel[1]
    lane_bits = block.lane_bits
    multiplier_bits = block.multiplier_bits
    table = block.weight_table
    roms = [rom_columns(table[:, multiplier_bits == bits], int(bits))
            for bits in sorted(set(lane_bits.tolist()))]
    bias = rom_columns(block.bias.reshape(folds, simd), block.acc_bits)
    return costs.depthwise_cost(
        family, channels=block.channels, positions=positions, lanes=simd,
        lane_bits=[int(b) for b in lane_bits], in_bits=block.in_bits,
        acc_bits=block.acc_bits, rom_columns=roms,
        bias_columns=bias, taps=block.taps)


def _add(family, block):
    return costs.add_cost(family, lanes=block.lanes, x_bits=block.shape.width,
                          skip_bits=block.skip_shape.width, out_bits=block.out_bits)


def _fifo(family, block):
    return costs.fifo_cost(family, width=block.shape.width * block.lanes, depth=block.depth)


def _converter(family, block):
    bits, _ = _payload(block)
    return costs.width_converter_cost(family, element_bits=bits, in_count=block.in_count,
                                      out_count=block.out_count)


def _broadcast(family, block):
    return costs.broadcast_cost(family, outputs=block.outputs)


def _as_signed(family, block):
    return Resources()      # wiring: the same bits read as signed


def _matvec_groups(block):
    """Per precision group ``(plan, packs, dsp_lanes, lut_lanes, bits)``; per weight memory
    its ``(non-constant, distinct)`` columns, and the distinct ones whose read register
    would have a synchronous reset in logic (:func:`~hwgen.model.memory.rom_reset_columns`)."""
    groups = [(g["plan"], len(g["packs"]), sum(map(len, g["packs"])), len(g["lut"]), g["bits"])
              for g in block.groups]
    roms, resets = [], []
    for pieces in block.rom_fields():
        varying, distinct = _distinct_columns(
            np.concatenate([_bits(values, width) for width, values in pieces], axis=1))
        roms.append((varying, distinct.shape[1]))
        resets.append(rom_reset_columns(distinct))
    return groups, roms, resets


def _matvec(family, block):
    groups, roms, resets = _matvec_groups(block)
    bias = rom_columns(block.bias.reshape(block.output_folds, block.pe), block.acc_bits)
    return costs.matvec_cost(
        family, in_features=block.in_features, out_features=block.out_features, pe=block.pe,
        simd=block.simd, in_bits=block.in_bits, in_signed=block.in_signed,
        acc_bits=block.acc_bits, groups=groups, rom_columns=roms, bias_columns=bias,
        pipeline_depth=_matvec_module.PIPELINE_DEPTH, queue_depth=block.queue_depth,
        rom_style=block.rom_style, reset_columns=resets,
        constant_weights=_constant_weights(block))


def _constant_weights(block):
    """An unfolded unit's LUT lane weights, ``(lanes, simd)`` (None for a folded unit)."""
    if not block.constant_weights:
        return None
    return block.weight[[lane for group in block.groups for lane in group["lut"]]]


def _parallel_window(family, block):
    (_, kw), (_, sw), (_, pw) = block.kernel, block.stride, block.padding
    return costs.parallel_window_cost(
        family, channels=block.channels, width=block.width, kernel=kw, stride=sw, padding=pw,
        element_bits=block.shape.width, positions=block.positions)


def _matvec_lanes(family, block):
    return _matvec(family, block.units[0]) * block.positions


def _requantizer(family, block):
    mult = block.multiplier.reshape(block.beats_per_frame, block.lanes)
    pieces, varying = [], []
    for p in range(block.lanes):
        column = mult[:, p].tolist()
        piece = block.pieces(column)
        if piece[0] == "multiply":
            m_bits = max(int(max(column)).bit_length(), 1)
            piece = piece + (m_bits,)
            if len(set(column)) > 1:
                varying.append(_bits(np.array(column)[:, None], m_bits))
        pieces.append(piece)
    factor_bits = _count_columns(np.concatenate(varying, axis=1))[1] if varying else 0
    offset = block.offset.reshape(block.beats_per_frame, block.lanes)
    offsets = [(0, False) if not column.any() else
               (numerics.bits_for_range(min(column.min(), -1), max(column.max(), 0))[0],
                len(set(column.tolist())) > 1) for column in offset.T]
    geometry = block.geometry
    return costs.requantizer_cost(
        family, lanes=block.lanes, folds=block.beats_per_frame, in_bits=block.in_bits,
        out_bits=block.out_bits, shift=block.shift, pieces=pieces, factor_bits=factor_bits,
        a_port=geometry.a_bits, b_port=geometry.b_bits, stages=block.latency - 2,
        queue_depth=block.queue_depth, offsets=offsets)


def _packed(family, block):
    return costs.packed_cost(family, block.plan, registered=block.registered,
                             pipelined=block.pipelined)


_COSTS = [
    (MatVecUnit, _matvec), (MatVecLanes, _matvec_lanes), (Requantizer, _requantizer),
    (PackedMultiplier, _packed), (SlidingWindow, _window), (ParallelWindow, _parallel_window),
    (ParallelMapWindow, _map_window), (MaxPool, _pool), (SumPool, _pool),
    (GlobalSumPool, _global_pool), (DepthwiseUnit, _depthwise), (Add, _add),
    (StreamFifo, _fifo), (WidthConverter, _converter), (Broadcast, _broadcast),
    (AsSigned, _as_signed),
]


def block_cost(block, family):
    """Estimated :class:`~hwgen.model.resources.Resources` of one block on ``family``.

    Parameters
    ----------
    block : Component
        An instance of a block from :mod:`hwgen.blocks` (not elaborated).
    family : {"xc7", "xcup", "ecp5"}

    Raises
    ------
    ValueError
        For an unknown family.
    TypeError
        For an object that is not one of the blocks.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(map(repr, FAMILIES))}, not "
                         f"{family!r}")
    for cls, cost in _COSTS:
        if isinstance(block, cls):
            return cost(family, block)
    raise TypeError(f"block must be one of {', '.join(c.__name__ for c, _ in _COSTS)}, not "
                    f"{block!r}")
