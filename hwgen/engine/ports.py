"""Several AXI4 ports for one engine bus: each bus word cut into lanes, one lane per port.

A processor's high-performance port is narrower than the bus a large engine needs (a Zynq
UltraScale+ HP port moves 128 bits a cycle, a 64x64 engine wants 512), and it has several.
:class:`Planes` spreads the engine's bus over ``ports`` of them without reordering anything:
lane ``k`` of every bus word (bits ``k * w .. (k + 1) * w - 1`` of a ``ports * w``-bit word)
lives in plane ``k`` of the DRAM image, and every burst goes to all ports at once, the same
length, at the same offset in each plane. So the image is stored as ``ports`` planes of
``1 / ports`` of its bytes each (:class:`hwgen.engine.layout.ImagePlanes`), and a port sees
ordinary INCR bursts of its own width::

    port k's address = PROGRAM + k * PLANE + offset / ports

where ``offset`` is the engine's address in the image. A burst never crosses 4 KiB in the
image, so with ``PROGRAM`` and ``PLANE`` multiples of 4 KiB no port's burst does either.

The ports move in lockstep. An address or a write beat is offered to every port and taken
from the engine once every port has taken it (each port's ``valid`` drops once it has, so no
``valid`` waits on a ``ready``); a read beat reaches the engine when every port has one, the
others held meanwhile. Write responses are counted per port as they come (``bready`` stays
high) and one reaches the engine when every port has answered. With memories that answer
alike this adds no cycle: the engine's cycle model (:mod:`hwgen.engine.model`) holds as on
one port.

Holding one port's read data while another's is late is safe where each port buffers what
it has asked for: a Zynq's high-performance port issues a read to the DDR only when its own
128-entry read data FIFO has room for it (UG1085, AXI FIFO interface), so a held port never
blocks the path another port's data takes.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..axi import AXI4Signature
from .dma import MAX_OUTSTANDING

__all__ = ["Planes", "port_names"]

#: Write responses a port may have given that the engine has not yet had (the engine has
#: at most :data:`hwgen.engine.dma.MAX_OUTSTANDING` writes in flight).
_RESPONSES = MAX_OUTSTANDING


def port_names(ports):
    """The engine's AXI4 member names: ``m_axi`` alone, or ``m_axi0`` ... for several."""
    return ["m_axi"] if ports == 1 else [f"m_axi{k}" for k in range(ports)]


