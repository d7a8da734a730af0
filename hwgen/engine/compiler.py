"""The engine compiler: a QGraph and an :class:`EngineConfig` to a program and a DRAM image.

Each layer of the graph becomes one engine layer (a requantizer that is the only reader of the
layer before it is fused into that layer's output path; a flatten is a view of the map it
flattens, which the dense layer after it reads with a kernel the size of the map). Every
value an engine layer writes is a tensor in DRAM (:mod:`hwgen.engine.layout`), so every one of
them can be checked against the golden.

Filters on lanes (FILM-QNN's weight reordering): output fold ``f`` computes channels
``f * tm ... f * tm + tm - 1``; within a fold each filter stays on its own channel's lane when
that lane holds its bits, and one wider goes to a widest lane (:func:`image.place_filters`). A
fold whose wide filters outnumber the wide lanes runs in several passes, each pass a set of
filters on the lanes; the output path puts each lane's sum back at its channel's position (the
fold's crossbar table, within each channel's reach: :func:`config.crossbar_sources`).

A first convolution on few channels (a stem on an RGB image) reads the input as its windows
(:class:`~hwgen.engine.layout.TensorLayout`'s patches) when its k-steps, the window's positions
times its channel groups, would otherwise carry mostly padding channels: the input is then
stored as the windows' map and the layer runs as a 1 x 1 convolution on it, whose k-steps carry
``tn`` elements of the window each.

A global average pool whose map does not fit the input buffer (a band of it would be the whole
map) runs as two layers: the sums of each row (a pool of one row, written as a tensor of its
own, ``<pool>.rows``, which :func:`~hwgen.engine.image.engine_golden` derives from the golden),
then the sums of that column with the pool's requantizer. Each reads a row at a time, so the
map's channels need only one row of the input buffer.

Every layer the engine cannot run (an op it lacks, activations wider than its multipliers, a
tile beyond its buffers, an accumulator beyond its width, an image beyond its address space)
is reported up front, all at once, naming the layer, the limit and the numbers.
"""

from dataclasses import dataclass

import numpy as np

from quant import numerics

from ..errors import UnsupportedLayerError
from ..ops import op_views
from .image import ImageBuilder
from .layout import map_shape
from .params import VECTOR_IN_BITS
from .program import ADD, DEPTHWISE, MATMUL, POOL_MAX, POOL_SUM

__all__ = ["compile_program"]


@dataclass
class _Plan:
    """One engine layer as the compiler plans it, before anything is laid out: its op, the
    graph node and the requantizer fused into it, the value it writes, the stored values it
    reads (``second``: an add's other operand) as ``(C, H, W)`` maps, its window, and a matrix
    product's weights ``(O, C, kh, kw)``."""
    kind: int
    view: object
    rq: object
    output: str
    source: str
    in_map: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    second: str = None
    weight: object = None
    name: str = None       # the engine layer's own name, when not the graph node's
    row_sums: bool = False  # it writes the row sums of a split global pool


def _bits_of(lo, hi):
    bits, signed = numerics.bits_for_range(min(int(lo), 0), max(int(hi), 0))
    return bits, signed


