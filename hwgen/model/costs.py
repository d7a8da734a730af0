"""Cost formulas per hardware block, from plain numbers (widths, folding, shapes).

Each function mirrors one block's ``elaborate()``: it counts the registers the block builds
(flip-flops), prices its arithmetic, multiplexers and counters in LUTs, and places its
memories with :func:`~hwgen.model.memory.map_memory`, exactly as synthesis does. The LUT
weights of the pieces (:data:`LUT_WEIGHTS`) were fitted to ``synth_xilinx`` counts (see
``benchmarks/estimator.py``); ECP5 uses the xc7 weights. :mod:`hwgen.model.blocks` feeds these
functions from block instances, :mod:`hwgen.model.layers` from layer descriptions, so the two
agree by construction.

All functions take the family (``"xc7"``, ``"xcup"`` or ``"ecp5"``) first and return a
:class:`~hwgen.model.resources.Resources`.
"""

from math import ceil

from quant.numerics import bits_for_range, int_range

from ..blocks._util import csd_digits
from .logic import (counter_bits, counter_luts, delay_cost, dsp_absorbs_registers,
                    multiplier_dsps, range_bits)
from .memory import memory_cost, rom_cost
from .resources import Resources

__all__ = ["LUT_WEIGHTS", "accelerator_cost", "add_cost", "broadcast_cost", "depthwise_cost",
           "fifo_cost", "matvec_cost", "packed_cost", "packer_cost", "parallel_window_cost",
           "reduce_cost",
           "requantizer_cost", "sync_fifo_cost", "width_converter_cost", "window_cost"]

#: LUTs per unit of each structural piece, per family (fitted; see the module docstring).
LUT_WEIGHTS = {
    "xc7": {"window": 0.65, "weight_rom": 1.4, "adder_tree": 1.3, "lut_multiplier": 0.24,
            "constant_terms": 1.15, "constant_tree": 1.35, "constant_levels": 0.55},
    "xcup": {"window": 0.65, "weight_rom": 1.4, "adder_tree": 1.3, "lut_multiplier": 0.24,
             "constant_terms": 1.15, "constant_tree": 1.35, "constant_levels": 0.55},
}


def _weights(family):
    return LUT_WEIGHTS["xc7" if family == "ecp5" else family]


def _trailing_zeros(n):
    return (n & -n).bit_length() - 1 if n else 0


def add_cost(family, *, lanes, x_bits, skip_bits, out_bits):
    """:class:`~hwgen.blocks.add.Add`: one adder and output register per lane."""
    lut = lanes * (min(x_bits, skip_bits) + 1) + 1
    return Resources(lut=lut, ff=lanes * out_bits + 1)


def fifo_cost(family, *, width, depth):
    """:class:`~hwgen.blocks.fifo.StreamFifo` of ``width``-bit beats, ``depth`` deep.

    An output register; beyond one beat a transparent memory of ``depth - 1`` words, a
    bypass multiplexer and three counters (fill, write and read addresses).
    """
    if depth == 0:
        return Resources()
    if depth == 1:
        return Resources(lut=1, ff=width + 1)
    words = depth - 1
    memory, _ = memory_cost(family, width, words, transparent=True, read_enable=False)
    counters = counter_bits(words + 1) + 2 * counter_bits(words)
    lut = width + counter_luts(words + 1) + 2 * counter_luts(words) + 4
    return memory + Resources(lut=lut, ff=width + 1 + counters)


def width_converter_cost(family, *, element_bits, in_count, out_count):
    """:class:`~hwgen.blocks.stream.WidthConverter`: gathering registers or a shift register."""
    if in_count == out_count:
        return Resources()
    if out_count > in_count:
        k = out_count // in_count
        ff = (k - 1) * in_count * element_bits + out_count * element_bits
        return Resources(lut=k + 4, ff=ff + counter_bits(k) + 1)
    k = in_count // out_count
    held = in_count * element_bits
    return Resources(lut=held + 6, ff=held + 1 + counter_bits(k))


def accelerator_cost(family, *, out_beats):
    """:class:`~hwgen.accelerator.Accelerator`'s own logic: the 32-bit cycle and frame
    counters (their incrementers on the carry chain, no LUT per bit) and the counter of the
    output beats of a frame."""
    return Resources(lut=counter_luts(out_beats) + 2, ff=64 + counter_bits(out_beats))


def broadcast_cost(family, *, outputs):
    """:class:`~hwgen.blocks.fork.Broadcast`: one "taken" flag per output."""
    return Resources(lut=2 * outputs + 1, ff=outputs)


