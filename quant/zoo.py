"""ImageNet-shape QGraphs: ResNet-18, ResNet-50 and MobileNet-V2 with FILM-QNN precisions.

The graphs have the exact layer shapes of the torchvision networks at a ``(3, 224, 224)``
8-bit unsigned input, with batch normalization folded into each convolution (one bias per
filter), and random weights: they are for cost estimates (MACs, weight storage, resources,
cycles), not for accuracy. ``input_size`` builds the same layers on a smaller (or larger)
square image, for simulations that run a whole network in minutes; the global pool of the
head then averages the final map the network really produces.

Precisions follow FILM-QNN: every dense and convolution layer (the first and the last
included) has per-filter weight bits, about 95% of the filters 4-bit and 5% 8-bit
(:func:`filter_bits`), and activations are 5 bits: a ``requantize`` node with ``out_bits`` 5
(unsigned) stands for each ReLU / ReLU6, and one with signed 5-bit outputs for each linear
bottleneck of MobileNet-V2. A residual join is exported as :mod:`quant.export` does: a
``requantize`` node per branch to the join's signed ``ADD_BITS``-bit scale
(``<block>.requantize_body`` / ``<block>.requantize_shortcut``), then ``<block>.add``.

Weights are uniform over each filter's range; biases and requantize multipliers come from
the weights and a rough magnitude of each activation (not calibrated on data): about three
standard deviations of an accumulator span its requantizer's output range, and an identity
shortcut is mapped range to range. Everything is seeded: a builder called twice with one seed
returns equal graphs.

Node names follow torchvision where it has a layer of that name (``conv1``, ``layer2.0.conv1``,
``layer2.0.downsample``, ``fc``, ``features.18``, ``classifier``); the other names say what the
node is (``layer2.0.relu1``, ``features.3.depthwise``). NumPy only.
"""

import math

import numpy as np

from . import numerics
from .graph import (MAX_SHIFT, InputSpec, QGraph, add, conv2d, dense, flatten, global_avgpool,
                    maxpool2d, requantize)
from .precision import high_precision_count

__all__ = ["resnet18", "resnet50", "mobilenet_v2", "NETWORKS", "filter_bits", "totals",
           "INPUT_SHAPE", "MIN_INPUT_SIZE", "ACT_BITS", "ADD_BITS", "LOW_BITS", "HIGH_BITS", "HIGH_FRACTION"]

INPUT_SHAPE = (3, 224, 224)
#: The networks halve their maps five times; a smaller input would leave nothing to pool.
MIN_INPUT_SIZE = 32
#: Activation width (each ReLU, and MobileNet-V2's linear bottlenecks, signed).
ACT_BITS = 5
#: Width of each operand of a residual add (signed), as ``quant.nn.QuantAdd``'s default.
ADD_BITS = 8
LOW_BITS, HIGH_BITS, HIGH_FRACTION = 4, 8, 0.05
#: Largest requantize multiplier: 16 bits, as :data:`quant.export.MULTIPLIER_BITS`.
_MULTIPLIER_MAX = (1 << 16) - 1


def filter_bits(out_channels, rng, high_fraction=HIGH_FRACTION):
    """Per-filter weight bits of one layer: ``HIGH_BITS`` for about ``high_fraction`` of the
    filters, ``LOW_BITS`` for the others.

    The 8-bit count is ``high_fraction * out_channels`` rounded to a multiple of ``g``, the
    largest power of two that divides ``out_channels`` and is at most half that product (so
    the rounding moves the count by at most a quarter), with at least one 8-bit filter
    (:func:`quant.precision.high_precision_count`). The filters are cut into that many runs
    of consecutive filters of (nearly) equal length, and one filter of each run, chosen with
    ``rng``, is 8-bit. Any number of equal folds of consecutive filters that divides ``g`` then
    holds the same number of 8-bit filters.

    Examples: 64 filters -> 3 (``g`` 1); 256 -> 12 (``g`` 4); 2048 -> 96 (``g`` 32);
    1000 -> 48 (``g`` 8); 16 -> 1.
    """
    nominal = high_fraction * out_channels
    granularity = 1
    while out_channels % (2 * granularity) == 0 and 2 * granularity <= nominal / 2:
        granularity *= 2
    count = high_precision_count(out_channels, high_fraction, granularity)
    bits = np.full(out_channels, LOW_BITS, dtype=np.int64)
    if count:
        bounds = np.arange(count + 1) * out_channels // count
        bits[bounds[:-1] + rng.integers(0, np.diff(bounds))] = HIGH_BITS
    return bits


