"""Board builds of the layer-sequential engine (``hwgen build --arch engine``).

Two tops, as for the dataflow accelerator (:mod:`boards.build`):

* ``zynq-engine`` (PYNQ-Z2, ZCU102): the engine in a Vivado block design
  (:func:`boards.vivado.engine_block_design_tcl`), its AXI4 master on a high-performance
  slave port of the processing system (the PS DDR), its AXI4-Lite registers on the
  general-purpose master; plus ``design.json`` (the program's metadata and the register
  map), ``program.bin`` (the DRAM image) and the PYNQ driver (:mod:`boards.drivers.engine`)
  with the one module it packs with (:mod:`hwgen.engine.layout`).
* ``selftest`` (any board; the only top for boards without a processor): the engine runs the
  program from on-chip memory and checks its outputs itself (:mod:`boards.engine_selftest`).

Before anything is written, the engine is checked against the board: the multiplier family its
lanes are packed for, its DSP count and its buffers against the part, its address width
against the PS DDR the driver allocates from, and for the self-test the image against the
part's block RAM. Each refusal is a :class:`BoardError` naming the bound.
"""

import json
import re
from pathlib import Path

import numpy as np

import quant
from hwgen.engine import EngineConfig, compile_program, engine_golden, run_image
from hwgen.engine.control import ERRORS, MAGIC, REGISTERS, VERSION, config_word
from hwgen.engine.core import ELEMENT_BITS, OUT_BITS, Engine
from hwgen.engine.macarray import weight_word_bits
from hwgen.engine.params import VECTOR_WEIGHT_BITS
from hwgen.engine.ports import port_names
from hwgen.verilog import to_verilog

from . import vivado
from .axi import _plain_module_names
from .engine_selftest import EngineSelfTest
from .errors import BoardError
from .selftest import LEDS

__all__ = ["ENGINE_MODULE", "ENGINE_CELL", "engine_verilog", "buffer_bits", "check_engine",
           "engine_tree"]

#: Verilog module of the engine in the block design, and its cell.
ENGINE_MODULE = "hwgen_engine"
ENGINE_CELL = "accel"
#: Bits of one block RAM: RAMB36 on Xilinx (as the fit check counts them), EBR on ECP5.
_BRAM_BITS = {"xc7": 36 * 1024, "xcup": 36 * 1024, "ecp5": 18 * 1024}


def buffer_bits(config):
    """Bits of the engine's on-chip buffers: input, weight and output buffers, two banks
    each."""
    weight_bits = max(weight_word_bits(config), config.tn * VECTOR_WEIGHT_BITS)
    return (2 * config.input_words * config.tn * ELEMENT_BITS
            + 2 * config.weight_words * weight_bits
            + 2 * config.output_words * config.tm * OUT_BITS)


def _kbit(bits):
    return f"{bits / 1024:,.0f} Kbit"


def check_engine(config, board, *, flow, image_bytes=0):
    """Raise :class:`BoardError` when ``board`` cannot hold or feed the engine ``config`` in
    ``flow`` (``"zynq-engine"`` or ``"selftest"``; the self-test also holds the
    ``image_bytes`` of its DRAM image on chip)."""
    name = f"board {board.name} ({board.part})"
    if config.family != board.family:
        raise BoardError(f"the engine's lanes are packed for {config.family}; {name} has "
                         f"{board.family} multipliers: give --engine family={board.family}")
    if flow == "selftest" and config.ports > 1:
        raise BoardError(f"the self-test serves the engine's DRAM image from block RAM on one "
                         f"AXI4 port; this engine has {config.ports}: give --engine ports=1")
    if board.resources is None:
        return
    dsp = config.dsp_count
    if dsp > board.resources["DSP"]:
        raise BoardError(f"the engine's {config.tm}x{config.tn} MAC array takes {dsp:,} DSP "
                         f"slices; {name} has {board.resources['DSP']:,}: choose a smaller "
                         f"tm/tn or fewer wide lanes")
    available = board.resources["BRAM"] * _BRAM_BITS[board.family]
    needed = buffer_bits(config)
    what = "buffers"
    if flow == "selftest":
        needed += 8 * image_bytes
        what = "buffers and the self-test's copy of the DRAM image"
    if needed > available:
        raise BoardError(f"the engine's {what} take {_kbit(needed)}; the block RAM of {name} "
                         f"holds {_kbit(available)}: choose smaller input_words, "
                         f"weight_words or output_words" +
                         (", or a smaller network" if flow == "selftest" else ""))
    if flow == "zynq-engine":
        window = vivado.ddr_window(board)
        if (1 << config.addr_bits) < window:
            raise BoardError(f"the engine's {config.addr_bits}-bit addresses reach "
                             f"{1 << config.addr_bits:#x} bytes; the PS DDR that {name}'s "
                             f"driver allocates from spans {window:#x}: give --engine "
                             f"addr_bits={(window - 1).bit_length()} or more")


