"""MatVecUnit: a streaming integer matrix-vector product folded by ``pe`` x ``simd``.

One component in one module, over 400 lines: its weight ROM layout, multiplier pipeline and
issue control are one design, each part sized by the others.
"""

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from quant import numerics

from .. import packing
from ..errors import FoldingError
from ._util import (accumulator_bits, accumulator_range, check_count, const_multiply, divisors,
                    element_shape, lut_multiply, pack_words, rom_attrs, tree_sum)
from .packed import PackedMultiplier
from .timing import MatVecTiming, Timed
from .weightrom import weight_layout

__all__ = ["MatVecUnit", "ROM_STYLES"]

#: Weight ROM placements: synthesis's choice, block RAM, logic.
ROM_STYLES = (None, "block", "logic")

#: Clock cycles from issuing a fold to offering its result: memories (1), their outputs
#: registered twice (2, 3), the multipliers' operand and result registers (4, 5), the results
#: in fabric (6, 7), the extracted lanes (8), the dot products (9), then the output queue (two
#: cycles).
PIPELINE_DEPTH = 11
# Stage whose registers feed the accumulator and the queue.
_ACC_STAGE = PIPELINE_DEPTH - 2


class MatVecUnit(Timed, wiring.Component):
    """Integer matrix-vector product ``y = W x + b``, folded by ``pe`` x ``simd``.

    Each clock cycle the unit multiplies ``simd`` inputs by the weights of ``pe`` filters. The
    input vector arrives as ``in_features / simd`` beats and is written into one of two banks,
    so the next vector loads while the current one is reused for all ``out_features / pe``
    output folds. Weights live in on-chip ROM, each at its lane's own width: one word per
    (output fold, input fold) holds all ``pe`` x ``simd`` weights the fold pair multiplies,
    split into memories shaped for the fewest block RAMs (:mod:`~hwgen.blocks.weightrom`),
    and each pack of DSP lanes forms its packed multiplier operand from the raw weights as
    they are read (:func:`~hwgen.blocks.packer.packed_word`). Lane ``p`` of every output
    beat computes filter ``fold * pe + p``, so the filters of each precision must sit in the
    same lanes in every fold (``reorder_filters`` arranges that). An unfolded unit (one fold
    each way, :attr:`constant_weights`) has no weight memories: its weights and biases are
    constants, and a LUT lane sums the shifted terms of its weights' canonical signed digits
    (a zero weight costs nothing). At W4A4 that is cheaper than packing: 8 filters of 20
    inputs took 2,093 LUTs in yosys (xcup) with LUT lanes, 2,524 LUTs and 40 DSPs packed.

    The pipeline (:data:`PIPELINE_DEPTH` cycles from issuing a fold to offering its result)
    never stalls: results enter an output queue, and the last input fold of an output fold is
    issued only while the queue has a place for its result (:attr:`queue_depth` places cover
    every result in flight, so a consumer that takes each beat when offered never slows the
    unit). Back-pressure therefore reaches no pipeline register, and ``i_stream.ready``
    depends on registers only.

    Parameters
    ----------
    weight : ndarray of int, shape (out_features, in_features)
    bias : ndarray of int, shape (out_features,)
    weight_bits : ndarray of int, shape (out_features,)
        Bits of each filter's weights (narrow range).
    in_bits, in_signed : int, bool
        Type of the input elements.
    pe, simd : int
        Output filters and input elements processed per cycle.
    multiplier : Multiplier, str or None
        Hardware multiplier to pack lanes onto (a :data:`hwgen.packing.MULTIPLIERS` key), or
        None for LUT multipliers only.
    lut_lanes : dict, optional
        ``{weight bits: lanes}``: how many of the lanes of that precision use LUT multipliers
        instead of packed hardware multipliers (the last lanes of the group).
    rom_style : {None, "block", "logic"}
        Where the weight ROMs go (their ``rom_style`` attribute): block RAM, logic, or None
        for synthesis's choice.
    vectors : int
        Input vectors per frame (the output pixels of a convolution): sets the timing's
        ``cycles_per_frame``; the hardware handles any number.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(in_shape, simd)))
        Input vector, ``in_features / simd`` beats per frame.
    o_stream : Out(stream.Signature(ArrayLayout(signed(acc_bits), pe)))
        Accumulators, ``out_features / pe`` beats per frame.
    """

    def __init__(self, *, weight, bias, weight_bits, in_bits, in_signed, pe, simd,
                 multiplier=None, lut_lanes=None, rom_style=None, vectors=1, name="dense"):
        weight = np.asarray(weight)
        if not np.issubdtype(weight.dtype, np.integer) or weight.ndim != 2:
            raise TypeError(f"weight must be a 2-D integer array, not {weight.dtype} "
                            f"{weight.shape}")
        out_features, in_features = weight.shape
        bias = np.asarray(bias, dtype=np.int64)
        weight_bits = np.asarray(weight_bits, dtype=np.int64)
        for what, count, value in (("pe", out_features, pe), ("simd", in_features, simd)):
            feature = "out_features" if what == "pe" else "in_features"
            if not isinstance(value, int) or value < 1 or count % value:
                raise FoldingError(
                    f"layer '{name}': {what.upper()} {value} does not divide {feature} {count}; "
                    f"choose one of {', '.join(map(str, divisors(count)))}")
        lane_bits = weight_bits.reshape(out_features // pe, pe)
        if (lane_bits != lane_bits[0]).any():
            fold = int(np.flatnonzero((lane_bits != lane_bits[0]).any(axis=1))[0])
            raise FoldingError(
                f"layer '{name}': with PE {pe}, fold {fold} puts filters of other precisions "
                f"in different lanes than fold 0; every fold must have the same precision "
                f"pattern (run reorder_filters, or choose a PE that makes each precision's "
                f"filter count a multiple of out_features / PE)")
        limit = (np.int64(1) << (weight_bits - 1)) - 1
        if (np.abs(weight) > limit[:, None]).any():
            c = int(np.flatnonzero((np.abs(weight) > limit[:, None]).any(axis=1))[0])
            raise ValueError(f"layer '{name}': filter {c} has weights outside its "
                             f"{weight_bits[c]}-bit range ±{limit[c]}")

        if rom_style not in ROM_STYLES:
            raise ValueError(f"layer '{name}': rom_style must be one of "
                             f"{', '.join(map(repr, ROM_STYLES))}, not {rom_style!r}")
        self._rom_style = rom_style
        self._groups = self._plan_groups(name, weight_bits[:pe], in_bits, in_signed,
                                         multiplier, dict(lut_lanes or {}))
        self._multiplier = None if multiplier is None else packing.as_multiplier(multiplier)
        self._name = name
        self._weight = weight.astype(np.int64)
        self._bias = bias
        self._weight_bits = weight_bits
        self._in_bits, self._in_signed = in_bits, in_signed
        self._pe, self._simd = pe, simd
        self._vectors = check_count("vectors", vectors, name)
        x_lo, x_hi = numerics.int_range(in_bits, in_signed)
        self._acc_range = accumulator_range(weight, bias, x_lo, x_hi)
        self._acc_bits = accumulator_bits(weight, bias, in_bits, in_signed)
        self._layout = weight_layout(weight_bits[:pe], simd, (out_features // pe) *
                                     (in_features // simd))
        super().__init__({
            "i_stream": In(stream.Signature(
                data.ArrayLayout(element_shape(in_bits, in_signed), simd))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(signed(self._acc_bits), pe))),
        })

    in_features = property(lambda self: self._weight.shape[1])
    out_features = property(lambda self: self._weight.shape[0])
    pe = property(lambda self: self._pe)
    simd = property(lambda self: self._simd)
    in_bits = property(lambda self: self._in_bits)
    in_signed = property(lambda self: self._in_signed)
    acc_bits = property(lambda self: self._acc_bits)
    weight = property(lambda self: self._weight.copy())
    weight_bits = property(lambda self: self._weight_bits.copy())
    rom_style = property(lambda self: self._rom_style)
    output_folds = property(lambda self: self.out_features // self._pe)
    input_folds = property(lambda self: self.in_features // self._simd)

    @property
    def constant_weights(self):
        """Whether the unit is unfolded (one output fold, one input fold): every lane then
        multiplies by the same weights every cycle, so they are constants in the logic, with
        no weight memory, and a LUT lane is a sum of the weight's shifted terms."""
        return self.output_folds * self.input_folds == 1

    @staticmethod
    def _plan_groups(name, lane_bits, in_bits, in_signed, multiplier, lut_lanes):
        """Per precision: its lanes, the packing plan, packs of DSP lanes and the LUT lanes."""
        groups = []
        unknown = sorted(set(lut_lanes) - set(lane_bits.tolist()))
        if unknown:
            raise ValueError(f"layer '{name}': lut_lanes names {unknown[0]}-bit lanes, but the "
                             f"lanes have {sorted(set(lane_bits.tolist()))} bits")
        for bits in sorted(set(lane_bits.tolist())):
            lanes = np.flatnonzero(lane_bits == bits).tolist()
            n_lut = lut_lanes.get(bits, 0) if multiplier is not None else len(lanes)
            if not 0 <= n_lut <= len(lanes):
                raise ValueError(f"layer '{name}': lut_lanes for {bits}-bit lanes must be in "
                                 f"0..{len(lanes)}, not {n_lut}")
            plan, packs = None, []
            if n_lut < len(lanes):
                # None when no port of the multiplier holds the activation: LUT lanes then.
                plan = packing.plan_group(multiplier, bits, in_bits, in_signed)
                n_lut = n_lut if plan is not None else len(lanes)
            dsp_lanes = lanes[:len(lanes) - n_lut]
            if dsp_lanes:
                packs = [dsp_lanes[i:i + plan.lanes]
                         for i in range(0, len(dsp_lanes), plan.lanes)]
            groups.append({"bits": bits, "lanes": lanes, "plan": plan, "packs": packs,
                           "lut": lanes[len(lanes) - n_lut:]})
        return groups

    @property
    def multiplier(self):
        return self._multiplier

    @property
    def groups(self):
        """Per lane precision: ``{"bits", "lanes", "plan", "packs", "lut"}``: its lanes, the
        packing plan, the lanes of each packed multiplier, and the LUT lanes."""
        return [dict(group) for group in self._groups]

    @property
    def bias(self):
        return self._bias.copy()

    @property
    def rom_layout(self):
        """The :class:`~hwgen.blocks.weightrom.WeightLayout` of the weight memories: every
        weight at its lane's width, one word per (output fold, input fold)."""
        return self._layout

    def rom_fields(self):
        """Per weight memory, the fields of its word: ``[(bits, values per word), ...]`` in
        bit order (:meth:`~hwgen.blocks.weightrom.WeightLayout.pieces`)."""
        return self._layout.pieces(self._weight)

    @property
    def dsp_count(self):
        """Hardware multipliers of the MAC array: one per pack of lanes and input element."""
        return sum(len(g["packs"]) for g in self._groups) * self._simd

    @property
    def lut_lane_count(self):
        """Lanes per fold that multiply in LUTs."""
        return sum(len(g["lut"]) for g in self._groups)

    @property
    def lane_bits(self):
        """Weight bits of each of the ``pe`` lanes (the same in every fold)."""
        return self._weight_bits[:self._pe].copy()

    vectors = property(lambda self: self._vectors)

    @classmethod
    def timing_of(cls, *, weight, pe, simd, vectors=1, **_):
        """A vector starts one cycle after its last beat arrives (or when the one before is
        done); output fold ``f`` leaves ``input_folds * (f + 1) + PIPELINE_DEPTH`` cycles
        after the start. ``cycles_per_frame``: one per (output fold, input fold) of each
        vector."""
        out_features, in_features = np.shape(weight)
        return MatVecTiming(in_features // simd, out_features // pe, vectors, PIPELINE_DEPTH)

    timing = property(lambda self: self.timing_of(weight=self._weight, pe=self._pe,
                                                  simd=self._simd, vectors=self._vectors))

    @property
    def queue_depth(self):
        """Results the output queue holds: enough for all those in flight."""
        return -(-PIPELINE_DEPTH // self.input_folds) + 1

    def reference(self, x):
        return numerics.dense(x, self._weight, self._bias)

    def elaborate(self, platform):
        m = Module()
        nf, sf, pe, simd = self.output_folds, self.input_folds, self._pe, self._simd

        # Input vector: two banks of `sf` words, written by the loader, read by the folds.
        # The loader never writes the bank being read, so a read and a write of one address
        # in one cycle need no defined result (no bypass logic after the block RAM).
        m.submodules.vector = vector = Memory(
            shape=unsigned(simd * self._in_bits), depth=2 * sf, init=[],
            attrs={"no_rw_check": 1})
        wr, rd = vector.write_port(), vector.read_port()
        full = Signal(2)
        set_full, clear_full = Signal(2), Signal(2)
        load_bank, load_fold = Signal(), Signal(range(sf))
        m.d.comb += [
            self.i_stream.ready.eq(~full.bit_select(load_bank, 1)),
            wr.addr.eq(Mux(load_bank, sf, 0) + load_fold),
            wr.data.eq(self.i_stream.payload.as_value()),
            wr.en.eq(self.i_stream.valid & self.i_stream.ready),
        ]
        with m.If(wr.en):
            with m.If(load_fold == sf - 1):
                m.d.sync += [load_fold.eq(0), load_bank.eq(~load_bank)]
                m.d.comb += set_full.bit_select(load_bank, 1).eq(1)
            with m.Else():
                m.d.sync += load_fold.eq(load_fold + 1)
        m.d.sync += full.eq((full | set_full) & ~clear_full)

        # Issue: one (output fold, input fold) pair per cycle while a bank is full; the last
        # input fold of an output fold also needs a place in the output queue, which it holds
        # until its result is taken.
        m.submodules.queue = queue = SyncFIFOBuffered(width=pe * self._acc_bits,
                                                      depth=self.queue_depth)
        held = Signal(range(self.queue_depth + 1))
        bank, out_fold, in_fold = Signal(), Signal(range(nf)), Signal(range(sf))
        issue, reserve = Signal(), Signal()
        m.d.comb += [
            issue.eq(full.bit_select(bank, 1) & ((in_fold != sf - 1) |
                                                 (held < self.queue_depth))),
            reserve.eq(issue & (in_fold == sf - 1)),
            rd.addr.eq(Mux(bank, sf, 0) + in_fold),
        ]
        m.d.sync += held.eq(held + reserve - (self.o_stream.valid & self.o_stream.ready))
        with m.If(issue):
            with m.If(in_fold == sf - 1):
                m.d.sync += in_fold.eq(0)
                with m.If(out_fold == nf - 1):
                    m.d.sync += [out_fold.eq(0), bank.eq(~bank)]
                    m.d.comb += clear_full.bit_select(bank, 1).eq(1)
                with m.Else():
                    m.d.sync += out_fold.eq(out_fold + 1)
            with m.Else():
                m.d.sync += in_fold.eq(in_fold + 1)

        # Weight memories (:mod:`.weightrom`): every weight at its lane's width, one word per
        # (out_fold, in_fold) split into memories shaped for block RAM, each with its own
        # address counter (a counter, so that no multiplier is spent on out_fold * sf; one
        # per memory, so that no address net has to reach every block RAM of the layer).
        # Stages: 1 the memories' outputs, 2 and 3 those registered (a slow block RAM output,
        # then a route of its own to the multipliers), 4 and 5 the multipliers' operand and
        # result registers (the packed operand is formed from the raw weights in front of
        # the operand register, in a DSP48E1's pre-adder), 6 and 7 the results in fabric
        # (two cycles for a route that can cross the die), 8 the lanes extracted from them.
        def registered(value, name, cycles=1):
            for i in range(cycles):
                register = Signal.like(value, name=f"{name}_d{i}", reset_less=True)
                m.d.sync += register.eq(value)
                value = register
            return value

        layout = self._layout
        parts = []
        constant = self.constant_weights
        for j, (width, init) in enumerate(zip(layout.widths, layout.init(self._weight))):
            if constant:
                parts.append(Const(init[0], width))
                continue
            attrs = ({"rom_style": self._rom_style} if self._rom_style is not None
                     else rom_attrs(platform, nf * sf))
            rom = Memory(shape=unsigned(width), depth=nf * sf, init=init, attrs=attrs)
            m.submodules[f"weights_{j}"] = rom
            address = Signal(range(nf * sf), name=f"address_{j}")
            with m.If(issue):
                m.d.sync += address.eq(Mux(address == nf * sf - 1, 0, address + 1))
            port = rom.read_port()
            m.d.comb += port.addr.eq(address)
            parts.append(registered(port.data, f"word_{j}", 2))
        word = Cat(*parts)

        def weight(lane, element):
            start, bits = layout.field(lane, element)
            return word[start:start + bits].as_signed()

        vector = registered(rd.data, "vector", 2)
        x = [vector.word_select(s, self._in_bits) for s in range(simd)]
        x = [v.as_signed() if self._in_signed else v for v in x]
        if constant:
            # Constant LUT lanes multiply the input four cycles later, in stage 8 like the
            # others: the input vector is delayed once for all lanes, not each product.
            late = registered(vector, "vector_late", 4)
            late = [late.word_select(s, self._in_bits) for s in range(simd)]
            late = [v.as_signed() if self._in_signed else v for v in late]
        products = [[None] * simd for _ in range(pe)]
        for group in self._groups:
            bits, plan, packs, lut = group["bits"], group["plan"], group["packs"], group["lut"]
            for s in range(simd):
                for j, pack in enumerate(packs):
                    unit = PackedMultiplier(multiplier=plan.multiplier, weight_bits=bits,
                                            act_bits=self._in_bits, act_signed=self._in_signed,
                                            registered=True, pipelined=True, raw=True)
                    m.submodules[f"dsp_w{bits}_{j}_{s}"] = unit
                    # A pack short of the plan's lanes leaves the others at weight 0.
                    m.d.comb += [unit.weights[i].eq(weight(lane, s))
                                 for i, lane in enumerate(pack)]
                    m.d.comb += unit.x.eq(x[s])
                    for i, lane in enumerate(pack):
                        products[lane][s] = unit.products[i]
                for lane in lut:
                    if constant:
                        value = int(self._weight[lane, s])
                        product = Signal(signed(bits + self._in_bits + 1),
                                         name=f"prod{lane}_{s}", reset_less=True)
                        m.d.sync += product.eq(const_multiply(value, late[s]))
                        products[lane][s] = product if value else None
                        continue
                    # In fabric: the product in stage 4, then registers to keep pace.
                    product = Signal(signed(bits + self._in_bits + 1), name=f"prod{lane}_{s}",
                                     reset_less=True)
                    m.d.sync += product.eq(lut_multiply(weight(lane, s), x[s], bits))
                    product = registered(product, f"prod{lane}_{s}", 4)
                    products[lane][s] = product

        # Control travels with the data, one register per stage up to the dot products. Only
        # the valid bits and the counters are reset; data registers are not, so the reset net
        # reaches few flip-flops.
        depth = _ACC_STAGE + 1
        valid = [issue] + [Signal(name=f"valid{i}") for i in range(1, depth)]
        first = [in_fold == 0] + [Signal(name=f"first{i}", reset_less=True)
                                  for i in range(1, depth)]
        last = [in_fold == sf - 1] + [Signal(name=f"last{i}", reset_less=True)
                                      for i in range(1, depth)]
        fold = [out_fold] + [Signal(range(nf), name=f"fold{i}", reset_less=True)
                             for i in range(1, depth - 1)]
        for ctl in (valid, first, last):
            m.d.sync += [ctl[i + 1].eq(ctl[i]) for i in range(depth - 1)]
        m.d.sync += [fold[i + 1].eq(fold[i]) for i in range(depth - 2)]

        acc_shape = signed(self._acc_bits)
        biases = pack_words(self._bias.reshape(nf, pe), self._acc_bits)
        if nf == 1:         # one output fold: the biases are constants too
            bias_word = Const(biases[0], pe * self._acc_bits)
        else:
            bias = Memory(shape=unsigned(pe * self._acc_bits), depth=nf, init=biases,
                          attrs=rom_attrs(platform, nf))
            m.submodules.bias = bias
            bias_port = bias.read_port()
            m.d.comb += bias_port.addr.eq(fold[depth - 4])
            bias_word = bias_port.data

        # The bias joins the dot product of the first input fold, and the accumulator is
        # cleared after the last one: the control bits, which fan out to every lane, feed no
        # adder. After a reset the accumulators are cleared until the first fold arrives (a
        # reset of their own would load the reset net with every accumulator bit).
        fresh = Signal(init=1)
        with m.If(valid[-1]):
            m.d.sync += fresh.eq(0)
        clear = Signal()
        m.d.comb += clear.eq(Mux(valid[-1], last[-1], fresh))
        totals = []
        for p in range(pe):
            bias_p = Signal(acc_shape, name=f"bias{p}", reset_less=True)
            m.d.sync += bias_p.eq(Mux(first[depth - 3],
                                      bias_word.word_select(p, self._acc_bits), 0))
            dot = Signal(acc_shape, name=f"dot{p}", reset_less=True)
            m.d.sync += dot.eq(tree_sum([v for v in products[p] if v is not None] + [bias_p]))
            acc = Signal(acc_shape, name=f"acc{p}", reset_less=True)
            total = Signal(acc_shape, name=f"sum{p}")
            m.d.comb += total.eq(acc + dot)
            with m.If(clear):
                m.d.sync += acc.eq(0)
            with m.Elif(valid[-1]):
                m.d.sync += acc.eq(total)
            totals.append(total)

        # The output queue: a result per output fold, offered two cycles after it enters.
        m.d.comb += [
            queue.w_data.eq(Cat(*totals)),
            queue.w_en.eq(valid[-1] & last[-1]),
            self.o_stream.payload.eq(queue.r_data),
            self.o_stream.valid.eq(queue.r_rdy),
            queue.r_en.eq(self.o_stream.ready),
        ]
        return m
