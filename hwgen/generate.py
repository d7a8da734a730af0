"""generate: compile a QGraph to Verilog and the metadata every later tool reads."""

import json
import os
import tempfile
from pathlib import Path

import numpy as np

import quant

from .accelerator import Accelerator
from .blocks.matvec import ROM_STYLES, MatVecUnit
from .blocks.matvec_lanes import MatVecLanes
from .engine import EngineConfig, compile_program
from .engine.core import Engine
from .errors import FoldingError
from .folding import check_folding, choose_folding
from .lowering import lower
from .ops import filter_views
from .passes import reorder_filters
from .schedule import schedule
from .support import check_hardware_support
from .verilog import to_verilog

__all__ = ["ARCHITECTURES", "compile_graph", "generate", "metadata", "plan"]


def compile_graph(graph, folding=None, mac_budget=64, device="xc7", lut_lanes=None,
                  rom_styles=None, fifo_depths=None):
    """Validate, fold, reorder, lower and schedule ``graph``; return its :class:`Accelerator`.

    ``folding`` maps layer names to ``(pe, simd)``; layers it leaves out are folded by
    :func:`choose_folding`. ``device`` picks the hardware multiplier that MAC lanes are packed
    onto (``"xc7"``, ``"xcup"``, ``"ecp5"``, or None for LUT multipliers only; requantizers
    then keep the xc7 geometry); ``lut_lanes`` moves lanes of given precisions to LUTs, per
    layer (``{layer: {bits: lanes}}``); ``rom_styles`` puts a layer's weight ROMs in block RAM
    or logic (``{layer: "block"}``); ``fifo_depths`` overrides the residual joins' FIFO depths
    (``{fifo: depth}``, to study a design). Every check runs before any hardware is
    elaborated: graph rules, what the hardware supports, then folding rules.
    """
    netlist, timing = plan(graph, folding, mac_budget, device, lut_lanes, rom_styles,
                           fifo_depths)
    return Accelerator(netlist, timing)


def plan(graph, folding=None, mac_budget=64, device="xc7", lut_lanes=None, rom_styles=None,
         fifo_depths=None, timed=True):
    """``(netlist, schedule)`` of ``graph`` as :func:`compile_graph` builds it, without
    building any block: what the search reads the latency and the stream glue from
    (``timed=False``: no schedule, None in its place)."""
    check_hardware_support(graph)
    fixed = _user_folding(graph, folding)
    folding = choose_folding(graph, mac_budget=mac_budget, fixed=fixed) | fixed
    check_folding(graph, folding)
    _check_rom_styles(graph, dict(rom_styles or {}))
    netlist = lower(reorder_filters(graph, folding), folding, device, lut_lanes, rom_styles)
    return netlist, schedule(netlist, fifo_depths) if timed else None


def _user_folding(graph, folding):
    """The user's ``{layer: (pe, simd)}``, checked before anything is folded around it."""
    fixed = {}
    problems = []
    for name, value in (folding or {}).items():
        try:
            pe, simd = value
        except (TypeError, ValueError):
            problems.append(f"layer '{name}': folding must be a (PE, SIMD) pair, not {value!r}")
            continue
        fixed[name] = (pe, simd)
    views = {v.name: v for v in filter_views(graph)}
    problems += [p for name, pair in fixed.items() if name in views
                 for p in views[name].folding_problems(*pair)]
    unknown = sorted(set(fixed) - set(views))
    if unknown:
        problems.append(f"folding names layers that are not dense layers of the model: "
                        f"{', '.join(unknown)}; only dense layers and convolutions are folded")
    if problems:
        raise FoldingError("\n".join(problems))
    return {name: (int(pe), int(simd)) for name, (pe, simd) in fixed.items()}


def _check_rom_styles(graph, rom_styles):
    """Every named layer has the weight ROMs of a matrix-vector unit (a dense layer or a
    non-depthwise convolution), and every style is one a :class:`MatVecUnit` takes."""
    layers = {v.name for v in filter_views(graph) if not v.depthwise}
    problems = [f"layer '{name}': rom_styles names a layer that has no weight ROMs of a "
                f"matrix-vector unit (dense layers and convolutions: "
                f"{', '.join(sorted(layers))})" for name in rom_styles if name not in layers]
    problems += [f"layer '{name}': rom_style must be one of "
                 f"{', '.join(map(repr, ROM_STYLES))}, not {style!r}"
                 for name, style in rom_styles.items() if style not in ROM_STYLES]
    if problems:
        raise ValueError("; ".join(problems))


