"""Exceptions for configuration and tool problems found while compiling a model to hardware."""

from quant.errors import GraphError, UnsupportedLayerError

__all__ = ["GraphError", "UnsupportedLayerError", "FoldingError", "ToolchainError"]


class FoldingError(ValueError):
    """A folding (``pe``, ``simd``) does not fit a layer; the message says which and why."""


class ToolchainError(RuntimeError):
    """A tool the flow needs (simulator, synthesizer) is missing or fails to start."""
