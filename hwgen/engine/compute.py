"""The engine's compute unit: a layer's k-steps through the MAC array or the vector lanes, the
lane sums put at their channels, the output path, and the output buffer.

For each band (its input-buffer bank full and its output-buffer bank free) and each fold (its
weight bank full), every output pixel of the band takes its k-steps one a cycle: a matrix
product's window positions and input channel groups for each of the fold's passes (its
parameters give how many; weights from the weight buffer), or a vector op's window positions
for one channel group. The sums of a pass go to the channels the fold's crossbar names; a
pixel's finished channel group goes through the output path into the output buffer. A fold's
weight bank is given back when its last output is in the output buffer; a band's input bank
the cycle after its last k-step is issued; its output bank is flagged full when its last
output is in.

The weight bank's release and the output bank's flag come an output path's latency after the
last k-step, so those flags still tell of a bank's last use for a while: a fold shorter than
that latency would otherwise take the weight bank its fold before last still holds (flagged
full), and a band the output bank its band before last is still filling (not yet flagged).
Each bank is taken again only once the flag of its last use has come. (No band has been seen
to need the second guard, the loader's next input takes longer; it keeps the results from
resting on that.)
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .params import VECTOR_WEIGHT_BITS
from .params import MAX_PASSES, param_layout
from .bands import Bands, geometry_layout
from .config import crossbar_sources
from .gearbox import ONE_HOT_FAMILIES, compact_group
from .macarray import MacArray
from .post import VECTOR_OPS, OutputPath, VectorLanes
from .program import ADD, DEPTHWISE, DESCRIPTOR_LAYOUT, MATMUL, POOL_MAX, POOL_SUM

__all__ = ["Compute"]


class Compute(wiring.Component):
    """The compute unit of one layer at a time (see the module documentation).

    Members
    -------
    desc : In(DESCRIPTOR_LAYOUT)
    go : In(1)
    done : Out(1)
        Every output of the layer is in the output buffer.
    ibuf_full, wbuf_full, obuf_full : In(2)
    ibuf_clear, wbuf_clear, obuf_set : Out(2)
    ibuf_addr, ibuf2_addr : Out; ibuf_data, ibuf2_data : In
        Two read ports of the input buffer (the second for an add's second operand).
    wbuf_addr : Out; wbuf_data : In
    params : In(ArrayLayout(param_bits, 2))
    obuf_addr, obuf_data, obuf_en : Out
        A pixel's channel group, as rows store it (:func:`~hwgen.engine.gearbox.compact_group`).
    """

    def __init__(self, config, *, element_bits, param_bits, weight_bits, out_bits):
        self._config = config
        c = config
        self._element_bits, self._weight_bits, self._out_bits = \
            element_bits, weight_bits, out_bits
        super().__init__({
            "desc": In(DESCRIPTOR_LAYOUT), "geometry": In(geometry_layout(c.addr_bits)),
            "go": In(1),
            "done": Out(1),
            "ibuf_full": In(2), "wbuf_full": In(2), "obuf_full": In(2),
            "ibuf_clear": Out(2), "wbuf_clear": Out(2), "obuf_set": Out(2),
            "ibuf_addr": Out(range(2 * c.input_words)),
            "ibuf2_addr": Out(range(2 * c.input_words)),
            "ibuf_data": In(c.tn * element_bits), "ibuf2_data": In(c.tn * element_bits),
            "wbuf_addr": Out(range(2 * c.weight_words)),
            "wbuf_data": In(weight_bits),
            "params": In(data.ArrayLayout(param_bits, 2)),
            "obuf_addr": Out(range(2 * c.output_words)),
            "obuf_data": Out(c.tm * out_bits), "obuf_en": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        c, d = self._config, self.desc
        tm, tn, eb = c.tm, c.tn, self._element_bits
        half = c.input_words // 2
        layout = param_layout(c)
        fields = [data.View(layout, self.params[b][:layout.size]) for b in range(2)]

        is_matmul = Signal()
        op = Signal(2)
        m.d.comb += is_matmul.eq(d.op == MATMUL)
        with m.Switch(d.op):
            for code, name in ((POOL_MAX, "max"), (POOL_SUM, "sum"), (DEPTHWISE, "mac"),
                               (ADD, "add")):
                with m.Case(code):
                    m.d.comb += op.eq(VECTOR_OPS[name])

        # Per layer.
        geometry = self.geometry
        rowstride, sh_step = geometry.row_groups, geometry.sh_groups
        sw_step, pw_start = geometry.sw_groups, geometry.pw_groups
        # Each loop's last index, registered (a subtractor in front of each comparison was
        # a carry chain on the way to every loop counter's enable): per layer, per band (the
        # band's output rows) and per fold (its passes).
        g_max, kx_max, ky_max = Signal(16), Signal(8), Signal(8)
        q_max, ox_max, oy_max, fold_max = Signal(4), Signal(16), Signal(16), Signal(16)
        with m.If(self.go):
            m.d.sync += [g_max.eq(Mux(d.op == MATMUL, d.in_groups, 1) - 1),
                         kx_max.eq(d.kernel_w - 1), ky_max.eq(d.kernel_h - 1),
                         ox_max.eq(d.out_width - 1), fold_max.eq(d.folds - 1)]

        m.submodules.bands = bands = Bands(addr_bits=c.addr_bits)
        m.d.comb += [bands.desc.eq(d), bands.geometry.eq(geometry)]
        band, fold = bands.band, Signal(16)
        bank = Signal()                      # weight bank of the fold
        in_bank = band[0]
        oy, ox, q = Signal(16), Signal(16), Signal(4)
        ky, kx, g = Signal(8), Signal(8), Signal(16)
        iy_base, ix_base = Signal(signed(18)), Signal(signed(18))
        row_base, col_base = Signal(signed(26)), Signal(signed(18))
        ky_off, kx_off = Signal(24), Signal(16)
        wk = Signal(range(c.weight_words + 1))
        pixel_off = Signal(range(c.output_words + 1))
        bands_done = Signal(16)

        iy, ix = iy_base + ky, ix_base + kx
        pad = Signal()
        m.d.comb += pad.eq((iy < 0) | (iy >= d.in_height) | (ix < 0) | (ix >= d.in_width))
        group = Mux(is_matmul, g, fold)
        offset = row_base + ky_off + col_base + kx_off + group
        # The buffers' addresses are registered (a stage of their own: their sum of loop
        # registers into a block RAM's address was the engine's slowest path on ECP5).
        m.d.sync += [
            self.ibuf_addr.eq(Mux(in_bank, c.input_words, 0) + offset),
            self.ibuf2_addr.eq(Mux(in_bank, c.input_words, 0) + half + offset),
            self.wbuf_addr.eq(Mux(bank, c.weight_words, 0) + wk),
        ]
        last_g, last_kx, last_ky = g == g_max, kx == kx_max, ky == ky_max
        last_q, last_ox, last_oy = q == q_max, ox == ox_max, oy == oy_max
        step_last = last_g & last_kx & last_ky
        pixel_last = step_last & last_q
        fold_last = pixel_last & last_ox & last_oy
        issue = Signal()
        # Banks whose last fold (weights) or band (outputs) is issued and whose flag has not
        # come yet: the wbuf_clear or obuf_set of its last output.
        weights_out, outputs_out = Signal(2), Signal(2)
        weights_issued, outputs_issued = Signal(2), Signal(2)
        m.d.sync += [weights_out.eq((weights_out | weights_issued) & ~self.wbuf_clear),
                     outputs_out.eq((outputs_out | outputs_issued) & ~self.obuf_set)]

        with m.FSM(name="compute"):
            with m.State("IDLE"):
                with m.If(self.go):
                    m.d.comb += bands.start.eq(1)
                    m.d.sync += [bank.eq(0), bands_done.eq(0)]
                    m.next = "BAND"
            with m.State("BAND"):
                with m.If(band == d.bands):
                    m.next = "FINISH"
                with m.Elif(self.ibuf_full.bit_select(in_bank, 1) &
                            ~self.obuf_full.bit_select(in_bank, 1) &
                            ~outputs_out.bit_select(in_bank, 1)):
                    m.d.sync += [fold.eq(0), oy_max.eq(bands.rows - 1)]
                    m.next = "FOLD"
            with m.State("FOLD"):
                with m.If(fold == d.folds):
                    m.d.comb += [self.ibuf_clear.bit_select(in_bank, 1).eq(1),
                                 outputs_issued.bit_select(in_bank, 1).eq(1),
                                 bands.advance.eq(1)]
                    m.next = "BAND"
                with m.Elif(self.wbuf_full.bit_select(bank, 1) &
                            ~weights_out.bit_select(bank, 1)):
                    m.d.sync += [
                        oy.eq(0), ox.eq(0), q.eq(0), ky.eq(0), kx.eq(0), g.eq(0), wk.eq(0),
                        ky_off.eq(0), kx_off.eq(0), pixel_off.eq(0),
                        iy_base.eq(bands.top), ix_base.eq(-d.pad_w),
                        row_base.eq(bands.pad_offset), col_base.eq(-pw_start),
                        q_max.eq(Mux(is_matmul, Mux(bank, fields[1].passes, fields[0].passes),
                                     1) - 1),
                    ]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += issue.eq(1)
                # Innermost first: channel group (matmul), window column, window row, pass,
                # output column, output row.
                with m.If(~last_g):
                    m.d.sync += [g.eq(g + 1), wk.eq(wk + 1)]
                with m.Else():
                    m.d.sync += g.eq(0)
                    with m.If(~last_kx):
                        m.d.sync += [kx.eq(kx + 1), kx_off.eq(kx_off + d.in_groups),
                                     wk.eq(wk + 1)]
                    with m.Else():
                        m.d.sync += [kx.eq(0), kx_off.eq(0)]
                        with m.If(~last_ky):
                            m.d.sync += [ky.eq(ky + 1), ky_off.eq(ky_off + rowstride),
                                         wk.eq(wk + 1)]
                        with m.Else():
                            m.d.sync += [ky.eq(0), ky_off.eq(0)]
                            with m.If(~last_q):
                                m.d.sync += [q.eq(q + 1), wk.eq(wk + 1)]
                            with m.Else():
                                m.d.sync += [q.eq(0), wk.eq(0),
                                             pixel_off.eq(pixel_off + d.out_groups)]
                                with m.If(~last_ox):
                                    m.d.sync += [ox.eq(ox + 1),
                                                 ix_base.eq(ix_base + d.stride_w),
                                                 col_base.eq(col_base + sw_step)]
                                with m.Else():
                                    m.d.sync += [ox.eq(0), ix_base.eq(-d.pad_w),
                                                 col_base.eq(-pw_start)]
                                    with m.If(~last_oy):
                                        m.d.sync += [oy.eq(oy + 1),
                                                     iy_base.eq(iy_base + d.stride_h),
                                                     row_base.eq(row_base + sh_step)]
                                    with m.Else():
                                        m.d.comb += weights_issued.bit_select(bank, 1).eq(1)
                                        m.d.sync += [fold.eq(fold + 1), bank.eq(~bank)]
                                        m.next = "FOLD"
            with m.State("FINISH"):
                with m.If(bands_done == d.bands):
                    m.next = "DONE"
            with m.State("DONE"):
                # Its own state: the next layer's descriptor replaces this one's (and its band
                # count) before ``go``, so done cannot be judged from the descriptor here.
                m.d.comb += self.done.eq(1)
                with m.If(self.go):
                    m.d.comb += bands.start.eq(1)
                    m.d.sync += [bank.eq(0), bands_done.eq(0)]
                    m.next = "BAND"

        # Stage 1 (the ``_a`` signals): the buffers' addresses, with the k-step's control;
        # stage 2 (``valid1`` ...): their data.
        tag = data.StructLayout({"obuf": range(2 * c.output_words), "pass": 4, "last_pass": 1,
                                 "fold_end": 1, "band_end": 1, "bank": 1})
        tag0 = Signal(tag)
        m.d.comb += [
            tag0.obuf.eq(Mux(in_bank, c.output_words, 0) + pixel_off + fold),
            tag0["pass"].eq(q), tag0.last_pass.eq(last_q), tag0.bank.eq(bank),
            tag0.fold_end.eq(fold_last), tag0.band_end.eq(fold_last & (fold == fold_max)),
        ]
        valid_a, first_a, last_a, pad_a = Signal(), Signal(), Signal(), Signal()
        tag_a = Signal(tag)
        m.d.sync += [valid_a.eq(issue), first_a.eq((g == 0) & (kx == 0) & (ky == 0)),
                     last_a.eq(step_last), pad_a.eq(pad), tag_a.eq(tag0)]
        valid1, first1, last1, pad1 = Signal(), Signal(), Signal(), Signal()
        tag1 = Signal(tag)
        m.d.sync += [valid1.eq(valid_a), first1.eq(first_a), last1.eq(last_a), pad1.eq(pad_a),
                     tag1.eq(tag_a)]
        pad_element = d.pad_value[:eb]
        xs = [Mux(pad1, Mux(op == VECTOR_OPS["max"], pad_element, 0),
                  self.ibuf_data.word_select(i, eb)) for i in range(tn)]
        ys = [self.ibuf2_data.word_select(i, eb) for i in range(tn)]

        m.submodules.macs = macs = MacArray(c, tag_bits=tag.size)
        bias_q = [Signal(tm * c.acc_bits, name=f"bias_bank{b}") for b in range(2)]
        for b in range(2):
            with m.Switch(tag1["pass"]):
                for p in range(MAX_PASSES):
                    with m.Case(p):
                        m.d.comb += bias_q[b].eq(fields[b].bias[p])
        m.d.comb += [
            macs.valid.eq(valid1 & is_matmul), macs.first.eq(first1), macs.last.eq(last1),
            macs.tag.eq(tag1.as_value()),
            macs.weights.eq(self.wbuf_data[:len(macs.weights)]),
            macs.bias.eq(Mux(tag1.bank, bias_q[1], bias_q[0])),
        ]
        for i in range(tn):
            m.d.comb += macs.x[i].eq(xs[i])

        m.submodules.lanes = lanes = VectorLanes(lanes=tn, element_bits=eb,
                                                 weight_bits=VECTOR_WEIGHT_BITS,
                                                 acc_bits=c.acc_bits, tag_bits=tag.size)
        bias0 = [Mux(tag1.bank, fields[1].bias[0][i], fields[0].bias[0][i]) for i in range(tn)]
        m.d.comb += [lanes.valid.eq(valid1 & ~is_matmul), lanes.first.eq(first1),
                     lanes.last.eq(last1), lanes.op.eq(op), lanes.tag.eq(tag1.as_value())]
        for i in range(tn):
            m.d.comb += [lanes.x[i].eq(xs[i]), lanes.y[i].eq(ys[i]),
                         lanes.w[i].eq(self.wbuf_data.word_select(i, VECTOR_WEIGHT_BITS)),
                         lanes.bias[i].eq(bias0[i])]

        # The crossbar: a pass's lane sums to their channels; the pixel's group after its
        # last pass (channels no pass computes stay 0). Each channel reaches only the lanes
        # the compiler's placement may put its filter on.
        reach = crossbar_sources(c.lane_bits)
        mac_tag = tag(macs.o_tag)
        staging = [Signal(signed(c.acc_bits), name=f"staging{j}") for j in range(tm)]
        merged = []
        for j in range(tm):
            source = Signal(range(tm), name=f"source{j}")
            present = Signal(name=f"present{j}")
            for b in range(2):
                with m.If(mac_tag.bank == b):
                    with m.Switch(mac_tag["pass"]):
                        for p in range(MAX_PASSES):
                            with m.Case(p):
                                entry = fields[b].source[p][j]
                                m.d.comb += [source.eq(entry.lane), present.eq(entry.valid)]
            chosen = Signal(signed(c.acc_bits), name=f"chosen{j}")
            with m.Switch(source):
                for lane in reach[j]:
                    with m.Case(lane):
                        m.d.comb += chosen.eq(macs.sums[lane])
            value = Mux(present, chosen, Mux(mac_tag["pass"] == 0, 0, staging[j]))
            with m.If(macs.o_valid):
                m.d.sync += staging[j].eq(value)
            merged.append(value)
        mac_out = Signal()
        mac_values = Signal(data.ArrayLayout(signed(c.acc_bits), tm))
        mac_out_tag = Signal(tag)
        m.d.sync += [mac_out.eq(macs.o_valid & mac_tag.last_pass), mac_out_tag.eq(mac_tag)]
        for j in range(tm):
            m.d.sync += mac_values[j].eq(merged[j])

        # The output path, then the output buffer.
        m.submodules.post = post = OutputPath(lanes=tm, acc_bits=c.acc_bits, family=c.family,
                                              out_bits=self._out_bits, tag_bits=tag.size)
        lane_tag = tag(lanes.o_tag)
        use_mac = Signal()
        m.d.comb += use_mac.eq(mac_out)
        in_tag = Signal(tag)
        m.d.comb += in_tag.eq(Mux(use_mac, mac_out_tag.as_value(), lane_tag.as_value()))
        m.d.comb += [post.valid.eq(mac_out | lanes.o_valid), post.tag.eq(in_tag.as_value()),
                     post.requant.eq(d.requant), post.half_even.eq(d.rounding),
                     post.shift.eq(d.shift)]
        # The output range, registered from the layer's descriptor a bit at a time (no
        # shifter on the way): hi has ones below the value's magnitude bits, lo (signed
        # outputs) ones from there up.
        magnitude = Signal(9)
        m.d.comb += magnitude.eq(d.out_bits - d.out_signed)
        for i in range(len(post.lo)):
            m.d.sync += [post.hi[i].eq(magnitude > i),
                         post.lo[i].eq(d.out_signed & (magnitude <= i))]
        for j in range(tm):
            m.d.comb += [
                post.values[j].eq(Mux(use_mac, mac_values[j], lanes.sums[j])),
                post.mult[j].eq(Mux(in_tag.bank, fields[1].mult[j], fields[0].mult[j])),
                post.offset[j].eq(Mux(in_tag.bank, fields[1].offset[j], fields[0].offset[j])),
            ]
        out_tag = tag(post.o_tag)
        m.d.comb += [self.obuf_en.eq(post.o_valid), self.obuf_addr.eq(out_tag.obuf),
                     self.obuf_data.eq(compact_group(
                         m, [post.o_values[j] for j in range(tm)], d.out_bits,
                         one_hot=c.family in ONE_HOT_FAMILIES, name="compacted"))]
        with m.If(post.o_valid):
            with m.If(out_tag.fold_end):
                m.d.comb += self.wbuf_clear.bit_select(out_tag.bank, 1).eq(1)
            with m.If(out_tag.band_end):
                obank = out_tag.obuf >= c.output_words
                m.d.comb += self.obuf_set.bit_select(obank, 1).eq(1)
                m.d.sync += bands_done.eq(bands_done + 1)
        return m
