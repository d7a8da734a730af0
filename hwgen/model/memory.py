"""Where synthesis puts a memory: block RAM, LUT RAM or plain logic, and how many primitives.

Yosys (``memory_libmap``, the pass ``synth_xilinx`` and ``synth_ecp5`` use) prices every way of
building a memory and keeps the cheapest. :func:`map_memory` repeats that choice for the
memories the blocks build, one synchronous read port and at most one write port on the same
clock, so the block RAM count it gives is the one synthesis reports:

* a ROM (no write port) may go to block RAM or stay logic (LUTs and the read register); LUT
  RAMs are never used for ROMs;
* a RAM may go to block RAM, LUT RAM (an asynchronous read port plus a data register) or
  flip-flops;
* the price of a primitive is ``cost * instances`` plus half a point per bit of read
  multiplexer and write-enable decoder and two points per emulated feature (a non-native
  read-after-write behaviour, a separate read port); logic costs ``bits / 64`` for a ROM on
  Xilinx (``bits / 16`` on ECP5) and ``bits`` for a RAM; ties keep the earlier candidate
  (logic, then LUT RAM, then block RAM), and the running best is an integer, as in Yosys.

Block RAM is counted in RAMB18 units (a RAMB36 is 2; an ECP5 DP16KD is 1); LUT RAM in LUTs
(the LUTs the RAM primitives occupy).
"""

from dataclasses import dataclass
from functools import lru_cache
from math import ceil

import numpy as np

from .logic import counter_bits
from .resources import Resources

__all__ = ["LUTRAM_CELLS", "MemoryMap", "lutram_luts", "map_memory",
           "memory_cost", "random_rom_columns", "random_rom_reset_columns", "rom_cost",
           "rom_logic_luts", "rom_reset_columns"]


@dataclass(frozen=True)
class _Ram:
    """One RAM primitive as Yosys's memory library describes it (one geometry option)."""

    kind: str               # "block" or "distributed"
    cell: str               # primitive name (for reports)
    cost: float
    widthscale: float
    abits: int              # address bits at the narrowest width
    dbits: tuple            # widths, each doubling halves the depth
    units: int              # RAMB18 units (block) or LUTs (distributed) per instance
    rom: bool = False       # may hold a ROM
    read_old: bool = True   # a read during a write returns the old word natively
    byte: int = 0           # write-enable granularity


def _blocks(cells, cost, abits, dbits, units, **kw):
    return [_Ram("block", cells, cost, 0, abits, dbits, units, rom=True, byte=9, **kw)]


def _luts(cell, cost, widthscale, options, units):
    return [_Ram("distributed", cell, cost, widthscale, abits, (width,), units)
            for abits, width in options]


