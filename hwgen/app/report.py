"""The estimate report of a :class:`~hwgen.explore.Design` (dataflow), an
:class:`~hwgen.engine.search.EngineDesign` (engine) or both (``--arch auto``): a table,
``report.json`` and a PNG."""

import json
from pathlib import Path

from .files import atomic, remove, write_text

__all__ = ["REPORT_FILES", "auto_report", "clear_report", "engine_table", "table",
           "write_report"]

#: What :func:`write_report` writes into its folder.
REPORT_FILES = ("report.json", "estimate.png")


def table(design):
    """The per-layer table, totals and rates as text."""
    capacity = design.device.capacity()
    # "LUT x": MAC lanes built as LUT multipliers; "ROM": weight ROMs placed by the search
    # (block RAM or logic), blank where synthesis chooses.
    lines = [f"{'layer':<28} {'op':<15} {'pe':>4} {'simd':>5} {'LUT x':>5} {'ROM':>5} "
             f"{'cycles':>10} {'LUT':>8} {'FF':>8} {'DSP':>5} {'BRAM18':>7} {'LUTRAM':>7}"]
    for row in design.rows:
        r = row["resources"]
        pe = "" if row["pe"] is None else row["pe"]
        lut_lanes = sum(row.get("lut_lanes", {}).values()) if row["pe"] is not None else ""
        style = row.get("rom_style") or ""
        lines.append(f"{row['name'][:28]:<28} {row['op']:<15} {pe!s:>4} {row['simd']:>5} "
                     f"{lut_lanes!s:>5} {style:>5} {row['cycles']:>10,} {r.lut:>8,} "
                     f"{r.ff:>8,} {r.dsp:>5} {r.bram18:>7} {r.lutram:>7,}")
    t = design.total
    blank = f"{'':<15} {'':>4} {'':>5} {'':>5} {'':>5}"
    lines.append(f"{'total':<28} {blank} {design.cycles_per_frame:>10,} "
                 f"{t.lut:>8,} {t.ff:>8,} {t.dsp:>5} {t.bram18:>7} {t.lutram:>7,}")
    lines.append(f"{'share of ' + design.device.name:<28} {blank} {'':>10} "
                 + " ".join(f"{getattr(t, k) / capacity[k]:>{w}.1%}" for k, w in
                            (("lut", 8), ("ff", 8), ("dsp", 5), ("bram18", 7), ("lutram", 7))))
    lines.append(f"{design.fps:,.1f} frames/s at {design.clock_mhz:g} MHz "
                 f"({design.cycles_per_frame:,} cycles per frame)")
    if design.latency is not None:
        about = "about " if design.latency_is_estimate else ""
        lines.append(f"latency {about}{design.latency:,} cycles "
                     f"({design.latency / design.clock_mhz:,.1f} us)")
    return "\n".join(lines)


def engine_table(design):
    """An engine design's configuration, per-layer cycles, resources and rates as text."""
    c = design.config
    lanes = ", ".join(f"{n} x {b}-bit" for b, n in
                      sorted((b, c.lane_bits.count(b)) for b in set(c.lane_bits)))
    lines = [f"engine: {c.tm} x {c.tn} MAC array (lanes {lanes}), {c.data_bits}-bit AXI, "
             f"buffers {c.input_words:,} input / {c.output_words:,} output / "
             f"{c.weight_words:,} weight words",
             f"{'layer':<28} {'op':<9} {'cycles':>10} {'DRAM cyc':>10} {'MAC use':>8} "
             f"{'DRAM bytes':>12}"]
    for row in design.as_dict()["layers"]:
        lines.append(f"{row['name'][:28]:<28} {row['op']:<9} {row['cycles']:>10,} "
                     f"{row['bandwidth_cycles']:>10,} {row['utilization']:>8.1%} "
                     f"{row['bytes']:>12,}")
    t, capacity = design.resources, design.device.capacity()
    lines.append(f"{'LUT':>10} {'FF':>9} {'DSP':>6} {'BRAM18':>7} {'LUTRAM':>7}")
    lines.append(f"{t.lut:>10,} {t.ff:>9,} {t.dsp:>6} {t.bram18:>7} {t.lutram:>7,}")
    lines.append(" ".join(f"{getattr(t, k) / capacity[k]:>{w}.1%}" for k, w in
                          (("lut", 10), ("ff", 9), ("dsp", 6), ("bram18", 7), ("lutram", 7)))
                 + f" of {design.device.name}")
    lines.append(f"{design.fps:,.1f} frames/s at {design.clock_mhz:g} MHz "
                 f"({design.cycles_per_frame:,} cycles per frame, {design.model_cycles:,} by "
                 f"the cycle model); MAC array {design.mac_utilization:.1%} busy; DRAM "
                 f"{design.bytes_per_frame:,} bytes per frame, {design.bandwidth_used_gbs:.2f} "
                 f"of {design.bandwidth_gbs:g} GB/s")
    return "\n".join(lines)


def auto_report(results, choice):
    """``report.json`` of ``--arch auto``: each architecture's report, or why it does not
    fit (``results``: ``{arch: design or error}``), and the one picked."""
    report = {"architecture": "auto", "chosen": choice}
    for arch, result in results.items():
        report[arch] = ({"fits": False, "reason": str(result)} if isinstance(result, Exception)
                        else {"fits": True} | result.as_dict())
    return report


