"""Seeded random QGraphs with random hardware options, for differential testing.

:func:`random_case` draws a small valid graph over every operation of the IR (dense, 1-D and
2-D convolutions with stride, padding and depthwise groups, max pools with padding, sum pools,
global pools, requantize anywhere (ties up or to even, with or without per-channel
offsets), flatten, residual adds with forks), weights of 2 to 8 bits
per filter, and the options a user can give the generator: folding, multiplier family, LUT
lanes, ROM placement, and a back-pressure pattern for the simulation. Everything comes from
the seed, so a failing case is replayed from its seed alone::

    python -m tests.graphgen 1234          # prints the case's one-line summary
    python -m tests.graphgen --engine 28   # the same for random_engine_case

The graphs are small (a frame is at most a few hundred elements) so that Icarus simulates a
case in seconds. :func:`random_engine_case` draws larger ones for the layer-sequential engine,
whose tiling (channel groups, folds, passes, bands) only shows at that scale.
"""

import sys
from dataclasses import dataclass, field

import numpy as np

import quant
from hwgen.engine import EngineConfig
from quant import graph as g

__all__ = ["Case", "ENGINE_CONFIGS", "random_case", "random_engine_case", "random_engine_graph",
           "random_graph", "random_options"]

FAMILIES = ("xc7", "xcup", "ecp5", None)
BACKPRESSURE = (0.0, 0.0, 0.3, "bursty:3,5", "stall:20,40")


@dataclass
class Case:
    """A graph, the options that build it, and how to simulate it."""
    seed: int
    graph: quant.QGraph
    options: dict = field(default_factory=dict)     # hwgen.generate keyword arguments
    backpressure: object = 0.0
    frames: int = 4

    def summary(self):
        """One line that names the seed, the layers and the options."""
        shapes = self.graph.shapes()
        spec = self.graph.input
        kind = "s" if spec.signed else "u"
        layers = []
        for node in self.graph.nodes:
            text = node.op
            if node.op in ("dense", "conv1d", "conv2d"):
                bits = sorted(set(node.tensors["weight_bits"].tolist()))
                text += f"[w{'/'.join(map(str, bits))}"
                if node.op != "dense":
                    k = "x".join(map(str, node.tensors["weight"].shape[2:]))
                    text += f" k{k} s{_fmt(node.attrs['stride'])} p{_fmt(node.attrs['padding'])}"
                    if node.attrs["groups"] > 1:
                        text += " dw"
                text += "]"
            elif node.op.startswith(("maxpool", "avgpool")):
                text += f"[k{_fmt(node.attrs['kernel'])} s{_fmt(node.attrs['stride'])}"
                if node.attrs.get("padding"):
                    text += f" p{_fmt(node.attrs['padding'])}"
                text += "]"
            elif node.op == "requantize":
                text += f"[{node.attrs['out_bits']}{'s' if node.attrs['out_signed'] else 'u'}"
                text += "e" if node.attrs.get("rounding") == "half_even" else ""
                text += "+b]" if "offset" in node.tensors else "]"
            if node.inputs != [self._previous(node)]:
                text += f"({','.join(node.inputs)})"
            layers.append(f"{node.name}={text}->{'x'.join(map(str, shapes[node.name]))}")
        options = {k: v for k, v in self.options.items() if v}
        return (f"seed {self.seed}: input {'x'.join(map(str, spec.shape))} {spec.bits}{kind}; "
                f"{'; '.join(layers)}; options {options}; backpressure {self.backpressure}")

    def _previous(self, node):
        index = self.graph.nodes.index(node)
        return self.graph.nodes[index - 1].name if index else "input"


def _fmt(values):
    return "x".join(map(str, values))


