"""Engine search: the :class:`~hwgen.engine.EngineConfig` for a network and a device.

For a QGraph and a device (part, clock, DRAM bandwidth) :func:`search_engine` picks the MAC
array (``tm = tn``), its lane precision pattern, the AXI data width and the buffer sizes with
the most frames per second within ``utilization`` of every resource, or, with ``target_fps``,
the cheapest that reaches it. (The engine's lanes are all packed DSP lanes: it has no LUT
multipliers to trade.)

A configuration's frame time is the cycle model's (:mod:`hwgen.engine.model`, equal to
Verilator's cycles on the simulated AXI RAM, which delivers one bus word a cycle) with one
more bound on top: no layer is faster than its DRAM bytes at ``bandwidth_gbs``. Resources
come from :func:`hwgen.engine.resources.engine_resources`.

The cycle model steps the input and output paths a cycle at a time (seconds for a full
ImageNet network), so the search keeps it affordable three ways: the network is compiled
once per array, lane pattern and bus width, and buffer sizes only re-tile its descriptors
(:func:`~hwgen.engine.image.band_rows`); each layer's cycles are cached by its descriptor (a
layer's cycles depend on its descriptor, fold passes and the bus alone, not on when it
starts); and candidates are tried in order of a lower bound on their cycles (the MAC array's
k-steps), stopping when no untried one can beat the best found.
"""

import dataclasses
import math
from dataclasses import dataclass, field

from ..design import DesignError
from ..errors import UnsupportedLayerError
from ..model import KINDS, device as get_device
from ..ops import op_views
from .compiler import compile_program
from .config import PORT_COUNTS, EngineConfig, film_lanes
from .image import band_rows, row_words
from .model import DEFAULT_LATENCY, NetworkCycles, layer_cycles
from .program import MATMUL

__all__ = ["BANDWIDTH_GBS", "DEFAULT_BANDWIDTH_GBS", "EngineDesign", "check_bandwidth",
           "check_max_data_bits", "default_bandwidth",
           "network_cycles", "search_engine"]

#: DRAM bandwidth from the fabric on a ZCU102-class board (the PS DDR4's 64 bits reach about
#: 75% of their 17-21 GB/s), GB/s: the search's for a part whose boards do not give one
#: (:attr:`hwgen.model.Device.dram_gbs`).
DEFAULT_BANDWIDTH_GBS = 13.0
#: Bandwidths the search accepts, GB/s: from a slow single-channel DDR to beyond HBM2.
BANDWIDTH_GBS = (0.1, 1000.0)
#: Widest AXI bus the search tries (the engine takes up to 1024 bits; 512 carry 64 bytes a
#: cycle, 12.8 GB/s at 200 MHz).
_MAX_DATA_BITS = 512
#: The AXI data widths the search tries, widest first: 512 down to 32.
_BUS_WIDTHS = tuple(_MAX_DATA_BITS >> k for k in range(5))
#: Input buffer sizes tried, as multiples of the least the network needs, and output buffer
#: sizes tried beside each.
_BUFFER_SCALES = (8, 4, 2, 1)
_OUTPUT_SCALES = (16, 8, 4, 2, 1)
#: Buffer sizes priced by the cycle model per array, lane pattern and bus width.
_SIZES_PER_BUS = 2
#: Buffer sizes with no limit: the probe compile that learns what a network needs.
_UNBOUNDED_WORDS = 1 << 24


def check_bandwidth(bandwidth_gbs):
    """``bandwidth_gbs`` as a float, or :class:`ValueError` naming the range."""
    lo, hi = BANDWIDTH_GBS
    if isinstance(bandwidth_gbs, bool) or not isinstance(bandwidth_gbs, (int, float)):
        raise TypeError(f"DRAM bandwidth must be a number of GB/s, not {bandwidth_gbs!r}")
    if not lo <= bandwidth_gbs <= hi:  # NaN fails this too
        raise ValueError(f"DRAM bandwidth must be within {lo:g}..{hi:g} GB/s, not "
                         f"{bandwidth_gbs:g}")
    return float(bandwidth_gbs)


