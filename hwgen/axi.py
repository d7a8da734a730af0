"""AXI4 and AXI4-Lite interfaces, as seen from the manager.

Both architectures use them: the dataflow accelerator's board top takes AXI4-Lite register
accesses, and the layer-sequential engine is an AXI4 manager of DRAM with an AXI4-Lite
control port. Port names follow the AXI channel signals (``araddr``, ``rdata``, ...), so a
flattened port reads ``m_axi__araddr``.
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from quant.numerics import is_int

__all__ = ["AXILiteSignature", "AXI4Signature"]


class AXILiteSignature(wiring.Signature):
    """AXI4-Lite with 32-bit data, seen from the manager."""

    def __init__(self, addr_bits):
        if not is_int(addr_bits) or addr_bits < 7:
            raise ValueError(f"addr_bits must be an integer of at least 7 (the register map "
                             f"spans 0x00..0x3F), not {addr_bits!r}")
        self._addr_bits = addr_bits
        super().__init__({
            "awaddr": Out(addr_bits), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_bits), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })

    addr_bits = property(lambda self: self._addr_bits)

    def __eq__(self, other):
        return type(other) is type(self) and other.addr_bits == self.addr_bits

    def __repr__(self):
        return f"AXILiteSignature({self._addr_bits})"


class AXI4Signature(wiring.Signature):
    """AXI4 with ``data_bits`` data, ``addr_bits`` addresses and ``id_bits`` IDs, seen from the
    manager (INCR bursts; the optional signals a manager drives to constants are left out)."""

    def __init__(self, addr_bits, data_bits, id_bits=1):
        for name, value, least in (("addr_bits", addr_bits, 12), ("data_bits", data_bits, 32),
                                   ("id_bits", id_bits, 1)):
            if not is_int(value) or value < least:
                raise ValueError(f"{name} must be an integer of at least {least}, not "
                                 f"{value!r}")
        if data_bits & (data_bits - 1):
            raise ValueError(f"data_bits must be a power of two, not {data_bits}")
        self._addr_bits, self._data_bits, self._id_bits = addr_bits, data_bits, id_bits
        super().__init__({
            "awid": Out(id_bits), "awaddr": Out(addr_bits), "awlen": Out(8), "awsize": Out(3),
            "awburst": Out(2), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_bits), "wstrb": Out(data_bits // 8), "wlast": Out(1),
            "wvalid": Out(1), "wready": In(1),
            "bid": In(id_bits), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "arid": Out(id_bits), "araddr": Out(addr_bits), "arlen": Out(8), "arsize": Out(3),
            "arburst": Out(2), "arvalid": Out(1), "arready": In(1),
            "rid": In(id_bits), "rdata": In(data_bits), "rresp": In(2), "rlast": In(1),
            "rvalid": In(1), "rready": Out(1),
        })

    addr_bits = property(lambda self: self._addr_bits)
    data_bits = property(lambda self: self._data_bits)
    id_bits = property(lambda self: self._id_bits)

    def __eq__(self, other):
        return type(other) is type(self) and (other.addr_bits, other.data_bits,
                                              other.id_bits) == (self.addr_bits, self.data_bits,
                                                                 self.id_bits)

    def __repr__(self):
        return f"AXI4Signature({self._addr_bits}, {self._data_bits}, {self._id_bits})"