class Planes(wiring.Component):
    """The engine's ``data_bits`` bus (addresses are offsets in the image) on ``ports`` AXI4
    ports of ``data_bits / ports`` bits.

    Members
    -------
    s_axi : In(AXI4Signature(addr_bits, data_bits))
    m_axi0, m_axi1, ... : Out(AXI4Signature(addr_bits, data_bits // ports))
    image : In(addr_bits)
        Plane 0's address (``PROGRAM``).
    plane : In(32)
        Bytes from one plane to the next (``PLANE``).
    """

    def __init__(self, *, addr_bits, data_bits, ports):
        if ports < 2 or ports & (ports - 1) or data_bits // ports < 32:
            raise ValueError(f"ports must be a power of two of at least 2, with lanes of at "
                             f"least 32 bits, not {ports} on a {data_bits}-bit bus")
        self._addr_bits, self._data_bits, self._ports = addr_bits, data_bits, ports
        lane = data_bits // ports
        super().__init__({"s_axi": In(AXI4Signature(addr_bits, data_bits)),
                          "image": In(addr_bits), "plane": In(32),
                          **{name: Out(AXI4Signature(addr_bits, lane))
                             for name in port_names(ports)}})

    def elaborate(self, platform):
        m = Module()
        n = self._ports
        lane = self._data_bits // n
        shift = (n - 1).bit_length()
        bus = self.s_axi
        ports = [getattr(self, name) for name in port_names(n)]

        # Each plane's address, formed from the registers ahead of any burst (by shifts and
        # adds: a product by a constant would take a DSP slice); plane 0's is the image's.
        origins = [self.image]
        for k in range(1, n):
            origin = Signal(self._addr_bits, name=f"origin{k}")
            m.d.sync += origin.eq(sum((self.plane << j for j in range(k.bit_length())
                                       if k >> j & 1), self.image))
            origins.append(origin)

        def offer(channel, payload):
            """Offer the engine's ``channel`` (``"ar"``, ``"aw"`` or ``"w"``) to every port;
            the engine's ``ready`` once each port has taken it or takes it now."""
            valid, ready = getattr(bus, f"{channel}valid"), getattr(bus, f"{channel}ready")
            taken = Signal(n, name=f"{channel}_taken")
            done = []
            for k, port in enumerate(ports):
                p_valid = getattr(port, f"{channel}valid")
                p_ready = getattr(port, f"{channel}ready")
                m.d.comb += [p_valid.eq(valid & ~taken[k]), *payload(k, port)]
                done.append(taken[k] | p_ready)
            m.d.comb += ready.eq(Cat(*done).all())
            with m.If(valid & ready):
                m.d.sync += taken.eq(0)
            with m.Else():
                m.d.sync += taken.eq(taken | Cat(*(getattr(p, f"{channel}valid") &
                                                   getattr(p, f"{channel}ready") for p in ports)))

        def address(kind):
            def payload(k, port):
                return [getattr(port, f"{kind}addr").eq(origins[k] +
                                                         (getattr(bus, f"{kind}addr") >> shift)),
                        getattr(port, f"{kind}len").eq(getattr(bus, f"{kind}len")),
                        getattr(port, f"{kind}size").eq((lane // 8 - 1).bit_length()),
                        getattr(port, f"{kind}burst").eq(getattr(bus, f"{kind}burst")),
                        getattr(port, f"{kind}id").eq(getattr(bus, f"{kind}id"))]
            return payload

        offer("ar", address("ar"))
        offer("aw", address("aw"))
        offer("w", lambda k, port: [port.wdata.eq(bus.wdata[k * lane:(k + 1) * lane]),
                                    port.wstrb.eq(bus.wstrb[k * lane // 8:(k + 1) * lane // 8]),
                                    port.wlast.eq(bus.wlast)])

        # Read beats: to the engine when every port has one.
        r_all = Cat(*(p.rvalid for p in ports)).all()
        for port in ports:
            m.d.comb += port.rready.eq(bus.rready & r_all)
        m.d.comb += [bus.rvalid.eq(r_all), bus.rdata.eq(Cat(*(p.rdata for p in ports))),
                     bus.rlast.eq(ports[0].rlast), bus.rid.eq(ports[0].rid),
                     bus.rresp.eq(_worst(p.rresp for p in ports))]

        # Write responses: taken from every port as they come, counted; one to the engine
        # once every port has given one, with the worst code given since the last (so an
        # error on any port reaches the engine, which stops on it).
        counts = [Signal(range(_RESPONSES + 1), name=f"responses{k}") for k in range(n)]
        b_all = Cat(*((count != 0) | port.bvalid for count, port in zip(counts, ports))).all()
        given = b_all & bus.bready
        for count, port in zip(counts, ports):
            m.d.comb += port.bready.eq(1)
            m.d.sync += count.eq(count + port.bvalid - given)
        sticky = Signal(2)
        worst = _worst([sticky, *(Mux(p.bvalid, p.bresp, 0) for p in ports)])
        m.d.comb += [bus.bvalid.eq(b_all), bus.bid.eq(0), bus.bresp.eq(worst)]
        m.d.sync += sticky.eq(Mux(given, 0, worst))
        return m


def _worst(codes):
    """The most severe of AXI response codes (DECERR above SLVERR above EXOKAY above OKAY:
    their values' order)."""
    codes = list(codes)
    worst = codes[0]
    for code in codes[1:]:
        worst = Mux(code > worst, code, worst)
    return worst
