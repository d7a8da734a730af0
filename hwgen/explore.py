"""Design-space exploration: per-layer folding and multipliers for a device and a frame rate.

:func:`compile` prices every layer of a QGraph with the cost model (:mod:`hwgen.model`) and
picks, per dense layer or convolution, ``pe`` and ``simd`` (any divisors), how many of its
low-precision MAC lanes are LUT multipliers instead of packed DSP lanes (FILM-QNN's balance),
and where its weight ROMs go (:mod:`hwgen.search`). The fastest design is the smallest
feasible frame interval (a bisection); a frame-rate target fixes the interval and keeps the
cheapest design in which no layer uses more LUTs or DSPs than its FINN-style folding
(:func:`~hwgen.search.greedy_folding`) does. Both refuse, with the same message as
:func:`hwgen.generate`, a model the hardware cannot build.
"""

import math

import numpy as np

from quant.numerics import is_int

from .blocks._util import divisors
from .design import Design, DesignError
from .errors import FoldingError
from .folding import check_folding
from .generate import plan
from .model import Resources, device as get_device
from .model.resources import KINDS
from .ops import op_views
from .pricing import join_costs, stream_glue
from .search import Infeasible, Option, Search, greedy_folding
from .support import check_hardware_support

__all__ = ["Design", "DesignError", "check_samples_per_cycle", "compile", "estimate",
           "greedy_folding", "samples_folding", "signal_length", "unfolded_lut_lanes"]