# Candidates in Yosys's library order (distributed first, then block; true dual port first).
_XC7 = (
    _luts("RAM32M/RAM64X1D/RAM128X1D", 8, 8, [(5, 4), (6, 2), (7, 1)], 4)         # DP
    + _luts("RAM32M/RAM64M", 7, 7, [(5, 2), (6, 1)], 4)                           # QP
    + _luts("RAM32M/RAM64M", 8, 7, [(5, 6), (6, 3)], 4)                           # SDP
    + _blocks("RAMB18E1", 129, 14, (1, 2, 4, 9, 18), 1)
    + _blocks("RAMB36E1", 257, 15, (1, 2, 4, 9, 18, 36), 2)
    + _blocks("RAMB36E1x2", 513, 16, (1, 2, 4, 9), 4)
    + _blocks("RAMB18E1", 129, 14, (1, 2, 4, 9, 18, 36), 1)
    + _blocks("RAMB36E1", 257, 15, (1, 2, 4, 9, 18, 36, 72), 2)
)
_XCUP = (
    _luts("RAM32M16/RAM64M8/RAM128X1D/RAM256X1D", 16, 16,
          [(5, 8), (6, 4), (7, 2), (8, 1)], 8)                                    # DP
    + _luts("RAM32M16/RAM64M8", 16, 16, [(5, 4), (6, 2)], 8)                      # QP
    + _luts("RAM32M16/RAM64M8", 16, 16, [(5, 2), (6, 1)], 8)                      # OP
    + _luts("RAM32M16/RAM64M8", 16, 16, [(5, 14), (6, 7)], 8)                     # SDP
    + _blocks("RAMB18E2", 129, 14, (1, 2, 4, 9, 18), 1)
    + _blocks("RAMB36E2", 257, 15, (1, 2, 4, 9, 18, 36), 2)
    + _blocks("RAMB18E2", 129, 14, (1, 2, 4, 9, 18, 36), 1)
    + _blocks("RAMB36E2", 257, 15, (1, 2, 4, 9, 18, 36, 72), 2)
)
# ECP5 block RAM ports have no native read-before-write between ports.
_ECP5 = (
    _luts("TRELLIS_DPR16X4", 4, 0, [(4, 4)], 4)
    + _blocks("DP16KD", 128, 14, (1, 2, 4, 9, 18), 1, read_old=False)
    + _blocks("PDPW16KD", 128, 14, (1, 2, 4, 9, 18, 36), 1, read_old=False)
)
_LIBRARY = {"xc7": _XC7, "xcup": _XCUP, "ecp5": _ECP5}
#: Price of one bit of a ROM built from logic (Yosys's -logic-cost-rom; synth_xilinx sets 1/64).
_ROM_BIT = {"xc7": 1 / 64, "xcup": 1 / 64, "ecp5": 1 / 16}


@dataclass(frozen=True)
class MemoryMap:
    """How one memory is built.

    Attributes
    ----------
    kind : {"block", "distributed", "logic"}
    cell : str
        The primitive (``""`` for logic).
    instances : int
        Primitives used.
    bram18 : int
        Block RAM in RAMB18 units (a RAMB36 counts 2).
    lutram : int
        LUTs used as RAM.
    select_bits : int
        Address bits decoded outside the primitives (a read multiplexer over ``2**select_bits``
        banks), 0 when one bank holds the whole depth.
    """

    kind: str
    cell: str = ""
    instances: int = 0
    bram18: int = 0
    lutram: int = 0
    select_bits: int = 0


def _geometry(ram, width, depth, rom, emulated):
    """Cheapest (cost, instances, banks) of ``ram`` for a ``width`` x ``depth`` memory."""
    best = None
    best_cost = 0
    for b, unit in enumerate(ram.dbits):
        if rom:
            byte = 1
        else:
            byte = unit if ram.byte == 0 or ram.byte > unit else ram.byte
        padded = ceil(width / byte) * byte
        banks = ceil(depth / 2 ** (ram.abits - b))
        instances = ceil(banks * padded / unit)
        cost = (ram.cost - ram.widthscale) * instances
        cost += ram.widthscale * banks * width // unit
        cost += 0.5 * (banks - 1) * width                      # read multiplexer
        if not rom and banks != 1:
            cost += 0.5 * banks                                # write-enable decoder
        cost += 2 * emulated
        if best is None or cost < best_cost:
            best, best_cost = (cost, instances, banks), int(cost)
    return best


