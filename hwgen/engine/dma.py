"""The engine's DRAM access: an AXI4 read master and an AXI4 write master driven by commands.

A command is ``(address, words)``: that many bus words from a word-aligned byte address. Each
master splits its commands into INCR bursts of at most :data:`MAX_BURST` beats that never cross
a 4 KiB boundary (the AXI rule), keeps up to :data:`MAX_OUTSTANDING` bursts in flight, and
moves one word per cycle when the bus and the stream allow (the read master holds a beat
its stream does not take, and takes the bus's next one a cycle after giving that one on).
The read master sends the words on ``o_data``, in order, with ``last`` on each command's
final word; the write master takes ``i_data`` in order and counts write responses, so
``idle`` means every word is written.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.numerics import is_int

__all__ = ["MAX_BURST", "MAX_OUTSTANDING", "ReadMaster", "WriteMaster", "command_signature",
           "read_signature", "write_signature"]

#: Beats of the longest burst.
MAX_BURST = 32
#: Bursts in flight on each side.
MAX_OUTSTANDING = 8
#: Command lengths queued on the read side.
_PENDING_COMMANDS = 16


def command_signature(addr_bits):
    return stream.Signature(data.StructLayout({"address": addr_bits, "words": 16}))


def read_signature(addr_bits, data_bits):
    """The read half of :class:`hwgen.axi.AXI4Signature` (AR and R channels)."""
    return wiring.Signature({
        "arid": Out(1), "araddr": Out(addr_bits), "arlen": Out(8), "arsize": Out(3),
        "arburst": Out(2), "arvalid": Out(1), "arready": In(1),
        "rid": In(1), "rdata": In(data_bits), "rresp": In(2), "rlast": In(1),
        "rvalid": In(1), "rready": Out(1)})


def write_signature(addr_bits, data_bits):
    """The write half of :class:`hwgen.axi.AXI4Signature` (AW, W and B channels)."""
    return wiring.Signature({
        "awid": Out(1), "awaddr": Out(addr_bits), "awlen": Out(8), "awsize": Out(3),
        "awburst": Out(2), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_bits), "wstrb": Out(data_bits // 8), "wlast": Out(1),
        "wvalid": Out(1), "wready": In(1),
        "bid": In(1), "bresp": In(2), "bvalid": In(1), "bready": Out(1)})


def _check(addr_bits, data_bits):
    if not is_int(addr_bits) or not 12 <= addr_bits <= 64:
        raise ValueError(f"addr_bits must be an integer in 12..64, not {addr_bits!r}")
    if data_bits not in (32, 64, 128, 256, 512, 1024):
        raise ValueError(f"data_bits must be a power of two in 32..1024, not {data_bits!r}")


class _Bursts:
    """Splits one command at a time into bursts: ``(address, beats)`` while ``valid``."""

    def __init__(self, m, cmd, addr_bits, data_bits, name):
        self.word_bytes = data_bits // 8
        shift = (self.word_bytes - 1).bit_length()
        self.address = Signal(addr_bits, name=f"{name}_address")
        self.remaining = Signal(16, name=f"{name}_remaining")
        self.beats = Signal(range(MAX_BURST + 1), name=f"{name}_beats")
        self.valid = Signal(name=f"{name}_valid")
        self.advance = Signal(name=f"{name}_advance")
        self.accept = Signal(name=f"{name}_accept")
        # Words to the next 4 KiB boundary.
        to_boundary = Signal(range(4096 // self.word_bytes + 1), name=f"{name}_to_boundary")
        m.d.comb += [
            to_boundary.eq((4096 - self.address[:12]) >> shift),
            self.valid.eq(self.remaining != 0),
            self.accept.eq(cmd.valid & (self.remaining == 0)),
            cmd.ready.eq(self.remaining == 0),
        ]
        # beats = min(MAX_BURST, to_boundary, remaining)
        with m.If((self.remaining <= MAX_BURST) & (self.remaining <= to_boundary)):
            m.d.comb += self.beats.eq(self.remaining)
        with m.Elif(to_boundary <= MAX_BURST):
            m.d.comb += self.beats.eq(to_boundary)
        with m.Else():
            m.d.comb += self.beats.eq(MAX_BURST)
        with m.If(self.accept):
            m.d.sync += [self.address.eq(cmd.payload.address),
                         self.remaining.eq(cmd.payload.words)]
        with m.Elif(self.advance):
            m.d.sync += [self.address.eq(self.address + (self.beats << shift)),
                         self.remaining.eq(self.remaining - self.beats)]


class ReadMaster(wiring.Component):
    """Reads commands' words from DRAM and streams them in order.

    Members
    -------
    i_cmd : In(command_signature(addr_bits))
        ``(address, words)``; a command of 0 words is taken and reads nothing.
    o_data : Out(stream.Signature(StructLayout({"word": data_bits, "last": 1})))
        Every word read, in command order; ``last`` on each command's final word.
    m_axi : Out(read_signature(addr_bits, data_bits))
    idle : Out(1)
        No command is being split, no burst is in flight, none is queued and no beat is
        held.
    """

    def __init__(self, *, addr_bits=32, data_bits=64):
        _check(addr_bits, data_bits)
        self._addr_bits, self._data_bits = addr_bits, data_bits
        super().__init__({
            "i_cmd": In(command_signature(addr_bits)),
            "o_data": Out(stream.Signature(data.StructLayout({"word": data_bits, "last": 1}))),
            "m_axi": Out(read_signature(addr_bits, data_bits)),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus, out = self.m_axi, self.o_data
        # Command lengths, in order, for the R side to mark each command's last word.
        m.submodules.lengths = lengths = fifo.SyncFIFOBuffered(width=16,
                                                               depth=_PENDING_COMMANDS)
        cmd = stream.Signature(data.StructLayout({"address": self._addr_bits,
                                                  "words": 16})).create(path=("cmd",))
        m.d.comb += [
            cmd.payload.eq(self.i_cmd.payload),
            cmd.valid.eq(self.i_cmd.valid & lengths.w_rdy),
            self.i_cmd.ready.eq(cmd.ready & lengths.w_rdy),
            lengths.w_data.eq(self.i_cmd.payload.words),
            lengths.w_en.eq(self.i_cmd.valid & self.i_cmd.ready &
                            (self.i_cmd.payload.words != 0)),
        ]
        bursts = _Bursts(m, cmd, self._addr_bits, self._data_bits, "read")
        in_flight = Signal(range(MAX_OUTSTANDING + 1))
        issue = Signal()
        done = Signal()
        m.d.comb += [
            bus.arid.eq(0), bus.arsize.eq((self._data_bits // 8 - 1).bit_length()),
            bus.arburst.eq(1), bus.araddr.eq(bursts.address), bus.arlen.eq(bursts.beats - 1),
            bus.arvalid.eq(bursts.valid & (in_flight < MAX_OUTSTANDING)),
            issue.eq(bus.arvalid & bus.arready),
            bursts.advance.eq(issue),
        ]
        left = Signal(16)              # words of the current command still to come
        beat = Signal()
        # A beat the consumer did not take is held here, and the bus waits while it is: so
        # ``rready`` is a register, and the consumer's ``ready`` (the end of its own logic)
        # stops here rather than going on into the memory's.
        held, held_word, held_last = Signal(), Signal.like(bus.rdata), Signal()
        current = Mux(left == 0, lengths.r_data, left)
        m.d.comb += [
            bus.rready.eq(~held),
            beat.eq(bus.rvalid & bus.rready),
            done.eq(beat & bus.rlast),
            out.valid.eq(held | bus.rvalid),
            out.payload.word.eq(Mux(held, held_word, bus.rdata)),
            out.payload.last.eq(Mux(held, held_last, current == 1)),
        ]
        with m.If(held):
            with m.If(out.ready):
                m.d.sync += held.eq(0)
        with m.Elif(beat & ~out.ready):
            m.d.sync += [held.eq(1), held_word.eq(bus.rdata), held_last.eq(current == 1)]
        with m.If(beat):
            m.d.sync += left.eq(current - 1)
        m.d.comb += lengths.r_en.eq(beat & (left == 0))
        m.d.sync += in_flight.eq(in_flight + issue - done)
        m.d.comb += self.idle.eq(~bursts.valid & (in_flight == 0) & ~lengths.r_rdy &
                                 ~self.i_cmd.valid & ~held)
        return m


class WriteMaster(wiring.Component):
    """Writes commands' words, taken in order from a stream, to DRAM.

    Members
    -------
    i_cmd : In(command_signature(addr_bits))
        ``(address, words)``: the next ``words`` words of ``i_data`` go there.
    i_data : In(stream.Signature(data_bits))
    m_axi : Out(write_signature(addr_bits, data_bits))
    idle : Out(1)
        Every word taken so far is written and acknowledged, and no command waits.
    """

    def __init__(self, *, addr_bits=32, data_bits=64):
        _check(addr_bits, data_bits)
        self._addr_bits, self._data_bits = addr_bits, data_bits
        super().__init__({
            "i_cmd": In(command_signature(addr_bits)),
            "i_data": In(stream.Signature(data_bits)),
            "m_axi": Out(write_signature(addr_bits, data_bits)),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.m_axi
        bursts = _Bursts(m, self.i_cmd, self._addr_bits, self._data_bits, "write")
        # Burst lengths not yet sent on W, in order. A burst's length is queued as the burst
        # is formed, not when its AW is taken, so W does not wait for AWREADY (the AXI rule:
        # a slave may wait for WVALID before it raises AWREADY).
        m.submodules.lengths = lengths = fifo.SyncFIFOBuffered(width=8, depth=MAX_OUTSTANDING)
        queued = Signal()                                  # this burst's length is queued
        awaiting = Signal(range(MAX_OUTSTANDING + 1))      # bursts without a response yet
        issue, response = Signal(), Signal()
        m.d.comb += [
            bus.awid.eq(0), bus.awsize.eq((self._data_bits // 8 - 1).bit_length()),
            bus.awburst.eq(1), bus.awaddr.eq(bursts.address), bus.awlen.eq(bursts.beats - 1),
            bus.awvalid.eq(bursts.valid & (queued | lengths.w_rdy) &
                           (awaiting < MAX_OUTSTANDING)),
            issue.eq(bus.awvalid & bus.awready),
            bursts.advance.eq(issue),
            lengths.w_en.eq(bursts.valid & ~queued),
            lengths.w_data.eq(bursts.beats - 1),
            bus.bready.eq(1),
            response.eq(bus.bvalid),
        ]
        m.d.sync += [awaiting.eq(awaiting + issue - response),
                     queued.eq(~issue & (queued | (lengths.w_en & lengths.w_rdy)))]
        sent = Signal(8)                                   # beats of the current burst sent
        last = Signal()
        m.d.comb += [
            last.eq(sent == lengths.r_data),
            bus.wvalid.eq(self.i_data.valid & lengths.r_rdy),
            bus.wdata.eq(self.i_data.payload),
            bus.wstrb.eq(-1),
            bus.wlast.eq(last),
            self.i_data.ready.eq(bus.wready & lengths.r_rdy),
            lengths.r_en.eq(bus.wvalid & bus.wready & last),
        ]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += sent.eq(Mux(last, 0, sent + 1))
        m.d.comb += self.idle.eq(~bursts.valid & (awaiting == 0) & ~lengths.r_rdy &
                                 ~self.i_cmd.valid)
        return m