def reduce_cost(family, *, count, folds, lanes, in_bits, out_bits, op, taps=1):
    """The per-channel reduction behind the pools: ``op`` ("max" or "sum") over ``count``
    beats of each channel fold, one partial result per fold (a register, or a memory of
    ``folds`` words), an output register. With ``taps`` elements per lane in a beat (whole
    windows), a tree of ``taps - 1`` operations per lane first.
    """
    word = lanes * out_bits
    if count == 1:
        partials = Resources()      # each beat is a whole group: no partial result is read
    elif folds == 1:
        partials = Resources(ff=word)
    else:
        partials, _ = memory_cost(family, word, folds, read_enable=False)
    lane = out_bits + in_bits if op == "sum" else 2 * in_bits
    # The tree within a beat: an adder of the sum's width, or a compare and a select.
    tree = out_bits if op == "sum" else 2 * in_bits
    lut = lanes * (lane * (count > 1 or taps == 1) + tree * (taps - 1)) \
        + counter_luts(count) + counter_luts(folds) + 4
    ff = counter_bits(count) + counter_bits(folds) + 1 + word
    return partials + Resources(lut=lut, ff=ff)


def _popcount(n):
    return bin(n).count("1")


#: Logic units per bit of a further tap's word in a window.
TAP_WORD_UNITS = 1.7


