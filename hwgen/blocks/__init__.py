"""Streaming hardware blocks (Amaranth components with stream interfaces)."""

from .matvec import MatVecUnit
from .requantizer import Requantizer
from .stream import WidthConverter

__all__ = ["MatVecUnit", "Requantizer", "WidthConverter"]
