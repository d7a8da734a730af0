"""AXI board top: the accelerator behind AXI4-Stream ports and an AXI4-Lite register file.

:class:`AXIAccelerator` wraps an :class:`hwgen.Accelerator`:

* ``s_axis`` (AXI4-Stream slave) takes input beats. TDATA carries one accelerator input beat
  in its low bits (element 0 lowest, as :class:`quant.stream_format.StreamFormat` packs it;
  :meth:`AXIAccelerator.description` gives each stream's format), zero padded to
  ``in_tdata_bits``; TLAST is expected on the last beat of every ``PACKET_FRAMES``-th frame
  (every frame by default) and checked: a TLAST elsewhere, or a missing one, sets a sticky
  error flag. Frames are delimited by beat count, not by TLAST.
* ``m_axis`` (AXI4-Stream master) sends output beats the same way, with TLAST on the last
  beat of every ``PACKET_FRAMES``-th output frame.
* ``s_axi`` (AXI4-Lite slave, 32-bit data) holds the registers in :data:`REGISTERS`.

:func:`axi_verilog` writes the Verilog of the top and of a thin wrapper module whose ports
use the Xilinx names (``aclk``, ``aresetn``, ``s_axis_tdata``, ``s_axi_awaddr``, ...) and
carry the interface attributes Vivado reads when the module is placed in a block design.
"""

import json
import re
import zlib

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from hwgen.axi import AXILiteSignature
from hwgen.verilog import to_verilog
from quant.numerics import is_int

__all__ = ["MAGIC", "REGISTER_MAP_VERSION", "REGISTERS", "ERROR_BITS", "AXIStreamSignature",
           "AXILiteSignature", "AXIAccelerator", "design_id", "tdata_bits_for", "axi_verilog"]

#: Value of the ``ID`` register: "HWGA" in ASCII.
MAGIC = 0x48574741
#: Value of the ``VERSION`` register: major in bits 31..16, minor in bits 15..0.
REGISTER_MAP_VERSION = 0x0001_0000

#: Byte offsets of the 32-bit registers. RO = read only, W1C = write 1 to clear.
REGISTERS = {
    "ID": 0x00,             # RO  MAGIC
    "VERSION": 0x04,        # RO  register map version
    "DESIGN_ID": 0x08,      # RO  CRC-32 of the compiled model and folding (design_id)
    "IN_BEATS": 0x0C,       # RO  input beats per frame
    "OUT_BEATS": 0x10,      # RO  output beats per frame
    "FRAMES": 0x14,         # RO  output frames completed
    "LAST_CYCLES": 0x18,    # RO  cycles from the first input beat to the last output beat of
                            #     the most recent frame
    "INTERVAL": 0x1C,       # RO  cycles between the last two output frame completions
    "CYCLES": 0x20,         # RO  free-running clock cycle counter
    "ERRORS": 0x24,         # W1C sticky error flags (ERROR_BITS)
    "CONTROL": 0x28,        # WO  bit 0: clear FRAMES, IN_FRAMES, LAST_CYCLES, INTERVAL, ERRORS
    "IN_FRAMES": 0x2C,      # RO  input frames accepted (first beat taken)
    "PACKET_FRAMES": 0x30,  # RW  frames per TLAST packet on both streams (0 counts as 1)
}

#: Bits of the ``ERRORS`` register.
ERROR_BITS = {
    "tlast_early": 0,    # input TLAST on a beat that does not end a packet
    "tlast_missing": 1,  # input beat that ends a packet without TLAST
}


def _check_bits(name, value, minimum):
    if not is_int(value):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < minimum or value % 8:
        raise ValueError(f"{name} must be a multiple of 8 of at least {minimum}, not {value}")
    return int(value)