def window_cost(family, *, height, width, folds, kernel, stride, padding, out_height,
                out_width, element_bits, lanes, buffer_rows, taps=1):
    """:class:`~hwgen.blocks.window.SlidingWindow`: a line-buffer RAM, writer and reader
    counters, the reader's address arithmetic and the padding multiplexer.

    With ``taps`` window positions per output beat, the RAM is there once per tap, and each
    further tap adds its read address, padding test and multiplexer.

    The write and read positions are counters (rows, columns, channel folds, kernel
    offsets); the ring address of the first row only ever moves by whole rows, so its low
    ``trailing zeros of the row length`` bits are constant and vanish. The read address is
    ``first + row * row_words + column * folds`` wrapped around the ring: products by
    constants are one adder per further set bit of the constant, then an adder, a compare
    and a subtraction for each wrap.
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    word = lanes * element_bits
    row_words = width * folds
    depth = buffer_rows * row_words
    memory, _ = memory_cost(family, word, depth)
    memory = taps * memory
    address = counter_bits(depth)
    column = counter_bits(row_words)
    first = max(address - _trailing_zeros(row_words), 0)
    ybase = range_bits(-ph, (out_height - 1) * sh - ph + 1)
    xbase = range_bits(-pw, (out_width - 1) * sw - pw + 1)
    counters = (range_bits(-1, buffer_rows + 1) + counter_bits(height) + counter_bits(width)
                + 2 * counter_bits(folds) + counter_bits(out_height) + counter_bits(out_width)
                + counter_bits(kh) + counter_bits(kw) + counter_bits(buffer_rows + 2)
                + (counter_bits(sh) if sh > kh else 0) + ybase + xbase)
    ff = counters + address + first + 2 + (taps - 1)
    row_terms = _popcount(row_words) - 1
    arithmetic = (address * (7 + row_terms + (row_terms if kh > 1 else 0))
                  + column * (1 + max(_popcount(folds) - 1, 0)))
    units = counters + 2 * address + arithmetic + 2 * (ybase + xbase) + word
    # A further tap: its read address (the row terms are shared constants), padding test and
    # multiplexer, and its share of the output beat's selection (fitted to yosys on the tap
    # and group windows of benchmarks/estimator.py).
    units += (taps - 1) * (2 * address + ybase + xbase + TAP_WORD_UNITS * word)
    lut = _weights(family)["window"] * units
    return memory + Resources(lut=round(lut), ff=ff)


def parallel_window_cost(family, *, channels, width, kernel, stride, padding, element_bits,
                         positions):
    """:class:`~hwgen.blocks.parallel_window.ParallelWindow`: the pixel shift register, one
    output register per window tap position, the counters and the padding tests.

    ``kernel``, ``stride`` and ``padding`` are the block's x geometry (ints, or ``(1, x)``
    pairs). The register keeps ``padding + (lookahead - 1) * positions * stride`` pixels, less
    those that no output reads, now or after later shifts (a kernel shorter than the stride
    skips pixels); an output position that is padding in every beat is a constant. Padding
    costs no multiplexer: synthesis makes it the synchronous reset (or set) of the output
    flip-flops, driven by a compare of the beat counter with one of the first or last beats.
    The LUTs of the counters, those compares and the control were fitted to yosys on xc7 and
    xcup (the same counts on both), within 15% on the layers of an 8-16-16 ``peaks`` network
    at 1 to 16 positions. ECP5 takes the same count, which is low for its LUT4s.
    """
    k, s, p = (v[-1] if isinstance(v, (tuple, list)) else v for v in (kernel, stride, padding))
    step = positions * s                         # pixels per beat
    beats = width // step
    lookahead = -(-(step - s + k - p) // step)
    # Output positions read in some beat, and the beats bounding padding: position r of beat
    # b is padded pixel b * step + r, a pixel of the frame when p <= b * step + r < p + width.
    read, bounds = set(), set()
    for r in {j * s + t for j in range(positions) for t in range(k)}:
        first, end = max(0, -(-(p - r) // step)), min(beats, beats - (r - p) // step)
        if first < end:
            read.add(r)
            bounds.update(b for b in (first, end) if 0 < b < beats)
    # A kept pixel moves down a beat per shift: needed if it is read there or on its way.
    kept = p + (lookahead - 1) * step
    stored = sum(any(r in read for r in range(q % step, q + 1, step)) for q in range(kept))
    beat_bits = counter_bits(beats)
    ff = ((stored + len(read)) * channels * element_bits + counter_bits(beats + lookahead - 1)
          + beat_bits + counter_bits(lookahead) + 1)
    # The frame's shift count and its compare with the beat's (an adder past one beat of
    # lookahead), the beat counter, a compare and a reset per padding bound, the handshakes.
    lut = 4 + 4 * beat_bits / 3 + 2.5 * len(bounds) + (2 if lookahead > 1 else 0)
    return Resources(lut=round(lut), ff=ff)


def depthwise_cost(family, *, channels, positions, lanes, lane_bits, in_bits, acc_bits,
                   rom_columns, bias_columns, taps=1):
    """:class:`~hwgen.blocks.depthwise.DepthwiseUnit`: weight ROMs (one per lane width), a
    multiplier per lane, per-fold partial sums, a bias ROM and the output register.

    With ``taps`` window positions per beat each lane has ``taps`` multipliers (ROM words
    ``taps`` times as wide, ``positions / taps`` beats) and adds their products into its sum.

    ``lane_bits`` lists each lane's weight width; ``rom_columns`` the ``(non-constant,
    distinct)`` columns of each weight ROM, ``bias_columns`` of the bias ROM. On xc7 a
    lane's input and product registers move into its DSP slice (A and M registers).
    """
    folds = channels // lanes
    positions //= taps          # input beats per window and fold
    words = positions * folds
    parts = Resources()
    for columns in rom_columns:
        rom, _ = rom_cost(family, columns, words, counter=True)
        parts += rom
    bias, _ = rom_cost(family, bias_columns, folds)
    parts += bias
    word = lanes * acc_bits
    if folds == 1:
        parts += Resources(ff=word)
    else:
        partials, _ = memory_cost(family, word, folds, read_enable=False)
        parts += partials
    dsp, soft, lane_regs = 0, 0, 0
    for bits in list(lane_bits) * taps:
        n = multiplier_dsps(family, bits, in_bits)
        dsp += n
        soft += 0 if n else bits * in_bits
        if not n or not dsp_absorbs_registers(family):
            lane_regs += in_bits + bits + in_bits      # input and product registers
    # Counters (position, fold, word), the control pipeline (valid, first, last, fold: two
    # stages each), the output register.
    ff = (counter_bits(positions) + counter_bits(folds) + counter_bits(words) + 6
          + 2 * counter_bits(folds) + 1 + word + lane_regs)
    lut = (lanes * taps * (acc_bits + 1) + soft + counter_luts(words)
           + counter_luts(positions) + counter_luts(folds) + 6)
    return parts + Resources(lut=lut, ff=ff, dsp=dsp)


def sync_fifo_cost(family, *, width, depth):
    """Amaranth's ``SyncFIFOBuffered``: a memory of ``depth - 1`` words whose synchronous read
    port is the output register, and fill, write and read counters."""
    if depth <= 1:
        return Resources(lut=2, ff=width + 1)
    words = depth - 1
    memory, _ = memory_cost(family, width, words, read_enable=True)
    counters = counter_bits(depth) + 2 * counter_bits(words) + 1
    return memory + Resources(lut=counters + 4, ff=counters)


def packed_cost(family, plan, *, registered, pipelined):
    """:class:`~hwgen.blocks.packed.PackedMultiplier`: one hardware multiplier, the lane
    flags, their delay registers, and the lane extraction.

    On xc7 the operand, product and result registers of the multiplier (A/B, M, P) move into
    the DSP slice; on xcup and ECP5 Yosys leaves them in fabric. An instance is a module of
    its own in synthesis: its registers stay whether or not its outputs are used.
    """
    lanes, act = plan.lanes, plan.act_bits
    flags = lanes - 1
    fabric = not dsp_absorbs_registers(family)
    outputs = lanes * plan.product_bits if registered else 0
    if pipelined and plan.scheme != "postadd":
        # Operands and product in the multiplier's registers, the product twice more (on xc7
        # the first of them is the P register), the flags four cycles beside them. Chains of
        # three or more registers that only feed each other become shift registers.
        if fabric:
            ff = act + plan.packed_bits + outputs
            parts = delay_cost(family, plan.result_bits, 3)
        else:
            ff = plan.result_bits + outputs
            parts = Resources()
        parts += delay_cost(family, flags, 4)
    elif pipelined:
        # Operands, the result with the correction added, the result twice more and the
        # lanes (wiring from the result): one chain per result bit and flag. The flags'
        # first register also feeds the correction, so it stays a flip-flop.
        ff = (act + plan.packed_bits if fabric else 0) + flags
        depth = (4 if fabric else 3) if registered else (3 if fabric else 2)
        parts = delay_cost(family, plan.result_bits, depth) + delay_cost(family, flags, 4)
    else:
        ff = (plan.result_bits if fabric else 0) + flags + outputs
        parts = Resources()
    if plan.scheme == "postadd":
        lut = 2 * lanes - 1 if fabric else lanes
    else:
        lut = 2 * flags + 1
    return parts + Resources(lut=lut, ff=ff, dsp=1)


def requantizer_cost(family, *, lanes, folds, in_bits, out_bits, shift, pieces, factor_bits,
                     a_port, b_port, stages, queue_depth, offsets=None):
    """:class:`~hwgen.blocks.requantizer.Requantizer`: per lane the accumulator registered, a
    shift or products of accumulator and multiplier pieces, their sum with the offset rounded
    and shifted (a register), a clamp, and the output queue.

    ``pieces`` lists each lane's ``("shift", k)`` or ``("multiply", a, b, m_bits)``: ``a * b``
    hardware multipliers of the accumulator and an ``m_bits`` multiplier. ``factor_bits``
    counts the distinct multiplier bit columns that change between folds over all lanes.
    ``offsets`` lists each lane's ``(bits, varying)`` (``bits`` 0: no offset; a varying one
    is selected by the fold and delayed with its beat); None means no offsets.
    ``stages`` is the
    length of the valid pipeline. A piece is registered as operands, product and twice more;
    on xc7 the slices take the accumulator and operand registers (A1, A2, B), the product (M)
    and the first delay (P); elsewhere they are fabric, the product and its delays a shift
    register. Product bits below the rounding bit vanish. Ties to even cost nothing: the
    parity bit is the rounding constant's carry in.
    """
    parts = sync_fifo_cost(family, width=lanes * out_bits, depth=queue_depth)
    fold = counter_bits(folds) if factor_bits else 0    # the fold only selects multipliers
    fabric = not dsp_absorbs_registers(family)
    # The multipliers twice, and in fabric once more as operands (equal bits of several
    # lanes share their registers; bits equal in every fold are constants).
    ff = counter_bits(queue_depth + 1) + stages + fold + (3 if fabric else 2) * factor_bits
    lut = counter_luts(queue_depth + 1) + 4 + fold + factor_bits * max(1, ceil(folds / 64))
    dsp = 0
    for piece, (o_bits, varying) in zip(pieces, offsets or [(0, False)] * len(pieces)):
        if piece[0] == "shift":
            # The accumulator and four delays (bits below the rounding bit are unused).
            parts += delay_cost(family, in_bits - max(shift - 1 - piece[1], 0), 5)
            scaled, terms = in_bits + piece[1], 1
        else:
            _, a, b, m_bits = piece
            dsp += a * b
            scaled, terms = in_bits + m_bits + (1 if a * b > 1 else 0), a * b
            if fabric:
                ff += in_bits
            for i in range(a):
                a0 = i * (a_port - 1)
                a_bits = a_port - 1 if i < a - 1 else in_bits - a0
                for j in range(b):
                    b0 = j * (b_port - 1)
                    b_bits = min(b_port - 1, m_bits - b0)
                    used = a_bits + b_bits - max(min(shift - 1 - a0 - b0, a_bits + b_bits), 0)
                    if fabric:
                        ff += a_bits
                        parts += delay_cost(family, used, 3)
                    else:
                        ff += used
        if o_bits:
            # One more term; a varying offset: its selector and five delays, a mux per bit.
            terms += 1
            if varying:
                ff += 6 * o_bits
                lut += o_bits * max(1, ceil(folds / 64))
        width = max(scaled - shift, 1) + 1
        ff += width
        # Adders of the pieces (a single term is rounded on the carry chain alone), then the
        # clamp: the bits above the output reduced to "too big", a multiplexer per output bit.
        lut += (terms - 1) * (width + 1) + out_bits + ceil(max(width - out_bits, 0) / 6)
    return parts + Resources(lut=lut, ff=ff, dsp=dsp)


def packer_cost(family, plan):
    """The packed operand of one pack formed from raw weights
    (:func:`~hwgen.blocks.packer.packed_word`): the subtraction ``D - S`` and the auxiliary
    bits.

    The subtraction is a DSP48E1's pre-adder (xc7, ``"postadd"`` scheme, whose lane flags do
    not read the packed operand); elsewhere yosys builds it on the carry chain, whose
    inverted inputs are INV cells rather than LUTs. The flags' ``[w > 0]`` bits (signed
    activations) cost a LUT per lane below the top.
    """
    return Resources(lut=plan.lanes - 1 if plan.act_signed else 0)


def _constant_product(weight, in_bits, in_signed):
    """``(digits, bits)`` of a product by a constant nonzero weight: its canonical signed
    digits (:func:`~hwgen.blocks._util.csd_digits`) and the width of its range (synthesis
    keeps no constant bit and merges copied sign bits)."""
    lo, hi = int_range(in_bits, in_signed)
    ends = (weight * lo, weight * hi)
    return len(csd_digits(weight)), bits_for_range(min(ends), max(ends))[0]


def matvec_cost(family, *, in_features, out_features, pe, simd, in_bits, in_signed,
                acc_bits, groups, rom_columns, bias_columns, pipeline_depth, queue_depth,
                rom_style=None, reset_columns=None, constant_weights=None):
    """:class:`~hwgen.blocks.matvec.MatVecUnit`: the input vector's double buffer, the weight
    memories, packed multipliers with their run-time packing and LUT multipliers, an adder
    tree and an accumulator per lane, the bias ROM, the control pipeline and the output
    queue.

    ``groups`` lists, per lane width, ``(plan, packs, dsp_lanes, lut_lanes, bits)``: the
    packing plan (or None), the DSP packs, the lanes they serve and the LUT lanes of one fold.
    The weights sit in memories of one word per (output fold, input fold), each with its own
    address counter (:mod:`~hwgen.blocks.weightrom`): ``rom_columns`` gives each memory's
    ``(non-constant, distinct)`` columns, ``bias_columns`` the bias ROM's; ``rom_style``
    forces the weight memories into block RAM or logic. ``reset_columns`` gives, per weight
    memory, how many of its distinct columns synthesis reads through a register with a
    synchronous reset when the memory is logic (:func:`~hwgen.model.memory.rom_reset_columns`;
    None: none). ``constant_weights``, ``(LUT lanes, simd)``, gives an unfolded unit's (one
    fold each way) LUT lane weights: such a lane sums its weights' shifted terms of the
    input, delayed once for every lane.
    """
    nf, sf = out_features // pe, in_features // simd
    words = nf * sf
    vector = simd * in_bits
    # The input vector's double buffer (never read where it is written), its output
    # registered twice: with LUT RAM the read register and those two form shift registers.
    parts, placed = memory_cost(family, vector, 2 * sf, no_rw_check=True)
    if placed.kind == "distributed":
        parts += Resources(ff=-vector) + delay_cost(family, vector, 3)
    else:
        parts += Resources(ff=2 * vector)
    parts += sync_fifo_cost(family, width=pe * acc_bits, depth=queue_depth)
    bias, placed = rom_cost(family, bias_columns, nf)
    # The bias ROM, and per lane the bias (or 0) registered for the dot sum: equal columns
    # share their registers.
    parts += bias + Resources(ff=bias_columns[1] if placed is not None and
                              placed.kind == "logic" else bias_columns[0])
    stages = pipeline_depth - 2                      # control registers up to the dot sums
    # Loader and issue counters, the held count, the valid pipeline (reset), the flag that
    # clears the accumulators after a reset. The first/last flags and the fold travel in
    # registers without reset.
    ff = (2 + 1 + counter_bits(sf) + counter_bits(queue_depth + 1) + 1 + counter_bits(nf)
          + counter_bits(sf) + stages + 1)
    parts += delay_cost(family, 2, stages) + delay_cost(family, counter_bits(nf), stages - 1)
    lut = (2 * counter_luts(2 * sf) + counter_luts(sf) + counter_luts(nf)
           + counter_luts(queue_depth + 1) + 8)
    w = _weights(family)
    for columns, resets in zip(rom_columns, reset_columns or [0] * len(rom_columns)):
        rom, placed = rom_cost(family, columns, words, counter=True, style=rom_style)
        # Shallow ROMs in logic pay for their output multiplexing and the counter folded
        # in; from 512 words on, yosys's count is about the bare one LUT per 16 words and
        # bit (measured 512 to 2048 words, ROMs forced to logic, xc7 and xcup).
        factor = w["weight_rom"] if words < 512 else 1.0
        parts += Resources(lut=round(factor * rom.lut), bram18=rom.bram18)
        # The memory's output registered twice (a shift register with the read register of
        # a ROM in logic, unless that register has a synchronous reset), and its address
        # counter.
        if placed is not None and placed.kind == "logic":
            parts += delay_cost(family, columns[1] - resets, 3) + Resources(ff=3 * resets)
        else:
            ff += 2 * columns[0] + rom.ff
        ff += counter_bits(words)
        lut += counter_luts(words)
    lane_products = []
    for plan, packs, dsp_lanes, lut_lanes, bits in groups:
        if packs:
            unit = (packed_cost(family, plan, registered=True, pipelined=True)
                    + packer_cost(family, plan))
            parts += unit * (packs * simd)
            lane_products += [plan.product_bits] * dsp_lanes
        if lut_lanes and constant_weights is None:      # constant lanes: priced below
            # Narrow-range weights: |w x| < 2^(bits + in_bits - 1) (one bit less for signed x).
            product = bits + in_bits - (1 if in_signed else 0)
            parts += delay_cost(family, product * lut_lanes * simd, 5)
            # Shift-and-add: yosys sums the bits - 1 gated partial products and the sign
            # term in a tree of full adders that grows with the square of the weight bits
            # (fitted on 2..8-bit weights and 4..8-bit activations).
            lut += round(w["lut_multiplier"] * in_bits * bits * bits) * lut_lanes * simd
            lane_products += [product] * lut_lanes
    # Per lane the adder tree of the products and the bias (the dot sum, registered), and
    # the accumulator (cleared after the last input fold). Yosys merges the tree into one
    # multi-operand adder (alumacc's $macc), whose operands are all extended to the width of
    # the sum: simd - 1 adders as wide as the products plus a bit per level of the tree.
    # With one product per lane the bias has no tree to join: an adder of its own, as wide
    # as the accumulator.
    levels = (simd - 1).bit_length()
    for bits in lane_products:
        ff += 2 * acc_bits
        lut += round(w["adder_tree"] * (simd - 1) * (bits + levels)) + acc_bits
        if simd == 1:
            lut += acc_bits
    if constant_weights is not None and len(constant_weights):
        # The input four cycles later; a product register per input element and distinct
        # nonzero weight (synthesis merges equal ones across lanes), its terms summed; per
        # lane the dot sum of its products and the bias, and the accumulator.
        parts += delay_cost(family, simd * in_bits, 4)
        product = {}
        for s in range(simd):
            for value in set(map(int, constant_weights[:, s])) - {0}:
                product[s, value] = _constant_product(value, in_bits, in_signed)
        # A product's shifted terms overlap on about the input's width, plus a carry.
        ff += sum(bits for _, bits in product.values())
        lut += round(w["constant_terms"] * (in_bits + 1) *
                     sum(digits - 1 for digits, _ in product.values()))
        for row in constant_weights:
            used = [product[s, int(v)][1] for s, v in enumerate(row) if v]
            ff += 2 * acc_bits
            lut += acc_bits
            if used:
                # Operands as narrow as each product (not extended to the sum), growing a
                # bit a level (fitted on benchmarks/estimator.json's unfolded units).
                adders = len(used) - 1
                lut += round(w["constant_tree"] * adders * sum(used) / len(used)
                             + w["constant_levels"] * adders * adders.bit_length())
    return parts + Resources(lut=lut, ff=ff)
