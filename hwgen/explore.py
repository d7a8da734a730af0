"""Design-space exploration: per-layer folding and multipliers for a device and a frame rate.

:func:`compile` prices every layer of a QGraph with the cost model (:mod:`hwgen.model`) and
picks, per dense layer or convolution, ``pe`` and ``simd`` (any divisors) and how many of its
low-precision MAC lanes are LUT multipliers instead of packed DSP lanes (FILM-QNN's balance).
The frame interval is the slowest stage's cycles, so for a target interval ``T`` the layers are
independent: each takes its cheapest option that finishes within ``T``. "Cheapest" weighs each
resource by its share of the device; when the sum overflows one resource its weight grows
until the design fits or no option is left. The fastest design is the smallest feasible
``T`` (a bisection); a frame-rate target fixes ``T`` and keeps the cheapest design in which
no layer uses more LUTs or DSPs than its FINN-style folding for ``T`` does.

:func:`greedy_folding` is the FINN-style baseline: per layer, raise SIMD, then PE, one divisor
at a time, until the layer meets the target.
"""

import gc
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from quant import numerics

from . import packing
from .blocks._util import divisors
from .errors import FoldingError, UnsupportedLayerError
from .folding import FILTER_OPS, _Layer, fixed_order_filters, is_depthwise, lane_bits
from .model import Layer, Resources, device as get_device
from .model.layers import layer_cost
from .model.resources import KINDS

__all__ = ["Design", "DesignError", "compile", "estimate", "greedy_folding"]

_POOLS = {"maxpool1d": "maxpool", "maxpool2d": "maxpool", "avgpool1d": "avgpool",
          "avgpool2d": "avgpool", "global_avgpool": "global_avgpool"}


#: The resources a layer may not use more of than its FINN-style folding (target mode): the
#: multipliers' LUTs and DSPs; memory and registers are traded by price.
_REFERENCE_KINDS = ("lut", "dsp")
#: Where weights can live: block RAM, or LUTs as logic ROMs.
_MEMORY_KINDS = ("bram18", "lut")
#: The weight ROM placement that relieves a resource running short.
_RESTYLE = {"bram18": "logic", "lut": "block"}


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
        Cycles from a frame's first input beat to its last output beat, from the built
        accelerator's model (an estimate with line buffers: ``latency_is_estimate``); None
        when the hardware cannot build the model (``latency_note`` says why).
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
    latency_note: str = None

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
            **({"latency_note": self.latency_note} if self.latency_note else {}),
            "folding": {k: list(v) for k, v in self.folding.items()},
            "lut_lanes": {k: {str(b): n for b, n in v.items()} for k, v in self.lut_lanes.items()
                          if v},
            "rom_styles": dict(self.rom_styles),
            "total": self.total.as_dict(),
            "utilization": {k: round(v, 4) for k, v in self.utilization().items()},
            "layers": [{**r, "resources": r["resources"].as_dict()} for r in self.rows],
            "explored": self.explored,
        }


def _bits(lo, hi):
    return numerics.bits_for_range(min(int(lo), 0), max(int(hi), 0))