def tdata_bits_for(beat_bits, *, power_of_two=False):
    """TDATA width for a beat of ``beat_bits``: the next multiple of 8 (or power of two >= 8)."""
    if power_of_two:
        width = 8
        while width < beat_bits:
            width *= 2
        return width
    return -(-beat_bits // 8) * 8


class AXIStreamSignature(wiring.Signature):
    """AXI4-Stream with TDATA, TVALID, TREADY and TLAST, seen from the source."""

    def __init__(self, data_bits):
        self._data_bits = _check_bits("data_bits", data_bits, 8)
        super().__init__({"tdata": Out(data_bits), "tvalid": Out(1), "tlast": Out(1),
                          "tready": In(1)})

    data_bits = property(lambda self: self._data_bits)

    def __eq__(self, other):
        return type(other) is type(self) and other.data_bits == self.data_bits

    def __repr__(self):
        return f"AXIStreamSignature({self._data_bits})"


def _tensor_bytes(tensor):
    tensor = np.asarray(tensor)
    kind = "<i8" if np.issubdtype(tensor.dtype, np.integer) else "<f8"
    return np.ascontiguousarray(tensor, dtype=kind).tobytes()


def design_id(accelerator):
    """CRC-32 of what the hardware computes: input spec, layers, tensors and folding.

    The driver compares it with the ``DESIGN_ID`` register to catch a bitstream built from
    another model.
    """
    graph = accelerator.graph
    crc = zlib.crc32(json.dumps({"input": graph.input.to_json(),
                                 "folding": sorted(accelerator.folding.items())},
                                sort_keys=True, default=str).encode())
    for node in graph.nodes:
        crc = zlib.crc32(json.dumps([node.name, node.op, node.attrs], sort_keys=True,
                                    default=str).encode(), crc)
        for key in sorted(node.tensors):
            crc = zlib.crc32(_tensor_bytes(node.tensors[key]), zlib.crc32(key.encode(), crc))
    return crc & 0xFFFF_FFFF


class AXIAccelerator(wiring.Component):
    """An :class:`hwgen.Accelerator` with AXI4-Stream ports and an AXI4-Lite register file.

    Parameters
    ----------
    accelerator : hwgen.Accelerator
    in_tdata_bits, out_tdata_bits : int, optional
        TDATA widths, multiples of 8 at least as wide as a beat. By default the beat width
        rounded up to a multiple of 8.
    addr_bits : int
        AXI4-Lite address width (12: a 4 KiB window).
    frames_in_flight : int, optional
        Depth of the queue of frame start times behind ``LAST_CYCLES``; the input is held
        at a frame start while it is full. By default enough for every frame the pipeline
        can hold.

    Members
    -------
    s_axis : In(AXIStreamSignature(in_tdata_bits))
    m_axis : Out(AXIStreamSignature(out_tdata_bits))
    s_axi : In(AXILiteSignature(addr_bits))
    status : Out(4)
        For LEDs: bit 0 blinks (cycle counter bit 26), bit 1 frames in flight, bit 2 an error
        flag is set, bit 3 at least one frame done.
    """

    def __init__(self, accelerator, *, in_tdata_bits=None, out_tdata_bits=None, addr_bits=12,
                 frames_in_flight=None):
        from hwgen import Accelerator
        if not isinstance(accelerator, Accelerator):
            raise TypeError(f"accelerator must be an hwgen.Accelerator, not {accelerator!r}")
        self._acc = accelerator
        self._in_beat_bits = accelerator.i_stream.payload.shape().size
        self._out_beat_bits = accelerator.o_stream.payload.shape().size
        if in_tdata_bits is None:
            in_tdata_bits = tdata_bits_for(self._in_beat_bits)
        if out_tdata_bits is None:
            out_tdata_bits = tdata_bits_for(self._out_beat_bits)
        self._in_tdata_bits = _check_bits("in_tdata_bits", in_tdata_bits, self._in_beat_bits)
        self._out_tdata_bits = _check_bits("out_tdata_bits", out_tdata_bits,
                                           self._out_beat_bits)
        if frames_in_flight is None:
            frames_in_flight = 1 << (2 * len(accelerator.blocks) + 4 - 1).bit_length()
        if not is_int(frames_in_flight) \
                or frames_in_flight < 2:
            raise ValueError(f"frames_in_flight must be an integer of at least 2, not "
                             f"{frames_in_flight!r}")
        self._frames_in_flight = frames_in_flight
        self._design_id = design_id(accelerator)
        super().__init__({
            "s_axis": In(AXIStreamSignature(self._in_tdata_bits)),
            "m_axis": Out(AXIStreamSignature(self._out_tdata_bits)),
            "s_axi": In(AXILiteSignature(addr_bits)),
            "status": Out(4),
        })

    accelerator = property(lambda self: self._acc)
    in_tdata_bits = property(lambda self: self._in_tdata_bits)
    out_tdata_bits = property(lambda self: self._out_tdata_bits)
    in_beat_bits = property(lambda self: self._in_beat_bits)
    out_beat_bits = property(lambda self: self._out_beat_bits)
    addr_bits = property(lambda self: self.s_axi.signature.addr_bits)
    frames_in_flight = property(lambda self: self._frames_in_flight)
    design_id = property(lambda self: self._design_id)

    def description(self):
        """What a host needs to drive this top: streams, widths, registers (JSON-ready).

        ``input`` and ``output`` are the streams' formats as
        :meth:`quant.stream_format.StreamFormat.to_metadata` writes them (shape, order,
        elements and beats, element type), with ``beat_bits`` and ``tdata_bits``.
        """
        acc = self._acc
        in_format, out_format = acc.in_format, acc.out_format
        return {
            "design_id": self._design_id,
            "magic": MAGIC,
            "register_map_version": REGISTER_MAP_VERSION,
            "registers": dict(REGISTERS),
            "error_bits": dict(ERROR_BITS),
            "input": in_format.to_metadata() | {"beat_bits": in_format.beat_bits,
                                                "tdata_bits": self._in_tdata_bits},
            "output": out_format.to_metadata() | {"beat_bits": out_format.beat_bits,
                                                  "tdata_bits": self._out_tdata_bits},
            "cycles_per_frame": acc.cycles_per_frame,
            "latency": acc.latency,
            "folding": {k: list(v) for k, v in acc.folding.items()},
        }

    def elaborate(self, platform):
        m = Module()
        acc = self._acc
        m.submodules.accelerator = acc
        m.submodules.starts = starts = fifo.SyncFIFOBuffered(width=32,
                                                             depth=self._frames_in_flight)
        s_axis, m_axis, bus = self.s_axis, self.m_axis, self.s_axi

        cycles = Signal(32)
        m.d.sync += cycles.eq(cycles + 1)

        packet_frames = Signal(32, init=1)
        frames, in_frames = Signal(32), Signal(32)
        last_cycles, interval, last_end = Signal(32), Signal(32), Signal(32)
        errors = Signal(len(ERROR_BITS))

        # Input: beats pass straight through; a frame may start only while its start time
        # can be queued.
        in_beats, out_beats = acc.in_beats, acc.out_beats
        in_beat = Signal(range(max(in_beats, 2)))
        in_frame = Signal(32)  # frames of the current packet already taken
        frame_start = in_beat == 0
        gate = ~frame_start | starts.w_rdy
        m.d.comb += [
            acc.i_stream.payload.eq(s_axis.tdata[:self._in_beat_bits]),
            acc.i_stream.valid.eq(s_axis.tvalid & gate),
            s_axis.tready.eq(acc.i_stream.ready & gate),
        ]
        in_fire = s_axis.tvalid & s_axis.tready
        in_frame_end = in_beat == in_beats - 1
        in_packet_end = in_frame_end & (in_frame + 1 >= packet_frames)
        m.d.comb += [starts.w_en.eq(in_fire & frame_start), starts.w_data.eq(cycles)]
        with m.If(in_fire):
            m.d.sync += in_beat.eq(Mux(in_frame_end, 0, in_beat + 1))
            with m.If(frame_start):
                m.d.sync += in_frames.eq(in_frames + 1)
            with m.If(in_frame_end):
                m.d.sync += in_frame.eq(Mux(in_packet_end, 0, in_frame + 1))
            with m.If(s_axis.tlast & ~in_packet_end):
                m.d.sync += errors[ERROR_BITS["tlast_early"]].eq(1)
            with m.If(~s_axis.tlast & in_packet_end):
                m.d.sync += errors[ERROR_BITS["tlast_missing"]].eq(1)

        # Output: TLAST on the last beat of a packet; frame statistics at each frame's end.
        out_beat = Signal(range(max(out_beats, 2)))
        out_frame = Signal(32)
        out_frame_end = out_beat == out_beats - 1
        out_packet_end = out_frame_end & (out_frame + 1 >= packet_frames)
        m.d.comb += [
            m_axis.tdata.eq(acc.o_stream.payload.as_value()),
            m_axis.tvalid.eq(acc.o_stream.valid),
            m_axis.tlast.eq(out_packet_end),
            acc.o_stream.ready.eq(m_axis.tready),
        ]
        out_fire = m_axis.tvalid & m_axis.tready
        m.d.comb += starts.r_en.eq(out_fire & out_frame_end)
        with m.If(out_fire):
            m.d.sync += out_beat.eq(Mux(out_frame_end, 0, out_beat + 1))
            with m.If(out_frame_end):
                m.d.sync += [
                    out_frame.eq(Mux(out_packet_end, 0, out_frame + 1)),
                    frames.eq(frames + 1),
                    last_cycles.eq(cycles - starts.r_data),
                    interval.eq(cycles - last_end),
                    last_end.eq(cycles),
                ]

        # AXI4-Lite: a write is taken when address and data are both valid; a read answers
        # one cycle after its address. Responses are always OKAY; unmapped addresses read 0.
        word = Signal(self.addr_bits - 2)
        write = Signal()
        m.d.comb += [
            write.eq(bus.awvalid & bus.wvalid & ~bus.bvalid),
            bus.awready.eq(write),
            bus.wready.eq(write),
            bus.arready.eq(~bus.rvalid),
            bus.bresp.eq(0),
            bus.rresp.eq(0),
            word.eq(bus.awaddr[2:]),
        ]
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)

        readable = {
            "ID": Const(MAGIC, 32), "VERSION": Const(REGISTER_MAP_VERSION, 32),
            "DESIGN_ID": Const(self._design_id, 32), "IN_BEATS": Const(in_beats, 32),
            "OUT_BEATS": Const(out_beats, 32), "FRAMES": frames, "LAST_CYCLES": last_cycles,
            "INTERVAL": interval, "CYCLES": cycles, "ERRORS": errors, "IN_FRAMES": in_frames,
            "PACKET_FRAMES": packet_frames,
        }
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += bus.rvalid.eq(1)
            with m.Switch(bus.araddr[2:]):
                for name, value in readable.items():
                    with m.Case(REGISTERS[name] >> 2):
                        m.d.sync += bus.rdata.eq(value)
                with m.Default():
                    m.d.sync += bus.rdata.eq(0)

        mask = Cat(*(bus.wstrb[i].replicate(8) for i in range(4)))
        data = bus.wdata & mask
        # Register writes come last so that a clear wins over a count in the same cycle.
        with m.If(write):
            m.d.sync += bus.bvalid.eq(1)
            with m.Switch(word):
                with m.Case(REGISTERS["PACKET_FRAMES"] >> 2):
                    m.d.sync += packet_frames.eq((packet_frames & ~mask) | data)
                with m.Case(REGISTERS["ERRORS"] >> 2):
                    m.d.sync += errors.eq(errors & ~data[:len(errors)])
                with m.Case(REGISTERS["CONTROL"] >> 2):
                    with m.If(data[0]):
                        m.d.sync += [frames.eq(0), in_frames.eq(0), last_cycles.eq(0),
                                     interval.eq(0), errors.eq(0)]

        m.d.comb += self.status.eq(Cat(cycles[26], starts.r_rdy, errors.any(), frames != 0))
        return m


