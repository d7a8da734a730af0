"""Compiler passes: each takes a QGraph and returns an equivalent one (same golden outputs),
and the compile-time mapping of the graph onto HWC streams (``stream_columns``)."""

from .reorder import reorder_filters
from .stream_order import stream_columns, stream_order

__all__ = ["reorder_filters", "stream_columns", "stream_order"]
