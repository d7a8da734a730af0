"""The estimate report of a :class:`~hwgen.explore.Design`: a table, ``report.json`` and a PNG."""

import json
from pathlib import Path

from .files import atomic, remove, write_text

__all__ = ["REPORT_FILES", "clear_report", "table", "write_report"]

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
    report = design.as_dict() | (extra or {})
    json_path, png_path = (out_dir / name for name in REPORT_FILES)
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
