"""Quantized networks to streaming RTL: Amaranth blocks, compiler passes, Verilog generation.

``import hwgen`` needs NumPy and Amaranth only (no torch). The command line and the demo live
in :mod:`hwgen.app`, the one part of the package that uses the simulator and the boards.
"""

from .accelerator import Accelerator
from .errors import FoldingError, GraphError, ToolchainError, UnsupportedLayerError
from .explore import (Design, DesignError, compile, estimate, samples_folding,
                      signal_length, unfolded_lut_lanes)
from .folding import check_folding, choose_folding
from .generate import compile_graph, generate, metadata, plan
from .support import check_hardware_support, hardware_problems

__all__ = ["Accelerator", "Design", "DesignError", "FoldingError", "GraphError",
           "ToolchainError", "UnsupportedLayerError", "check_folding", "check_hardware_support",
           "choose_folding", "compile", "compile_graph", "estimate", "generate",
           "hardware_problems", "metadata", "plan", "samples_folding",
           "signal_length", "unfolded_lut_lanes"]
