"""Self-test of the layer-sequential engine: its DRAM image in on-chip memory, its output
checked against the golden at power-up, no host needed.

:class:`EngineSelfTest` holds an :class:`~hwgen.engine.core.Engine`, an :class:`AxiRam` (a
block RAM behind an AXI4 slave, loaded with the program's image: descriptors, parameters,
weights and one input) on the engine's AXI4 port, and a sequencer on its AXI4-Lite port:
after reset it writes ``PROGRAM`` and ``CTRL``, waits for the run to end, reads ``STATUS`` and
``LAYERS``, then compares every tensor the program writes, word by word, with the golden's
(a ROM of expected words and a ROM of masks that keep the bits of real elements: channel
padding and row padding are not compared). Its verdict members are those of
:class:`boards.selftest.SelfTest`, so :class:`boards.selftest.SelfTestTop` puts it on a board
(LED 0 done, 1 passed, 2 failed, 3 heartbeat).
"""

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hwgen.axi import AXI4Signature
from hwgen.engine.control import REGISTERS
from hwgen.engine.core import Engine
from quant.numerics import is_int

__all__ = ["AxiRam", "EngineSelfTest", "selftest_image"]

#: ``STATUS`` after a run that ended well: done, neither busy nor error.
STATUS_DONE = 0b010


class AxiRam(wiring.Component):
    """A block RAM behind an AXI4 slave: INCR bursts, one read and one write burst at a time,
    a beat per cycle each way; byte strobes honoured.

    Parameters
    ----------
    data_bits, addr_bits : int
        The bus.
    init : list of int
        The words it holds after configuration (its depth).

    Members
    -------
    s_axi : In(AXI4Signature(addr_bits, data_bits))
    error : Out(1)
        Held once a burst reaches past the memory or is not INCR (or of another size than the
        bus width); such a burst reads zeros and writes nothing.
    check_addr : In(range(depth)), check_data : Out(data_bits)
        A second reader for after the run, sharing the read port: ``check_en`` hands it the
        port (the data comes a cycle later).
    check_en : In(1)
    """

    def __init__(self, *, data_bits, addr_bits, init):
        self._data_bits, self._addr_bits = data_bits, addr_bits
        self._init = list(init)
        self._depth = len(self._init)
        super().__init__({
            "s_axi": In(AXI4Signature(addr_bits, data_bits)),
            "error": Out(1),
            "check_en": In(1), "check_addr": In(range(max(self._depth, 2))),
            "check_data": Out(data_bits),
        })

    depth = property(lambda self: self._depth)

    def elaborate(self, platform):
        m = Module()
        bus = self.s_axi
        word_bytes = self._data_bits // 8
        shift = (word_bytes - 1).bit_length()
        m.submodules.mem = mem = Memory(shape=self._data_bits, depth=self._depth,
                                        init=self._init)
        rd = mem.read_port()
        wr = mem.write_port(granularity=8)

        def check_burst(taken, addr, length, size, burst, bad):
            """Sets ``bad`` (and ``error``) the cycle after a burst's address is ``taken``,
            from its fields registered (off the path from the master's address logic); returns
            the flag of that cycle."""
            fields = [Signal.like(x) for x in (addr, length, size, burst)]
            checking = Signal()
            m.d.sync += checking.eq(taken)
            with m.If(taken):
                m.d.sync += [f.eq(x) for f, x in zip(fields, (addr, length, size, burst))]
            addr, length, size, burst = fields
            ok = ((addr[:shift] == 0) & (size == shift) & (burst == 1)
                  & ((addr >> shift) + length + 1 <= self._depth))
            with m.If(checking):
                m.d.sync += bad.eq(~ok)
                with m.If(~ok):
                    m.d.sync += self.error.eq(1)
            return checking

        # Reads: a burst at a time (its check done before its first beat leaves the RAM,
        # two cycles after its address). The RAM reads ahead into three registers that offer the
        # beats, so neither its enable nor the bus's data waits on a handshake or on the
        # RAM's slow output: ``rready`` only takes the oldest beat. A beat is offered two
        # cycles after it is read, a beat a cycle.
        r_active, r_word, r_left = Signal(), Signal(self._addr_bits), Signal(9)
        r_bad = Signal()
        fresh, fresh_last = Signal(), Signal()              # a beat in rd.data
        held = Signal(range(4))
        kept = [Signal(self._data_bits + 1, name=f"kept{i}") for i in range(3)]  # last, data
        # The fresh beat's burst is the current one: an address is taken only when no read
        # was issued the cycle before.
        beat = Cat(Mux(r_bad, 0, rd.data), fresh_last)
        # A read only when the registers could hold it and the fresh beat, none taken.
        issue = r_active & (r_left != 0) & (held + fresh < 3)
        take = Signal()
        m.d.comb += [
            bus.arready.eq(~r_active),
            bus.rvalid.eq(held != 0), bus.rid.eq(0), bus.rresp.eq(0),
            bus.rdata.eq(kept[0][:self._data_bits]), bus.rlast.eq(kept[0][-1]),
            take.eq(bus.rvalid & bus.rready),
            rd.en.eq(issue | self.check_en),
            rd.addr.eq(Mux(self.check_en, self.check_addr, r_word)),
            self.check_data.eq(rd.data),
        ]
        check_burst(bus.arvalid & bus.arready, bus.araddr, bus.arlen, bus.arsize,
                    bus.arburst, r_bad)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [r_active.eq(1), r_word.eq(bus.araddr >> shift),
                         r_left.eq(bus.arlen + 1)]
        m.d.sync += [fresh.eq(issue), fresh_last.eq(r_left == 1)]
        with m.If(issue):
            m.d.sync += [r_word.eq(r_word + 1), r_left.eq(r_left - 1)]
            with m.If(r_left == 1):
                m.d.sync += r_active.eq(0)
        # The registers after this cycle, a queue: the oldest leaves if taken, the fresh
        # beat joins behind the rest.
        left = Signal(range(4))
        m.d.comb += left.eq(held - take)
        for i in range(3):
            behind = kept[i + 1] if i < 2 else kept[i]
            with m.If(fresh & (left == i)):
                m.d.sync += kept[i].eq(beat)
            with m.Elif(take):
                m.d.sync += kept[i].eq(behind)
        m.d.sync += held.eq(left + fresh)

        # Writes: a burst at a time, its response before the next address is taken; its data
        # from the cycle after its check.
        w_active, w_word, w_bad, bvalid = Signal(), Signal(self._addr_bits), Signal(), Signal()
        w_checking = check_burst(bus.awvalid & bus.awready, bus.awaddr, bus.awlen, bus.awsize,
                                 bus.awburst, w_bad)
        w_take = Signal()
        m.d.comb += [
            bus.awready.eq(~w_active & ~bvalid),
            bus.wready.eq(w_active & ~w_checking),
            w_take.eq(bus.wvalid & bus.wready),
            bus.bvalid.eq(bvalid), bus.bid.eq(0), bus.bresp.eq(0),
            wr.addr.eq(w_word), wr.data.eq(bus.wdata),
            wr.en.eq(Mux(w_take & ~w_bad, bus.wstrb, 0)),
        ]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [w_active.eq(1), w_word.eq(bus.awaddr >> shift)]
        with m.If(w_take):
            m.d.sync += w_word.eq(w_word + 1)
            with m.If(bus.wlast):
                m.d.sync += [w_active.eq(0), bvalid.eq(1)]
        with m.If(bvalid & bus.bready):
            m.d.sync += bvalid.eq(0)
        return m


