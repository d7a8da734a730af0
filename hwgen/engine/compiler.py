"""The engine compiler: a QGraph and an :class:`EngineConfig` to a program and a DRAM image.

Each layer of the graph becomes one engine layer (a requantizer that is the only reader of the
layer before it is fused into that layer's output path; a flatten is a view of the map it
flattens, which the dense layer after it reads with a kernel the size of the map). Every
value an engine layer writes is a tensor in DRAM (:mod:`hwgen.engine.layout`), so every one of
them can be checked against the golden.

Filters on lanes (FILM-QNN's weight reordering): output fold ``f`` computes channels
``f * tm ... f * tm + tm - 1``; within a fold each filter goes to a lane at least as wide as
its own bits, widest filters first. A fold whose wide filters outnumber the wide lanes runs in
several passes, each pass a set of filters on the lanes; the output path puts each lane's sum
back at its channel's position (the fold's crossbar table).

Every layer the engine cannot run (an op it lacks, activations wider than its multipliers, a
tile beyond its buffers, an accumulator beyond its width, an image beyond its address space)
is reported up front, all at once, naming the layer, the limit and the numbers.
"""

from dataclasses import asdict, dataclass, field

import numpy as np

from quant import numerics
from quant.graph import requantize_offset, requantize_rounding

from .. import packing
from ..errors import UnsupportedLayerError
from ..ops import op_views
from .layout import TensorLayout, map_shape
from .params import MAX_PASSES, MULTIPLIER_BITS, encode_params, param_words
from .program import ADD, DEPTHWISE, MATMUL, OPS, POOL_MAX, POOL_SUM, ROUNDING, Descriptor

__all__ = ["EngineLayer", "Program", "compile_program", "place_filters", "VECTOR_WEIGHT_BITS",
           "VECTOR_IN_BITS"]

#: Width of a depthwise weight in the vector unit's weight words.
VECTOR_WEIGHT_BITS = 8
#: Widest element the vector lanes read.
VECTOR_IN_BITS = 16


@dataclass
class EngineLayer:
    """One engine layer: its descriptor, the graph values it reads and writes, and what the
    cycle model needs (pixels, k-steps, words moved)."""
    name: str
    op: int
    inputs: tuple
    output: str
    descriptor: Descriptor
    nodes: tuple
    macs: int = 0


@dataclass
class Program:
    """A compiled network: the DRAM image (the program first; every address in it is an
    offset into the image, so it may be loaded at any 64-byte aligned address, which the
    ``PROGRAM`` register then gives), where each tensor lies in it, and the layers in order."""
    config: object
    graph: object
    layers: list
    tensors: dict          # graph value: (address, TensorLayout)
    image: bytearray = field(repr=False)

    @property
    def input(self):
        return self.tensors["input"]

    @property
    def output(self):
        return self.tensors[self.graph.output]

    def load_input(self, image, x):
        """``image`` with the input tensor ``x`` written in."""
        address, layout = self.input
        data = layout.pack(x)
        image[address:address + len(data)] = data
        return image

    def read(self, image, value):
        """The tensor of graph ``value`` stored in ``image``."""
        address, layout = self.tensors[value]
        return layout.unpack(image[address:address + layout.nbytes])

    def to_metadata(self):
        """What a testbench or a driver needs to run the program: the engine, where each
        tensor lies and how it is stored, and each layer's descriptor."""
        return {
            "architecture": "engine",
            "top": "top",
            "engine": self.config.as_dict(),
            "image_bytes": len(self.image),
            "input": "input",
            "output": self.graph.output,
            "tensors": {value: {"address": address} | layout.to_metadata()
                        for value, (address, layout) in self.tensors.items()},
            "layers": [{"name": layer.name, "op": OPS[layer.op], "inputs": list(layer.inputs),
                        "output": layer.output, "nodes": list(layer.nodes),
                        "macs": layer.macs, "descriptor": asdict(layer.descriptor)}
                       for layer in self.layers],
        }


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