@lru_cache(maxsize=None)   # a network asks for the same few shapes many times
def map_memory(width, depth, family, *, rom, transparent=False, no_rw_check=False,
               style=None):
    """The primitive Yosys builds a ``width`` x ``depth`` memory from on ``family``.

    Parameters
    ----------
    width, depth : int
        Bits per word and words (after synthesis has dropped constant columns of a ROM).
    family : {"xc7", "xcup", "ecp5"}
    rom : bool
        No write port (initialized, read only).
    transparent : bool
        The read port returns the word being written in the same cycle.
    no_rw_check : bool
        A read of the word being written may return anything (the ``no_rw_check`` memory
        attribute): no port pair needs its read-after-write behaviour emulated.
    style : {None, "block", "logic"}
        The memory's ``ram_style``/``rom_style`` attribute: block RAM or logic whatever the
        cost; None lets the cheapest win.

    Returns
    -------
    MemoryMap
    """
    if family not in _LIBRARY:
        raise ValueError(f"family must be one of {', '.join(map(repr, _LIBRARY))}, not "
                         f"{family!r}")
    if style not in (None, "block", "logic"):
        raise ValueError(f"style must be None, 'block' or 'logic', not {style!r}")
    if width < 1 or depth < 1 or style == "logic":
        return MemoryMap("logic")
    logic = width * depth * (_ROM_BIT[family] if rom else 1.0)
    best_of_kind = {}
    for ram in _LIBRARY[family]:
        if rom and not ram.rom:
            continue
        # Emulation points: one for a read port of its own, three for soft transparency, and
        # where a port pair cannot read the old word natively, three more for read-first.
        emulated = 1
        if not rom and ram.kind == "block" and not no_rw_check:
            if transparent:
                emulated += 3
            elif not ram.read_old:
                emulated += 6
        elif not rom and transparent:
            emulated += 3
        cost, instances, banks = _geometry(ram, width, depth, rom, emulated)
        held = best_of_kind.get(ram.kind)
        if held is None or cost < held[0]:
            best_of_kind[ram.kind] = (cost, ram, instances, banks)
    # A forced block RAM wins whatever logic would cost.
    chosen, best = None, float("inf") if style == "block" else int(logic)
    for kind in ("block",) if style == "block" else ("distributed", "block"):
        if kind in best_of_kind and best_of_kind[kind][0] < best:
            chosen, best = best_of_kind[kind], int(best_of_kind[kind][0])
    if chosen is None:
        return MemoryMap("logic")
    _, ram, instances, banks = chosen
    units = instances * ram.units
    return MemoryMap(ram.kind, ram.cell, instances,
                     bram18=units if ram.kind == "block" else 0,
                     lutram=units if ram.kind == "distributed" else 0,
                     select_bits=(banks - 1).bit_length())


def rom_logic_luts(width, depth, family, *, counter=False):
    """LUTs of a ``width`` x ``depth`` ROM of random content built from logic.

    Each output bit is a function of the ``ceil(log2(depth))`` address bits: one LUT (LUT6 on
    Xilinx, LUT4 on ECP5) per 64 (16) words, combined by the slice's wide multiplexers
    (MUXF7/MUXF8 up to 4 LUT6, MUXF9 too on UltraScale+; PFUMX/L6MUX on ECP5) and beyond
    them by 4:1 multiplexer LUTs. When the address is a counter that wraps at ``depth``
    (``counter``), synthesis folds the counter into the ROM logic and ends with about one
    LUT per 16 words and bit instead (measured from 24 to 1024 words on xc7), or one per bit
    up to 32 words.
    """
    if depth <= 2 or width < 1:
        return 0
    if counter:
        return width if depth <= 32 else round(width * depth / 16)
    k = 4 if family == "ecp5" else 6
    wide = {"xc7": 4, "xcup": 8, "ecp5": 4}[family]
    leaves = ceil(depth / 2 ** k)
    if leaves <= 1:
        return width
    luts, groups = leaves, ceil(leaves / wide)
    while groups > 1:                      # 4:1 multiplexers above the wide-mux trees
        luts += ceil(groups / 4)
        groups = ceil(groups / 4)
    return width * luts


def memory_cost(family, width, depth, *, transparent=False, read_enable=True,
                no_rw_check=False):
    """A RAM with one write port and one synchronous read port (same clock).

    Block RAM holds the read register; LUT RAM needs one in fabric (``width`` flip-flops,
    or the address bits when the read has no enable and is transparent); a RAM left to
    logic is ``width * depth`` flip-flops plus the read register and a read multiplexer.
    Returns the cost and the :class:`MemoryMap` (None for an empty memory).
    """
    if width < 1 or depth < 1:
        return Resources(), None
    placed = map_memory(width, depth, family, rom=False, transparent=transparent,
                        no_rw_check=no_rw_check)
    if placed.kind == "block":
        emulated = transparent or (family == "ecp5" and not no_rw_check)
        lut = width * placed.select_bits + (width + 2 if emulated else 0)
        ff = placed.select_bits + (width + 1 if emulated else 0)
        return Resources(lut=lut, ff=ff, bram18=placed.bram18), placed
    if placed.kind == "distributed":
        banks = 2 ** placed.select_bits
        lut = width * (banks - 1) // 3 + (banks if banks > 1 else 0)
        if transparent and not read_enable:
            # The read address is registered instead (and chosen one cycle ahead).
            return Resources(lut=lut + counter_bits(depth), ff=counter_bits(depth),
                             lutram=placed.lutram), placed
        return Resources(lut=lut, ff=width, lutram=placed.lutram), placed
    mux = width * rom_logic_luts(1, depth, family)
    return Resources(lut=mux + depth, ff=width * depth + width), placed