def clear_report(out_dir):
    """Delete a previous estimate's files in ``out_dir``, so that a run that fails does not
    leave them looking like its own."""
    remove(*(Path(out_dir) / name for name in REPORT_FILES))


def write_report(design, out_dir, extra=None):
    """Write ``estimate.png``, then ``report.json``, into ``out_dir``; return their paths.

    Each file is written whole or not at all, and the report last: a report in the folder
    means the run finished.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = (out_dir / name for name in REPORT_FILES)
    if isinstance(design, dict):                 # --arch auto: {arch: design or error}
        report = auto_report(design, extra.pop("chosen")) | (extra or {})
        _plot_both(design, png_path)
    elif getattr(design, "config", None) is not None:
        report = design.as_dict() | (extra or {})
        _plot_both({"engine": design}, png_path)
    else:
        report = design.as_dict() | (extra or {})
        _plot(design, png_path)
    write_text(json_path, json.dumps(report, indent=2) + "\n")
    return json_path, png_path


def _plot(design, path):
    # matplotlib takes a quarter of a second to import: only `hwgen estimate` pays for it.
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = design.rows
    capacity = design.device.capacity()
    names = [r["name"] for r in rows]
    fig, (ax_res, ax_cyc, ax_dse) = plt.subplots(3, 1, figsize=(max(8, 0.35 * len(rows)), 12))
    x = range(len(rows))
    width = 0.2
    for i, kind in enumerate(("lut", "ff", "dsp", "bram18")):
        ax_res.bar([v + (i - 1.5) * width for v in x],
                   [getattr(r["resources"], kind) / capacity[kind] * 100 for r in rows],
                   width, label=kind.upper())
    ax_res.set_ylabel(f"% of {design.device.name}")
    ax_res.set_title("Resources per layer")
    ax_res.legend()
    ax_cyc.bar(list(x), [r["cycles"] for r in rows], color="tab:gray")
    ax_cyc.axhline(design.cycles_per_frame, color="tab:red", linewidth=1,
                   label=f"frame interval {design.cycles_per_frame:,}")
    ax_cyc.set_ylabel("cycles per frame")
    ax_cyc.set_title("Cycles per layer")
    ax_cyc.legend()
    for ax in (ax_res, ax_cyc):
        ax.set_xticks(list(x))
        ax.set_xticklabels(names, rotation=90, fontsize=7)
    points = design.explored or [{"fps": design.fps, "total": design.total.as_dict()}]
    ax_dse.scatter([p["total"]["dsp"] for p in points], [p["fps"] for p in points],
                   label="explored")
    ax_dse.scatter([design.total.dsp], [design.fps], color="tab:red", label="chosen")
    ax_dse.set_xlabel("DSPs")
    ax_dse.set_ylabel(f"frames/s at {design.clock_mhz:g} MHz")
    ax_dse.set_title("Explored designs")
    ax_dse.legend()
    fig.tight_layout()
    with atomic(path, "wb") as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)


def _plot_both(results, path):
    """Each architecture's frame rate and share of each resource side by side, and the
    engine's cycles per layer (the cycle model's and the DRAM bandwidth's)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fits = {arch: d for arch, d in results.items() if not isinstance(d, Exception)}
    engine = fits.get("engine")
    rows = engine.as_dict()["layers"] if engine is not None else []
    fig, (ax_fps, ax_res, ax_cyc) = plt.subplots(3, 1, figsize=(max(8, 0.3 * len(rows)), 12))
    names = list(results)
    ax_fps.bar(names, [fits[a].fps if a in fits else 0 for a in names], color="tab:blue")
    for i, arch in enumerate(names):
        ax_fps.text(i, 0, f"{fits[arch].fps:,.1f}" if arch in fits else "does not fit",
                    ha="center", va="bottom")
    ax_fps.set_ylabel("frames/s")
    ax_fps.set_title("Frame rate by architecture")
    kinds = ("lut", "ff", "dsp", "bram18", "lutram")
    width = 0.8 / max(1, len(fits))
    for i, (arch, d) in enumerate(fits.items()):
        total, capacity = (d.resources if arch == "engine" else d.total), d.device.capacity()
        ax_res.bar([k + (i - (len(fits) - 1) / 2) * width for k in range(len(kinds))],
                   [getattr(total, k) / capacity[k] * 100 for k in kinds], width, label=arch)
    ax_res.set_xticks(range(len(kinds)))
    ax_res.set_xticklabels([k.upper() for k in kinds])
    ax_res.set_ylabel("% of the device")
    ax_res.set_title("Resources by architecture")
    ax_res.legend()
    if rows:
        x = range(len(rows))
        ax_cyc.bar([v - 0.2 for v in x], [r["cycles"] for r in rows], 0.4, label="cycle model")
        ax_cyc.bar([v + 0.2 for v in x], [r["bandwidth_cycles"] for r in rows], 0.4,
                   label=f"DRAM at {engine.bandwidth_gbs:g} GB/s")
        ax_cyc.set_xticks(list(x))
        ax_cyc.set_xticklabels([r["name"] for r in rows], rotation=90, fontsize=7)
        ax_cyc.legend()
    ax_cyc.set_ylabel("cycles")
    ax_cyc.set_title("Engine cycles per layer")
    fig.tight_layout()
    with atomic(path, "wb") as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)