_AXI4_PORTS = [  # (name, direction seen from the engine, width or a config attribute)
    ("awid", "output", 1), ("awaddr", "output", "addr_bits"), ("awlen", "output", 8),
    ("awsize", "output", 3), ("awburst", "output", 2), ("awvalid", "output", 1),
    ("awready", "input", 1), ("wdata", "output", "data_bits"),
    ("wstrb", "output", "data_bytes"), ("wlast", "output", 1), ("wvalid", "output", 1),
    ("wready", "input", 1), ("bid", "input", 1), ("bresp", "input", 2),
    ("bvalid", "input", 1), ("bready", "output", 1),
    ("arid", "output", 1), ("araddr", "output", "addr_bits"), ("arlen", "output", 8),
    ("arsize", "output", 3), ("arburst", "output", 2), ("arvalid", "output", 1),
    ("arready", "input", 1), ("rid", "input", 1), ("rdata", "input", "data_bits"),
    ("rresp", "input", 2), ("rlast", "input", 1), ("rvalid", "input", 1),
    ("rready", "output", 1),
]
# Driven as constants by the wrapper: normal non-cacheable bufferable memory, unprivileged
# secure data accesses (what the PS's HP ports take from a DMA master), no lock, no QoS.
_AXI4_CONSTANTS = [("awlock", 1, 0), ("awcache", 4, 0b0011), ("awprot", 3, 0),
                   ("awqos", 4, 0), ("arlock", 1, 0), ("arcache", 4, 0b0011),
                   ("arprot", 3, 0), ("arqos", 4, 0)]
_AXIL_PORTS = [
    ("awaddr", "input", "lite"), ("awprot", "input", 3), ("awvalid", "input", 1),
    ("awready", "output", 1), ("wdata", "input", 32), ("wstrb", "input", 4),
    ("wvalid", "input", 1), ("wready", "output", 1), ("bresp", "output", 2),
    ("bvalid", "output", 1), ("bready", "input", 1),
    ("araddr", "input", "lite"), ("arprot", "input", 3), ("arvalid", "input", 1),
    ("arready", "output", 1), ("rdata", "output", 32), ("rresp", "output", 2),
    ("rvalid", "output", 1), ("rready", "input", 1),
]
#: Address bits of the register window the wrapper exposes (the block design's window); the
#: engine decodes the low 8.
LITE_ADDR_BITS = (vivado.REGISTER_WINDOW - 1).bit_length()
_ENGINE_LITE_BITS = 8



def _interface_ports(bus, ports, parameter, decl):
    """The declarations of one AXI interface's ports, each tagged for Vivado's interface
    inference; the first also carries the interface's parameters."""
    tagged = []
    for i, (port, direction, width) in enumerate(ports):
        attrs = [f'  (* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 {bus} '
                 f'{port.upper()}" *)']
        if i == 0:
            attrs.append(f'  (* X_INTERFACE_PARAMETER = "{parameter}" *)')
        tagged.append("\n".join(attrs + [decl(direction, width, f"{bus}_{port}")]))
    return tagged

