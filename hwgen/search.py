"""The folding search behind :func:`hwgen.compile`: per layer options, their prices, and the
cheapest mix within a frame interval.

A layer's :class:`Option` is a folding (``pe``, ``simd``), how many of its low-precision
lanes are LUT multipliers, and where its weight ROMs go. The frame interval is the slowest
stage's cycles, so for a target interval ``T`` the layers are independent: :meth:`Search.choose`
gives each its cheapest option within ``T``, resources weighed by their share of the device,
the weights of overflowing resources raised until the design fits or an :class:`Infeasible`
says why not. Prices come from :class:`~hwgen.pricing.Network`: the cost model applied to each layer's
view and to the blocks streamed at its beat (requantizers, pools, joins).
"""

from dataclasses import dataclass, field

import numpy as np

from .blocks._util import divisors
from .design import Design
from .model import Resources
from .model.layers import layer_cost
from .model.resources import KINDS
from .pricing import Network

__all__ = ["Option", "Infeasible", "Search", "greedy_folding"]

#: The resources a layer may not use more of than its FINN-style folding (target mode): the
#: multipliers' LUTs and DSPs; memory and registers are traded by price.
REFERENCE_KINDS = ("lut", "dsp")
#: Where weights can live: block RAM, or LUTs as logic ROMs.
MEMORY_KINDS = ("bram18", "lut")
#: The weight ROM placement that relieves a resource running short.
RESTYLE = {"bram18": "logic", "lut": "block"}


@dataclass(frozen=True)
class Option:
    """One way to build a layer: folding, LUT lanes (``((bits, lanes), ...)``), ROM placement
    (None: synthesis's choice) and the cycles per frame it gives."""
    pe: int
    simd: int
    lut: tuple = ()
    style: str = None
    cycles: int = 0

    @property
    def key(self):
        """What the option builds (its cycles follow from it)."""
        return (self.pe, self.simd, self.lut, self.style)

    @property
    def lut_lanes(self):
        return dict(self.lut)


@dataclass(frozen=True)
class Infeasible:
    """Why no design meets a frame interval.

    ``kind`` is ``"cycles"`` (layer ``layer`` cannot meet it at any folding), ``"memory"``
    (block RAM and LUTs together average ``share`` of the device even with every layer's
    weights at its best split), or a resource of :data:`~hwgen.model.resources.KINDS`:
    ``total`` needs more of ``kinds`` than allowed; ``bound`` says whether that holds with
    every layer at its fewest of them (a bound no weighting can beat) or is the last mix
    tried.
    """
    layer: str
    kind: str
    total: Resources = None
    kinds: tuple = ()
    bound: bool = False
    share: float = 0.0