class _Compiler:
    def __init__(self, graph, config, split_pools=None):
        graph.validate()
        self.graph, self.config = graph, config
        self.split_pools = split_pools
        self.views = op_views(graph)
        self.ranges = graph.ranges()
        self.shapes = graph.shapes()         # once: each call walks and checks the graph
        self.problems = []
        self.layers = []
        self.types = {"input": (graph.input.bits, graph.input.signed)}
        # A flatten is a view of the map it flattens: value -> the stored value it reads.
        self.stored = {"input": "input"}
        self.input_patches = None     # the input stored as its first convolution's windows
        self.splittable = []          # global pools over maps of several rows and columns

    def type_of(self, value):
        return self.types[self.stored[value]]

    def where(self, name):
        return f"layer '{name}'"

    # -- which nodes make one engine layer ---------------------------------------------------

    def fused_requantize(self, name):
        """The requantize node that reads only ``name`` and is its only reader, or None."""
        readers = self.graph.consumers(name)
        if len(readers) == 1 and readers[0].op == "requantize" and name != self.graph.output:
            return readers[0]
        return None

    def plan(self):
        skip = set()
        for name, view in self.views.items():
            if name in skip:
                continue
            if view.kind == "flatten":
                self.stored[name] = self.stored[view.node.inputs[0]]
                continue
            rq = self.fused_requantize(name) if view.kind != "requantize" else None
            if rq is not None:
                skip.add(rq.name)
            self.layer(view, rq)
        return self.layers

    def layer(self, view, rq):
        kind = view.kind
        rule = {"dense": self.matmul, "conv": self.matmul, "depthwise": self.vector,
                "maxpool": self.vector, "avgpool": self.vector, "global_avgpool": self.vector,
                "requantize": self.vector, "add": self.vector}.get(kind)
        if rule is None:
            self.problems.append(f"{self.where(view.name)}: {view.node.op} has no engine op")
            return
        output = rq.name if rq is not None else view.name
        if view.kind == "requantize":
            rq = view.node
        if rq is not None:
            a = rq.attrs
            self.types[output] = (a["out_bits"], a["out_signed"])
        else:
            self.types[output] = _bits_of(*self.ranges[view.name])
        self.stored[output] = output
        rule(view, rq, output)

    # -- checks shared by the ops ------------------------------------------------------------

    def check_input(self, view, value, limit_bits, what):
        bits, signed = self.type_of(value)
        need = bits + (0 if signed else 1)
        if need > limit_bits:
            self.problems.append(
                f"{self.where(view.name)}: reads {bits}-bit {'signed' if signed else 'unsigned'}"
                f" activations; the engine's {what} take at most {limit_bits}-bit signed "
                f"values (or {limit_bits - 1}-bit unsigned)")
            return False
        return True

    def check_accumulator(self, view, lo, hi):
        bits, _ = numerics.bits_for_range(min(lo, -1), max(hi, 0))
        if bits > self.config.acc_bits:
            self.problems.append(f"{self.where(view.name)}: needs {bits}-bit accumulators; the "
                                 f"engine's are {self.config.acc_bits} bits")

    def check_output(self, view, output):
        bits, _ = self.types[output]
        if bits > 32:
            self.problems.append(f"{self.where(view.name)}: writes {bits}-bit values; the "
                                 f"engine stores at most 32 bits an element")

    def check_channels(self, view, channels):
        if channels > self.config.channels:
            self.problems.append(f"{self.where(view.name)}: has {channels} channels; the "
                                 f"engine's requantizer holds {self.config.channels}")

    # -- the ops -----------------------------------------------------------------------------

    def geometry(self, view):
        """``(C, H, W)`` read, the window ``(kh, kw), (sh, sw), (ph, pw)``."""
        g = view.geometry
        return g, g.kernel, g.stride, g.padding

    def matmul(self, view, rq, output):
        config = self.config
        source = self.stored[view.node.inputs[0]]
        in_map = map_shape(self.shapes[source] if source != "input"
                           else self.graph.input.shape)
        weight = view.weight
        if view.kind == "dense":
            # A convolution whose kernel covers the map it reads: a vector is a 1 x 1 map, and
            # a flattened map's C-order columns are (c, y, x).
            c, h, w = in_map
            weight = weight.reshape(weight.shape[0], c, h, w)
            kernel, stride, padding = (h, w), (1, 1), (0, 0)
        else:
            g = view.geometry
            weight = weight.reshape(weight.shape[0], g.channels, *g.kernel)
            kernel, stride, padding = g.kernel, g.stride, g.padding
            out_map = map_shape(view.out_shape)
            if source == "input" and self.reads_patches(in_map, kernel, out_map[2]):
                self.input_patches = (*kernel, *stride, *padding)
                in_map = (in_map[0] * kernel[0] * kernel[1], *out_map[1:])
                weight = np.moveaxis(weight, 1, -1).reshape(weight.shape[0], -1, 1, 1)
                kernel, stride, padding = (1, 1), (1, 1), (0, 0)
        self.check_input(view, view.node.inputs[0], config.act_bits, "multipliers")
        lo, hi = self.ranges[view.name]
        self.check_accumulator(view, int(np.min(lo)), int(np.max(hi)))
        self.check_output(view, output)
        self.check_channels(view, weight.shape[0])
        self.layers.append(_Plan(MATMUL, view, rq, output, source, in_map, kernel, stride,
                                 padding, weight=weight))

    def reads_patches(self, in_map, kernel, out_width):
        """Whether the convolution reading the input reads it as its windows: it is the
        input's only reader, the windows' elements fill fewer k-steps of ``tn`` than the
        window's positions times its channel groups, and a row of windows fits the input
        buffer."""
        tn, positions = self.config.tn, kernel[0] * kernel[1]
        groups = -(-positions * in_map[0] // tn)
        return len(self.graph.consumers("input")) == 1 and \
            groups < positions * -(-in_map[0] // tn) and \
            out_width * groups <= self.config.input_words

    def vector(self, view, rq, output):
        node = view.node
        source = self.stored[node.inputs[0]]
        in_map = map_shape(self.shapes[source] if source != "input"
                           else self.graph.input.shape)
        second = None
        if view.kind == "flatten":
            return
        if view.kind in ("requantize",):
            op, kernel, stride, padding = POOL_SUM, (1, 1), (1, 1), (0, 0)
        elif view.kind == "add":
            op, kernel, stride, padding = ADD, (1, 1), (1, 1), (0, 0)
            second = self.stored[node.inputs[1]]
            if map_shape(self.shapes[second] if second != "input"
                         else self.graph.input.shape) != in_map:
                self.problems.append(f"{self.where(view.name)}: adds tensors stored as "
                                     f"different maps; the engine adds maps pixel by pixel")
        elif view.kind == "global_avgpool":
            if self.splittable_map(in_map):
                self.splittable.append(view.name)
            if self.splits(in_map):
                source, in_map = self.row_sums(view, source, in_map)
            c, h, w = in_map
            op, kernel, stride, padding = POOL_SUM, (h, w), (1, 1), (0, 0)
        elif view.kind == "depthwise":
            g = view.geometry
            op, kernel, stride, padding = DEPTHWISE, g.kernel, g.stride, g.padding
        else:
            g = view.geometry
            op = POOL_MAX if view.kind == "maxpool" else POOL_SUM
            kernel, stride, padding = g.kernel, g.stride, g.padding
        if view.kind == "requantize" and len(view.in_shape) == 1 and \
                source != node.inputs[0]:
            self.problems.append(f"{self.where(view.name)}: a requantize with one multiplier "
                                 f"per feature of a flattened map has no engine op (the engine "
                                 f"requantizes per channel)")
        for value in [node.inputs[0]] + ([node.inputs[1]] if second else []):
            bits, _ = self.type_of(value)
            if bits > VECTOR_IN_BITS:
                self.problems.append(f"{self.where(view.name)}: reads {bits}-bit values; the "
                                     f"engine's vector lanes take at most {VECTOR_IN_BITS} bits")
        self.check_output(view, output)
        self.check_channels(view, in_map[0])
        self.layers.append(_Plan(op, view, rq, output, source, in_map, kernel, stride, padding,
                                 second=second))

    @staticmethod
    def splittable_map(in_map):
        """Whether a global pool over ``in_map`` can run as row sums, then column sums: it
        has several rows and columns."""
        _, h, w = in_map
        return h > 1 and w > 1

    def splits(self, in_map):
        """Whether a global pool over ``in_map`` runs as row sums, then column sums: when the
        whole map is more than the input buffer holds (or ``split_pools`` says so)."""
        c, h, w = in_map
        if not self.splittable_map(in_map):
            return False
        if self.split_pools is not None:
            return self.split_pools
        return h * w * -(-c // self.config.tn) > self.config.input_words

    def row_sums(self, view, source, in_map):
        """Plan the layer that sums each row of a global pool's map; its value and map."""
        c, h, w = in_map
        value = f"{view.name}.rows"
        while value in self.shapes:
            value += "_"
        lo, hi = self.ranges[source]
        self.types[value] = _bits_of(lo * w, hi * w)
        if self.types[value][0] > VECTOR_IN_BITS:
            self.problems.append(f"{self.where(view.name)}: its row sums take "
                                 f"{self.types[value][0]} bits; the engine's vector lanes take "
                                 f"at most {VECTOR_IN_BITS} bits")
        self.shapes[value] = (c, h, 1)
        self.stored[value] = value
        self.layers.append(_Plan(POOL_SUM, view, None, value, source, in_map, (1, w), (1, 1),
                                 (0, 0), name=value, row_sums=True))
        return value, (c, h, 1)


def compile_program(graph, config, *, split_pools=None):
    """The :class:`Program` of ``graph`` on an engine built as ``config``. ``split_pools``
    True or False runs every global pool over a map of several rows and columns as row sums
    then column sums, or none; by default those whose map does not fit the input buffer.

    Raises
    ------
    UnsupportedLayerError
        Listing every layer the engine cannot run, with the limit and the numbers.
    """
    compiler = _Compiler(graph, config, split_pools)
    plans = compiler.plan()
    builder = ImageBuilder(compiler, config)
    for plan in plans:
        builder.add(plan)
    problems = compiler.problems + builder.problems
    if problems:
        raise UnsupportedLayerError(problems)
    return builder.finish()
