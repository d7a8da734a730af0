"""The engine's AXI4-Lite registers: start, status, the program's address and counters."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..axi import AXILiteSignature

__all__ = ["REGISTERS", "MAGIC", "VERSION", "ERRORS", "Control", "config_word"]

#: ``ID``: "HWGE" in ASCII.
MAGIC = 0x48574745
#: ``VERSION``: major in bits 31..16, minor in 15..0.
VERSION = 0x00010001
#: Byte offsets of the registers.
REGISTERS = {"ID": 0x00, "VERSION": 0x04, "CTRL": 0x08, "STATUS": 0x0C, "PROGRAM_LO": 0x10,
             "PROGRAM_HI": 0x14, "CYCLES_LO": 0x18, "CYCLES_HI": 0x1C, "LAYERS": 0x20,
             "ERROR": 0x24, "CONFIG": 0x28, "PLANE": 0x2C}
#: ``ERROR`` codes.
ERRORS = {1: "a descriptor has an unknown op",
          2: "PLANE is 0, or PROGRAM or PLANE is not a multiple of 4 KiB (several ports)",
          3: "a DRAM read or write was answered with an error (SLVERR or DECERR): the run "
             "stopped before the next layer; LAYERS includes the layer the error came in "
             "(its output is not to be trusted), not one whose descriptor read drew it"}


def config_word(config):
    """``CONFIG`` of the engine ``config``: ``tm`` in bits 7..0, ``tn`` in 15..8, bus bytes in
    23..16, AXI4 ports less one in 31..24."""
    return config.tm | (config.tn << 8) | (config.data_bytes << 16) | ((config.ports - 1) << 24)


class Control(wiring.Component):
    """The register file behind ``s_axil``.

    ``CTRL`` bit 0 written 1 starts the program of the image at ``PROGRAM_HI:PROGRAM_LO`` (a
    64-byte aligned address; every address in the image is an offset from it); ``STATUS`` bit 0
    is busy, bit 1 done (until the next start), bit 2 error (``ERROR`` says which);
    ``CYCLES`` counts the cycles of the last run (held when it ends), ``LAYERS`` the layers
    it completed; ``CONFIG`` describes the engine (:func:`config_word`). An engine of several
    AXI4 ports has ``PLANE``, the bytes from one plane of the image to the next
    (:mod:`hwgen.engine.ports`; a multiple of 4 KiB, as is ``PROGRAM`` then); on one port it
    reads 0 and ignores writes.

    Members
    -------
    s_axil : In(AXILiteSignature(8))
    start : Out(1)
        One cycle, when a run starts.
    program : Out(64)
    plane : Out(32)
        Only with several ports.
    busy, done, error : In(1)
    error_code : In(8)
    layers : In(16)
    """

    def __init__(self, *, config_word, ports=1):
        self._config_word, self._ports = config_word, ports
        super().__init__({
            "s_axil": In(AXILiteSignature(8)),
            "start": Out(1), "program": Out(64),
            **({"plane": Out(32)} if ports > 1 else {}),
            "busy": In(1), "done": In(1), "error": In(1), "error_code": In(8),
            "layers": In(16),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.s_axil
        cycles = Signal(64)
        with m.If(self.start):
            m.d.sync += cycles.eq(0)
        with m.Elif(self.busy):
            m.d.sync += cycles.eq(cycles + 1)

        # Writes: take the address and the data together, answer once.
        bvalid = Signal()
        m.d.comb += [bus.awready.eq(bus.awvalid & bus.wvalid & ~bvalid),
                     bus.wready.eq(bus.awvalid & bus.wvalid & ~bvalid),
                     bus.bvalid.eq(bvalid), bus.bresp.eq(0)]
        with m.If(bvalid & bus.bready):
            m.d.sync += bvalid.eq(0)
        with m.If(bus.awready):
            m.d.sync += bvalid.eq(1)
            with m.Switch(bus.awaddr[2:6]):
                with m.Case(REGISTERS["CTRL"] >> 2):
                    m.d.comb += self.start.eq(bus.wdata[0] & ~self.busy)
                with m.Case(REGISTERS["PROGRAM_LO"] >> 2):
                    m.d.sync += self.program[:32].eq(bus.wdata)
                with m.Case(REGISTERS["PROGRAM_HI"] >> 2):
                    m.d.sync += self.program[32:].eq(bus.wdata)
                if self._ports > 1:
                    with m.Case(REGISTERS["PLANE"] >> 2):
                        m.d.sync += self.plane.eq(bus.wdata)

        # Reads: one at a time.
        rvalid = Signal()
        rdata = Signal(32)
        m.d.comb += [bus.arready.eq(~rvalid), bus.rvalid.eq(rvalid), bus.rdata.eq(rdata),
                     bus.rresp.eq(0)]
        with m.If(rvalid & bus.rready):
            m.d.sync += rvalid.eq(0)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += rvalid.eq(1)
            values = {"ID": MAGIC, "VERSION": VERSION, "CTRL": 0,
                      "STATUS": self.busy | (self.done << 1) | (self.error << 2),
                      "PROGRAM_LO": self.program[:32], "PROGRAM_HI": self.program[32:],
                      "CYCLES_LO": cycles[:32], "CYCLES_HI": cycles[32:],
                      "LAYERS": self.layers, "ERROR": self.error_code,
                      "CONFIG": self._config_word,
                      **({"PLANE": self.plane} if self._ports > 1 else {})}
            with m.Switch(bus.araddr[2:6]):
                for name, value in values.items():
                    with m.Case(REGISTERS[name] >> 2):
                        m.d.sync += rdata.eq(value)
                with m.Default():
                    m.d.sync += rdata.eq(0)
        return m