@dataclass
class Search:
    """Prices and picks options for one graph on one device."""
    graph: object
    device: object
    clock_mhz: float
    utilization: float
    cache: dict = field(default_factory=dict)
    #: Resources kept free for what the layer prices leave out (the stream glue).
    reserve: Resources = field(default_factory=Resources)

    def __post_init__(self):
        self.network = Network(self.graph, self.device.family)
        self.capacity = self.device.capacity()
        first = next(iter(self.graph.consumers("input")), None)
        self.first = first.name if first is not None and \
            self.network.views[first.name].has_weights else None

    def allowed(self, kind):
        """How much of resource ``kind`` the layers may use."""
        return self.utilization * self.capacity[kind] - getattr(self.reserve, kind)

    def options(self, view, target):
        """Per pe: the smallest simd within ``target`` cycles, with each LUT choice (ROMs
        where synthesis puts them); only the shapes within twice the fewest MACs per cycle or
        with at most 64 lanes."""
        out = []
        for pe in divisors(view.out_channels):
            for simd in view.simd_options:
                if view.depthwise and pe != view.in_lanes(simd) or \
                        view.positions(simd) > 1 and pe != view.out_channels:
                    continue
                cycles = self.cycles(view, pe, simd)
                if cycles <= target:
                    out.append((pe, simd, cycles))
                    break
        if not out:
            return []
        fewest = min(pe * simd for pe, simd, _ in out)
        # Wide shapes only pay off in memory: a PE that gathers a precision's filters into
        # fewer lanes widens fewer of them, and a wider word may fill its block RAMs better
        # (up to 64 lanes are tried).
        return [Option(pe, simd, lut, None, cycles) for pe, simd, cycles in out
                if pe * simd <= 2 * fewest or pe <= 64
                for lut in self.network.lut_choices(view, pe)]

    def cycles(self, view, pe, simd):
        """Cycles per frame of a layer folded ``pe`` x ``simd`` and of what it streams."""
        cycles = view.cycles(pe, simd)
        if view.name == self.first:
            cycles = max(cycles, self.network.elements["input"] // view.in_lanes(simd))
        return max(cycles, self.network.streamed(view.name, view.out_lanes(pe, simd)))

    def restyled(self, view, options, styles):
        """``options`` with their weight ROMs forced to each of ``styles``."""
        if view.depthwise:
            return []
        return [Option(o.pe, o.simd, o.lut, style, o.cycles) for o in options
                if o.style is None for style in styles]

    def no_worse_than(self, view, options, pe, simd, target):
        """The options that use no more LUTs and DSPs than ``pe`` x ``simd`` with packed lanes
        and synthesis's ROMs (which is kept among them), when that shape meets ``target``."""
        reference = Option(pe, simd, (), None, self.cycles(view, pe, simd))
        if reference.cycles > target:
            return options
        bound = self.combined(view, reference)[0]
        kept = [o for o in options if o.key != reference.key and
                all(getattr(self.combined(view, o)[0], k) <= getattr(bound, k)
                    for k in REFERENCE_KINDS)]
        return kept + [reference]

    def cost(self, view, option):
        """``(the layer's own resources, those of the blocks streamed at its beat)``."""
        return self._costs(view, option)[:2]

    def combined(self, view, option):
        """:meth:`cost` summed, and as a vector in :data:`KINDS` order (for pricing)."""
        return self._costs(view, option)[2:]

    def _costs(self, view, option):
        key = (view.name, option.key)
        if key not in self.cache:
            net = self.network
            own = layer_cost(net.layer(view, option), net.family)
            after = net.follower_cost(view, view.out_lanes(option.pe, option.simd))
            both = own + after
            self.cache[key] = (own, after, both, np.array([getattr(both, k) for k in KINDS]))
        return self.cache[key]

    def choose(self, target, reference=None):
        """``{layer: Option}``: the cheapest design within ``target`` cycles, or an
        :class:`Infeasible`. With ``reference`` (``{layer: (pe, simd)}``), each layer uses no
        more LUTs and DSPs than its reference shape does with packed lanes."""
        weights = np.array([1.0 / max(self.capacity[k], 1) for k in KINDS])
        views = self.network.filters
        options = {}
        for view in views:
            options[view.name] = self.options(view, target)
            if not options[view.name]:
                return Infeasible(view.name, "cycles")
        styles, offered = set(), None
        for _ in range(12):
            if offered is None:            # the options on offer change only with the styles
                offered = {}
                for view in views:
                    offer = options[view.name] + self.restyled(view, options[view.name], styles)
                    if reference is not None:
                        offer = self.no_worse_than(view, offer, *reference[view.name], target)
                    offered[view.name] = offer
            picks = {}
            for view in views:
                def price(option):
                    return float(weights @ self.combined(view, option)[1]), option.simd * option.pe
                picks[view.name] = min(offered[view.name], key=price)
            total = sum((self.combined(v, picks[v.name])[0] for v in views), Resources())
            over = [k for k in KINDS if getattr(total, k) > self.allowed(k)]
            if not over:
                return picks
            for k in over:
                weights[KINDS.index(k)] *= 4.0
            # Weight ROMs go where synthesis puts them until a memory runs short: then the
            # search may move them to logic (block RAM short) or block RAM (LUTs short).
            more = {RESTYLE[k] for k in over if k in RESTYLE} - styles
            if more:
                styles |= more
                offered = None
        every = {v.name: options[v.name] + self.restyled(v, options[v.name], RESTYLE.values())
                 for v in views}
        return self._why_not(views, every, picks, over, total)

    def _why_not(self, views, options, picks, over, total):
        """Why no mix of options fits: the resources that overflow even when every layer
        takes its own fewest of them (a bound no weighting can beat), else the last mix."""
        def fewest(view, kind):
            return min(getattr(self.combined(view, o)[0], kind) for o in options[view.name])
        least = Resources(**{k: sum(fewest(v, k) for v in views) for k in KINDS})
        bound = [k for k in KINDS if getattr(least, k) > self.allowed(k)]
        if not bound:
            # Weights can sit in block RAM or in logic: a layer's best split still takes a
            # share of the two together, and the two shares may average at most utilization.
            def memory_share(view):
                return min(sum(getattr(self.combined(view, o)[0], k) / self.capacity[k]
                               for k in MEMORY_KINDS) for o in options[view.name])
            average = sum(memory_share(v) for v in views) / len(MEMORY_KINDS)
            if average > self.utilization:
                return Infeasible(max(views, key=memory_share).name, "memory", share=average)
        kinds, figures = (bound, least) if bound else (over, total)
        worst = max(kinds, key=lambda k: getattr(figures, k) / max(self.capacity[k], 1))
        biggest = max(views, key=lambda v: fewest(v, worst) if bound else
                      getattr(self.combined(v, picks[v.name])[0], worst))
        return Infeasible(biggest.name, worst, figures, tuple(kinds), bool(bound))

    def design(self, picks):
        """The :class:`~hwgen.design.Design` of ``{layer: Option}``."""
        net = self.network
        rows, total = [], Resources()
        lanes = {value: n for name, option in picks.items() for value, n in
                 net.beat_lanes(name, net.views[name].out_lanes(option.pe, option.simd)).items()}
        for name, view in net.views.items():
            if view.has_weights:
                option = picks[name]
                own = self.cost(view, option)[0]
                rows.append({"name": name, "op": view.node.op, "pe": option.pe,
                             "simd": option.simd,
                             "lut_lanes": {str(b): n for b, n in option.lut},
                             "rom_style": option.style, "cycles": option.cycles,
                             "resources": own})
            else:
                beat, out = lanes.get(name, (1, 1))
                own = net.value_cost(view, beat)
                if view.kind == "flatten" and not any(vars(own).values()):
                    continue
                rows.append({"name": name, "op": view.node.op, "pe": None, "simd": beat,
                             "cycles": max(net.elements[view.node.inputs[0]] // beat,
                                           net.elements[name] // out),
                             "resources": own})
            total += own
        output = self.graph.output
        cycles = max([r["cycles"] for r in rows]
                     + [net.elements[output] // lanes.get(output, (1, 1))[1]])
        return Design(self.device, self.clock_mhz,
                      {name: (o.pe, o.simd) for name, o in picks.items()},
                      {name: o.lut_lanes for name, o in picks.items()},
                      {name: o.style for name, o in picks.items() if o.style is not None},
                      cycles, rows, total)

    def bounds(self):
        """Fewest and most cycles per frame any folding gives."""
        net = self.network
        low = [v.cycles(v.out_channels, v.simd_options[-1]) for v in net.filters]
        high = [v.cycles(1, 1) for v in net.filters]
        return max(low + [1]), max(high + [net.elements["input"]])


def greedy_folding(graph, target_cycles):
    """FINN-style folding: per layer, starting from ``pe = simd = 1``, raise SIMD to its next
    divisor of the input channels (features) until it is at its maximum, then PE, until the
    layer meets ``target_cycles``; then PE further while the blocks streamed at the layer's
    beat (requantizers, pools, joins) need more cycles than that; then, for a convolution, SIMD
    over several window positions per beat."""
    network = Network(graph, "xc7")
    folding = {}
    for view in network.filters:
        pes, simds = divisors(view.out_channels), view.simd_options
        channel_simds = divisors(view.in_count)

        def late(pe, simd):
            return view.cycles(pe, simd) > target_cycles or \
                network.streamed(view.name, view.out_lanes(pe, simd)) > target_cycles

        pe, simd = pes[0], simds[0]
        while late(pe, simd):
            if view.depthwise and simd != simds[-1]:
                simd = simds[simds.index(simd) + 1]
                pe = view.in_lanes(simd)
            elif not view.depthwise and simd < channel_simds[-1] and \
                    view.cycles(pe, simd) > target_cycles:
                simd = simds[simds.index(simd) + 1]
            elif not view.depthwise and pe != pes[-1]:
                pe = pes[pes.index(pe) + 1]
            elif not view.depthwise and simd != simds[-1]:
                simd = simds[simds.index(simd) + 1]
            else:
                break
        folding[view.name] = (pe, simd)
    return folding
