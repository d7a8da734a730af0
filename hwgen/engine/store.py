"""The engine's store unit: finished bands from the output buffer to DRAM, row by row."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .bands import Bands, geometry_layout
from .dma import command_signature
from .gearbox import Packer
from .program import DESCRIPTOR_LAYOUT

__all__ = ["Store"]

#: Output-buffer words read ahead of the packer.
_AHEAD = 4


class Store(wiring.Component):
    """Writes each band once its output-buffer bank is full, then gives the bank back.

    For each output row of the band: one write command for the row's words, and the row's
    channel groups read from the output buffer in HWC order and packed at the layer's output
    width. ``done`` once every band is written and the write master is idle.

    Members
    -------
    desc : In(DESCRIPTOR_LAYOUT)
    go : In(1)
    done : Out(1)
    obuf_full : In(2)
    obuf_clear : Out(2)
    obuf_addr : Out; obuf_data : In
        The output buffer holds groups compacted (:func:`~hwgen.engine.gearbox.compact_group`).
    o_cmd : Out(command stream)
    o_words : Out(stream.Signature(data_bits))
    writer_idle : In(1)
    """

    def __init__(self, config, *, out_bits):
        self._config = config
        c = config
        self._out_bits = out_bits
        super().__init__({
            "desc": In(DESCRIPTOR_LAYOUT), "geometry": In(geometry_layout(c.addr_bits)),
            "go": In(1),
            "done": Out(1),
            "obuf_full": In(2), "obuf_clear": Out(2),
            "obuf_addr": Out(range(2 * c.output_words)),
            "obuf_data": In(c.tm * out_bits),
            "o_cmd": Out(command_signature(c.addr_bits)),
            "o_words": Out(stream.Signature(c.data_bits)),
            "writer_idle": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        c, d = self._config, self.desc
        shift = (c.data_bits // 8 - 1).bit_length()
        m.submodules.packer = packer = Packer(data_bits=c.data_bits, lanes=c.tm,
                                              max_bits=self._out_bits)
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=c.tm * self._out_bits,
                                                           depth=_AHEAD)
        # The element width, registered: the descriptor changes only while the packer is
        # empty (between layers).
        out_bits = Signal.like(d.out_bits)
        m.d.sync += out_bits.eq(d.out_bits)
        m.submodules.bands = bands = Bands(addr_bits=c.addr_bits)
        m.d.comb += [bands.desc.eq(d), bands.geometry.eq(self.geometry)]
        band, rows_out = bands.band, bands.rows
        bank = band[0]
        row = Signal(16)
        address = Signal(c.addr_bits)
        row_bytes = d.out_row_words << shift
        cmds_done = Signal()
        index = Signal(24)                   # output-buffer words read in this band
        total = bands.out_total
        reading = Signal()
        in_flight = Signal()
        m.d.comb += [
            packer.bits.eq(out_bits),
            packer.row_groups.eq(self.geometry.out_row_groups),
            packer.i_groups.valid.eq(queue.r_rdy),
            packer.i_groups.payload.eq(queue.r_data),
            queue.r_en.eq(packer.i_groups.ready),
            self.o_words.valid.eq(packer.o_words.valid),
            self.o_words.payload.eq(packer.o_words.payload),
            packer.o_words.ready.eq(self.o_words.ready),
            self.obuf_addr.eq(Mux(bank, c.output_words, 0) + index),
            queue.w_data.eq(self.obuf_data),
            queue.w_en.eq(in_flight),
        ]
        read = Signal()
        m.d.comb += read.eq(reading & (index != total) &
                            (queue.level + in_flight < _AHEAD - 1))
        m.d.sync += in_flight.eq(read)
        with m.If(read):
            m.d.sync += index.eq(index + 1)

        with m.FSM(name="store"):
            with m.State("IDLE"):
                with m.If(self.go):
                    m.d.comb += bands.start.eq(1)
                    m.next = "BAND"
            with m.State("BAND"):
                with m.If(band == d.bands):
                    m.next = "DRAIN"
                with m.Elif(self.obuf_full.bit_select(bank, 1)):
                    m.d.sync += [row.eq(0), index.eq(0), cmds_done.eq(0), reading.eq(1),
                                 address.eq(d.out_addr + bands.out_offset)]
                    m.next = "ROWS"
            with m.State("ROWS"):
                with m.If(~cmds_done):
                    m.d.comb += [self.o_cmd.valid.eq(1),
                                 self.o_cmd.payload.address.eq(address),
                                 self.o_cmd.payload.words.eq(d.out_row_words)]
                    with m.If(self.o_cmd.ready):
                        m.d.sync += [row.eq(row + 1), address.eq(address + row_bytes)]
                        with m.If(row == rows_out - 1):
                            m.d.sync += cmds_done.eq(1)
                # The bank is given back once its last word is in the queue.
                with m.If(cmds_done & (index == total) & ~in_flight):
                    m.d.comb += self.obuf_clear.bit_select(bank, 1).eq(1)
                    m.d.comb += bands.advance.eq(1)
                    m.d.sync += reading.eq(0)
                    m.next = "BAND"
            with m.State("DRAIN"):
                with m.If(~queue.r_rdy & self.writer_idle):
                    m.d.comb += self.done.eq(1)
                    with m.If(self.go):
                        m.d.comb += bands.start.eq(1)
                        m.next = "BAND"
        return m