def metadata(acc):
    """Ports, widths, folding per layer and the cycle model of an :class:`Accelerator`."""
    graph = acc.graph
    macs = graph.macs()
    cycles = acc.block_cycles()
    layers = []
    for name, block in acc.blocks:
        node = graph[name] if name in {n.name for n in graph.nodes} else None
        entry = {"name": name, "block": type(block).__name__}
        if isinstance(block, (MatVecUnit, MatVecLanes)):
            entry |= {"in_features": block.in_features, "out_features": block.out_features,
                      "pe": block.pe, "simd": block.simd, "acc_bits": block.acc_bits,
                      "in_bits": block.in_bits, "lane_bits": block.lane_bits.tolist(),
                      "weight_bits": {str(b): int(c) for b, c in zip(*np.unique(
                          block.weight_bits, return_counts=True))},
                      "cycles_per_frame": cycles[name], "latency": block.latency,
                      "macs": macs[name], "dsp": block.dsp_count,
                      "lut_lanes": block.lut_lane_count, "rom_style": block.rom_style,
                      "positions": getattr(block, "positions", 1)}
        elif hasattr(block, "dsp_count"):
            entry["dsp"] = block.dsp_count
        if name in acc.fifo_depths:
            entry |= {"depth": block.depth, "lanes": block.lanes,
                      "width": block.lanes * block.shape.width}
        if hasattr(block, "buffer_depth"):
            entry |= {"buffer_rows": block.buffer_rows, "buffer_depth": block.buffer_depth,
                      "buffer_bits": block.buffer_bits}
        if name in cycles and "cycles_per_frame" not in entry:
            entry["cycles_per_frame"] = cycles[name]
        if node is not None and name in macs and "macs" not in entry:
            entry["macs"] = macs[name]
        layers.append(entry)
    return {
        "architecture": "dataflow",
        "top": "top",
        "input": acc.in_format.to_metadata(),
        "output": acc.out_format.to_metadata(),
        "folding": {k: {"pe": pe, "simd": simd} for k, (pe, simd) in acc.folding.items()},
        "layers": layers,
        "cycles_per_frame": acc.cycles_per_frame,
        "latency": acc.latency,
        "latency_is_estimate": acc.has_windows,
        "fifo_depths": acc.fifo_depths,
        "cycles_per_frame_formula": "max over blocks: a dense layer (out_features/pe) * "
                                    "(in_features/simd), a convolution output pixels * "
                                    "(out_channels/pe) * (kh*kw*in_channels/simd), windows, "
                                    "pools and joins their own; input beats, output beats",
        "device": acc.device,
        "dsp": acc.dsp_count,
        "weight_bits_histogram": {str(k): v for k, v in graph.weight_bits_histogram().items()},
        "macs_per_frame": sum(graph.macs().values()),
    }


def _write_atomic(path, content):
    """Write via a temporary file and rename, so a failed run leaves no half file behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb" if isinstance(content, bytes) else "w") as f:
        f.write(content)
    os.replace(tmp, path)


#: The architectures :func:`generate` builds.
ARCHITECTURES = ("dataflow", "engine")


def generate(graph, out_dir, folding=None, mac_budget=64, device="xc7", lut_lanes=None,
             rom_styles=None, *, arch="dataflow", engine=None):
    """Write ``top.v``, ``metadata.json`` and the compiled ``model.qgraph`` into ``out_dir``.

    ``arch`` is ``"dataflow"`` (one folded unit per layer, weights on chip; the other
    arguments but ``engine`` apply) or ``"engine"`` (the layer-sequential engine built as
    ``engine``, an :class:`~hwgen.engine.EngineConfig`, default the default configuration;
    ``program.bin`` holds the DRAM image: program, parameters, weights, room for every
    tensor). Returns the metadata with the paths of the written files under ``"verilog"``,
    ``"qgraph"`` (and ``"image"``). Nothing is written unless the whole design elaborates.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {', '.join(map(repr, ARCHITECTURES))}, not "
                         f"{arch!r}")
    out_dir = Path(out_dir)
    files = {}
    if arch == "engine":
        config = EngineConfig() if engine is None else engine
        program = compile_program(graph, config)
        files["top.v"] = to_verilog(Engine(config))
        files["program.bin"] = bytes(program.image)
        meta = program.to_metadata()
        meta["image"] = str(out_dir / "program.bin")
        saved = graph
    else:
        if engine is not None:
            raise ValueError("engine configures arch 'engine' only")
        acc = compile_graph(graph, folding, mac_budget, device, lut_lanes, rom_styles)
        files["top.v"] = to_verilog(acc)
        meta = metadata(acc)
        saved = acc.graph
    out_dir.mkdir(parents=True, exist_ok=True)
    meta["verilog"] = str(out_dir / "top.v")
    meta["qgraph"] = str(out_dir / "model.qgraph")
    quant.save(saved, out_dir / "model.qgraph")
    for name, content in files.items():
        _write_atomic(out_dir / name, content)
    _write_atomic(out_dir / "metadata.json", json.dumps(meta, indent=2) + "\n")
    return meta