def _wrapper(config, name, core):
    masters = port_names(config.ports)
    widths = {"addr_bits": config.addr_bits, "data_bits": config.port_bits,
              "data_bytes": config.port_bits // 8, "lite": LITE_ADDR_BITS}

    def decl(direction, width, port):
        width = widths.get(width, width)
        return f"  {direction:<6} wire {f'[{width - 1}:0] ' if width > 1 else ''}{port}"

    bus = f"{config.data_bits}-bit AXI4" + (f" on {config.ports} ports" if config.ports > 1
                                            else "")
    lines = [f"// {name}: {core} (the layer-sequential engine, {config.tm}x{config.tn}, "
             f"{bus}) with Xilinx",
             "// AXI port names and interface attributes. Registers: hwgen/engine/control.py.",
             f"module {name} (",
             '  (* X_INTERFACE_INFO = "xilinx.com:signal:clock:1.0 aclk CLK" *)',
             f'  (* X_INTERFACE_PARAMETER = "ASSOCIATED_BUSIF {":".join(masters)}:s_axi, '
             f'ASSOCIATED_RESET aresetn" *)',
             "  input  wire aclk,",
             '  (* X_INTERFACE_INFO = "xilinx.com:signal:reset:1.0 aresetn RST" *)',
             '  (* X_INTERFACE_PARAMETER = "POLARITY ACTIVE_LOW" *)',
             "  input  wire aresetn,"]
    ports = []
    master = [(p, d, w) for p, d, w in _AXI4_PORTS] + \
        [(p, "output", w) for p, w, _ in _AXI4_CONSTANTS]
    for bus_name in masters:
        ports += _interface_ports(
            bus_name, master, f"PROTOCOL AXI4, DATA_WIDTH {config.port_bits}, ADDR_WIDTH "
            f"{config.addr_bits}, ID_WIDTH 1, READ_WRITE_MODE READ_WRITE, MAX_BURST_LENGTH 32, "
            f"NUM_READ_OUTSTANDING 8, NUM_WRITE_OUTSTANDING 8, HAS_LOCK 1, HAS_CACHE 1, "
            f"HAS_PROT 1, HAS_QOS 1, HAS_REGION 0, HAS_BURST 1", decl)
    ports += _interface_ports(
        "s_axi", _AXIL_PORTS, f"PROTOCOL AXI4LITE, DATA_WIDTH 32, ADDR_WIDTH {LITE_ADDR_BITS}, "
        f"READ_WRITE_MODE READ_WRITE, HAS_BURST 0, HAS_LOCK 0, HAS_CACHE 0, HAS_QOS 0, "
        f"HAS_REGION 0, SUPPORTS_NARROW_BURST 0, MAX_BURST_LENGTH 1", decl)
    lines.append(",\n".join(ports))
    lines.append(");")
    for bus_name in masters:
        for port, width, value in _AXI4_CONSTANTS:
            lines.append(f"  assign {bus_name}_{port} = {width}'d{value};")
    connections = [".clk(aclk)", ".rst(~aresetn)"]
    connections += [f".{bus_name}__{port}({bus_name}_{port})"
                    for bus_name in masters for port, _, _ in _AXI4_PORTS]
    for port, _, _ in _AXIL_PORTS:
        wire = f"s_axi_{port}"
        if port in ("awaddr", "araddr"):
            wire += f"[{_ENGINE_LITE_BITS - 1}:0]"
        connections.append(f".s_axil__{port}({wire})")
    connections += [".busy()", ".layer_done()"]
    lines.append(f"  {core} core (\n    " + ",\n    ".join(connections) + "\n  );")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def engine_verilog(config, name=ENGINE_MODULE):
    """Verilog of the engine for a block design: ``{file name: text}``, ``<name>_core.v`` (the
    engine, module ``<name>_core``, plain module names) and ``<name>.v`` (the wrapper with the
    Xilinx AXI names: ``m_axi_*`` AXI4 master, ``s_axi_*`` AXI4-Lite slave, ``aclk``,
    ``aresetn``)."""
    core = f"{name}_core"
    text = _plain_module_names(to_verilog(Engine(config), name=core), core)
    text = re.sub(r"^\(\* top = +1 +\*\)\n", "", text, flags=re.M)
    return {f"{core}.v": text, f"{name}.v": _wrapper(config, name, core)}


def _write(path, content, files, out):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    files.append(str(path.relative_to(out)))


def _bundle_driver(out, files):
    """``driver/``: the engine's PYNQ driver and, beside it, the one module it packs with
    (:mod:`hwgen.engine.layout`, NumPy only)."""
    from hwgen.engine import layout

    from .drivers import engine as driver

    folder = out / "driver"
    _write(folder / "hwgen_engine.py", Path(driver.__file__).read_text(), files, out)
    _write(folder / "layout.py", Path(layout.__file__).read_text(), files, out)


def design_description(program, board, clock_mhz):
    """``design.json``: the program's metadata (tensors, layers, the engine) and what a host
    needs besides: the register map, the identity and configuration words it reads back."""
    meta = program.to_metadata()
    config = program.config
    return meta | {
        "board": board.name, "clock_mhz": clock_mhz, "image": "program.bin",
        "registers": dict(REGISTERS), "magic": MAGIC, "version": VERSION,
        "config_word": config_word(config),
        "status_bits": {"busy": 0, "done": 1, "error": 2},
        "errors": {str(code): meaning for code, meaning in ERRORS.items()},
        "cells": {"engine": ENGINE_CELL},
    }


def _zynq_tree(program, board, out, clock_mhz, files):
    config = program.config
    rtl = []
    for name, text in engine_verilog(config).items():
        _write(out / "rtl" / name, text, files, out)
        rtl.append(f"rtl/{name}")
    tcl = vivado.engine_block_design_tcl(board, rtl_files=rtl, module=ENGINE_MODULE,
                                         data_bits=config.data_bits, ports=config.ports,
                                         clock_mhz=clock_mhz)
    _write(out / "build.tcl", tcl, files, out)
    design = design_description(program, board, clock_mhz)
    _write(out / "design.json", json.dumps(design, indent=2) + "\n", files, out)
    _write(out / "program.bin", bytes(program.image), files, out)
    _bundle_driver(out, files)
    core = next(name for name in rtl if name.endswith("_core.v"))
    return {"top": ENGINE_MODULE, "tcl": "build.tcl",
            "synth": ((out / core).read_text(), f"{ENGINE_MODULE}_core"),
            "design": design, "script": vivado.build_script("build.tcl"),
            "artifacts": [f"{vivado.BITSTREAM}.bit", f"{vivado.BITSTREAM}.hwh",
                          f"{vivado.BITSTREAM}.xsa"]}


def selftest_input(graph, seed):
    """The self-test's input: uniform random in the graph's input range, from ``seed``."""
    lo, hi = graph.input.range
    return np.random.default_rng(seed).integers(lo, hi + 1, tuple(graph.input.shape))


def _selftest_tree(program, graph, board, out, clock_mhz, seed, files, platform_tree):
    x = selftest_input(graph, seed)
    program.load_input(program.image, x)
    values = engine_golden(program.layers, quant.run(graph, x[None]))
    golden = {value: values[value][0] for value in values}
    # The engine's own reference must give the golden, or the test cannot pass on any board.
    reference = run_image(bytearray(program.image), program.config)
    for layer in program.layers:
        got = program.read(reference, layer.output)
        if not np.array_equal(got, np.asarray(golden[layer.output]).reshape(got.shape)):
            raise BoardError(f"the engine's program computes '{layer.output}' (layer "
                             f"'{layer.name}') otherwise than the golden; no self-test built")
    test = EngineSelfTest(program, golden)
    tree = platform_tree(test, board, out, clock_mhz, files)
    np.savez(out / "selftest_vectors.npz", inputs=x[None],
             expected=np.asarray(golden[graph.output])[None])
    files.append("selftest_vectors.npz")
    return tree | {"synth": (test, "selftest_core"),
                   "selftest": {"frames": 1, "seed": seed, "leds": LEDS,
                                "cycles_to_verdict": test.cycles,
                                "stall_limit": test.stall_limit,
                                "image_words": test.image_words,
                                "checked_words": test.checked_words}}


def engine_tree(graph, board, out, *, config, selftest, clock_mhz, seed, files,
                platform_tree):
    """Compile ``graph`` for the engine ``config``, check it against ``board`` and write the
    build tree into ``out``; ``(flow, tree, report fields, notes)`` for :func:`boards.build`.

    ``platform_tree(top, board, out, clock_mhz, files)`` writes the files of a self-test top
    (the board's platform build plan) and returns its ``top``, ``tcl``, ``script`` and
    ``artifacts``.
    """
    if config is None:
        config = EngineConfig(family=board.family)
    if not isinstance(config, EngineConfig):
        raise TypeError(f"engine must be an EngineConfig, not {config!r}")
    notes = []
    flow = "zynq-engine" if board.processor and not selftest else "selftest"
    if not selftest and flow == "selftest":
        notes.append(f"{board.name} has no processing system to hold the engine's DRAM "
                     f"image; the self-test top was built (the image in block RAM)")
    program = compile_program(graph, config)
    check_engine(config, board, flow=flow, image_bytes=len(program.image))
    quant.save(graph, out / "model.qgraph")
    files.append("model.qgraph")
    meta = program.to_metadata()
    _write(out / "metadata.json", json.dumps(meta, indent=2) + "\n", files, out)
    if flow == "zynq-engine":
        tree = _zynq_tree(program, board, out, clock_mhz, files)
    else:
        tree = _selftest_tree(program, graph, board, out, clock_mhz, seed, files,
                              platform_tree)
    macs = sum(layer.macs for layer in program.layers)
    fields = {"architecture": "engine", "engine": config.as_dict(),
              "layers": len(program.layers), "image_bytes": len(program.image),
              "cycles_per_frame": meta["cycles_per_frame_model"],
              "cycles_model_latency": meta["cycles_model_latency"],
              "macs_per_frame": macs, "buffer_bits": buffer_bits(config)}
    return flow, tree, fields, notes