def check_max_data_bits(bits):
    """``bits`` (the widest AXI data width the engine may have), or :class:`ValueError`."""
    if isinstance(bits, bool) or bits not in _BUS_WIDTHS:
        raise ValueError(f"the engine's widest AXI data width must be one of "
                         f"{', '.join(map(str, sorted(_BUS_WIDTHS)))} bits, not {bits!r}")
    return int(bits)


@dataclass
class EngineDesign:
    """An engine configuration for one network on one device, and its estimate.

    ``cycles`` is the cycle model's run (exact against the simulated AXI RAM, one bus word a
    cycle, read latency ``cycles.latency``); ``cycles_per_frame`` adds what the DRAM's
    bandwidth takes beyond it, layer by layer (``bandwidth_cycles``).
    """
    device: object
    clock_mhz: float
    bandwidth_gbs: float
    config: EngineConfig
    cycles: NetworkCycles
    resources: object
    utilization_limit: float = 1.0
    explored: list = field(default_factory=list)
    rejected: list = field(default_factory=list)

    @property
    def bytes_per_cycle(self):
        return self.bandwidth_gbs * 1e3 / self.clock_mhz

    @property
    def bandwidth_cycles(self):
        """Per layer: the cycles its DRAM bytes take at the bandwidth."""
        return [math.ceil((layer.bytes_read + layer.bytes_written) / self.bytes_per_cycle)
                for layer in self.cycles.layers]

    @property
    def model_cycles(self):
        return self.cycles.total

    @property
    def cycles_per_frame(self):
        return self.cycles.total + sum(max(0, b - layer.total) for b, layer in
                                       zip(self.bandwidth_cycles, self.cycles.layers))

    @property
    def bytes_per_frame(self):
        return sum(layer.bytes_read + layer.bytes_written for layer in self.cycles.layers)

    @property
    def fps(self):
        return self.clock_mhz * 1e6 / self.cycles_per_frame

    @property
    def bandwidth_used_gbs(self):
        return self.bytes_per_frame * self.fps / 1e9

    @property
    def mac_utilization(self):
        """Useful MACs over the array's ``tm * tn`` a cycle for the whole frame."""
        c = self.config
        return self.cycles.macs / (c.tm * c.tn * self.cycles_per_frame)

    def utilization(self):
        return self.resources.utilization(self.device)

    def larger_rejected(self, count=4):
        """The larger arrays the search refused, smallest first: for each array and lane
        pattern its least configuration (fewest buffer words, narrowest bus priced) and the
        resources it needs beyond the limit."""
        least = {}
        for r in self.rejected:
            if r["tm"] <= self.config.tm:
                continue
            key = (r["tm"], tuple(sorted(r["lane_bits"].items())))
            size = (r.get("input_scale", 0), r.get("output_scale", 0), r.get("data_bits", 0))
            if key not in least or size < least[key][0]:
                least[key] = (size, r)
        return [r for _, (_, r) in sorted(least.items())][:count]

    def bounds(self):
        """What bounds the frame rate, with the numbers: the device's resources (the share
        used against the limit, and what the next larger array the search rejected needs),
        the DRAM bandwidth, and the MAC array's utilization (the layers that waste most of
        its cycles)."""
        c = self.config
        tmtn = c.tm * c.tn
        layers = sorted(zip(self.cycles.layers, self.bandwidth_cycles),
                        key=lambda lb: -(max(lb[0].total, lb[1]) - lb[0].macs / tmtn))
        bandwidth_extra = self.cycles_per_frame - self.model_cycles
        return {
            "resources": {k: {"used": getattr(self.resources, k),
                              "share": round(v, 4), "limit": self.utilization_limit}
                          for k, v in self.utilization().items()},
            "larger_arrays_rejected": self.larger_rejected(),
            "bandwidth": {"gbs_available": self.bandwidth_gbs,
                          "gbs_used": round(self.bandwidth_used_gbs, 3),
                          "bytes_per_frame": self.bytes_per_frame,
                          "cycles_added": bandwidth_extra,
                          "layers_bound": sum(b > layer.total for layer, b in
                                              zip(self.cycles.layers, self.bandwidth_cycles))},
            "array": {"mac_utilization": round(self.mac_utilization, 4),
                      "idle_mac_cycles": self.cycles_per_frame - math.ceil(self.cycles.macs /
                                                                           tmtn),
                      "worst_layers": [{"name": layer.name, "op": layer.op,
                                        "cycles": max(layer.total, b),
                                        "mac_cycles": math.ceil(layer.macs / tmtn),
                                        "bandwidth_cycles": b}
                                       for layer, b in layers[:5]]},
        }

    def as_dict(self):
        return {
            "architecture": "engine",
            "device": self.device.as_dict(), "clock_mhz": self.clock_mhz,
            "bandwidth_gbs": self.bandwidth_gbs,
            "engine": self.config.as_dict(),
            "dram_latency_cycles": self.cycles.latency,
            "model_cycles_per_frame": self.model_cycles,
            "cycles_per_frame": self.cycles_per_frame,
            "fps": round(self.fps, 3),
            "macs_per_frame": self.cycles.macs,
            "mac_utilization": round(self.mac_utilization, 4),
            "dram_bytes_per_frame": self.bytes_per_frame,
            "bandwidth_used_gbs": round(self.bandwidth_used_gbs, 3),
            "total": self.resources.as_dict(),
            "utilization": {k: round(v, 4) for k, v in self.utilization().items()},
            "bounds": self.bounds(),
            "layers": [{"name": layer.name, "op": layer.op, "cycles": layer.total,
                        "compute_cycles": layer.compute, "bandwidth_cycles": b,
                        "bytes": layer.bytes_read + layer.bytes_written, "macs": layer.macs,
                        "utilization": round(layer.utilization, 4)}
                       for layer, b in zip(self.cycles.layers, self.bandwidth_cycles)],
            "explored": self.explored,
        }


