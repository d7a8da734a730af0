"""generate: compile a QGraph to Verilog and the metadata every later tool reads."""

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from amaranth._toolchain.yosys import find_yosys
from amaranth.back import rtlil

import quant

from .accelerator import Accelerator, check_hardware_support
from .blocks.matvec import MatVecUnit
from .folding import check_folding, choose_folding
from .passes import reorder_filters

__all__ = ["compile_graph", "generate", "metadata"]


def compile_graph(graph, folding=None, mac_budget=64, device="xc7", lut_lanes=None,
                  rom_styles=None):
    """Validate, fold and reorder ``graph``; return the :class:`Accelerator` for it.

    ``folding`` maps layer names to ``(pe, simd)``; layers it leaves out are folded by
    :func:`choose_folding`. ``device`` picks the hardware multiplier that MAC lanes are packed
    onto (``"xc7"``, ``"xcup"``, ``"ecp5"``, or None for LUT multipliers only); ``lut_lanes``
    moves lanes of given precisions to LUTs, per layer (``{layer: {bits: lanes}}``);
    ``rom_styles`` puts a layer's weight ROMs in block RAM or logic (``{layer: "block"}``). Every
    check runs before any hardware is elaborated: graph rules, what the hardware supports,
    then folding rules.
    """
    check_hardware_support(graph)
    # Layers the user does not fold are folded automatically.
    fixed = {name: tuple(int(v) for v in pe_simd) for name, pe_simd in (folding or {}).items()}
    folding = choose_folding(graph, mac_budget=mac_budget, fixed=fixed) | fixed
    check_folding(graph, folding)
    return Accelerator(reorder_filters(graph, folding), folding, device=device,
                       lut_lanes=lut_lanes, rom_styles=rom_styles)


def _stream_info(shape, elements, bits, is_signed, order):
    size = int(np.prod(shape))
    return {"shape": list(shape), "order": order, "elements_per_beat": elements,
            "beats_per_frame": size // elements, "bits": bits, "signed": is_signed}


def metadata(acc):
    """Ports, widths, folding per layer and the cycle model of an :class:`Accelerator`."""
    graph = acc.graph
    shapes = graph.shapes()
    macs = graph.macs()
    cycles = acc.block_cycles()
    layers = []
    for name, block in acc.blocks:
        node = graph[name] if name in {n.name for n in graph.nodes} else None
        entry = {"name": name, "block": type(block).__name__}
        if isinstance(block, MatVecUnit):
            entry |= {"in_features": block.in_features, "out_features": block.out_features,
                      "pe": block.pe, "simd": block.simd, "acc_bits": block.acc_bits,
                      "in_bits": block.in_bits, "lane_bits": block.lane_bits.tolist(),
                      "weight_bits": {str(b): int(c) for b, c in zip(*np.unique(
                          block.weight_bits, return_counts=True))},
                      "cycles_per_frame": cycles[name], "latency": block.latency,
                      "macs": macs[name], "dsp": block.dsp_count,
                      "lut_lanes": block.lut_lane_count, "rom_style": block.rom_style}
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
    spec = graph.input
    return {
        "top": "top",
        "input": _stream_info(spec.shape, acc.in_elements, spec.bits, spec.signed,
                              acc.in_order),
        "output": _stream_info(shapes[graph.output], acc.out_elements, acc.out_bits,
                               acc.out_signed, acc.out_order),
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


def to_verilog(component, name="top"):
    """Verilog for ``component`` in which every combinational signal is a continuous assign.

    Amaranth's own Verilog keeps combinational processes as ``always @*`` blocks, which Icarus
    does not run at time 0 when cocotb drives the ports, so signals computed only from
    registers stay X until those registers change. Lowering the processes to multiplexers
    (``proc``) before writing leaves no ``always @*`` blocks; the logic is the same. Amaranth's
    bundled Yosys (the same one ``amaranth.back.verilog`` uses) does the work.
    """
    text = rtlil.convert(component, name=name, emit_src=False)
    yosys = find_yosys(lambda version: version >= (0, 40))
    script = "\n".join([f"read_rtlil <<rtlil\n{text}\nrtlil", "proc", "memory_collect",
                        "opt_clean", "write_verilog"])
    return yosys.run(["-q", "-"], script, ignore_warnings=True)


def _write_atomic(path, text):
    """Write via a temporary file and rename, so a failed run leaves no half file behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def generate(graph, out_dir, folding=None, mac_budget=64, device="xc7", lut_lanes=None,
             rom_styles=None):
    """Write ``top.v``, ``metadata.json`` and the compiled ``model.qgraph`` into ``out_dir``.

    Returns the metadata with the paths of the written files under ``"verilog"`` and
    ``"qgraph"``. Nothing is written unless the whole design elaborates.
    """
    acc = compile_graph(graph, folding, mac_budget, device, lut_lanes, rom_styles)
    text = to_verilog(acc)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = metadata(acc)
    meta["verilog"] = str(out_dir / "top.v")
    meta["qgraph"] = str(out_dir / "model.qgraph")
    quant.save(acc.graph, out_dir / "model.qgraph")
    _write_atomic(out_dir / "top.v", text)
    _write_atomic(out_dir / "metadata.json", json.dumps(meta, indent=2) + "\n")
    return meta
