"""The DRAM image of a compiled network: tensors laid out, parameters encoded, descriptors
written, and the :class:`Program` that says where everything lies.

The compiler (:mod:`hwgen.engine.compiler`) decides what each layer is; the image builder here
decides where it goes and encodes it in the formats the hardware reads
(:mod:`hwgen.engine.program` for descriptors, :mod:`hwgen.engine.params` for fold parameters,
:mod:`hwgen.engine.weights` for weight k-steps).
"""

from dataclasses import asdict, dataclass, field

import numpy as np

from quant import numerics
from quant.graph import requantize_offset, requantize_rounding

from ..errors import UnsupportedLayerError
from .layout import TensorLayout
from .model import DEFAULT_LATENCY, program_cycles
from .params import (MAX_PASSES, MULTIPLIER_BITS, VECTOR_WEIGHT_BITS, FoldParams,
                     encode_params, param_words)
from .program import ADD, DEPTHWISE, MATMUL, OPS, POOL_MAX, ROUNDING, Descriptor
from .weights import kstep_bits, kstep_widths, pack_fields

__all__ = ["EngineLayer", "Program", "ImageBuilder", "band_rows", "engine_golden",
           "place_filters", "row_words"]


def engine_golden(layers, values):
    """The golden of every tensor ``layers`` write: ``values`` (the graph's golden by value,
    frames first) and the row sums of each split global pool, its input summed along every
    row. ``layers`` are :class:`EngineLayer` or their metadata."""
    out = dict(values)
    for layer in layers:
        if isinstance(layer, dict):
            row_sums, output, source = layer.get("row_sums"), layer["output"], layer["inputs"][0]
        else:
            row_sums, output, source = layer.row_sums, layer.output, layer.inputs[0]
        if row_sums:
            out[output] = np.asarray(out[source]).sum(axis=-1, keepdims=True)
    return out


@dataclass
class EngineLayer:
    """One engine layer: its descriptor, the graph values it reads and writes, and what the
    cycle model needs besides the descriptor: each fold's pass count (as its parameters give
    it) and the useful MACs."""
    name: str
    op: int
    inputs: tuple
    output: str
    descriptor: Descriptor
    nodes: tuple
    macs: int = 0
    fold_passes: tuple = ()
    row_sums: bool = False   # its output is a split global pool's row sums, not a graph value


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
    splittable_pools: tuple = ()   # global pools the compiler may split (whole here or not)

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

    def to_metadata(self, *, latency=DEFAULT_LATENCY):
        """What a testbench or a driver needs to run the program: the engine, where each
        tensor lies and how it is stored, and each layer's descriptor; and the cycles the
        cycle model (:mod:`hwgen.engine.model`) gives each layer and the whole frame at a
        DRAM read latency of ``latency`` cycles."""
        cycles = program_cycles(self, latency=latency)
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
                        "macs": layer.macs, "cycles_model": modelled.total,
                        "descriptor": asdict(layer.descriptor),
                        "fold_passes": list(layer.fold_passes), "row_sums": layer.row_sums}
                       for layer, modelled in zip(self.layers, cycles.layers)],
            "cycles_per_frame_model": cycles.total,
            "cycles_model_latency": latency,
        }