class _Builder:
    """Grows a graph node by node, keeping the shapes and value ranges of what exists.

    Both generators draw through it (and :func:`_residual`, :func:`_round_and_offset`): a
    change to how these draw changes the cases of existing seeds of both."""

    def __init__(self, rng, spec):
        self.rng = rng
        self.spec = spec
        self.nodes = []
        self.count = 0

    def graph(self):
        return quant.QGraph(quant.InputSpec(**self.spec.to_json() |
                                            {"shape": tuple(self.spec.shape)}),
                            [g.Node(n.name, n.op, list(n.inputs), dict(n.attrs), dict(n.tensors))
                             for n in self.nodes])

    def shape(self, value):
        return self.graph().shapes()[value] if self.nodes else tuple(self.spec.shape)

    def range(self, value):
        return self.graph().ranges()[value] if self.nodes else self.spec.range

    def name(self, stem):
        self.count += 1
        return f"{stem}{self.count}"

    def add(self, node):
        self.nodes.append(node)
        return node.name

    # -- operations --------------------------------------------------------------------------

    def weights(self, out_channels, per_filter):
        """Per-filter bits 2..8 (often a FILM-QNN-like 4/8 mix) and weights in range."""
        rng = self.rng
        style = rng.integers(4)
        if style == 0:
            bits = rng.integers(2, 9, out_channels)
        elif style == 1:
            bits = np.full(out_channels, int(rng.integers(2, 9)))
        else:
            bits = np.where(rng.random(out_channels) < 0.25, 8, 4)
        hi = (1 << (bits - 1)) - 1
        shape = (out_channels, per_filter)
        extreme = rng.integers(6)
        if extreme == 0:
            weight = np.zeros(shape, dtype=np.int64)
        elif extreme == 1:
            weight = np.where(rng.random(shape) < 0.5, -hi[:, None], hi[:, None])
        else:
            weight = rng.integers(-hi[:, None], hi[:, None] + 1, shape)
        return weight.astype(np.int64), bits.astype(np.int64)

    def bias(self, out_channels, value):
        lo, hi = self.range(value)
        reach = max(1, min(4096, (hi - lo) // 4))
        return self.rng.integers(-reach, reach + 1, out_channels).astype(np.int64)

    def dense(self, value, out_features):
        in_features = self.shape(value)[0]
        weight, bits = self.weights(out_features, in_features)
        return self.add(g.dense(self.name("fc"), weight, self.bias(out_features, value), bits,
                                inputs=[value]))

    def conv(self, value, out_channels, kernel, stride, padding, depthwise=False):
        shape = self.shape(value)
        dims = len(shape) - 1
        channels = shape[0]
        per = 1 if depthwise else channels
        if depthwise:
            out_channels = channels
        weight, bits = self.weights(out_channels, per * int(np.prod(kernel)))
        weight = weight.reshape(out_channels, per, *kernel)
        op = g.conv2d if dims == 2 else g.conv1d
        return self.add(op(self.name("dw" if depthwise else "conv"), weight,
                           self.bias(out_channels, value), bits, stride=stride, padding=padding,
                           groups=channels if depthwise else 1, inputs=[value]))

    def requantize(self, value, out_bits=None, out_signed=None):
        rng = self.rng
        shape = self.shape(value)
        lo, hi = self.range(value)
        out_bits = int(rng.integers(1, 9)) if out_bits is None else out_bits
        out_signed = bool(rng.integers(2)) if out_signed is None else out_signed
        if out_signed and out_bits < 2:
            out_bits = 2
        if rng.integers(3) == 0:
            mult = np.full(shape[0], 1 << int(rng.integers(0, 4)))
        else:
            mult = rng.integers(1, 1 << int(rng.integers(1, 12)), shape[0])
        reach = max(-lo, hi, 1) * int(mult.max())
        # Shift so that the largest products land a little beyond the output range.
        shift = max(0, reach.bit_length() - out_bits + int(rng.integers(-2, 3)))
        shift = min(shift, g.MAX_SHIFT)
        return self.add(g.requantize(self.name("act"), mult.astype(np.int64), shift, out_bits,
                                     out_signed, inputs=[value]))

    def global_pool(self, value):
        return self.add(g.global_avgpool(self.name("gap"), inputs=[value]))

    def flatten(self, value):
        return self.add(g.flatten(self.name("flat"), inputs=[value]))

    def pool(self, value, kind):
        rng = self.rng
        shape = self.shape(value)
        dims = len(shape) - 1
        spatial = shape[1:]
        kernel = [int(rng.integers(1, min(3, n) + 1)) for n in spatial]
        stride = [int(rng.integers(1, k + 1)) for k in kernel]
        padding = 0
        if kind == "max" and rng.integers(3) == 0:
            padding = [int(rng.integers(0, k // 2 + 1)) for k in kernel]
        if kind == "max":
            op = g.maxpool2d if dims == 2 else g.maxpool1d
            return self.add(op(self.name("maxpool"), kernel, stride, padding, inputs=[value]))
        op = g.avgpool2d if dims == 2 else g.avgpool1d
        return self.add(op(self.name("avgpool"), kernel, stride, inputs=[value]))


def _conv_geometry(rng, spatial):
    """Kernel, stride and padding (per axis) that fit a map of ``spatial`` size."""
    kernel, stride, padding = [], [], []
    for n in spatial:
        k = int(rng.integers(1, min(5, n + 2) + 1))
        same = k % 2 == 1 and rng.integers(2) == 0
        p = k // 2 if same else 0
        if k > n + 2 * p:
            k, p = 1, 0
        kernel.append(k)
        stride.append(int(rng.integers(1, 3)))
        padding.append(p)
    return tuple(kernel), stride, padding


def random_graph(rng):
    """A small valid graph with at least one dense or convolution layer."""
    kind = rng.choice(["vector", "signal", "image"], p=[0.25, 0.35, 0.4])
    bits = int(rng.integers(1, 9))
    signed = bool(rng.integers(2)) and bits > 1
    if kind == "vector":
        shape = (int(rng.integers(2, 25)),)
    elif kind == "signal":
        shape = (int(rng.integers(1, 5)), int(rng.integers(4, 25)))
    else:
        shape = (int(rng.integers(1, 5)), int(rng.integers(2, 8)), int(rng.integers(2, 8)))
    b = _Builder(rng, quant.InputSpec(shape, bits, signed))
    value, filters = "input", 0
    steps = int(rng.integers(1, 7))
    for step in range(steps):
        shape = b.shape(value)
        map_ = len(shape) > 1
        # Raw (unrequantized) values grow wide; bound how many weight layers take them.
        if map_:
            choice = rng.choice(["conv", "depthwise", "maxpool", "avgpool", "global", "requant",
                                 "flatten", "residual"],
                                p=[0.3, 0.1, 0.1, 0.08, 0.07, 0.15, 0.08, 0.12])
        else:
            choice = rng.choice(["dense", "requant", "residual"], p=[0.5, 0.35, 0.15])
        wide = b.range(value)[1] - b.range(value)[0] > (1 << 20)
        if choice in ("conv", "depthwise", "dense", "residual") and wide:
            choice = "requant"
        if choice == "conv":
            kernel, stride, padding = _conv_geometry(rng, shape[1:])
            value = b.conv(value, int(rng.integers(1, 7)), kernel, stride, padding)
        elif choice == "depthwise":
            kernel, stride, padding = _conv_geometry(rng, shape[1:])
            value = b.conv(value, shape[0], kernel, stride, padding, depthwise=True)
        elif choice == "dense":
            value = b.dense(value, int(rng.integers(1, 13)))
        elif choice in ("maxpool", "avgpool"):
            value = b.pool(value, choice[:3])
        elif choice == "global":
            value = b.global_pool(value)
        elif choice == "flatten":
            value = b.flatten(value)
        elif choice == "requant":
            value = b.requantize(value)
        else:
            value = _residual(b, value)
        if b.nodes and b.nodes[-1].op in ("dense", "conv1d", "conv2d") or choice == "residual":
            filters += 1
    if not filters or rng.integers(4) == 0:
        shape = b.shape(value)
        if len(shape) > 1 and rng.integers(2):
            value = b.flatten(value)
        if b.range(value)[1] - b.range(value)[0] > (1 << 20):
            value = b.requantize(value)
        if len(b.shape(value)) == 1:
            value = b.dense(value, int(rng.integers(1, 11)))
        else:
            kernel, stride, padding = _conv_geometry(rng, b.shape(value)[1:])
            value = b.conv(value, int(rng.integers(1, 5)), kernel, stride, padding)
    if rng.integers(2):
        value = b.requantize(value)
    graph = b.graph()
    # A child generator leaves the parent's stream as it was: the graphs and options of
    # earlier seeds stay the same, their requantizers gain offsets and rounding modes.
    _round_and_offset(rng.spawn(1)[0], graph)
    return graph.validate()


def _round_and_offset(rng, graph):
    """Give about half the requantizers ties to even, and half per-channel offsets (up to
    half the output range, in units before the shift, both signs)."""
    for node in graph.nodes:
        if node.op != "requantize":
            continue
        a = node.attrs
        if rng.integers(2):
            a["rounding"] = "half_even"
        if rng.integers(2):
            reach = 1 << (a["shift"] + a["out_bits"] - 1)
            node.tensors["offset"] = rng.integers(-reach, reach + 1,
                                                  node.tensors["multiplier"].size)


def _residual(b, value):
    """``add(body(x), shortcut(x))`` with a fork at ``x``; both branches end on one scale."""
    rng = b.rng
    shape = b.shape(value)
    out_bits, out_signed = int(rng.integers(2, 9)), True
    if len(shape) == 1:
        body = b.dense(value, shape[0])
    else:
        kernel = tuple(int(rng.choice([1, 3])) if n >= 3 else 1 for n in shape[1:])
        body = b.conv(value, shape[0], kernel, [1] * len(kernel), [k // 2 for k in kernel],
                      depthwise=bool(rng.integers(4) == 0))
    body = b.requantize(body, out_bits, out_signed)
    if rng.integers(2):
        shortcut = b.requantize(value, out_bits, out_signed)
    else:
        shortcut = value
    inputs = [body, shortcut] if rng.integers(2) else [shortcut, body]
    return b.add(g.add(b.name("add"), inputs))


def random_options(rng, graph):
    """``hwgen.generate`` options: folding, device family, LUT lanes and ROM placement."""
    from hwgen.blocks._util import divisors
    from hwgen.folding import fixed_order_filters, is_depthwise, lane_bits
    from hwgen.ops import op_views

    device = FAMILIES[int(rng.integers(len(FAMILIES)))]
    fixed = fixed_order_filters(graph)
    folding, lut_lanes, rom_styles = {}, {}, {}
    views = op_views(graph)
    for node in graph.nodes:
        if node.op not in ("dense", "conv1d", "conv2d"):
            continue
        out = node.tensors["weight"].shape[0]
        if rng.integers(5) == 0:
            continue                                   # folded automatically
        # A convolution's SIMD may also span several window positions (taps * channels), or
        # a tiling one's several whole windows of output positions (then every filter of
        # each: pe == out).
        view = views[node.name]
        simd = int(rng.choice(view.simd_options))
        # A depthwise one outputs the channels it takes in a beat.
        pe = view.in_lanes(simd) if is_depthwise(node) else \
            out if view.positions(simd) > 1 else int(rng.choice(divisors(out)))
        folding[node.name] = (pe, simd)
        if is_depthwise(node):
            continue
        if device is not None and rng.integers(3) == 0:
            bits = lane_bits(node, pe, node.name in fixed)
            b = int(rng.choice(np.unique(bits)))
            lut_lanes[node.name] = {b: int(rng.integers(0, int((bits == b).sum()) + 1))}
        style = rng.integers(4)
        if style:
            rom_styles[node.name] = (None, "block", "logic")[style - 1]
    rom_styles = {k: v for k, v in rom_styles.items() if v is not None}
    return {"folding": folding, "device": device, "lut_lanes": lut_lanes,
            "rom_styles": rom_styles}


def random_case(seed):
    """The :class:`Case` of ``seed``: a graph, build options and a back-pressure pattern."""
    rng = np.random.default_rng([seed, 0x9A7E])
    graph = random_graph(rng)
    options = random_options(rng, graph)
    backpressure = BACKPRESSURE[int(rng.integers(len(BACKPRESSURE)))]
    return Case(seed, graph, options, backpressure)


def _narrow(b, value, bits=8):
    """``value``, requantized first if its range is wider than ``bits``-bit unsigned or
    ``bits + 1``-bit signed (what the engine's multipliers take)."""
    lo, hi = b.range(value)
    if lo < -(1 << bits) or hi >= (1 << bits):
        return b.requantize(value)
    return value


def random_engine_graph(rng):
    """A graph at the scale of the layer-sequential engine's tiling: maps up to 16 x 16 (or
    signals up to 40 long) and up to 24 channels, so that layers take several channel groups,
    filter folds, passes of 8-bit filters and bands of rows, and stems read the input as its
    windows. Every weight layer reads at most 8-bit unsigned or 9-bit signed values, every
    vector op at most 16-bit ones, and a flatten feeds a dense layer (the engine requantizes
    per channel): it compiles for each of :data:`ENGINE_CONFIGS`."""
    signal = rng.integers(5) == 0
    channels = int(rng.integers(1, 13))
    shape = (channels, int(rng.integers(8, 41))) if signal else \
        (channels, int(rng.integers(3, 17)), int(rng.integers(3, 17)))
    bits = int(rng.integers(2, 9))
    b = _Builder(rng, quant.InputSpec(shape, bits, bool(rng.integers(2))))
    value = "input"
    for step in range(int(rng.integers(1, 6))):
        shape = b.shape(value)
        if len(shape) == 1:
            choice = rng.choice(["dense", "requant", "residual"], p=[0.6, 0.2, 0.2])
        else:
            choice = rng.choice(["conv", "depthwise", "maxpool", "avgpool", "global",
                                 "residual", "flatten"],
                                p=[0.4, 0.12, 0.12, 0.08, 0.06, 0.14, 0.08])
        if choice == "flatten" and int(np.prod(shape)) > 96:
            choice = "global"
        if choice in ("conv", "depthwise", "dense", "residual", "flatten"):
            value = _narrow(b, value)
        elif choice == "global":
            value = _narrow(b, value, 11)   # rows of at most 16: row sums of 16 bits
        else:
            value = _narrow(b, value, 15)               # the vector lanes take 16 bits
        if choice == "conv":
            kernel = int(rng.choice([1, 3, 3, 5] if step else [1, 3, 3, 5, 7]))
            kernel = min(kernel, 2 * min(shape[1:]) - 1)
            stride = int(rng.choice([1, 1, 2]))
            padding = kernel // 2 if rng.integers(3) else 0
            if any(kernel > n + 2 * padding for n in shape[1:]):
                kernel, padding = 1, 0
            dims = len(shape) - 1
            value = b.conv(value, int(rng.integers(1, 25)), (kernel,) * dims, [stride] * dims,
                           [padding] * dims)
        elif choice == "depthwise":
            kernel = 3 if min(shape[1:]) >= 3 else 1
            dims = len(shape) - 1
            value = b.conv(value, shape[0], (kernel,) * dims, [int(rng.integers(1, 3))] * dims,
                           [kernel // 2] * dims, depthwise=True)
        elif choice in ("maxpool", "avgpool"):
            value = b.pool(value, choice[:3])
        elif choice == "global":
            value = b.global_pool(value)
        elif choice == "flatten":
            # Then a dense layer: the engine requantizes per channel, not per feature.
            value = b.flatten(value)
            value = b.dense(value, int(rng.integers(1, 25)))
        elif choice == "dense":
            value = b.dense(value, int(rng.integers(1, 25)))
        elif choice == "requant":
            value = b.requantize(value)
        else:
            value = _residual(b, value)
        if choice in ("conv", "depthwise", "dense") and rng.integers(5):
            value = b.requantize(value)
    if rng.integers(3) == 0:
        if len(b.shape(value)) > 1:
            # Named before the requantizer that narrows their input (the seeds' node names).
            value = b.add(g.global_avgpool(b.name("gap"), inputs=[_narrow(b, value, 11)]))
            value = b.add(g.flatten(b.name("flat"), inputs=[_narrow(b, value)]))
        value = b.dense(_narrow(b, value), int(rng.integers(1, 11)))
    if rng.integers(2):
        value = b.requantize(value)
    graph = b.graph()
    _round_and_offset(rng.spawn(1)[0], graph)
    return graph.validate()


#: Engines every :func:`random_engine_graph` compiles for: four lanes (one of 8 bits) on one
#: port; eight lanes (two of 8 bits, one of 2) packed for ECP5 on two ports of a 128-bit bus;
#: eight lanes (three of 8 bits, one of 3) packed for 7-series on four ports of a 256-bit bus;
#: buffers that take the largest layers and still split maps into bands. The graphs' bounds
#: (channels, map sizes, kernels) are drawn for these buffers: a smaller engine may refuse some.
ENGINE_CONFIGS = {
    "4x4": EngineConfig(tm=4, tn=4, lane_bits=(4, 4, 4, 8), input_words=512,
                        output_words=256, weight_words=1024, addr_bits=20),
    "8x8_ecp5_2port": EngineConfig(tm=8, tn=8, lane_bits=(4, 4, 8, 4, 4, 4, 2, 8),
                                   input_words=512, output_words=256, weight_words=1024,
                                   addr_bits=20, data_bits=128, ports=2, family="ecp5"),
    "8x8_xc7_4port": EngineConfig(tm=8, tn=8, lane_bits=(8, 4, 4, 8, 4, 3, 4, 8),
                                  input_words=512, output_words=256, weight_words=1024,
                                  addr_bits=20, data_bits=256, ports=4, family="xc7"),
}


def random_engine_case(seed):
    """The engine's :class:`Case` of ``seed``: a :func:`random_engine_graph` and a
    back-pressure for its DRAM (no ``hwgen.generate`` options)."""
    rng = np.random.default_rng([seed, 0xE61])
    graph = random_engine_graph(rng)
    return Case(seed, graph, {}, float(rng.choice([0.0, 0.2, 0.4])), frames=2)


def random_inputs(graph, count, seed):
    """``count`` inputs: the two ends of the range first, then uniform values."""
    lo, hi = graph.input.range
    shape = tuple(graph.input.shape)
    rng = np.random.default_rng([seed, 0x1A9])
    frames = [np.full(shape, lo), np.full(shape, hi)][:count]
    frames += list(rng.integers(lo, hi + 1, (max(0, count - len(frames)), *shape)))
    return np.stack(frames).astype(np.int64)


if __name__ == "__main__":
    engine = "--engine" in sys.argv[1:]
    for arg in sys.argv[1:]:
        if arg != "--engine":
            print((random_engine_case if engine else random_case)(int(arg)).summary())