# -- cycles ----------------------------------------------------------------------------------

class _CycleCache:
    """Layer cycles by what they depend on: the descriptor, the fold passes, the array and
    bus widths, the family (its output path's latency), the read latency, and whether the
    layer is the run's first."""

    def __init__(self, latency):
        self.latency = latency
        self.layers = {}

    def layer(self, config, descriptor, fold_passes, first):
        key = (dataclasses.astuple(descriptor), tuple(fold_passes), config.tm, config.tn,
               config.data_bits, config.family, first)
        found = self.layers.get(key)
        if found is None:
            found = self.layers[key] = layer_cycles(descriptor, config, latency=self.latency,
                                                    start=-1 if first else 0,
                                                    fold_passes=fold_passes or None)
        return found


def network_cycles(config, layers, latency=DEFAULT_LATENCY, cache=None):
    """The :class:`NetworkCycles` of ``layers`` (``(name, descriptor, macs, fold_passes)``)
    on ``config``, each layer from ``cache`` (a :class:`_CycleCache`) when it has it; equal to
    :func:`hwgen.engine.model.program_cycles` of the same program."""
    cache = cache or _CycleCache(latency)
    out, end = [], -1
    for i, (name, descriptor, macs, fold_passes) in enumerate(layers):
        cached = cache.layer(config, descriptor, fold_passes, i == 0)
        start = max(end, 0)
        total = cached.total
        end = start + total
        tmtn = config.tm * config.tn
        out.append(dataclasses.replace(cached, name=name, macs=macs, start=start, end=end,
                                       utilization=macs / (tmtn * total) if total else 0.0))
    total = end + 1 if out else 0
    macs = sum(layer.macs for layer in out)
    tmtn = config.tm * config.tn
    return NetworkCycles(layers=tuple(out), total=total, macs=macs,
                         utilization=macs / (tmtn * total) if total else 0.0,
                         latency=cache.latency)


# -- candidates ------------------------------------------------------------------------------

