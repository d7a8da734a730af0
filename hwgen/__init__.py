"""Quantized networks to streaming RTL: Amaranth blocks, compiler passes, Verilog generation.

``import hwgen`` needs NumPy and Amaranth only (no torch).
"""

from .accelerator import Accelerator
from .errors import FoldingError, GraphError, ToolchainError, UnsupportedLayerError
from .folding import check_folding, choose_folding
from .generate import compile_graph, generate, metadata

__all__ = ["Accelerator", "FoldingError", "GraphError", "ToolchainError",
           "UnsupportedLayerError", "check_folding", "choose_folding", "compile_graph",
           "generate", "metadata"]