class _Network:
    """What the search needs of a graph: value types, consumers, elements, filter layers."""

    def __init__(self, graph, family):
        graph.validate()
        self.graph, self.family = graph, family
        self.shapes = graph.shapes()
        ranges = graph.ranges()
        self.types = {"input": (graph.input.bits, graph.input.signed)}
        for node in graph.nodes:
            self.types[node.name] = _bits(*ranges[node.name]) if node.op != "requantize" \
                else (node.attrs["out_bits"], node.attrs["out_signed"])
        self.fixed = fixed_order_filters(graph)
        self.filters = [n for n in graph.nodes if n.op in FILTER_OPS]
        self.info = {n.name: _Layer(n, self.shapes) for n in self.filters}
        self.elements = {k: int(np.prod(v)) for k, v in self.shapes.items()}
        self.elements["input"] = int(np.prod(graph.input.shape))
        # Values whose stream carries a filter layer's beat: through requantize, pools,
        # flatten and adds (first operand).
        self.stream_of = {}
        for node in graph.nodes:
            if node.op in FILTER_OPS:
                self.stream_of[node.name] = node.name
            else:
                self.stream_of[node.name] = self.stream_of.get(node.inputs[0])
        self._followers = {}
        self.carried = {}   # filter layer: values streamed at its beat
        for value, owner in self.stream_of.items():
            if owner is not None:
                self.carried.setdefault(owner, []).append(value)

    def lane_pattern(self, node, pe):
        """``{bits: lanes}`` of each fold (see :func:`~hwgen.folding.lane_bits`)."""
        values, counts = np.unique(lane_bits(node, pe, node.name in self.fixed),
                                   return_counts=True)
        return dict(zip(values.tolist(), counts.tolist()))

    def layer(self, node, pe, simd, lut_lanes, rom_style=None):
        """The :class:`~hwgen.model.Layer` of a dense layer or convolution."""
        in_bits, in_signed = self.types[node.inputs[0]]
        bits = node.tensors["weight_bits"]
        folds = bits.size // pe
        # Filters as the lanes hold them: a filter in a widened lane counts at the lane's bits.
        hist = {b: n * folds for b, n in self.lane_pattern(node, pe).items()}
        if is_depthwise(node):
            hist = dict(zip(*[a.tolist() for a in np.unique(bits, return_counts=True)]))
        acc_bits = self.types[node.name][0]
        common = dict(in_bits=in_bits, in_signed=in_signed, pe=pe, simd=simd,
                      weight_bits=hist, lut_lanes=dict(lut_lanes), multiplier=self.family,
                      acc_bits=acc_bits, rom_style=rom_style, name=node.name)
        in_shape = tuple(self.shapes[node.inputs[0]])
        if node.op == "dense":
            return Layer("dense", (int(np.prod(in_shape)),), out_channels=int(bits.size),
                         **common)
        w = node.tensors["weight"]
        kernel = tuple(w.shape[2:]) if node.op == "conv2d" else (1, w.shape[2])
        stride = tuple(node.attrs["stride"]) if node.op == "conv2d" \
            else (1, node.attrs["stride"][0])
        padding = tuple(node.attrs["padding"]) if node.op == "conv2d" \
            else (0, node.attrs["padding"][0])
        op = "depthwise" if is_depthwise(node) else "conv"
        return Layer(op, in_shape, out_channels=int(bits.size), kernel=kernel, stride=stride,
                     padding=padding, **common)

    def follower_cost(self, node, lanes):
        """Blocks streamed at the layer's beat: requantizers, pools and joins after it."""
        key = (node.name, lanes)
        if key not in self._followers:
            self._followers[key] = sum(
                (self.value_cost(self.graph[v], lanes) for v in self.carried.get(node.name, [])
                 if v != node.name), Resources())
        return self._followers[key]

    def value_cost(self, node, lanes):
        in_shape = tuple(self.shapes[node.inputs[0]])
        in_bits, in_signed = self.types[node.inputs[0]]
        if node.op == "requantize":
            mult = node.tensors["multiplier"]
            power = len(set(mult.tolist())) == 1 and (int(mult[0]) & (int(mult[0]) - 1)) == 0
            return layer_cost(Layer("requantize", in_shape, in_bits, True, simd=lanes,
                                    out_bits=node.attrs["out_bits"],
                                    out_signed=node.attrs["out_signed"],
                                    scale="power_of_two" if power else "per_channel",
                                    name=node.name), self.family)
        if node.op in _POOLS:
            a = node.attrs
            kernel = tuple(a.get("kernel", (1, 1)))
            stride = tuple(a.get("stride", kernel))
            if len(kernel) == 1:
                kernel, stride = (1, kernel[0]), (1, stride[0])
            return layer_cost(Layer(_POOLS[node.op], in_shape, in_bits, in_signed,
                                    kernel=kernel, stride=stride, simd=lanes, name=node.name),
                              self.family)
        if node.op == "add":
            skip_bits, skip_signed = self.types[node.inputs[1]]
            return layer_cost(Layer("add", in_shape, in_bits, in_signed, simd=lanes,
                                    skip_bits=skip_bits, skip_signed=skip_signed,
                                    fifo_depth=self.skip_depth(node, lanes), name=node.name),
                              self.family)
        return Resources()

    def skip_depth(self, node, lanes):
        """Beats the skip operand of an add waits for the body: the pixels each window on
        the body needs before its first output, plus a few per block (an estimate; a built
        :class:`~hwgen.Accelerator` sizes its FIFOs exactly)."""
        body = []
        value = node.inputs[0]
        stop = set(self._ancestors(node.inputs[1]))
        while value not in stop and value != "input":
            n = self.graph[value]
            body.append(n)
            value = n.inputs[0]
        channels = self.shapes[node.inputs[1]][0] if len(self.shapes[node.inputs[1]]) > 1 else 1
        pixels = 0
        for n in body:
            if n.op in ("conv1d", "conv2d"):
                shape = self.shapes[n.inputs[0]]
                kh, kw = (n.tensors["weight"].shape[2:] if n.op == "conv2d"
                          else (1, n.tensors["weight"].shape[2]))
                ph, pw = (n.attrs["padding"] if n.op == "conv2d" else (0, n.attrs["padding"][0]))
                width = shape[-1]
                pixels += max(kh - ph - 1, 0) * width + max(kw - pw, 1) + 2
        return max(1, math.ceil(pixels * channels / lanes))

    def _ancestors(self, value):
        seen = [value]
        while value != "input":
            value = self.graph[value].inputs[0]
            seen.append(value)
        return seen


