"""Quantized networks to streaming RTL: Amaranth blocks, compiler passes, Verilog generation.

``import hwgen`` needs NumPy and Amaranth only (no torch).
"""

from .accelerator import Accelerator
from .errors import FoldingError, GraphError, ToolchainError, UnsupportedLayerError
from .explore import Design, DesignError, compile, estimate
from .folding import check_folding, choose_folding
from .generate import compile_graph, generate, metadata

__all__ = ["Accelerator", "Design", "DesignError", "FoldingError", "GraphError",
           "ToolchainError", "UnsupportedLayerError", "check_folding", "choose_folding",
           "compile", "compile_graph", "estimate", "generate", "metadata"]
