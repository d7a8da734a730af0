"""Boards: registry, platforms, AXI and self-test tops, Vivado projects and open-flow builds.

* :func:`list_boards` / :func:`get_board`: the build targets (PYNQ-Z2 and ZCU102 defined in
  :mod:`boards.platforms`, the Xilinx and ECP5 boards of amaranth-boards, or any platform given
  as ``"module:Class"``).
* :func:`build`: the build tree for a model on a board (RTL, constraints, Vivado TCL, build
  script, PYNQ driver, size estimate, ``report.json``); ECP5 bitstreams are built here.
* :func:`cli_list` and :func:`cli_build`: what the ``hwgen boards`` and ``hwgen build``
  commands print.

The self-test, the AXI top and the PYNQ driver pack tensors with the accelerator's
:class:`quant.stream_format.StreamFormat` (:attr:`hwgen.Accelerator.in_format`, ``out_format``).
"""

from .build import build, cli_build, cli_list, summary
from .errors import BoardError, BuildError
from .registry import Board, get_board, list_boards

__all__ = ["Board", "BoardError", "BuildError", "build", "cli_build", "cli_list", "get_board",
           "list_boards", "summary"]
