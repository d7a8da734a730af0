"""The engine's loader: a layer's input rows, parameters and weights from DRAM into its buffers.

For each band of output rows: the input rows the band reads (and, for an add, the same rows of
the second operand) are read and unpacked into an input-buffer bank; then, for each fold,
that fold's parameters go to a parameter bank and its weights, one k-step a word, to a
weight-buffer bank, in one read. The read's length needs the fold's pass count, which the
parameters of the fold before give (the descriptor's ``first_passes`` for a band's first
fold): so each fold is one command, without waiting for its own parameters. Each bank is
filled only while its flag says it is free, and flagged full when its last word is in.
Commands go out while the data of the ones before still arrives.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .bands import Bands, geometry_layout
from .dma import command_signature
from .gearbox import ONE_HOT_FAMILIES, Unpacker
from .params import PASS_COUNT_BITS, param_layout
from .program import ADD, DESCRIPTOR_LAYOUT

__all__ = ["Loader"]


class Loader(wiring.Component):
    """Fills the input-buffer, parameter and weight-buffer banks of one layer.

    Members
    -------
    desc : In(DESCRIPTOR_LAYOUT)
    go : In(1)
        The layer starts (``desc`` holds its descriptor from now on).
    done : Out(1)
        Every band and fold of the layer is loaded.
    o_cmd : Out(command stream)
        Reads (to the read master).
    i_data : In(stream of {word, last})
        The words read, in order.
    ibuf_full, wbuf_full : In(2)
    ibuf_set, wbuf_set : Out(2)
        One-cycle pulses as a bank is filled.
    ibuf_addr, ibuf_data, ibuf_en : Out
    wbuf_addr, wbuf_data, wbuf_en : Out
    params : Out(ArrayLayout(param_bits, 2))
        Each parameter bank's words (word 0 in the low bits).
    """

    def __init__(self, config, *, element_bits, param_words, weight_bits):
        self._config = config
        c = config
        self._element_bits = element_bits
        self._param_words = param_words
        self._weight_bits = weight_bits
        self._kstep_words_max = -(-weight_bits // c.data_bits)
        super().__init__({
            "desc": In(DESCRIPTOR_LAYOUT), "geometry": In(geometry_layout(c.addr_bits)),
            "go": In(1),
            "done": Out(1),
            "o_cmd": Out(command_signature(c.addr_bits)),
            "i_data": In(stream.Signature(data.StructLayout({"word": c.data_bits,
                                                              "last": 1}))),
            "ibuf_full": In(2), "ibuf_set": Out(2),
            "wbuf_full": In(2), "wbuf_set": Out(2),
            "ibuf_addr": Out(range(2 * c.input_words)),
            "ibuf_data": Out(c.tn * element_bits), "ibuf_en": Out(1),
            "wbuf_addr": Out(range(2 * c.weight_words)),
            "wbuf_data": Out(weight_bits), "wbuf_en": Out(1),
            "params": Out(data.ArrayLayout(param_words * c.data_bits, 2)),
        })

    def elaborate(self, platform):
        m = Module()
        c, d = self._config, self.desc
        db = c.data_bits
        shift = (db // 8 - 1).bit_length()
        half = c.input_words // 2
        m.submodules.unpacker = unpacker = Unpacker(
            data_bits=db, lanes=c.tn, element_bits=self._element_bits,
            one_hot=c.family in ONE_HOT_FAMILIES)

        m.submodules.bands = bands = Bands(addr_bits=c.addr_bits)
        m.d.comb += [bands.desc.eq(d), bands.geometry.eq(self.geometry)]
        band, fold = bands.band, Signal(16)
        bank = Signal()                      # the next fold's weight bank
        in_bank = band[0]
        # Issuing: rows of the first operand, then (an add) of the second; the rows left to
        # issue after this one count down (a comparison with the band's rows end would sit
        # in the read command's handshake).
        cmds_left, second_cmd = Signal(16), Signal()
        address = Signal(c.addr_bits)
        issued = Signal()
        # Taking: groups written into the input buffer, for each operand; groups left in the
        # row and rows left in the operand after this one.
        written, second_data = Signal(24), Signal()
        col_left, rows_left = Signal(24), Signal(16)
        last_col = self.geometry.row_groups - 1
        last_row = bands.r1 - bands.r0 - 1
        param_address = Signal(c.addr_bits)
        passes = Signal(PASS_COUNT_BITS)     # the next fold's pass count
        layout = param_layout(c)
        next_passes = [data.View(layout, self.params[b][:layout.size]).next_passes
                       for b in range(2)]
        words = Signal(24)                   # words of this fold taken
        kstep_sr = Signal(self._kstep_words_max * db)
        kstep_count = Signal(range(self._kstep_words_max + 1))
        pending = Signal()                   # a k-step is assembled: write it
        weight_addr = Signal(range(c.weight_words + 1))
        # Words of the next fold's read (its parameters and weights), a cycle after its pass
        # count (the state FOLD always comes between); the pass count's few bits by shift and
        # add, no multiplier.
        fold_total = Signal(24)
        m.d.sync += fold_total.eq(d.fold_words + sum(
            Mux(passes[i], self.geometry.kstep_total << i, 0) for i in range(len(passes))))
        row_bytes = d.in_row_words << shift
        row2_bytes = d.in2_row_words << shift

        # The unpacker reads the current operand's rows: its element width, signedness and row
        # words, registered with ``second_data``.
        operand = data.StructLayout({"bits": 8, "signed": 1, "row_words": 16})
        first_operand, second_operand, unpacking = (Signal(operand) for _ in range(3))
        m.d.comb += [first_operand.eq(Cat(d.in_bits, d.in_signed, d.in_row_words)),
                     second_operand.eq(Cat(d.in2_bits, d.in2_signed, d.in2_row_words))]
        m.d.comb += [
            unpacker.bits.eq(unpacking.bits),
            unpacker.is_signed.eq(unpacking.signed),
            unpacker.row_groups.eq(self.geometry.row_groups),
            unpacker.row_words.eq(unpacking.row_words),
            self.ibuf_addr.eq(Mux(in_bank, c.input_words, 0) + Mux(second_data, half, 0)
                              + written),
            self.ibuf_data.eq(unpacker.o_groups.payload.as_value()),
            # The buffer takes every group as it comes, and groups come only in INPUT: the
            # unpacker gets words only there, and the band's last group, which ends INPUT,
            # ends its last row (so the loader's state stays out of the unpacker's logic).
            unpacker.o_groups.ready.eq(1),
        ]

        # An assembled k-step is written the cycle after its last word (before the FSM, so
        # that a k-step completed in the same cycle sets ``pending`` again).
        m.d.comb += [self.wbuf_en.eq(pending),
                     self.wbuf_addr.eq(Mux(bank, c.weight_words, 0) + weight_addr),
                     self.wbuf_data.eq(kstep_sr[:self._weight_bits])]
        with m.If(pending):
            m.d.sync += [pending.eq(0), weight_addr.eq(weight_addr + 1)]

        with m.FSM(name="loader"):
            with m.State("IDLE"):
                with m.If(self.go):
                    m.d.comb += bands.start.eq(1)
                    m.d.sync += bank.eq(0)
                    m.next = "BAND"
            with m.State("BAND"):
                with m.If(band == d.bands):
                    m.next = "DONE"
                with m.Elif(~self.ibuf_full.bit_select(in_bank, 1)):
                    m.d.sync += [cmds_left.eq(last_row), second_cmd.eq(0), issued.eq(0),
                                 address.eq(d.in_addr + bands.in_offset),
                                 written.eq(0), second_data.eq(0), unpacking.eq(first_operand),
                                 col_left.eq(last_col),
                                 rows_left.eq(last_row)]
                    m.next = "INPUT"
            with m.State("INPUT"):
                # Commands: one per row.
                with m.If(~issued):
                    m.d.comb += [self.o_cmd.valid.eq(1),
                                 self.o_cmd.payload.address.eq(address),
                                 self.o_cmd.payload.words.eq(
                                     Mux(second_cmd, d.in2_row_words, d.in_row_words))]
                    with m.If(self.o_cmd.ready):
                        with m.If(cmds_left == 0):
                            with m.If((d.op == ADD) & ~second_cmd):
                                m.d.sync += [second_cmd.eq(1), cmds_left.eq(last_row),
                                             address.eq(d.in2_addr + bands.in2_offset)]
                            with m.Else():
                                m.d.sync += issued.eq(1)
                        with m.Else():
                            m.d.sync += [cmds_left.eq(cmds_left - 1),
                                         address.eq(address + Mux(second_cmd, row2_bytes,
                                                                  row_bytes))]
                # Data: through the unpacker into the buffer.
                m.d.comb += [unpacker.i_words.valid.eq(self.i_data.valid),
                             unpacker.i_words.payload.eq(self.i_data.payload.word),
                             self.i_data.ready.eq(unpacker.i_words.ready),
                             self.ibuf_en.eq(unpacker.o_groups.valid)]
                with m.If(unpacker.o_groups.valid):
                    m.d.sync += written.eq(written + 1)
                    with m.If(col_left == 0):
                        m.d.sync += [col_left.eq(last_col),
                                     rows_left.eq(rows_left - 1)]
                    with m.Else():
                        m.d.sync += col_left.eq(col_left - 1)
                    with m.If((col_left == 0) & (rows_left == 0)):
                        with m.If((d.op == ADD) & ~second_data):
                            m.d.sync += [second_data.eq(1), written.eq(0),
                                         unpacking.eq(second_operand),
                                         rows_left.eq(last_row)]
                        with m.Else():
                            m.d.comb += self.ibuf_set.bit_select(in_bank, 1).eq(1)
                            m.d.sync += [fold.eq(0), param_address.eq(d.param_addr),
                                         passes.eq(d.first_passes)]
                            m.next = "FOLD"
            with m.State("FOLD"):
                with m.If(fold == d.folds):
                    m.d.comb += bands.advance.eq(1)
                    m.next = "BAND"
                with m.Elif(~self.wbuf_full.bit_select(bank, 1)):
                    m.d.sync += [words.eq(0), kstep_count.eq(0), issued.eq(0),
                                 weight_addr.eq(0)]
                    m.next = "WEIGHTS"
            with m.State("WEIGHTS"):
                total = fold_total
                with m.If(~issued):
                    m.d.comb += [self.o_cmd.valid.eq(1),
                                 self.o_cmd.payload.address.eq(param_address),
                                 self.o_cmd.payload.words.eq(total)]
                    with m.If(self.o_cmd.ready):
                        m.d.sync += issued.eq(1)
                m.d.comb += self.i_data.ready.eq(1)
                take = self.i_data.valid
                word = self.i_data.payload.word
                with m.If(take):
                    m.d.sync += words.eq(words + 1)
                    with m.If(words < d.fold_words):
                        for b in range(2):
                            with m.If(bank == b):
                                m.d.sync += self.params[b].word_select(words[:16], db).eq(word)
                    with m.Else():
                        m.d.sync += kstep_sr.word_select(kstep_count, db).eq(word)
                        with m.If(kstep_count == d.kstep_words - 1):
                            m.d.sync += [kstep_count.eq(0), pending.eq(1)]
                        with m.Else():
                            m.d.sync += kstep_count.eq(kstep_count + 1)
                fold_done = Signal()
                m.d.comb += fold_done.eq(
                    (words == total) & ~pending & issued)
                with m.If(fold_done):
                    m.d.comb += self.wbuf_set.bit_select(bank, 1).eq(1)
                    m.d.sync += [bank.eq(~bank), fold.eq(fold + 1),
                                 param_address.eq(param_address + (total << shift)),
                                 passes.eq(Mux(bank, next_passes[1], next_passes[0]))]
                    m.next = "FOLD"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                with m.If(self.go):
                    m.d.comb += bands.start.eq(1)
                    m.d.sync += bank.eq(0)
                    m.next = "BAND"
        return m
