"""Streaming hardware blocks (Amaranth components with stream interfaces)."""

from .add import Add
from .depthwise import DepthwiseUnit
from .fifo import StreamFifo
from .fork import Broadcast
from .map_window import ParallelMapWindow
from .matvec import MatVecUnit
from .matvec_lanes import MatVecLanes
from .packed import PackedMultiplier
from .packer import WeightPacker
from .parallel_window import ParallelWindow
from .pool import GlobalSumPool, MaxPool, SumPool
from .reorder import Reorder
from .requantizer import Requantizer
from .stream import AsSigned, WidthConverter
from .window import SlidingWindow, im2col

__all__ = ["AsSigned", "Add", "Broadcast", "DepthwiseUnit", "GlobalSumPool", "MatVecLanes",
           "MatVecUnit", "MaxPool", "PackedMultiplier", "ParallelMapWindow", "ParallelWindow",
           "Reorder",
           "Requantizer", "SlidingWindow", "StreamFifo", "SumPool", "WeightPacker",
           "WidthConverter", "im2col"]
