"""Integer semantics, the QGraph IR, the golden executor and the PyTorch QAT layers.

``import quant`` stays NumPy-only, and so do ``quant.precision`` (FILM-QNN precision
assignment), ``quant.datasets`` and ``quant.peaks`` (synthetic peak-detection signals and their
scores; its classic detectors import SciPy when used). The torch-facing modules
(``quant.nn``, ``quant.export``, ``quant.models``, ``quant.train``) are imported explicitly.
"""

from . import numerics
from .errors import GraphError, UnsupportedLayerError
from .graph import InputSpec, Node, QGraph, load, save
from .golden import run

__all__ = ["numerics", "GraphError", "UnsupportedLayerError", "InputSpec", "Node", "QGraph",
           "load", "save", "run"]
