"""Compiler passes: each takes a QGraph and returns an equivalent one (same golden outputs)."""

from .reorder import reorder_filters

__all__ = ["reorder_filters"]