def _bus_words(bits, data_bits):
    """Bus words that hold ``bits`` bits."""
    return -(-bits // data_bits)


def place_filters(lane_bits, weight_bits):
    """Lanes for the filters of one fold: a list of passes, each ``{lane: filter}`` (filters
    are positions in the fold), every lane within its position's reach
    (:func:`~hwgen.engine.config.crossbar_sources`).

    A filter runs on its own position's lane when that lane holds it. One wider than its lane
    runs on a widest lane: in the first pass on a free one, or on one whose own filter fits the
    narrower lane and takes it in exchange; else in a later pass, as many a pass as there are
    widest lanes. With lanes of two widths that is as few passes as any placement needs."""
    top = max(lane_bits)
    if max(weight_bits) > top:
        raise ValueError(f"a {max(weight_bits)}-bit filter fits no lane of {list(lane_bits)}")
    wide = [p for p, b in enumerate(lane_bits) if b == top]
    first = {f: f for f, bits in enumerate(weight_bits) if bits <= lane_bits[f]}
    free = [q for q in wide if q not in first]
    left = []
    for f in sorted((f for f, bits in enumerate(weight_bits) if bits > lane_bits[f]),
                    key=lambda f: (-weight_bits[f], f)):
        if free:
            first[free.pop(0)] = f
            continue
        q = next((q for q in wide if first[q] == q and weight_bits[q] <= lane_bits[f]), None)
        if q is None:
            left.append(f)
        else:
            first[q], first[f] = f, q
    return [first] + [dict(zip(wide, left[i:i + len(wide)]))
                      for i in range(0, len(left), len(wide))]


def _input_row_words(d):
    """Input-buffer words of one input row of descriptor ``d`` (an add's two operands share
    the input buffer, one in each half)."""
    return d.in_width * d.in_groups * (2 if d.op == ADD else 1)


def row_words(d):
    """Input-buffer words one output row of descriptor ``d`` reads."""
    return min(d.in_height, d.kernel_h) * _input_row_words(d)


def band_rows(d, config):
    """The most output rows of descriptor ``d`` whose input rows fit ``config``'s input buffer
    and whose output fits its output buffer (0 when not even one row does)."""
    in_words_per_row = _input_row_words(d)
    best = 0
    for rows in range(1, d.out_height + 1):
        need = min(d.in_height, (rows - 1) * d.stride_h + d.kernel_h) * in_words_per_row
        if need > config.input_words or rows * d.out_width * d.out_groups > config.output_words:
            break
        best = rows
    return best


class ImageBuilder:
    """Lays out tensors, parameters and descriptors."""

    def __init__(self, compiler, config):
        self.compiler, self.config = compiler, config
        self.graph = compiler.graph
        self.problems = []
        self.tensors = {}
        self.params = []        # (layer index, bytes)
        self.layers = []
        self.layout("input", tuple(self.graph.input.shape), *compiler.types["input"],
                    patches=compiler.input_patches)

    def layout(self, value, shape, bits, signed, patches=None):
        self.tensors[value] = TensorLayout(tuple(shape), int(bits), bool(signed),
                                           self.config.tn, self.config.data_bits, patches)
        return self.tensors[value]

    def shape(self, value):
        return tuple(self.graph.input.shape) if value == "input" else \
            self.compiler.shapes[value]

    def add(self, plan):
        view, rq, output = plan.view, plan.rq, plan.output
        name = plan.name or view.name
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
            params, macs, fold_passes = self.matmul_params(plan, d, out)
        else:
            params, macs, fold_passes = self.vector_params(plan, d, out)
        self.tile(plan, d, source, out)
        self.params.append(params)
        nodes = (view.name,) + ((rq.name,) if rq is not None and rq.name != view.name else ())
        self.layers.append(EngineLayer(name, plan.kind,
                                       tuple(v for v in (plan.source, plan.second) if v),
                                       output, d, nodes, macs, tuple(fold_passes),
                                       plan.row_sums))

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
            return b"", 0, ()
        for f in range(folds):
            fold_bits = [int(b) for b in bits[f * tm:(f + 1) * tm]]
            passes_of.append(place_filters(lane_bits, fold_bits))
        passes = max(len(p) for p in passes_of)
        if passes > MAX_PASSES:
            self.problems.append(f"layer '{view.name}': a fold of {tm} filters needs {passes} "
                                 f"passes over the lanes {list(lane_bits)}; the engine runs at "
                                 f"most {MAX_PASSES}")
            return b"", 0, ()
        kstep_words = _bus_words(kstep_bits(c), c.data_bits)
        widths = kstep_widths(c)
        fold_words = param_words(c)
        # Filter ``outs`` is all zeros: the weights of a lane no filter of the pass is on.
        w = np.concatenate([w, np.zeros((1,) + w.shape[1:], np.int64)])
        # Each fold stores and runs only the passes it needs. Its parameters name the next
        # fold's count too (the last fold's, the first's: it follows in the next band), so the
        # loader knows a fold's length before it reads it.
        fold_passes = [len(p) for p in passes_of]
        data = bytearray()
        for f in range(folds):
            count = fold_passes[f]
            placed = passes_of[f] + [{}] * (MAX_PASSES - count)
            biases = [[int(bias[f * tm + j]) if (j := placed[q].get(p)) is not None else 0
                       for p in range(tm)] for q in range(MAX_PASSES)]
            sources = [[next(((p, 1) for p, j in placed[q].items() if j == position), (0, 0))
                        for position in range(tm)] for q in range(MAX_PASSES)]
            data += encode_params(c, FoldParams(
                passes=count, next_passes=fold_passes[(f + 1) % folds],
                mult=mult[f * tm:(f + 1) * tm], offset=offset[f * tm:(f + 1) * tm],
                bias=biases, source=sources))
            filters = np.full((count, tm), outs)
            for q in range(count):
                for p, j in placed[q].items():
                    filters[q, p] = f * tm + j
            # (passes, tm, K, tn) -> one row per k-step, lane-major within it.
            steps = w[filters].transpose(0, 2, 1, 3).reshape(count * ksteps, tm * tn)
            data += pack_fields(steps, widths, kstep_words * c.data_bytes)
        d.folds, d.passes, d.first_passes, d.ksteps = folds, passes, fold_passes[0], ksteps
        d.kstep_words, d.fold_words = kstep_words, fold_words
        macs = out.map[1] * out.map[2] * outs * weight[0].size
        return bytes(data), macs, fold_passes

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
            weight = np.zeros((groups * tn, kh * kw), np.int64)
            weight[:channels] = view.weight.reshape(channels, kh * kw)
            bias = view.node.tensors["bias"]
            if view.weight_bits.max() > VECTOR_WEIGHT_BITS:
                self.problems.append(f"layer '{view.name}': depthwise weights wider than "
                                     f"{VECTOR_WEIGHT_BITS} bits")
                return b"", 0
            ksteps = kh * kw
            kstep_words = _bus_words(tn * VECTOR_WEIGHT_BITS, c.data_bits)
            widths = np.full(tn, VECTOR_WEIGHT_BITS)
        fold_words = param_words(c)
        for g in range(groups):
            biases = [[int(bias[g * tn + i]) if plan.kind == DEPTHWISE and
                       g * tn + i < channels else 0 for i in range(tn)]]
            biases += [[0] * tn] * (MAX_PASSES - 1)
            data += encode_params(c, FoldParams(
                passes=1, next_passes=1, mult=mult[g * tn:(g + 1) * tn],
                offset=offset[g * tn:(g + 1) * tn], bias=biases,
                source=[[(0, 0)] * tn] * MAX_PASSES))
            if ksteps:
                data += pack_fields(weight[g * tn:(g + 1) * tn].T, widths,
                                    kstep_words * c.data_bytes)
        d.folds, d.passes, d.first_passes, d.ksteps = groups, 1, 1, ksteps
        d.kstep_words, d.fold_words = kstep_words, fold_words
        pixels = out.map[1] * out.map[2]
        macs = pixels * channels * kh * kw if plan.kind == DEPTHWISE else 0
        return bytes(data), macs, [1] * groups

    # -- tiling ------------------------------------------------------------------------------

    def tile(self, plan, d, source, out):
        """Bands of output rows that fit the input buffer."""
        c = self.config
        name = plan.name or plan.view.name
        best = band_rows(d, c)
        if best == 0:
            rows = min(d.in_height, d.kernel_h)
            need = row_words(d)
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
        return Program(c, self.graph, self.layers, places, image,
                       tuple(self.compiler.splittable))