def _bits_of(lo, hi):
    bits, signed = numerics.bits_for_range(min(int(lo), 0), max(int(hi), 0))
    return bits, signed


class _Compiler:
    def __init__(self, graph, config):
        graph.validate()
        self.graph, self.config = graph, config
        self.views = op_views(graph)
        self.ranges = graph.ranges()
        self.problems = []
        self.layers = []
        self.types = {"input": (graph.input.bits, graph.input.signed)}
        # A flatten is a view of the map it flattens: value -> the stored value it reads.
        self.stored = {"input": "input"}

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
        in_map = map_shape(self.graph.shapes()[source] if source != "input"
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
        self.check_input(view, view.node.inputs[0], config.act_bits, "multipliers")
        lo, hi = self.ranges[view.name]
        self.check_accumulator(view, int(np.min(lo)), int(np.max(hi)))
        self.check_output(view, output)
        self.check_channels(view, weight.shape[0])
        self.layers.append(_Plan(MATMUL, view, rq, output, source, in_map, kernel, stride,
                                 padding, weight=weight))

    def vector(self, view, rq, output):
        node = view.node
        source = self.stored[node.inputs[0]]
        in_map = map_shape(self.graph.shapes()[source] if source != "input"
                           else self.graph.input.shape)
        second = None
        if view.kind == "flatten":
            return
        if view.kind in ("requantize",):
            op, kernel, stride, padding = POOL_SUM, (1, 1), (1, 1), (0, 0)
        elif view.kind == "add":
            op, kernel, stride, padding = ADD, (1, 1), (1, 1), (0, 0)
            second = self.stored[node.inputs[1]]
            if map_shape(self.graph.shapes()[second] if second != "input"
                         else self.graph.input.shape) != in_map:
                self.problems.append(f"{self.where(view.name)}: adds tensors stored as "
                                     f"different maps; the engine adds maps pixel by pixel")
        elif view.kind == "global_avgpool":
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


def _pack_bits(fields_):
    """``[(value, width), ...]`` as one integer, the first field in the low bits."""
    word, offset = 0, 0
    for value, width in fields_:
        word |= (int(value) & ((1 << width) - 1)) << offset
        offset += width
    return word, offset


def _to_words(value, bits, data_bits):
    words = -(-bits // data_bits) if bits else 0
    return value.to_bytes(words * data_bits // 8, "little"), words


def place_filters(lane_bits, weight_bits):
    """Lanes for the filters of one fold: a list of passes, each ``{lane: filter}`` (filters
    are positions in the fold). Widest filters first, each on the narrowest free lane at least
    as wide; a pass ends when a filter finds no lane."""
    order = sorted(range(len(weight_bits)), key=lambda f: (-int(weight_bits[f]), f))
    lanes = sorted(range(len(lane_bits)), key=lambda p: (lane_bits[p], p))
    passes, left = [], list(order)
    while left:
        free, placed, rest = list(lanes), {}, []
        for f in left:
            lane = next((p for p in free if lane_bits[p] >= weight_bits[f]), None)
            if lane is None:
                rest.append(f)
            else:
                placed[lane] = f
                free.remove(lane)
        if not placed:
            raise ValueError(f"a {max(weight_bits)}-bit filter fits no lane of {lane_bits}")
        passes.append(placed)
        left = rest
    return passes


def compile_program(graph, config):
    """The :class:`Program` of ``graph`` on an engine built as ``config``.

    Raises
    ------
    UnsupportedLayerError
        Listing every layer the engine cannot run, with the limit and the numbers.
    """
    compiler = _Compiler(graph, config)
    plans = compiler.plan()
    builder = _Builder(compiler, config)
    for plan in plans:
        builder.add(plan)
    problems = compiler.problems + builder.problems
    if problems:
        raise UnsupportedLayerError(problems)
    return builder.finish()


class _Builder:
    """Lays out tensors, parameters and descriptors."""

    def __init__(self, compiler, config):
        self.compiler, self.config = compiler, config
        self.graph = compiler.graph
        self.problems = []
        self.tensors = {}
        self.params = []        # (layer index, bytes)
        self.layers = []
        self.layout("input", tuple(self.graph.input.shape), *compiler.types["input"])

    def layout(self, value, shape, bits, signed):
        self.tensors[value] = TensorLayout(tuple(shape), int(bits), bool(signed),
                                           self.config.tn, self.config.data_bits)
        return self.tensors[value]

    def shape(self, value):
        return tuple(self.graph.input.shape) if value == "input" else \
            self.graph.shapes()[value]

    def add(self, plan):
        view, rq, output = plan.view, plan.rq, plan.output
        name = view.name
        source = self.tensors[plan.source]
        out_shape = self.shape(output)
        out = self.layout(output, out_shape, *self.compiler.types[output])
        kh, kw = plan.kernel
        sh, sw = plan.stride
        ph, pw = plan.padding
        _, in_h, in_w = plan.in_map
        _, out_h, out_w = out.map
        d = Descriptor(op=plan.kind, requant=int(rq is not None),
                       in_signed=int(source.signed), out_signed=int(out.signed),
                       in_height=in_h, in_width=in_w, out_height=out_h, out_width=out_w,
                       in_groups=source.groups, out_groups=out.groups, kernel_h=kh,
                       kernel_w=kw, stride_h=sh, stride_w=sw, pad_h=ph, pad_w=pw,
                       in_bits=source.bits, out_bits=out.bits,
                       in_row_words=source.row_words, out_row_words=out.row_words)
        if rq is not None:
            d.shift = rq.attrs["shift"]
            d.rounding = ROUNDING[requantize_rounding(rq)]
        if plan.kind == POOL_MAX:
            d.pad_value = numerics.int_range(source.bits, source.signed)[0] & 0xFFFFFFFF
        if plan.second is not None:
            second = self.tensors[plan.second]
            d.in2_bits, d.in2_signed = second.bits, int(second.signed)
            d.in2_row_words = second.row_words
        for field_, value in (("kernel_h", kh), ("kernel_w", kw), ("stride_h", sh),
                              ("stride_w", sw), ("pad_h", ph), ("pad_w", pw)):
            limit = (1 << 8) if field_.startswith("kernel") else (1 << 4)
            if value >= limit:
                self.problems.append(f"layer '{name}': {field_} {value} is beyond the "
                                     f"engine's {limit - 1}")
        if plan.kind == MATMUL:
            params, macs = self.matmul_params(plan, d, out)
        else:
            params, macs = self.vector_params(plan, d, out)
        self.tile(plan, d, source, out)
        self.params.append(params)
        self.layers.append(EngineLayer(name, plan.kind,
                                       tuple(v for v in (plan.source, plan.second) if v),
                                       output, d, (name,) + ((rq.name,) if rq is not None and
                                                             rq.name != name else ()), macs))

    # -- parameters --------------------------------------------------------------------------

    def requantizer(self, rq, channels):
        """The multipliers and offsets of ``channels`` channels (zeros past the layer's)."""
        if rq is None:
            return np.zeros(channels, np.int64), np.zeros(channels, np.int64)
        m = np.asarray(rq.tensors["multiplier"], dtype=np.int64)
        if m.max(initial=0) >= (1 << MULTIPLIER_BITS):
            self.problems.append(f"layer '{rq.name}': multipliers of more than "
                                 f"{MULTIPLIER_BITS} bits do not fit the engine")
        offset = requantize_offset(rq)
        return np.pad(m, (0, channels - m.size)), np.pad(offset, (0, channels - offset.size))

    def matmul_params(self, plan, d, out):
        c = self.config
        tm, tn = c.tm, c.tn
        view = plan.view
        weight = plan.weight                         # (O, C, kh, kw)
        outs, channels = weight.shape[:2]
        groups_in = -(-channels // tn)
        cp = groups_in * tn
        w = np.zeros((outs, cp) + weight.shape[2:], np.int64)
        w[:, :channels] = weight
        # Columns in k-step order (ky, kx, g) with the tn channels of a group inside.
        w = np.moveaxis(w, 1, -1).reshape(outs, -1, tn)            # (O, K, tn)
        ksteps = w.shape[1]
        folds = -(-outs // tm)
        bits = view.weight_bits
        bias = view.node.tensors["bias"]
        mult, offset = self.requantizer(plan.rq, folds * tm)
        lane_bits = c.lane_bits
        passes_of = []
        if int(bits.max()) > max(lane_bits):
            self.problems.append(f"layer '{view.name}': has {int(bits.max())}-bit filters; the "
                                 f"engine's widest lanes are {max(lane_bits)}-bit")
            return b"", 0
        for f in range(folds):
            fold_bits = [int(b) for b in bits[f * tm:(f + 1) * tm]]
            passes_of.append(place_filters(lane_bits, fold_bits))
        passes = max(len(p) for p in passes_of)
        if passes > MAX_PASSES:
            self.problems.append(f"layer '{view.name}': a fold of {tm} filters needs {passes} "
                                 f"passes over the lanes {list(lane_bits)}; the engine runs at "
                                 f"most {MAX_PASSES}")
            return b"", 0
        kstep_bits = sum(-(-len(lanes) // plan_.lanes) * plan_.word_bits
                         for _, lanes, plan_ in c.groups) * tn
        kstep_bytes, kstep_words = _to_words(0, kstep_bits, c.data_bits)
        fold_words = param_words(c)
        data = bytearray()
        for f in range(folds):
            placed = passes_of[f] + [{}] * (MAX_PASSES - len(passes_of[f]))
            biases = [[int(bias[f * tm + j]) if (j := placed[q].get(p)) is not None else 0
                       for p in range(tm)] for q in range(MAX_PASSES)]
            sources = [[next(((p, 1) for p, j in placed[q].items() if j == position), (0, 0))
                        for position in range(tm)] for q in range(MAX_PASSES)]
            data += encode_params(c, mult=mult[f * tm:(f + 1) * tm],
                                  offset=offset[f * tm:(f + 1) * tm], bias=biases,
                                  source=sources)
            for q in range(passes):
                lanes_w = np.zeros((tm, ksteps, tn), np.int64)
                for p, j in placed[q].items():
                    lanes_w[p] = w[f * tm + j]
                for k in range(ksteps):
                    word_fields = []
                    for _, lanes, lane_plan in c.groups:
                        for start in range(0, len(lanes), lane_plan.lanes):
                            pack = lanes[start:start + lane_plan.lanes]
                            for i in range(tn):
                                ws = [int(lanes_w[p, k, i]) for p in pack]
                                ws += [0] * (lane_plan.lanes - len(ws))
                                word_fields.append((packing.rom_word(lane_plan, ws),
                                                    lane_plan.word_bits))
                    value, _ = _pack_bits(word_fields)
                    data += value.to_bytes(kstep_words * c.data_bytes, "little")
        d.folds, d.passes, d.ksteps = folds, passes, ksteps
        d.kstep_words, d.fold_words = kstep_words, fold_words
        macs = out.map[1] * out.map[2] * outs * weight[0].size
        return bytes(data), macs

    def vector_params(self, plan, d, out):
        c = self.config
        tn = c.tn
        view = plan.view
        groups = out.groups
        channels = out.map[0]
        mult, offset = self.requantizer(plan.rq, groups * tn)
        kh, kw = plan.kernel
        data = bytearray()
        ksteps = 0
        kstep_words = 0
        if plan.kind == DEPTHWISE:
            weight = view.weight.reshape(channels, kh * kw)
            bias = view.node.tensors["bias"]
            if view.weight_bits.max() > VECTOR_WEIGHT_BITS:
                self.problems.append(f"layer '{view.name}': depthwise weights wider than "
                                     f"{VECTOR_WEIGHT_BITS} bits")
            ksteps = kh * kw
            _, kstep_words = _to_words(0, tn * VECTOR_WEIGHT_BITS, c.data_bits)
        fold_words = param_words(c)
        for g in range(groups):
            biases = [[int(bias[g * tn + i]) if plan.kind == DEPTHWISE and
                       g * tn + i < channels else 0 for i in range(tn)]]
            biases += [[0] * tn] * (MAX_PASSES - 1)
            data += encode_params(c, mult=mult[g * tn:(g + 1) * tn],
                                  offset=offset[g * tn:(g + 1) * tn], bias=biases,
                                  source=[[(0, 0)] * tn] * MAX_PASSES)
            for k in range(ksteps):
                ws = [(int(weight[g * tn + i, k]) if g * tn + i < channels else 0,
                       VECTOR_WEIGHT_BITS) for i in range(tn)]
                value, _ = _pack_bits(ws)
                data += value.to_bytes(kstep_words * c.data_bytes, "little")
        d.folds, d.passes, d.ksteps = groups, 1, ksteps
        d.kstep_words, d.fold_words = kstep_words, fold_words
        pixels = out.map[1] * out.map[2]
        macs = pixels * channels * kh * kw if plan.kind == DEPTHWISE else 0
        return bytes(data), macs

    # -- tiling ------------------------------------------------------------------------------

    def tile(self, plan, d, source, out):
        """Bands of output rows that fit the input buffer."""
        c = self.config
        name = plan.view.name
        # An add's two operands share the input buffer, one in each half.
        in_words_per_row = d.in_width * source.groups * (2 if plan.second else 1)
        best = 0
        for rows in range(1, d.out_height + 1):
            need = min(d.in_height, (rows - 1) * d.stride_h + d.kernel_h) * in_words_per_row
            if need > c.input_words or rows * d.out_width * out.groups > c.output_words:
                break
            best = rows
        if best == 0:
            rows = min(d.in_height, d.kernel_h)
            need = rows * in_words_per_row
            if need > c.input_words:
                operands = " for each of its two operands" if plan.second else ""
                self.problems.append(f"layer '{name}': one output row needs {need} input "
                                     f"words ({rows} x {d.in_width} pixels of "
                                     f"{source.groups} channel groups{operands}); the "
                                     f"engine's input buffer holds {c.input_words}")
            best = 1
        d.band_rows = best
        d.bands = -(-d.out_height // best)
        if d.op == MATMUL and d.passes * d.ksteps > c.weight_words:
            self.problems.append(f"layer '{name}': a fold takes {d.passes * d.ksteps} weight "
                                 f"words ({d.passes} passes x {d.ksteps} k-steps); the engine's "
                                 f"weight buffer holds {c.weight_words}")
        out_words = d.band_rows * d.out_width * out.groups
        if out_words > c.output_words:
            self.problems.append(f"layer '{name}': a band of {d.band_rows} output rows takes "
                                 f"{out_words} output words; the engine's output buffer holds "
                                 f"{c.output_words}")

    # -- the image ---------------------------------------------------------------------------

    def finish(self):
        c = self.config
        align = max(64, c.data_bytes)

        def aligned(n):
            return -(-n // align) * align

        program_bytes = len(self.layers) * 64
        address = aligned(program_bytes)
        param_addr = []
        for data in self.params:
            param_addr.append(address)
            address = aligned(address + len(data))
        places = {}
        for value, layout in self.tensors.items():
            places[value] = (address, layout)
            address = aligned(address + layout.nbytes)
        if address > (1 << c.addr_bits):
            self.problems.append(f"the DRAM image takes {address} bytes, beyond the engine's "
                                 f"{c.addr_bits}-bit address space")
            raise UnsupportedLayerError(self.problems)
        image = bytearray(address)
        for i, layer in enumerate(self.layers):
            d = layer.descriptor
            d.param_addr = param_addr[i]
            d.in_addr = places[layer.inputs[0]][0]
            if len(layer.inputs) > 1:
                d.in2_addr = places[layer.inputs[1]][0]
            d.out_addr = places[layer.output][0]
            d.last = int(i == len(self.layers) - 1)
            image[64 * i:64 * (i + 1)] = d.encode()
            data = self.params[i]
            image[param_addr[i]:param_addr[i] + len(data)] = data
        return Program(c, self.graph, self.layers, places, image)