def _plain_module_names(text, top):
    """Give every module a plain Verilog name: ``\\top.fc1`` becomes ``top__fc1``.

    Amaranth names submodules after their hierarchy with escaped identifiers; some vendor
    flows (Vivado module references) handle plain names only.
    """
    escaped = set(re.findall(r"^module (\\\S+) ", text, re.M))
    for name in sorted(escaped, key=len, reverse=True):
        plain = re.sub(r"\W", "__", name[1:])
        text = text.replace(f"{name} ", f"{plain} ")
    if re.search(r"^module \\", text, re.M):
        raise RuntimeError(f"module names in the Verilog of {top} could not be made plain")
    return text


_WRAPPER = """\
// {name}: {core} with Xilinx AXI port names and interface attributes.
// Streams: {in_bits}-bit input TDATA ({in_beats} beats per frame), {out_bits}-bit output TDATA
// ({out_beats} beats per frame). Registers: see boards/axi.py (REGISTERS).
module {name} (
  (* X_INTERFACE_INFO = "xilinx.com:signal:clock:1.0 aclk CLK" *)
  (* X_INTERFACE_PARAMETER = "ASSOCIATED_BUSIF s_axis:m_axis:s_axi, ASSOCIATED_RESET aresetn" *)
  input  wire aclk,
  (* X_INTERFACE_INFO = "xilinx.com:signal:reset:1.0 aresetn RST" *)
  (* X_INTERFACE_PARAMETER = "POLARITY ACTIVE_LOW" *)
  input  wire aresetn,

  (* X_INTERFACE_INFO = "xilinx.com:interface:axis:1.0 s_axis TDATA" *)
  (* X_INTERFACE_PARAMETER = "HAS_TKEEP 1, HAS_TLAST 1, HAS_TSTRB 0, HAS_TREADY 1, TUSER_WIDTH 0, TDATA_NUM_BYTES {in_bytes}" *)
  input  wire [{in_msb}:0] s_axis_tdata,
  (* X_INTERFACE_INFO = "xilinx.com:interface:axis:1.0 s_axis TKEEP" *)
  input  wire [{in_keep_msb}:0] s_axis_tkeep,
  (* X_INTERFACE_INFO = "xilinx.com:interface:axis:1.0 s_axis TVALID" *)
  input  wire s_axis_tvalid,
  (* X_INTERFACE_INFO = "xilinx.com:interface:axis:1.0 s_axis TREADY" *)
  output wire s_axis_tready,
  (* X_INTERFACE_INFO = "xilinx.com:interface:axis:1.0 s_axis TLAST" *)
  input  wire s_axis_tlast,

  (* X_INTERFACE_INFO = "xilinx.com:interface:axis:1.0 m_axis TDATA" *)
  (* X_INTERFACE_PARAMETER = "HAS_TKEEP 1, HAS_TLAST 1, HAS_TSTRB 0, HAS_TREADY 1, TUSER_WIDTH 0, TDATA_NUM_BYTES {out_bytes}" *)
  output wire [{out_msb}:0] m_axis_tdata,
  (* X_INTERFACE_INFO = "xilinx.com:interface:axis:1.0 m_axis TKEEP" *)
  output wire [{out_keep_msb}:0] m_axis_tkeep,
  (* X_INTERFACE_INFO = "xilinx.com:interface:axis:1.0 m_axis TVALID" *)
  output wire m_axis_tvalid,
  (* X_INTERFACE_INFO = "xilinx.com:interface:axis:1.0 m_axis TREADY" *)
  input  wire m_axis_tready,
  (* X_INTERFACE_INFO = "xilinx.com:interface:axis:1.0 m_axis TLAST" *)
  output wire m_axis_tlast,

  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi AWADDR" *)
  (* X_INTERFACE_PARAMETER = "PROTOCOL AXI4LITE, DATA_WIDTH 32, ADDR_WIDTH {addr_bits}, READ_WRITE_MODE READ_WRITE, HAS_BURST 0, HAS_LOCK 0, HAS_CACHE 0, HAS_QOS 0, HAS_REGION 0, SUPPORTS_NARROW_BURST 0, MAX_BURST_LENGTH 1" *)
  input  wire [{addr_msb}:0] s_axi_awaddr,
  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi AWPROT" *)
  input  wire [2:0] s_axi_awprot,
  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi AWVALID" *)
  input  wire s_axi_awvalid,
  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi AWREADY" *)
  output wire s_axi_awready,
  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi WDATA" *)
  input  wire [31:0] s_axi_wdata,
  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi WSTRB" *)
  input  wire [3:0] s_axi_wstrb,
  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi WVALID" *)
  input  wire s_axi_wvalid,
  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi WREADY" *)
  output wire s_axi_wready,
  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi BRESP" *)
  output wire [1:0] s_axi_bresp,
  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi BVALID" *)
  output wire s_axi_bvalid,
  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi BREADY" *)
  input  wire s_axi_bready,
  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi ARADDR" *)
  input  wire [{addr_msb}:0] s_axi_araddr,
  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi ARPROT" *)
  input  wire [2:0] s_axi_arprot,
  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi ARVALID" *)
  input  wire s_axi_arvalid,
  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi ARREADY" *)
  output wire s_axi_arready,
  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi RDATA" *)
  output wire [31:0] s_axi_rdata,
  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi RRESP" *)
  output wire [1:0] s_axi_rresp,
  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi RVALID" *)
  output wire s_axi_rvalid,
  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 s_axi RREADY" *)
  input  wire s_axi_rready,

  output wire [3:0] status
);
  // Every beat is whole: TKEEP is all ones out and not looked at in.
  assign m_axis_tkeep = {{{out_bytes}{{1'b1}}}};

  {core} core (
    .clk(aclk),
    .rst(~aresetn),
    .s_axis__tdata(s_axis_tdata), .s_axis__tvalid(s_axis_tvalid),
    .s_axis__tready(s_axis_tready), .s_axis__tlast(s_axis_tlast),
    .m_axis__tdata(m_axis_tdata), .m_axis__tvalid(m_axis_tvalid),
    .m_axis__tready(m_axis_tready), .m_axis__tlast(m_axis_tlast),
    .s_axi__awaddr(s_axi_awaddr), .s_axi__awprot(s_axi_awprot),
    .s_axi__awvalid(s_axi_awvalid), .s_axi__awready(s_axi_awready),
    .s_axi__wdata(s_axi_wdata), .s_axi__wstrb(s_axi_wstrb),
    .s_axi__wvalid(s_axi_wvalid), .s_axi__wready(s_axi_wready),
    .s_axi__bresp(s_axi_bresp), .s_axi__bvalid(s_axi_bvalid), .s_axi__bready(s_axi_bready),
    .s_axi__araddr(s_axi_araddr), .s_axi__arprot(s_axi_arprot),
    .s_axi__arvalid(s_axi_arvalid), .s_axi__arready(s_axi_arready),
    .s_axi__rdata(s_axi_rdata), .s_axi__rresp(s_axi_rresp),
    .s_axi__rvalid(s_axi_rvalid), .s_axi__rready(s_axi_rready),
    .status(status)
  );
endmodule
"""