class _Builder:
    """Appends nodes with seeded random weights, keeping each output's channel count and a
    rough magnitude (RMS, per channel for accumulators) to size biases and requantizers."""

    def __init__(self, seed, input_size):
        if not numerics.is_int(input_size) or input_size < MIN_INPUT_SIZE:
            raise ValueError(f"input_size must be an integer of at least {MIN_INPUT_SIZE} (the "
                             f"networks halve their maps five times), not {input_size!r}")
        self.rng = np.random.default_rng(seed)
        self.input = InputSpec((INPUT_SHAPE[0], int(input_size), int(input_size)), 8, False,
                               1 / 255)
        self.nodes = []
        self.channels = {"input": INPUT_SHAPE[0]}
        self.rms = {"input": 255 / math.sqrt(3)}     # uniform 8-bit pixels
        self.act_hi = {}                              # largest value of each activation

    def _append(self, node, channels, rms):
        self.nodes.append(node)
        self.channels[node.name] = channels
        self.rms[node.name] = rms
        return node.name

    def _filters(self, out_channels, per_filter):
        """Random int8 weights ``(out_channels, *per_filter)``, their weight_bits, and each
        filter's L2 norm (an accumulator's RMS per unit of input RMS)."""
        bits = filter_bits(out_channels, self.rng)
        limit = ((1 << (bits - 1)) - 1).astype(np.int8).reshape((-1,) + (1,) * len(per_filter))
        weight = self.rng.integers(-limit, limit, size=(out_channels, *per_filter),
                                   dtype=np.int8, endpoint=True)
        norm = np.sqrt(np.square(weight.reshape(out_channels, -1), dtype=np.float64).sum(1))
        return weight, bits, norm

    def _bias(self, acc_rms):
        return np.round(self.rng.normal(0, acc_rms / 4)).astype(np.int64)

    def conv(self, name, src, out_channels, kernel, stride=1, groups=1):
        """A ``kernel`` x ``kernel`` convolution with "same" padding (``kernel // 2``)."""
        in_channels = self.channels[src]
        weight, bits, norm = self._filters(out_channels,
                                           (in_channels // groups, kernel, kernel))
        acc_rms = self.rms[src] * norm
        node = conv2d(name, weight, self._bias(acc_rms), bits, stride=stride,
                      padding=kernel // 2, groups=groups, inputs=[src])
        return self._append(node, out_channels, acc_rms)

    def dense(self, name, src, out_features):
        weight, bits, norm = self._filters(out_features, (self.channels[src],))
        acc_rms = self.rms[src] * norm
        return self._append(dense(name, weight, self._bias(acc_rms), bits, inputs=[src]),
                            out_features, acc_rms)

    def requantize(self, name, src, bits=ACT_BITS, signed=False):
        """Rescale ``src``: an accumulator so that three RMS of each channel span the output
        range (unsigned is a ReLU: half of the values clamp to 0), an activation (an identity
        shortcut) range to range."""
        channels = self.channels[src]
        hi = numerics.int_range(bits, signed)[1]
        if src in self.act_hi:
            ratio = np.full(channels, hi / self.act_hi[src])
            rms = self.rms[src] * ratio[0]
        else:
            ratio = np.broadcast_to((hi / 3) / np.asarray(self.rms[src], float), (channels,))
            rms = hi / 3 if signed else hi / (3 * math.sqrt(2))
        shift = int(np.clip(np.floor(np.log2(_MULTIPLIER_MAX / ratio.max())), 0, MAX_SHIFT))
        multiplier = np.maximum(1, np.round(ratio * 2.0 ** shift)).astype(np.int64)
        self.act_hi[name] = hi
        return self._append(requantize(name, multiplier, shift, bits, signed, inputs=[src]),
                            channels, rms)

    def residual(self, block, body, shortcut):
        """Both branches to the join's scale, their sum, and the sum's RMS."""
        a = self.requantize(f"{block}.requantize_body", body, ADD_BITS, True)
        b = self.requantize(f"{block}.requantize_shortcut", shortcut, ADD_BITS, True)
        return self._append(add(f"{block}.add", [a, b]), self.channels[a],
                            math.hypot(self.rms[a], self.rms[b]))

    def maxpool(self, name, src, kernel, stride, padding):
        self.act_hi[name] = self.act_hi[src]
        return self._append(maxpool2d(name, kernel, stride, padding, inputs=[src]),
                            self.channels[src], self.rms[src])

    def head(self, src, classes, name):
        """Global average pool over the final map, requantize, flatten and the classifier."""
        _, height, width = QGraph(self.input, self.nodes).shapes()[src]
        pixels = height * width
        pool = self._append(global_avgpool("avgpool", inputs=[src]), self.channels[src],
                            self.rms[src] * pixels)
        act = self.requantize("avgpool.requantize", pool)
        self._append(flatten("flatten", inputs=[act]), self.channels[act], self.rms[act])
        self.dense(name, "flatten", classes)

    def graph(self, network, seed):
        return QGraph(self.input, self.nodes, {"network": network, "seed": seed,
                                               "weights": "random"}).validate()


def _resnet(network, bottleneck, blocks, seed, input_size):
    b = _Builder(seed, input_size)
    x = b.requantize("relu", b.conv("conv1", "input", 64, 7, stride=2))
    x = b.maxpool("maxpool", x, 3, 2, 1)
    in_channels = 64
    for layer, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks), 1):
        for i in range(count):
            block = f"layer{layer}.{i}"
            stride = 2 if layer > 1 and i == 0 else 1
            out_channels = planes * 4 if bottleneck else planes
            if bottleneck:       # torchvision (v1.5): the stride is on the 3x3 convolution
                y = b.requantize(f"{block}.relu1", b.conv(f"{block}.conv1", x, planes, 1))
                y = b.requantize(f"{block}.relu2",
                                 b.conv(f"{block}.conv2", y, planes, 3, stride=stride))
                y = b.conv(f"{block}.conv3", y, out_channels, 1)
            else:
                y = b.requantize(f"{block}.relu1",
                                 b.conv(f"{block}.conv1", x, planes, 3, stride=stride))
                y = b.conv(f"{block}.conv2", y, planes, 3)
            shortcut = x
            if stride != 1 or in_channels != out_channels:
                shortcut = b.conv(f"{block}.downsample", x, out_channels, 1, stride=stride)
            x = b.requantize(f"{block}.relu", b.residual(block, y, shortcut))
            in_channels = out_channels
    b.head(x, 1000, "fc")
    return b.graph(network, seed)


def resnet18(*, seed=0, input_size=224):
    """ResNet-18 (torchvision): 7x7 stem, 3x3 max pool (stride 2, padding 1), four stages of
    two basic blocks (64, 128, 256, 512 channels; 1x1 stride-2 projection shortcuts), global
    average pool, 1000-way classifier. 1.81 GMAC per frame at the default ``input_size`` 224
    (a ``(3, input_size, input_size)`` image; 32 gives a 1 x 1 final map)."""
    return _resnet("resnet18", False, (2, 2, 2, 2), seed, input_size)


def resnet50(*, seed=0, input_size=224):
    """ResNet-50 (torchvision v1.5, stride on the 3x3 convolution): as :func:`resnet18` with
    3, 4, 6, 3 bottleneck blocks (1x1, 3x3, 1x1 with 4x expansion to 256..2048 channels).
    4.09 GMAC per frame at 224."""
    return _resnet("resnet50", True, (3, 4, 6, 3), seed, input_size)


#: MobileNet-V2 inverted residual stages: expansion t, output channels c, blocks n, stride s.
_MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                        (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenet_v2(*, seed=0, input_size=224):
    """MobileNet-V2 (torchvision, width 1.0): 3x3 stride-2 stem to 32 channels, 17 inverted
    residual blocks (1x1 expansion by t unless t is 1, 3x3 depthwise, 1x1 linear projection;
    a residual add where the stride is 1 and the channels do not change), 1x1 convolution to
    1280, global average pool, 1000-way classifier. 0.30 GMAC per frame at the default
    ``input_size`` 224.

    Nodes of block ``features.N``: ``.expand`` / ``.expand_relu``, ``.depthwise`` /
    ``.depthwise_relu``, ``.project``, then the join (``.requantize_body``,
    ``.requantize_shortcut``, ``.add``) where there is one, and ``.requantize`` (signed,
    the linear bottleneck's activation).
    """
    b = _Builder(seed, input_size)
    x = b.requantize("features.0.relu", b.conv("features.0", "input", 32, 3, stride=2))
    in_channels, index = 32, 1
    for t, c, n, s in _MOBILENET_V2_STAGES:
        for i in range(n):
            block, stride = f"features.{index}", s if i == 0 else 1
            y, hidden = x, in_channels * t
            if t != 1:
                y = b.requantize(f"{block}.expand_relu", b.conv(f"{block}.expand", y, hidden, 1))
            y = b.conv(f"{block}.depthwise", y, hidden, 3, stride=stride, groups=hidden)
            y = b.conv(f"{block}.project", b.requantize(f"{block}.depthwise_relu", y), c, 1)
            if stride == 1 and in_channels == c:
                y = b.residual(block, y, x)
            x = b.requantize(f"{block}.requantize", y, signed=True)
            in_channels, index = c, index + 1
    x = b.requantize(f"features.{index}.relu", b.conv(f"features.{index}", x, 1280, 1))
    b.head(x, 1000, "classifier")
    return b.graph("mobilenet_v2", seed)


#: Builders by name.
NETWORKS = {"resnet18": resnet18, "resnet50": resnet50, "mobilenet_v2": mobilenet_v2}


def totals(graph):
    """Compute and weight storage per frame of a graph, for reports.

    Per layer, MACs come from :meth:`QGraph.macs` (dense and convolution layers, depthwise
    included; pools and adds are not MACs) and weight bits from :meth:`QGraph.weight_bits`.

    Returns
    -------
    dict
        ``"macs"``: total multiply-accumulates per frame; ``"weight_bits"``: the sum over
        filters of weights times bits; ``"weights"`` and ``"biases"``: element counts
        (``"params"`` is their sum); ``"filters_by_bits"``: ``{bits: filters}``;
        ``"layers"``: ``{name: {"macs": ..., "weight_bits": ...}}`` in graph order.
    """
    macs, bits = graph.macs(), graph.weight_bits()
    layers = [n for n in graph.nodes if n.name in bits]
    weights = sum(int(n.tensors["weight"].size) for n in layers)
    biases = sum(int(n.tensors["bias"].size) for n in layers)
    return {"macs": sum(macs.values()), "weight_bits": sum(bits.values()), "weights": weights,
            "biases": biases, "params": weights + biases,
            "filters_by_bits": graph.weight_bits_histogram(),
            "layers": {n.name: {"macs": macs[n.name], "weight_bits": bits[n.name]}
                       for n in layers}}
