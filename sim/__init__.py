"""Verification of generated Verilog against the golden, in cocotb (Icarus or Verilator).

:func:`simulate` runs a graph's golden and its RTL on the same inputs and compares every output
exactly; :func:`simulate_engine` runs a graph's program on the layer-sequential engine
(``arch="engine"``) and compares every tensor it writes to DRAM; :mod:`sim.runner` builds and
runs a design from its metadata; :mod:`sim.stream` drives and monitors valid/ready streams;
:mod:`sim.shards` splits a run into shards on Dask workers (:mod:`sim.cluster`) and ships the
build to them (:mod:`sim.shipping`). Tensors are packed into beats by
:class:`quant.stream_format.StreamFormat`, the format the boards' self-test and driver share.
"""

from .engine import EngineSimulationResult, TensorMismatch, simulate_engine
from .errors import ClusterError, SimulationError, ToolchainError
from .runner import RunResult, load_design, run_design
from .stream import pack_beat, unpack_beat
from .verify import (Mismatch, SimulationResult, pooled_cycles_per_frame, simulate,
                     steady_cycles_per_frame)

__all__ = ["simulate", "SimulationResult", "Mismatch", "steady_cycles_per_frame",
           "pooled_cycles_per_frame", "simulate_engine", "EngineSimulationResult",
           "TensorMismatch", "SimulationError", "ToolchainError", "ClusterError",
           "run_design", "load_design", "RunResult", "pack_beat", "unpack_beat"]