def axi_verilog(top, name="hwgen_axi", *, platform=None):
    """Verilog for an :class:`AXIAccelerator`: ``{file name: text}`` for two files.

    ``<name>_core.v`` holds the design (module ``<name>_core`` and its submodules, every
    combinational process lowered to continuous assignments, see
    :func:`hwgen.verilog.to_verilog`), elaborated for ``platform`` if one is given;
    ``<name>.v`` holds the wrapper module ``<name>`` with the Xilinx port names and interface
    attributes.
    """
    if not isinstance(top, AXIAccelerator):
        raise TypeError(f"top must be an AXIAccelerator, not {top!r}")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Verilog module name, not {name!r}")
    core = f"{name}_core"
    core_text = to_verilog(top, name=core, platform=platform)
    core_text = _plain_module_names(core_text, core)
    # The core is not the top of a design that includes it (Vivado reads this attribute).
    core_text = re.sub(r"^\(\* top = +1 +\*\)\n", "", core_text, flags=re.M)
    wrapper = _WRAPPER.format(
        name=name, core=core, in_bits=top.in_tdata_bits, out_bits=top.out_tdata_bits,
        in_beats=top.accelerator.in_beats, out_beats=top.accelerator.out_beats,
        in_msb=top.in_tdata_bits - 1, out_msb=top.out_tdata_bits - 1,
        in_bytes=top.in_tdata_bits // 8, out_bytes=top.out_tdata_bits // 8,
        out_keep_msb=top.out_tdata_bits // 8 - 1, in_keep_msb=top.in_tdata_bits // 8 - 1,
        addr_bits=top.addr_bits,
        addr_msb=top.addr_bits - 1)
    return {f"{core}.v": core_text, f"{name}.v": wrapper}
