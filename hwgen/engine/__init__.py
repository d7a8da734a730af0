"""The layer-sequential engine: one mixed-precision MAC array reused by every layer, weights
and feature maps in DRAM (FINN-R's memory-optimized architecture).

:class:`EngineConfig` is what a bitstream holds; :func:`compile_program` turns a QGraph into a
program of layer descriptors and a DRAM image; :func:`run_image` is what the engine computes.
"""

from .compiler import compile_program
from .image import EngineLayer, Program, engine_golden
from .config import EngineConfig, film_lanes
from .layout import TensorLayout
from .program import Descriptor
from .reference import run_image

__all__ = ["Descriptor", "EngineConfig", "EngineLayer", "Program", "TensorLayout",
           "compile_program", "engine_golden", "film_lanes", "run_image"]