def _mac_steps(views, shapes, tm, tn):
    """A lower bound on the k-steps the MAC array and vector lanes issue per frame: every
    product's filters in folds of ``tm``, its channels in groups of ``tn``, one pass."""
    steps = 0
    for view in views.values():
        if view.kind in ("conv", "dense"):
            steps += view.pixels * -(-view.out_channels // tm) * view.window * \
                -(-view.in_count // tn)
        elif view.kind == "depthwise":
            steps += view.pixels * view.window * -(-view.in_count // tn)
    return steps


def _lane_patterns(tm, filter_bits):
    """Lane widths to try for ``tm`` lanes: every lane as wide as the widest filter, and when
    the filters come in two or more widths, FILM-QNN's pattern (one wide lane in 8 or in 16,
    the others as wide as the narrowest filter)."""
    low, high = min(filter_bits), max(filter_bits)
    low, high = max(low, 2), max(high, 2)
    patterns = {(high,) * tm}
    if low < high:
        for every in (16, 8):
            patterns.add(film_lanes(tm, every, low, high))
    return sorted(patterns, key=lambda p: (sum(p), p))


def _power_of_two(n):
    return 1 << max(0, (int(n) - 1).bit_length())


class _Probe:
    """A network compiled once for an array, lane pattern and bus width, with buffers that
    never limit it: its layers, and the least buffer sizes it needs. A global pool the
    compiler splits where its map does not fit the input buffer is compiled split as well."""

    def __init__(self, graph, config):
        program = compile_program(graph, config)
        self.layers = [_entry(layer) for layer in program.layers]
        descriptors = [layer.descriptor for layer in program.layers]
        # Each splittable pool's two layers (row sums, then the pool over them). A network
        # whose split the engine cannot run (row sums wider than its vector lanes) keeps its
        # pools whole, and needs buffers that hold them.
        self.split = {}
        if program.splittable_pools:
            try:
                layers = compile_program(graph, config, split_pools=True).layers
            except UnsupportedLayerError:
                layers = []
            self.split = {pool.name: [_entry(rows), _entry(pool)]
                          for rows, pool in zip(layers, layers[1:]) if rows.row_sums}
        rows = [max(row_words(d) for _, d, *_ in self.split[name]) if name in self.split
                else row_words(d) for name, d, *_ in self.layers]
        self.input_words = max(rows)
        self.output_words = max(d.out_width * d.out_groups for d in descriptors)
        self.weight_words = max([d.passes * d.ksteps for d in descriptors if d.op == MATMUL],
                                default=1)
        self.channels = max(max(d.folds * config.tm, d.out_groups * config.tn)
                            for d in descriptors)
        self.image_bytes = len(program.image)

    def layers_for(self, config):
        """The layers as compiled for ``config`` (a pool split where its map does not fit the
        input buffer), re-tiled for its buffers."""
        out = []
        for layer in self.layers:
            name, d = layer[:2]
            split = name in self.split and row_words(d) > config.input_words
            for name, d, macs, passes in self.split[name] if split else [layer]:
                rows = band_rows(d, config)
                out.append((name, dataclasses.replace(d, band_rows=rows,
                                                      bands=-(-d.out_height // rows)),
                            macs, passes))
        return out


def _entry(layer):
    """What the cycle model needs of an :class:`~hwgen.engine.image.EngineLayer`."""
    return layer.name, layer.descriptor, layer.macs, layer.fold_passes


class _Search:
    def __init__(self, graph, part, clock_mhz, bandwidth_gbs, utilization, latency, price,
                 max_data_bits, port_bits):
        self.graph, self.part, self.clock_mhz = graph, part, clock_mhz
        self.bandwidth_gbs, self.utilization, self.latency = bandwidth_gbs, utilization, latency
        self.price, self.port_bits = price, port_bits
        self.views = op_views(graph)
        self.shapes = graph.shapes()
        self.filter_bits = sorted({int(b) for v in self.views.values()
                                   if v.kind in ("conv", "dense") for b in v.weight_bits})
        self.cache = _CycleCache(latency)
        self.probes = {}
        self.explored, self.rejected, self.problems = [], [], []
        capacity = part.capacity()
        self.allowed = {k: utilization * capacity[k] for k in KINDS}
        # The bus that carries the DRAM's bytes a cycle (wider buses only wait).
        bits = 8 * bandwidth_gbs * 1e3 / clock_mhz
        self.data_bits = [b for b in _BUS_WIDTHS
                          if b <= max(32, min(max_data_bits, _power_of_two(bits)))][:2]

    def probe(self, tm, lanes, data_bits):
        key = (tm, lanes, data_bits)
        if key not in self.probes:
            config = EngineConfig(tm=tm, tn=tm, lane_bits=lanes, data_bits=data_bits,
                                  ports=self.ports(data_bits),
                                  input_words=_UNBOUNDED_WORDS, output_words=_UNBOUNDED_WORDS,
                                  weight_words=_UNBOUNDED_WORDS, channels=_UNBOUNDED_WORDS,
                                  family=self.part.family)
            self.probes[key] = _Probe(self.graph, config)
        return self.probes[key]

    def over(self, resources):
        """The resources beyond the limit: ``{kind: (used, allowed)}``."""
        return {k: (getattr(resources, k), int(self.allowed[k])) for k in KINDS
                if getattr(resources, k) > self.allowed[k]}

    def ports(self, data_bits):
        """The AXI ports a bus of ``data_bits`` is spread over: one, or as many as it has
        ports' widths."""
        return max(1, data_bits // (self.port_bits or data_bits))

    def sized(self, probe, tm, lanes, data_bits, scale, out_scale):
        return EngineConfig(tm=tm, tn=tm, lane_bits=lanes, data_bits=data_bits,
                            ports=self.ports(data_bits),
                            input_words=_power_of_two(probe.input_words) * scale,
                            output_words=_power_of_two(probe.output_words) * out_scale,
                            weight_words=_power_of_two(probe.weight_words),
                            channels=_power_of_two(probe.channels), family=self.part.family)

    def arrays(self):
        """``(tm, lanes)`` whose MAC array alone fits the DSPs, smallest first, each with its
        lower bound on cycles."""
        out = []
        tm = 4
        while True:
            fits_any = False
            for lanes in _lane_patterns(tm, self.filter_bits or [8]):
                dsp = EngineConfig(tm=tm, tn=tm, lane_bits=lanes,
                                   family=self.part.family).dsp_count
                if dsp <= self.allowed["dsp"]:
                    fits_any = True
                    out.append((tm, lanes, _mac_steps(self.views, self.shapes, tm, tm)))
                elif not self.rejected or self.rejected[-1]["tm"] != tm:
                    self.rejected.append({"tm": tm, "lane_bits": _pattern(lanes),
                                          "over": {"dsp": [dsp, int(self.allowed["dsp"])]}})
            if not fits_any:
                break
            tm += 4 if tm < 32 else 8
        return out

    def configs(self, tm, lanes):
        """Configurations of one array, widest bus and largest buffers first, each fitting
        the device, with their layers; the reason each one that does not fit fails."""
        for data_bits in self.data_bits:
            try:
                probe = self.probe(tm, lanes, data_bits)
            except ValueError as error:           # UnsupportedLayerError among them
                if not _pattern_problem(error):
                    raise
                self.problems.append(f"tm {tm}, lanes {_pattern(lanes)}: {error}")
                return
            for scale in _BUFFER_SCALES:
                # The most output words that fit beside this input buffer (a band's rows are
                # bounded by both; block RAM is deep, so a few more words may cost nothing).
                for out_scale in _OUTPUT_SCALES:
                    config = self.sized(probe, tm, lanes, data_bits, scale, out_scale)
                    resources = self.price(config, self.part)
                    over = self.over(resources)
                    if not over:
                        yield config, resources, probe
                        break
                    self.rejected.append({"tm": tm, "lane_bits": _pattern(lanes),
                                          "data_bits": data_bits, "input_scale": scale,
                                          "output_scale": out_scale,
                                          "over": {k: list(v) for k, v in over.items()}})

    def evaluate(self, config, resources, probe):
        cycles = network_cycles(config, probe.layers_for(config), self.latency, self.cache)
        design = EngineDesign(self.part, self.clock_mhz, self.bandwidth_gbs, config, cycles,
                              resources, self.utilization)
        self.explored.append({"tm": config.tm, "lane_bits": _pattern(config.lane_bits),
                              "data_bits": config.data_bits,
                              "input_words": config.input_words,
                              "output_words": config.output_words,
                              "weight_words": config.weight_words,
                              "cycles_per_frame": design.cycles_per_frame,
                              "model_cycles_per_frame": design.model_cycles,
                              "fps": round(design.fps, 3), "total": resources.as_dict(),
                              "fits": True})
        return design

    def cost(self, resources):
        """The largest share of a resource, then DSPs: what "cheapest" orders by."""
        shares = resources.utilization(self.part)
        return (max(shares.values()), resources.dsp, resources.lut, resources.bram18)

    def fastest(self):
        best = None
        for tm, lanes, steps in sorted(self.arrays(), key=lambda a: (a[2], a[0])):
            if best is not None and steps >= best.cycles_per_frame:
                break
            # For each bus width the largest buffers that fit: fewer bands (each band reads
            # the layer's weights again) are never slower; a narrower bus may leave room
            # for larger buffers, a smaller input buffer for a larger output one.
            widths = {}
            for config, resources, probe in self.configs(tm, lanes):
                widths[config.data_bits] = widths.get(config.data_bits, 0) + 1
                if widths[config.data_bits] > _SIZES_PER_BUS:
                    continue
                design = self.evaluate(config, resources, probe)
                if best is None or design.cycles_per_frame < best.cycles_per_frame:
                    best = design
        return best

    def cheapest(self, target_cycles):
        found = []
        for tm, lanes, steps in self.arrays():
            if steps > target_cycles:
                continue
            found += [(self.cost(resources), config, resources, probe)
                      for config, resources, probe in self.configs(tm, lanes)]
        for _, config, resources, probe in sorted(found, key=lambda f: f[0]):
            design = self.evaluate(config, resources, probe)
            if design.cycles_per_frame <= target_cycles:
                return design
        return None

    def no_fit(self):
        """The :class:`DesignError` of a network no configuration runs within the limits."""
        head = (f"the network does not run on {self.part.name} at any engine configuration "
                f"within utilization {self.utilization:g}")
        if self.problems and not self.rejected:
            return DesignError(f"{head}: " + "; ".join(self.problems[:3]))
        if not self.rejected:
            return DesignError(f"{head}: no MAC array of 4 lanes or more fits its "
                               f"{self.part.dsp} DSPs")
        # Every resource the smallest engine needs beyond the limit: the smallest array, its
        # narrowest lanes and bus, the least buffers.
        tm = min(r["tm"] for r in self.rejected)
        lanes = _lane_patterns(tm, self.filter_bits or [8])[0]
        data_bits = self.data_bits[-1]
        try:
            probe = self.probe(tm, lanes, data_bits)
        except ValueError as error:
            if not _pattern_problem(error):
                raise
            return DesignError(f"{head}: {error}")
        config = self.sized(probe, tm, lanes, data_bits, 1, 1)
        over = self.over(self.price(config, self.part))
        text = ", ".join(f"{k} {used:,} > {allowed:,}" for k, (used, allowed) in over.items())
        return DesignError(f"{head}: the smallest engine that runs it (tm {tm}, "
                           f"{data_bits}-bit bus, least buffers: {config.input_words:,} input, "
                           f"{config.output_words:,} output and {config.weight_words:,} weight "
                           f"words) needs {text}")


def _pattern(lanes):
    """Lane widths as ``{bits: lanes}`` (shorter than the list in a report)."""
    return {str(b): lanes.count(b) for b in sorted(set(lanes))}


def _pattern_problem(error):
    """The compiler refused the lane pattern (too many passes, filters wider than its lanes),
    not the network."""
    return "passes over the lanes" in str(error) or "widest lanes" in str(error)


def _engine_resources(config, part):
    from .resources import engine_resources
    return engine_resources(config, part)


def default_bandwidth(part):
    """The DRAM bandwidth the search assumes on ``part`` (a :class:`~hwgen.model.Device`):
    its boards' (:attr:`~hwgen.model.Device.dram_gbs`), else :data:`DEFAULT_BANDWIDTH_GBS`."""
    return DEFAULT_BANDWIDTH_GBS if part.dram_gbs is None else part.dram_gbs


def search_engine(graph, device="xczu9eg", clock_mhz=200.0,
                  bandwidth_gbs=None, target_fps=None, utilization=0.8,
                  latency=DEFAULT_LATENCY, price=None, max_data_bits=None, port_bits=None):
    """The engine configuration with the most frames per second for ``graph`` on ``device``
    at ``clock_mhz`` with ``bandwidth_gbs`` of DRAM (by default the part's:
    :func:`default_bandwidth`), within ``utilization`` of every
    resource; with ``target_fps``, the cheapest (the smallest largest share of a resource)
    that reaches it. ``latency`` is the DRAM read latency of the cycle model; ``price`` how
    a configuration's resources are estimated (default
    :func:`hwgen.engine.resources.engine_resources`); ``max_data_bits`` the widest AXI data
    width the engine may have (the cycle model then moves at most a word of it a cycle each
    way, whatever the DRAM's bandwidth); ``port_bits`` the width of each AXI port the engine
    is built on (a processor's high-performance port): a wider bus is spread over up to
    four of them (:mod:`hwgen.engine.ports`), so the widest bus is four ports' width unless
    ``max_data_bits`` says less.

    Raises
    ------
    ValueError
        An unknown device, a clock the device cannot run, a bandwidth out of range, a bad
        utilization or target.
    UnsupportedLayerError
        A layer the engine cannot run at any configuration (an op it lacks, widths beyond its
        lanes).
    DesignError
        No configuration fits the device, or none reaches ``target_fps``: the message names
        the bound and the best rate.
    """
    from ..explore import _check_share, _check_target
    part = get_device(device)
    clock_mhz = part.check_clock(clock_mhz)
    bandwidth_gbs = check_bandwidth(default_bandwidth(part) if bandwidth_gbs is None
                                    else bandwidth_gbs)
    _check_share("utilization", utilization)
    _check_target(target_fps)
    widest = _MAX_DATA_BITS
    if port_bits is not None:
        widest = min(widest, check_max_data_bits(port_bits) * max(PORT_COUNTS))
    if max_data_bits is not None:
        widest = min(widest, check_max_data_bits(max_data_bits))
    search = _Search(graph, part, clock_mhz, bandwidth_gbs, utilization, latency,
                     price or _engine_resources, widest, port_bits)
    best = search.fastest()
    if best is None:
        raise search.no_fit()
    best.rejected = search.rejected
    if target_fps is not None:
        target = math.floor(clock_mhz * 1e6 / target_fps)
        if best.cycles_per_frame > target:
            bounds = best.bounds()
            raise DesignError(
                f"{target_fps:g} frames/s at {clock_mhz:g} MHz needs {target:,} cycles per "
                f"frame; the fastest engine that fits {part.name} (utilization "
                f"{utilization:g}, {bandwidth_gbs:g} GB/s) takes {best.cycles_per_frame:,} "
                f"({best.fps:.1f} frames/s): {_bound_text(bounds)}")
        best = search.cheapest(target) or best
    best.explored, best.rejected = search.explored, search.rejected
    return best


def _bound_text(bounds):
    """One line of what bounds a design's rate."""
    parts = []
    rejected = bounds["larger_arrays_rejected"]
    if rejected:
        r = rejected[0]
        parts.append(f"a {r['tm']} x {r['tm']} array needs " + ", ".join(
            f"{k} {used:,} > {allowed:,}" for k, (used, allowed) in r["over"].items()))
    bw = bounds["bandwidth"]
    parts.append(f"DRAM {bw['gbs_used']:g} of {bw['gbs_available']:g} GB/s "
                 f"({bw['cycles_added']:,} cycles waiting on it)")
    parts.append(f"MAC array {bounds['array']['mac_utilization']:.0%} busy")
    return "; ".join(parts)