def selftest_image(program, golden):
    """The words a self-test needs: ``(image words, first checked word, expected words, mask
    words)``.

    ``program`` is a compiled :class:`~hwgen.engine.Program` whose image holds its input;
    ``golden`` maps each graph value to its tensor. Every tensor a layer writes lies in the
    checked range (from the first one to the image's end); its expected words hold the
    golden's elements as the engine stores them, its mask words ones on the bits of real
    elements.
    """
    config = program.config
    word = config.data_bytes
    image = bytes(program.image) + bytes(-len(program.image) % word)
    outputs = {layer.output for layer in program.layers}
    first = min(program.tensors[v][0] for v in outputs)
    expected = bytearray(len(image) - first)
    mask = bytearray(len(image) - first)
    for value in outputs:
        address, layout = program.tensors[value]
        ones = np.full(layout.shape, -1 if layout.signed else (1 << layout.bits) - 1)
        at = address - first
        expected[at:at + layout.nbytes] = layout.pack(np.asarray(golden[value]))
        mask[at:at + layout.nbytes] = layout.pack(ones)

    def words(data):
        return [int.from_bytes(data[i:i + word], "little") for i in range(0, len(data), word)]

    return words(image), first // word, words(expected), words(mask)


class EngineSelfTest(wiring.Component):
    """The engine runs ``program`` (its image holding the test input) from on-chip memory
    after reset; its output tensors are compared with ``golden``.

    Parameters
    ----------
    program : hwgen.engine.Program
        Compiled for the engine to build, with the input written into its image.
    golden : dict
        ``{graph value: tensor}`` for every tensor a layer of the program writes.
    run_limit : int, optional
        Cycles the run may take before the test fails as timed out; by default four times the
        cycle model's frame plus 10,000 (the RAM serves one burst at a time each way).

    Members
    -------
    done : Out(1)
        The verdict is in: every checked word compared, or the run timed out (held).
    passed : Out(1)
        Done, and nothing failed.
    failed : Out(1)
        A word differs, the run timed out, ``STATUS`` or ``LAYERS`` read back something
        other than a finished run gives, or the RAM saw a burst it cannot serve (held).
    mismatches : Out(16)
        Checked words that differ (saturating).
    timed_out : Out(1)
    """

    done: Out(1)
    passed: Out(1)
    failed: Out(1)
    mismatches: Out(16)
    timed_out: Out(1)

    def __init__(self, program, golden, *, run_limit=None):
        self._program = program
        self._config = program.config
        self._image, self._first, self._expected, self._mask = selftest_image(program,
                                                                              golden)
        if run_limit is None:
            run_limit = 4 * program.to_metadata()["cycles_per_frame_model"] + 10_000
        if not is_int(run_limit) or run_limit < 1:
            raise ValueError(f"run_limit must be a positive integer, not {run_limit!r}")
        self._run_limit = int(run_limit)
        super().__init__()

    program = property(lambda self: self._program)
    run_limit = property(lambda self: self._run_limit)
    checked_words = property(lambda self: len(self._expected))
    image_words = property(lambda self: len(self._image))

    @property
    def stall_limit(self):
        """Cycles without the run ending before the test fails (the run's limit)."""
        return self._run_limit

    @property
    def cycles(self):
        """An upper bound of the cycles from reset to the verdict when the test passes."""
        return self._run_limit + self.checked_words + 64

    def elaborate(self, platform):
        m = Module()
        c = self._config
        m.submodules.engine = engine = Engine(c)
        m.submodules.ram = ram = AxiRam(data_bits=c.data_bits, addr_bits=c.addr_bits,
                                        init=self._image)
        wiring.connect(m, engine.m_axi, ram.s_axi)
        n = len(self._expected)
        m.submodules.expected = expected = Memory(shape=c.data_bits, depth=n,
                                                  init=self._expected)
        m.submodules.mask = mask = Memory(shape=c.data_bits, depth=n, init=self._mask)
        e_rd, k_rd = expected.read_port(), mask.read_port()
        axil = engine.s_axil

        # The sequencer's register accesses: (write?, register, value).
        steps = [(1, "PROGRAM_LO", 0), (1, "PROGRAM_HI", 0), (1, "CTRL", 1),
                 (0, "STATUS", STATUS_DONE), (0, "LAYERS", len(self._program.layers))]
        wrong = Signal()                    # a register read back something else
        count = Signal(range(self._run_limit + 1))
        index = Signal(range(n + 1))        # next word to check
        pending = Signal(3)                 # words being read, compared and counted
        seen_busy = Signal()
        differs, ok_word = Signal(c.data_bits), Signal()

        with m.FSM():
            for i, (write, name, value) in enumerate(steps):
                following = f"access{i + 1}" if i + 1 < len(steps) else "check"
                with m.State(f"access{i}"):
                    address = REGISTERS[name]
                    if write:
                        m.d.comb += [axil.awaddr.eq(address), axil.wdata.eq(value),
                                     axil.wstrb.eq(0xF), axil.awvalid.eq(1),
                                     axil.wvalid.eq(1)]
                        with m.If(axil.awready):
                            m.next = f"response{i}"
                    else:
                        m.d.comb += [axil.araddr.eq(address), axil.arvalid.eq(1)]
                        with m.If(axil.arready):
                            m.next = f"response{i}"
                with m.State(f"response{i}"):
                    if write:
                        m.d.comb += axil.bready.eq(1)
                        with m.If(axil.bvalid):
                            m.next = "run" if name == "CTRL" else following
                    else:
                        m.d.comb += axil.rready.eq(1)
                        with m.If(axil.rvalid):
                            with m.If(axil.rdata != value):
                                m.d.sync += wrong.eq(1)
                            m.next = following
                if name == "CTRL":
                    # The run: from the start until busy, once risen, falls.
                    with m.State("run"):
                        m.d.sync += count.eq(count + 1)
                        with m.If(engine.busy):
                            m.d.sync += seen_busy.eq(1)
                        with m.If(seen_busy & ~engine.busy):
                            m.next = following
                        with m.Elif(count == self._run_limit):
                            m.d.sync += self.timed_out.eq(1)
                            m.next = "verdict"
            with m.State("check"):
                # A word is read from the RAM and both ROMs, compared bit by bit the cycle
                # after (the block RAMs' outputs meet one LUT), its bits ORed the cycle after
                # that and counted the next (the comparison off the counter's path).
                m.d.comb += [ram.check_en.eq(index < n),
                             ram.check_addr.eq(self._first + index),
                             e_rd.addr.eq(index), k_rd.addr.eq(index)]
                with m.If(index < n):
                    m.d.sync += index.eq(index + 1)
                m.d.sync += pending.eq(Cat(index < n, pending[:2]))
                with m.If(pending[2] & ~ok_word & (self.mismatches != 0xFFFF)):
                    m.d.sync += self.mismatches.eq(self.mismatches + 1)
                with m.If((index == n) & (pending == 0)):
                    m.next = "verdict"
            with m.State("verdict"):
                m.d.comb += self.done.eq(1)

        m.d.sync += [differs.eq((ram.check_data & k_rd.data) ^ e_rd.data),
                     ok_word.eq(differs == 0)]
        failed = self.timed_out | wrong | ram.error | (self.mismatches != 0)
        m.d.comb += [self.failed.eq(failed), self.passed.eq(self.done & ~failed)]
        return m
