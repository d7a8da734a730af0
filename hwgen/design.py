"""A folded dataflow design and its estimate: what :func:`hwgen.compile` returns."""

from dataclasses import dataclass, field

from .model import Resources

__all__ = ["Design", "DesignError"]


class DesignError(ValueError):
    """No design meets the request; the message names the bottleneck and the best figure."""


@dataclass
class Design:
    """A folded design and its estimate.

    Attributes
    ----------
    device : Device
    clock_mhz : float
    folding : dict
        ``{layer: (pe, simd)}``.
    lut_lanes : dict
        ``{layer: {weight bits: lanes}}`` moved to LUT multipliers.
    rom_styles : dict
        ``{layer: "block" | "logic"}``: weight ROMs placed by the search, not by synthesis.
    cycles_per_frame : int
    rows : list of dict
        Per graph node: ``name``, ``op``, ``pe``, ``simd``, ``cycles``, ``resources``.
    total : Resources
    explored : list of dict
        The designs tried on the way: ``cycles_per_frame``, ``fps``, ``total`` (dict), ``fits``.
    latency : int or None
        Cycles from a frame's first input beat to its last output beat, from the schedule of
        the accelerator the design builds (an estimate with line buffers:
        ``latency_is_estimate``); None when not computed.
    """

    device: object
    clock_mhz: float
    folding: dict
    lut_lanes: dict
    rom_styles: dict
    cycles_per_frame: int
    rows: list
    total: Resources
    explored: list = field(default_factory=list)
    latency: int = None
    latency_is_estimate: bool = False

    @property
    def fps(self):
        return self.clock_mhz * 1e6 / self.cycles_per_frame

    def utilization(self):
        return self.total.utilization(self.device)

    @property
    def build_options(self):
        """Keyword arguments that build this design: ``hwgen.generate(graph, out_dir,
        **design.build_options)``."""
        return {"folding": dict(self.folding), "lut_lanes": dict(self.lut_lanes),
                "rom_styles": dict(self.rom_styles), "device": self.device.family}

    def as_dict(self):
        return {
            "device": self.device.as_dict(), "clock_mhz": self.clock_mhz,
            "cycles_per_frame": self.cycles_per_frame, "fps": round(self.fps, 3),
            "latency_cycles": self.latency, "latency_is_estimate": self.latency_is_estimate,
            "latency_us": None if self.latency is None else
            round(self.latency / self.clock_mhz, 3),
            "folding": {k: list(v) for k, v in self.folding.items()},
            "lut_lanes": {k: {str(b): n for b, n in v.items()} for k, v in self.lut_lanes.items()
                          if v},
            "rom_styles": dict(self.rom_styles),
            "total": self.total.as_dict(),
            "utilization": {k: round(v, 4) for k, v in self.utilization().items()},
            "layers": [{**r, "resources": r["resources"].as_dict()} for r in self.rows],
            "explored": self.explored,
        }