def _lut_options(network, node, pe, simd):
    """``{bits: lanes}`` LUT-lane choices for the lowest precision: none, half of its packs,
    all of its lanes."""
    if is_depthwise(node):
        return [{}]
    pattern = network.lane_pattern(node, pe)
    low = min(pattern)
    in_bits, in_signed = network.types[node.inputs[0]]
    try:
        per_pack = packing.plan_lanes(network.family, low, in_bits, act_signed=in_signed).lanes
    except packing.PackingError:
        return [{low: pattern[low]}]
    lanes = pattern[low]
    packs = -(-lanes // per_pack)
    counts = sorted({0, min(lanes, (packs // 2) * per_pack), lanes})
    return [{low: n} if n else {} for n in counts]


class _Search:
    def __init__(self, graph, device, clock_mhz, utilization):
        self.device = device
        self.clock_mhz = clock_mhz
        self.utilization = utilization
        self.network = _Network(graph, device.family)
        self.capacity = device.capacity()
        self.cache = {}
        first = next(iter(graph.consumers("input")), None)
        self.first = first.name if first is not None and first.op in FILTER_OPS else None

    def options(self, node, target):
        """Per pe: the smallest simd within ``target`` cycles, with each LUT choice, as
        ``(pe, simd, lut_lanes, rom_style, cycles)`` (ROMs where synthesis puts them); only the
        shapes within twice the fewest MACs per cycle or with at most 64 lanes."""
        net, info = self.network, self.network.info[node.name]
        out = []
        for pe in divisors(info.out):
            if self.streamed(node, pe) > target:
                continue
            for simd in divisors(info.in_count):
                if info.depthwise and simd != pe:
                    continue
                cycles = self.cycles(node, pe, simd)
                if cycles <= target:
                    out.append((pe, simd, cycles))
                    break
        if not out:
            return []
        fewest = min(pe * simd for pe, simd, _ in out)
        # Wide shapes only pay off in memory: a PE that gathers a precision's filters into
        # fewer lanes packs the weight ROMs better (up to 64 lanes are tried).
        return [(pe, simd, lut, None, cycles) for pe, simd, cycles in out
                if pe * simd <= 2 * fewest or pe <= 64
                for lut in _lut_options(net, node, pe, simd)]

    def streamed(self, node, pe):
        """Cycles per frame of the blocks streamed at the layer's beat (``pe`` lanes)."""
        net = self.network
        return max(net.elements[v] for v in net.carried[node.name]) // pe

    def cycles(self, node, pe, simd):
        """Cycles per frame of a layer folded ``pe`` x ``simd`` and of what it streams."""
        cycles = self.network.info[node.name].cycles(pe, simd)
        if node.name == self.first:
            cycles = max(cycles, self.network.elements["input"] // simd)
        return max(cycles, self.streamed(node, pe))

    def restyled(self, node, options, styles):
        """``options`` with their weight ROMs forced to each of ``styles``."""
        if self.network.info[node.name].depthwise:
            return []
        return [(*o[:3], style, o[4]) for o in options if o[3] is None for style in styles]

    def no_worse_than(self, node, options, pe, simd, target):
        """The options that use no more LUTs and DSPs than ``pe`` x ``simd`` with packed lanes
        and synthesis's ROMs (which is kept among them), when that shape meets ``target``."""
        reference = (pe, simd, {}, None, self.cycles(node, pe, simd))
        if reference[-1] > target:
            return options
        bound = self.combined(node, *reference[:4])[0]
        kept = [o for o in options if o[:4] != reference[:4] and
                all(getattr(self.combined(node, *o[:4])[0], k) <= getattr(bound, k)
                    for k in _REFERENCE_KINDS)]
        return kept + [reference]

    def cost(self, node, pe, simd, lut, style=None):
        """The layer's own resources and those of the blocks streamed at its beat."""
        return self._costs(node, pe, simd, lut, style)[:2]

    def combined(self, node, pe, simd, lut, style=None):
        """:meth:`cost` summed, and as a vector in :data:`KINDS` order (for pricing)."""
        return self._costs(node, pe, simd, lut, style)[2:]

    def _costs(self, node, pe, simd, lut, style):
        key = (node.name, pe, simd, tuple(sorted(lut.items())), style)
        if key not in self.cache:
            net = self.network
            r = layer_cost(net.layer(node, pe, simd, lut, style), net.family)
            after = net.follower_cost(node, pe)
            both = r + after
            self.cache[key] = (r, after, both, np.array([getattr(both, k) for k in KINDS]))
        return self.cache[key]

    def choose(self, target, reference=None):
        """The cheapest design within ``target`` cycles, or ``(None, reason)``. With
        ``reference`` (``{layer: (pe, simd)}``), each layer uses no more LUTs and DSPs than its
        reference shape does with packed lanes."""
        weights = np.array([1.0 / max(self.capacity[k], 1) for k in KINDS])
        nodes = self.network.filters
        options = {}
        for node in nodes:
            options[node.name] = self.options(node, target)
            if not options[node.name]:
                return None, (node.name, "cycles")
        styles, offered = set(), None
        for _ in range(12):
            if offered is None:            # the options on offer change only with the styles
                offered = {}
                for node in nodes:
                    offer = options[node.name] + self.restyled(node, options[node.name], styles)
                    if reference is not None:
                        offer = self.no_worse_than(node, offer, *reference[node.name], target)
                    offered[node.name] = offer
            picks = {}
            for node in nodes:
                def price(option):
                    vector = self.combined(node, *option[:4])[1]
                    return float(weights @ vector), option[1] * option[0]
                picks[node.name] = min(offered[node.name], key=price)
            total = sum((self.combined(n, *picks[n.name][:4])[0] for n in nodes),
                        Resources())
            over = [k for k in KINDS if getattr(total, k) > self.utilization * self.capacity[k]]
            if not over:
                return picks, None
            for k in over:
                weights[KINDS.index(k)] *= 4.0
            # Weight ROMs go where synthesis puts them until a memory runs short: then the
            # search may move them to logic (block RAM short) or block RAM (LUTs short).
            more = {_RESTYLE[k] for k in over if k in _RESTYLE} - styles
            if more:
                styles |= more
                offered = None
        every = {n.name: options[n.name] + self.restyled(n, options[n.name], _RESTYLE.values())
                 for n in nodes}
        return None, self._why_not(nodes, every, picks, over, total)

    def _why_not(self, nodes, options, picks, over, total):
        """Why no mix of options fits: the resources that overflow even when every layer
        takes its own fewest of them (a bound no weighting can beat), else the last mix."""
        def fewest(node, kind):
            return min(getattr(self.combined(node, *o[:4])[0], kind)
                       for o in options[node.name])
        least = Resources(**{k: sum(fewest(n, k) for n in nodes) for k in KINDS})
        bound = [k for k in KINDS if getattr(least, k) > self.utilization * self.capacity[k]]
        if not bound:
            # Weights can sit in block RAM or in logic: a layer's best split still takes a
            # share of the two together, and the two shares may average at most utilization.
            def memory_share(node):
                return min(sum(getattr(self.combined(node, *o[:4])[0], k) / self.capacity[k]
                               for k in _MEMORY_KINDS) for o in options[node.name])
            average = sum(memory_share(n) for n in nodes) / len(_MEMORY_KINDS)
            if average > self.utilization:
                return max(nodes, key=memory_share).name, "memory", average, None, True
        kinds, figures = (bound, least) if bound else (over, total)
        worst = max(kinds, key=lambda k: getattr(figures, k) / max(self.capacity[k], 1))
        biggest = max(nodes, key=lambda n: fewest(n, worst) if bound else
                      getattr(self.combined(n, *picks[n.name][:4])[0], worst))
        return biggest.name, worst, figures, kinds, bool(bound)

    def design(self, picks):
        net = self.network
        rows, total = [], Resources()
        folding = {name: (pe, simd) for name, (pe, simd, *_) in picks.items()}
        lut_lanes = {name: dict(pick[2]) for name, pick in picks.items()}
        rom_styles = {name: pick[3] for name, pick in picks.items() if pick[3] is not None}
        owner_lanes = {name: pe for name, (pe, *_) in picks.items()}
        for node in net.graph.nodes:
            if node.op in FILTER_OPS:
                pe, simd, lut, style, cycles = picks[node.name]
                r = self.cost(node, pe, simd, lut, style)[0]
                rows.append({"name": node.name, "op": node.op, "pe": pe, "simd": simd,
                             "lut_lanes": {str(b): n for b, n in lut.items()},
                             "rom_style": style, "cycles": cycles, "resources": r})
            else:
                owner = net.stream_of.get(node.name)
                lanes = owner_lanes.get(owner, 1)
                r = net.value_cost(node, lanes)
                if node.op == "flatten" and not any(vars(r).values()):
                    continue
                rows.append({"name": node.name, "op": node.op, "pe": None, "simd": lanes,
                             "cycles": net.elements[node.inputs[0]] // lanes, "resources": r})
            total += r
        cycles = max([r["cycles"] for r in rows]
                     + [net.elements[net.graph.output] // owner_lanes.get(
                         net.stream_of.get(net.graph.output), 1)])
        return Design(self.device, self.clock_mhz, folding, lut_lanes, rom_styles, cycles, rows,
                      total)


def _bounds(network):
    """Fewest and most cycles per frame any folding gives."""
    low = [info.cycles(info.out, info.in_count) if not info.depthwise
           else info.cycles(info.in_count, info.in_count) for info in network.info.values()]
    high = [info.cycles(1, 1) for info in network.info.values()]
    return max(low + [1]), max(high + [network.elements["input"]])


def compile(graph, device="xc7z020", clock_mhz=100.0, target_fps=None, utilization=0.8):
    """Fold ``graph`` for ``device`` at ``clock_mhz``: the fastest design that fits, or, with
    ``target_fps``, the cheapest that reaches it.

    Returns a :class:`Design`; :meth:`Design.as_dict` is its report. ``utilization`` is the
    share of each resource the design may use.

    Raises
    ------
    ValueError
        An unknown device, a clock the device cannot run, a bad utilization or target.
    DesignError
        Nothing fits, or the target cannot be met: the message names the bottleneck layer and
        resource and the best frame rate reachable.
    """
    part = get_device(device)
    clock_mhz = part.check_clock(clock_mhz)
    if isinstance(utilization, bool) or not isinstance(utilization, (int, float)) \
            or not 0 < utilization <= 1:
        raise ValueError(f"utilization must be a share in (0, 1], not {utilization!r}")
    if target_fps is not None and (isinstance(target_fps, bool) or
                                   not isinstance(target_fps, (int, float)) or target_fps <= 0):
        raise ValueError(f"target_fps must be a positive number, not {target_fps!r}")
    search = _Search(graph, part, clock_mhz, utilization)
    low, high = _bounds(search.network)
    explored = []

    def attempt(target, reference=None):
        picks, why = search.choose(target, reference)
        if picks is not None:
            d = search.design(picks)
            explored.append({"cycles_per_frame": d.cycles_per_frame, "fps": round(d.fps, 3),
                             "total": d.total.as_dict(), "fits": True})
            return d, None
        return None, why

    best, why_fast = None, None
    lo, hi = low, high
    top, why_top = attempt(hi)
    if top is None:
        weight_bits = sum(int(n.tensors["weight"][0].size * n.tensors["weight_bits"].sum())
                          for n in search.network.filters)
        bram_bits = part.bram18 * 18 * 1024
        memory = (f"its weights alone are {weight_bits / 1e6:.1f} Mbit against "
                  f"{bram_bits / 1e6:.1f} Mbit of block RAM")
        if len(why_top) == 2:
            raise DesignError(f"the model does not fit {part.name} even fully folded: layer "
                              f"'{why_top[0]}' cannot meet the cycle bound; {memory}")
        name, kind, figures, kinds, bound = why_top
        if kind == "memory":
            raise DesignError(f"the model does not fit {part.name} even fully folded: with "
                              f"every layer's weight ROMs at its best split between block RAM "
                              f"and logic, block RAM and LUTs still average {figures:.0%} of "
                              f"the device (utilization {utilization:g}); layer '{name}' needs "
                              f"the most; {memory}")
        what = ("with every layer at its fewest of each resource, the design still needs "
                if bound else "no mix of layer options fits; the last one tried needs ")
        raise DesignError(f"the model does not fit {part.name} even fully folded: "
                          f"{what}{_over(figures, search.capacity, utilization, kinds)}; "
                          f"layer '{name}' needs the most {kind}; {memory}")
    best = top
    while lo < hi:
        mid = (lo + hi) // 2
        d, why = attempt(mid)
        if d is None:
            lo, why_fast = mid + 1, why
        else:
            best, hi = d, min(mid, d.cycles_per_frame)
    if target_fps is None:
        best.explored = explored
        return _with_latency(graph, best)
    target = math.floor(clock_mhz * 1e6 / target_fps)
    if target < best.cycles_per_frame:
        if why_fast is None or why_fast[1] == "cycles":
            # Fully unfolded or as fast as the fold allows: the slowest stage is the limit.
            name = max(best.rows, key=lambda r: r["cycles"])["name"]
            kind = "cycles"
        else:
            name, kind = why_fast[0], why_fast[1]
        raise DesignError(
            f"{target_fps:g} frames/s at {clock_mhz:g} MHz needs {target} cycles per frame; "
            f"the best design that fits {part.name} (utilization {utilization:g}) takes "
            f"{best.cycles_per_frame} ({best.fps:.1f} frames/s); the bottleneck is layer "
            f"'{name}' ({'its cycles' if kind == 'cycles' else kind})")
    # Never worse than the FINN-style folding: each layer starts from its greedy shape and
    # takes another only if it needs no more of any resource.
    d, _ = attempt(target, greedy_folding(graph, target))
    if d is None:
        d, _ = attempt(target)
    d.explored = explored
    return _with_latency(graph, d)


def _over(total, capacity, utilization, kinds):
    return ", ".join(f"{k} {getattr(total, k)} > {utilization:g} x {capacity[k]}"
                     for k in kinds)


def greedy_folding(graph, target_cycles):
    """FINN-style folding: per layer, starting from ``pe = simd = 1``, raise SIMD to its next
    divisor until it is at its maximum, then PE, until the layer meets ``target_cycles``; then
    PE further while the blocks streamed at the layer's beat (requantizers, pools, joins)
    need more cycles than that."""
    network = _Network(graph, "xc7")
    folding = {}
    for node in network.filters:
        info = network.info[node.name]
        pes, simds = divisors(info.out), divisors(info.in_count)
        most = max(network.elements[v] for v in network.carried[node.name])

        def late(pe, simd):
            return info.cycles(pe, simd) > target_cycles or most // pe > target_cycles

        pe, simd = pes[0], simds[0]
        while late(pe, simd):
            if info.depthwise and simd != simds[-1]:
                pe = simd = simds[simds.index(simd) + 1]
            elif not info.depthwise and simd != simds[-1] and \
                    info.cycles(pe, simd) > target_cycles:
                simd = simds[simds.index(simd) + 1]
            elif not info.depthwise and pe != pes[-1]:
                pe = pes[pes.index(pe) + 1]
            else:
                break
        folding[node.name] = (pe, simd)
    return folding


def estimate(graph, folding, device="xc7z020", clock_mhz=100.0, lut_lanes=None,
             rom_styles=None, latency=True):
    """The :class:`Design` of a given folding (all lanes packed unless ``lut_lanes``; weight
    ROMs where synthesis puts them unless ``rom_styles``); ``latency=False`` skips building
    the accelerator for its latency."""
    part = get_device(device)
    clock_mhz = part.check_clock(clock_mhz)
    search = _Search(graph, part, clock_mhz, 1.0)
    picks = {}
    for node in search.network.filters:
        if node.name not in folding:
            raise FoldingError(f"layer '{node.name}': folding gives no PE and SIMD")
        pe, simd = folding[node.name]
        picks[node.name] = (pe, simd, dict((lut_lanes or {}).get(node.name, {})),
                            (rom_styles or {}).get(node.name), search.cycles(node, pe, simd))
    design = search.design(picks)
    return _with_latency(graph, design) if latency else design


def _with_latency(graph, design):
    """``design`` with the latency of the accelerator it builds (elaborated no further)."""
    from amaranth.hdl import UnusedElaboratable

    from .generate import compile_graph
    # The blocks are built for their timing models only: not elaborating them is on purpose.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        try:
            acc = compile_graph(graph, **design.build_options)
        except (UnsupportedLayerError, FoldingError) as error:
            design.latency_note = f"not built in hardware: {error}"
            return design
        design.latency, design.latency_is_estimate = acc.latency, acc.has_windows
        del acc
        gc.collect()           # the unused blocks go while the warning is ignored
    return design