def rom_cost(family, columns, depth, *, counter=False, style=None):
    """A ROM with one synchronous read port.

    ``columns`` is ``(non-constant, distinct non-constant)`` bit columns (synthesis drops the
    constant ones, and in logic equal columns share LUTs and read register); ``counter`` says
    the address is a counter wrapping at ``depth`` (see
    :func:`~hwgen.model.memory.rom_logic_luts`); ``style`` forces block RAM or logic (see
    :func:`map_memory`). In logic: the LUTs of its functions and a read register; in block
    RAM: nothing else.
    """
    width, distinct = columns
    if width < 1 or depth < 1:
        return Resources(), None
    placed = map_memory(width, depth, family, rom=True, style=style)
    if placed.kind == "block":
        return Resources(lut=width * placed.select_bits, ff=placed.select_bits,
                         bram18=placed.bram18), placed
    return Resources(lut=rom_logic_luts(distinct, depth, family, counter=counter),
                     ff=distinct), placed


def random_rom_columns(width, depth):
    """``(non-constant, distinct)`` columns of a ``width``-bit ROM of random content."""
    if depth < 2:
        return 0, 0
    return width, min(width, 2 ** min(depth, 62) - 2)


def _top_half(depth):
    """Words below the top address bit of a ``depth``-word memory (from 2 words on)."""
    return 1 << ((depth - 1).bit_length() - 1)


def rom_reset_columns(columns):
    """Columns of a ROM in logic whose read register synthesis gives a synchronous reset.

    Built from logic, each column is a multiplexer tree on the address with the top address
    bit at its root (addresses past the last word do not matter). When one side of the root
    is a constant (the column is the same in all the words from the top bit's weight on, or
    in all those below it), Yosys (``opt_dff``) makes the top address bit the read
    register's synchronous reset or set. Such a register cannot go into a shift-register
    LUT, so a delay chain it heads stays flip-flops. When both sides are constants the column
    is the address bit itself, and the register stays plain.

    ``columns`` is the ``(words, n)`` 0/1 array of the ROM's distinct non-constant columns.
    """
    columns = np.asarray(columns)
    words = columns.shape[0]
    if words < 3 or columns.size == 0:
        return 0
    half = _top_half(words)

    def constant(part):
        return part.min(axis=0) == part.max(axis=0)

    return int((constant(columns[half:]) != constant(columns[:half])).sum())


def random_rom_reset_columns(distinct, depth):
    """Expected :func:`rom_reset_columns` of ``distinct`` random non-constant columns of
    ``depth`` words: one side of the root constant, the other not."""
    if depth < 3 or distinct < 1:
        return 0
    half = _top_half(depth)
    high, low = 2.0 ** (1 - (depth - half)), 2.0 ** (1 - half)
    return round(distinct * (high + low - 2 * high * low) / (1 - 2.0 ** (1 - depth)))


#: LUTs each distributed-RAM or shift-register primitive occupies.
LUTRAM_CELLS = {"RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
                "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8, "RAM32M": 4,
                "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM64X8SW": 8, "RAM32X16DR8": 8,
                "TRELLIS_DPR16X4": 4, "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1}


def lutram_luts(cells):
    """LUTs used as memory (RAM and shift registers, as Vivado's "LUT as Memory") in a
    ``{cell type: count}`` synthesis result."""
    return sum(LUTRAM_CELLS.get(cell, 0) * n for cell, n in cells.items())
