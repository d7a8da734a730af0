"""Verification of generated Verilog against the golden, in cocotb (Icarus or Verilator).

:func:`simulate` runs a graph's golden and its RTL on the same inputs and compares every output
exactly; :mod:`sim.runner` builds and runs a design from its metadata; :mod:`sim.stream` packs
elements into stream beats and drives and monitors valid/ready streams.
"""

from .errors import SimulationError, ToolchainError
from .runner import RunResult, load_design, run_design
from .stream import pack_beat, pack_frames, unpack_beat, unpack_frames
from .verify import Mismatch, SimulationResult, simulate, steady_cycles_per_frame

__all__ = ["simulate", "SimulationResult", "Mismatch", "steady_cycles_per_frame",
           "SimulationError", "ToolchainError", "run_design", "load_design", "RunResult",
           "pack_beat", "unpack_beat", "pack_frames", "unpack_frames"]