def _check_share(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
            or not 0 < value <= 1:
        raise ValueError(f"{name} must be a share in (0, 1], not {value!r}")


def _check_target(target_fps):
    if target_fps is not None and (isinstance(target_fps, bool) or
                                   not isinstance(target_fps, (int, float)) or
                                   not math.isfinite(target_fps) or target_fps <= 0):
        raise ValueError(f"target_fps must be a positive number, not {target_fps!r}")


def _over(total, capacity, utilization, kinds):
    return ", ".join(f"{k} {getattr(total, k)} > {utilization:g} x {capacity[k]}"
                     for k in kinds)


def _no_fit(search, why):
    """The :class:`DesignError` of a model that does not fit even fully folded."""
    part, utilization = search.device, search.utilization
    weight_bits = sum(int(v.weight[0].size * v.weight_bits.sum())
                      for v in search.network.filters)
    memory = (f"its weights alone are {weight_bits / 1e6:.1f} Mbit against "
              f"{part.bram18 * 18 * 1024 / 1e6:.1f} Mbit of block RAM")
    head = f"the model does not fit {part.name} even fully folded"
    if why.kind == "cycles":
        return DesignError(f"{head}: layer '{why.layer}' cannot meet the cycle bound; {memory}")
    if why.kind == "memory":
        return DesignError(f"{head}: with every layer's weight ROMs at its best split between "
                           f"block RAM and logic, block RAM and LUTs still average "
                           f"{why.share * 100:.3g}% of the device (utilization "
                           f"{utilization:g}); layer '{why.layer}' needs the most; {memory}")
    what = ("with every layer at its fewest of each resource, the design still needs "
            if why.bound else "no mix of layer options fits; the last one tried needs ")
    return DesignError(f"{head}: {what}{_over(why.total, search.capacity, utilization, why.kinds)}"
                       f"; layer '{why.layer}' needs the most {why.kind}; {memory}")


class _Explorer:
    """Designs tried for one request, in order (the report's ``explored``)."""

    def __init__(self, search):
        self.search, self.explored = search, []

    def attempt(self, target, reference=None):
        """The cheapest :class:`Design` within ``target`` cycles, or an :class:`Infeasible`."""
        picks = self.search.choose(target, reference)
        if isinstance(picks, Infeasible):
            return picks
        design = self.search.design(picks)
        self.explored.append({"cycles_per_frame": design.cycles_per_frame,
                              "fps": round(design.fps, 3), "total": design.total.as_dict(),
                              "fits": True})
        return design

    def fastest(self):
        """The fastest design that fits, and why the next faster interval failed (or None)."""
        low, high = self.search.bounds()
        best = self.attempt(high)
        if isinstance(best, Infeasible):
            raise _no_fit(self.search, best)
        why_faster = None
        while low < high:
            mid = (low + high) // 2
            design = self.attempt(mid)
            if isinstance(design, Infeasible):
                low, why_faster = mid + 1, design
            else:
                best, high = design, min(mid, design.cycles_per_frame)
        return best, why_faster


def compile(graph, device="xc7z020", clock_mhz=100.0, target_fps=None, utilization=0.8):
    """Fold ``graph`` for ``device`` at ``clock_mhz``: the fastest design that fits, or, with
    ``target_fps``, the cheapest that reaches it.

    Returns a :class:`Design`; :meth:`Design.as_dict` is its report. ``utilization`` is the
    share of each resource the design may use.

    Raises
    ------
    ValueError
        An unknown device, a clock the device cannot run, a bad utilization or target.
    UnsupportedLayerError
        The hardware cannot build the model (as :func:`hwgen.generate` says).
    DesignError
        Nothing fits, or the target cannot be met: the message names the bottleneck layer and
        resource and the best frame rate reachable.
    """
    part = get_device(device)
    clock_mhz = part.check_clock(clock_mhz)
    _check_share("utilization", utilization)
    _check_target(target_fps)
    check_hardware_support(graph)
    search = Search(graph, part, clock_mhz, utilization)
    # The layers are searched without the stream glue (converters, forks, deeper line
    # buffers), which only the built netlist shows: when the glue pushes a resource past the
    # utilization, the search runs again with that much of it kept free.
    for _ in range(3):
        design, searched = _compile(graph, search, target_fps)
        extra = design.total - searched
        over = [k for k in KINDS if getattr(design.total, k) > utilization * search.capacity[k]]
        if not over:
            return design
        search.reserve = Resources(**{k: max(getattr(search.reserve, k),
                                             getattr(extra, k)) for k in KINDS})
    raise DesignError(
        f"the model does not fit {part.name}: with the stream glue the design still needs "
        f"{_over(design.total, search.capacity, utilization, over)}")


def _compile(graph, search, target_fps):
    """One search: the design (with its glue and latency) and the total the search priced."""
    part, clock_mhz, utilization = search.device, search.clock_mhz, search.utilization
    explorer = _Explorer(search)
    best, why_faster = explorer.fastest()
    if target_fps is None:
        best.explored = explorer.explored
        searched = best.total
        return _with_latency(graph, best), searched
    target = math.floor(clock_mhz * 1e6 / target_fps)
    if target < best.cycles_per_frame:
        if why_faster is None or why_faster.kind == "cycles":
            # Fully unfolded or as fast as the fold allows: the slowest stage is the limit.
            name, kind = max(best.rows, key=lambda r: r["cycles"])["name"], "its cycles"
            if name == search.first:
                kind = _input_bound(search, best, name) or kind
        else:
            name, kind = why_faster.layer, why_faster.kind
        raise DesignError(
            f"{target_fps:g} frames/s at {clock_mhz:g} MHz needs {target} cycles per frame; "
            f"the best design that fits {part.name} (utilization {utilization:g}) takes "
            f"{best.cycles_per_frame} ({best.fps:.1f} frames/s); the bottleneck is layer "
            f"'{name}' ({kind})")
    # Never worse than the FINN-style folding: each layer starts from its greedy shape and
    # takes another only if it needs no more of any resource.
    design = explorer.attempt(target, greedy_folding(graph, target))
    if isinstance(design, Infeasible):
        design = explorer.attempt(target)
    design.explored = explorer.explored
    searched = design.total
    return _with_latency(graph, design), searched


def _input_bound(search, design, name):
    """``"its input stream, ..."`` when the first layer's cycles are its input's beats (a
    bound no folding passes), else None."""
    view = search.network.views[name]
    pe, simd = design.folding[name]
    lanes = view.in_lanes(simd)
    beats = search.network.elements["input"] // lanes
    if beats == design.cycles_per_frame >= view.cycles(pe, simd):
        return f"its input stream, {lanes} element{'s' if lanes > 1 else ''} per cycle"
    return None


def signal_length(graph):
    """The length of a 1-D signal input ``(channels, length)``, or None for another input."""
    shape = tuple(int(d) for d in graph.input.shape)
    return shape[1] if len(shape) == 2 else None


def check_samples_per_cycle(samples_per_cycle, length, signal="the signal"):
    """Raise ValueError unless ``samples_per_cycle`` is a positive divisor of ``length``, the
    length of ``signal``."""
    if isinstance(samples_per_cycle, bool) or not is_int(samples_per_cycle) or \
            samples_per_cycle < 1 or length % samples_per_cycle:
        raise ValueError(f"samples per cycle must divide {signal} length {length}; choose one "
                         f"of {', '.join(map(str, divisors(length)))}, not "
                         f"{samples_per_cycle!r}")


def unfolded_lut_lanes(graph, folding):
    """``{layer: {bits: lanes}}`` putting every lane of each unfolded layer in ``folding``
    (one fold each way: whole windows or the whole input vector, every filter at once) in
    LUTs: its weights are constants, and a constant LUT lane costs about the LUTs of a packed
    lane's adder tree alone, with no DSP (see :class:`~hwgen.blocks.MatVecUnit`)."""
    out = {}
    for name, view in op_views(graph).items():
        if not view.has_weights or view.depthwise or name not in folding:
            continue
        pe, simd = folding[name]
        if pe == view.out_channels and simd % view.fan_in == 0:
            bits, counts = np.unique(view.weight_bits, return_counts=True)
            out[name] = dict(zip(bits.tolist(), counts.tolist()))
    return out


def samples_folding(graph, samples_per_cycle):
    """The folding with which a 1-D network takes ``samples_per_cycle`` samples of its signal
    every cycle: a frame interval of ``length / samples_per_cycle`` cycles, each layer folded
    FINN-style for it (:func:`~hwgen.search.greedy_folding`; whole windows of several output
    positions per beat where one position per cycle is too slow).

    Raises
    ------
    ValueError
        For an input that is not a 1-D signal ``(channels, length)``, or a count that does
        not divide its length.
    DesignError
        When some layer cannot reach the interval at any folding; names the layer and its
        fewest cycles.
    """
    check_hardware_support(graph)
    length = signal_length(graph)
    if length is None:
        raise ValueError(f"samples per cycle apply to a 1-D signal input (channels, length), "
                         f"not an input of shape {tuple(graph.input.shape)}")
    check_samples_per_cycle(samples_per_cycle, length)
    target = length // samples_per_cycle
    folding = greedy_folding(graph, target)
    search = Search(graph, get_device("xc7z020"), 100.0, 1.0)   # cycles only
    for view in search.network.filters:
        if search.cycles(view, *folding[view.name]) > target:
            fewest = min(search.cycles(view, pe, simd) for pe in divisors(view.out_channels)
                         for simd in view.simd_options if not view.folding_problems(pe, simd))
            raise DesignError(
                f"{samples_per_cycle} samples per cycle need a frame interval of {target} "
                f"cycles; layer '{view.name}' takes at least {fewest} at any folding (its "
                f"positions per beat must divide its {view.pixels} output positions, and "
                f"a pool after it whose windows do not tile the rows takes one pixel per "
                f"beat at most)")
    return folding


def estimate(graph, folding, device="xc7z020", clock_mhz=100.0, lut_lanes=None,
             rom_styles=None, latency=True):
    """The :class:`Design` of a given folding (all lanes packed unless ``lut_lanes``; weight
    ROMs where synthesis puts them unless ``rom_styles``); ``latency=False`` skips scheduling
    the design for its latency."""
    part = get_device(device)
    clock_mhz = part.check_clock(clock_mhz)
    check_hardware_support(graph)
    check_folding(graph, folding)        # the folding rules, as generation words them
    search = Search(graph, part, clock_mhz, 1.0)
    picks = {}
    for view in search.network.filters:
        if view.name not in folding:
            raise FoldingError(f"layer '{view.name}': folding gives no PE and SIMD")
        pe, simd = folding[view.name]
        lut = tuple(sorted((lut_lanes or {}).get(view.name, {}).items()))
        picks[view.name] = Option(pe, simd, lut, (rom_styles or {}).get(view.name),
                                  search.cycles(view, pe, simd))
    design = search.design(picks)
    return _with_latency(graph, design, timed=latency)


def _with_latency(graph, design, timed=True):
    """``design`` with the stream glue and (unless not ``timed``) the latency of the
    accelerator it builds: its netlist and schedule, no blocks."""
    netlist, timing = plan(graph, **design.build_options, timed=timed)
    family = design.device.family
    if timing is not None:
        design.latency, design.latency_is_estimate = timing.latency, timing.latency_is_estimate
        _price_joins(design, join_costs(netlist, family, timing.fifo_depths))
    _add_glue(design, stream_glue(netlist, family))
    return design


def _price_joins(design, joins):
    """Each add's row priced as built (:func:`~hwgen.pricing.join_costs`): the add, then a
    row per FIFO on its operands."""
    rows = []
    for row in design.rows:
        if row["name"] not in joins:
            rows.append(row)
            continue
        (_, _, add), *fifos = joins[row["name"]]
        rows.append(row | {"resources": add})
        rows += [{"name": name, "op": kind, "pe": None, "simd": "", "cycles": 0,
                  "resources": cost} for name, kind, cost in fifos]
    design.rows = rows
    design.total = sum((row["resources"] for row in rows), Resources())


def _add_glue(design, glue):
    """Add the rows of ``glue`` (:func:`~hwgen.pricing.stream_glue`) to ``design`` and its
    total."""
    for name, kind, cost in glue:
        design.rows.append({"name": name, "op": kind, "pe": None, "simd": "", "cycles": 0,
                            "resources": cost})
        design.total = design.total + cost
