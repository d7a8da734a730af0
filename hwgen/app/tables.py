"""Text tables the commands print: the layers of a model and the boards."""

import numpy as np

__all__ = ["boards_table", "format_table", "layers_table"]


def format_table(rows, right=()):
    """``rows`` (the first is the header) as aligned text lines; columns whose index is in
    ``right`` are right-aligned, the last column is never padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.rjust(w) if i in right else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return lines


def _weight_bits(node):
    bits, counts = np.unique(node.tensors["weight_bits"], return_counts=True)
    return ", ".join(f"{c} x {b}-bit" for b, c in zip(bits, counts))


def layers_table(graph):
    """``hwgen inspect``'s table: per layer its op, output shape, MACs per frame, output
    range and, for dense layers and convolutions, the filters of each weight width."""
    shapes, ranges, macs = graph.shapes(), graph.ranges(), graph.macs()
    rows = [("layer", "op", "output", "MACs", "range", "weight bits")]
    for node in graph.nodes:
        lo, hi = ranges[node.name]
        rows.append((node.name, node.op, "x".join(map(str, shapes[node.name])),
                     f"{macs.get(node.name, 0):,}", f"{lo}..{hi}",
                     _weight_bits(node) if "weight_bits" in node.tensors else ""))
    return format_table(rows, right={3})


def boards_table(boards):
    """``hwgen boards``' table: name, part, the estimator's device (``hwgen estimate
    --device``), board clock, toolchain, multiplier family and tops."""
    rows = [("NAME", "PART", "DEVICE", "CLOCK", "TOOLCHAIN", "FAMILY", "TOPS")]
    for board in boards:
        tops = "zynq-dma, selftest" if board.processor else "selftest"
        rows.append((board.name, board.part, board.device.name if board.device else "-",
                     f"{board.clock_mhz:g} MHz", board.toolchain, board.family, tops))
    return format_table(rows)
