"""QGraph: the integer model that the golden executor runs and the hardware generator compiles.

A QGraph is an input spec plus an ordered list of nodes. Each node names its inputs (earlier
nodes, or ``"input"``), carries JSON-able attributes and NumPy tensors. Integer tensors are the
truth; float scales ride along only to map integers back to real values.

On disk a ``.qgraph`` file is one NumPy ``.npz`` archive: the entry ``header`` holds the JSON
header (schema version, input spec, nodes with their attributes), and every tensor is stored as
``<node name>/<tensor name>``.
"""

import io
import json
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from . import numerics
from .errors import GraphError, UnsupportedLayerError

__all__ = ["SCHEMA_VERSION", "OPS", "InputSpec", "Node", "QGraph", "dense", "requantize",
           "flatten", "load", "save"]

SCHEMA_VERSION = 1

#: Operations this schema version defines, with the tensors each one must carry.
OPS = {
    "dense": ("weight", "bias", "weight_bits", "weight_scale"),
    "requantize": ("multiplier",),
    "flatten": (),
}

WEIGHT_BITS_RANGE = (2, 8)
MAX_SHIFT = 48
MAX_MULTIPLIER_BITS = 24
MAX_ACT_BITS = 16


@dataclass
class InputSpec:
    """Shape and integer type of the network input (``scale`` maps integers to real values)."""
    shape: tuple
    bits: int
    signed: bool
    scale: float = 1.0

    @property
    def range(self):
        return numerics.int_range(self.bits, self.signed)

    def to_json(self):
        return {"shape": list(self.shape), "bits": self.bits, "signed": self.signed,
                "scale": self.scale}


@dataclass
class Node:
    """One operation: ``op`` from :data:`OPS`, the names of its ``inputs``, attributes, tensors."""
    name: str
    op: str
    inputs: list
    attrs: dict = field(default_factory=dict)
    tensors: dict = field(default_factory=dict)


def dense(name, weight, bias, weight_bits, weight_scale=None, inputs=None):
    """A fully connected layer: ``acc[c] = sum_i weight[c, i] * x[i] + bias[c]``.

    ``weight_bits[c]`` is filter ``c``'s precision: its weights lie in ``±(2^(b-1) - 1)``.
    """
    weight = np.asarray(weight)
    out_features = weight.shape[0] if weight.ndim else 0
    if weight_scale is None:
        weight_scale = np.ones(out_features)
    return Node(name, "dense", inputs, {}, {
        "weight": weight, "bias": np.asarray(bias),
        "weight_bits": np.asarray(weight_bits), "weight_scale": np.asarray(weight_scale, float)})


def requantize(name, multiplier, shift, out_bits, out_signed=False, scale=1.0, inputs=None):
    """The Requantizer: ``clamp((acc * multiplier[c] + 2^(shift-1)) >> shift)`` to ``out_bits``."""
    return Node(name, "requantize", inputs,
                {"shift": int(shift), "out_bits": int(out_bits), "out_signed": bool(out_signed),
                 "scale": float(scale)},
                {"multiplier": np.asarray(multiplier)})


def flatten(name, inputs=None):
    """Reshape to a vector in C order (row-major); a stream needs no hardware for it."""
    return Node(name, "flatten", inputs)


def _is_int_array(a):
    return isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.integer)


class QGraph:
    """An integer network: an :class:`InputSpec` and nodes in execution order.

    A node whose ``inputs`` is ``None`` takes the previous node's output (or the graph input).
    The graph output is the last node's output.
    """

    def __init__(self, input, nodes, metadata=None):
        if not isinstance(input, InputSpec):
            raise TypeError(f"input must be an InputSpec, not {input!r}")
        self.input = input
        self.nodes = []
        for node in nodes:
            if not isinstance(node, Node):
                raise TypeError(f"nodes must be Node objects, not {node!r}")
            if node.inputs is None:
                node.inputs = [self.nodes[-1].name if self.nodes else "input"]
            self.nodes.append(node)
        self.metadata = dict(metadata or {})

    def __getitem__(self, name):
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def output(self):
        return self.nodes[-1].name

    def consumers(self, name):
        """Nodes that read ``name``'s output."""
        return [n for n in self.nodes if name in n.inputs]

    # -- validation --------------------------------------------------------------------------

    def validate(self):
        """Check every rule and raise one :class:`GraphError` listing all problems.

        Unsupported operations raise :class:`UnsupportedLayerError` (listing all of them)
        before anything else is checked, since nothing else can be trusted around them.
        """
        unsupported = [f"layer '{n.name}': operation '{n.op}' is not supported; supported "
                       f"operations are {', '.join(OPS)}" for n in self.nodes if n.op not in OPS]
        if unsupported:
            raise UnsupportedLayerError(unsupported)
        problems = []
        spec = self.input
        if not (1 <= spec.bits <= MAX_ACT_BITS):
            problems.append(f"input: bits must be in 1..{MAX_ACT_BITS}, not {spec.bits}")
        if not spec.shape or any(int(d) < 1 for d in spec.shape):
            problems.append(f"input: shape must have positive sizes, not {tuple(spec.shape)}")
        if not self.nodes:
            problems.append("graph has no nodes")
        seen = {"input"}
        shapes = {"input": tuple(spec.shape)}
        for node in self.nodes:
            where = f"layer '{node.name}'"
            if node.name in seen:
                problems.append(f"{where}: name is used twice")
            for src in node.inputs:
                if src not in seen:
                    problems.append(f"{where}: input '{src}' is not an earlier layer")
            missing = [t for t in OPS[node.op] if t not in node.tensors]
            if missing:
                problems.append(f"{where}: missing tensors {', '.join(missing)}")
            seen.add(node.name)
            if missing or len(node.inputs) != 1 or node.inputs[0] not in shapes:
                if len(node.inputs) != 1:
                    problems.append(f"{where}: {node.op} takes exactly one input, "
                                    f"not {len(node.inputs)}")
                continue
            in_shape = shapes[node.inputs[0]]
            check = getattr(self, f"_check_{node.op}")
            shapes[node.name] = check(node, where, in_shape, problems)
        if problems:
            raise GraphError(problems)
        return self

    def _check_dense(self, node, where, in_shape, problems):
        t = node.tensors
        w, bias, bits = t["weight"], t["bias"], t["weight_bits"]
        if len(in_shape) != 1:
            problems.append(f"{where}: dense needs a vector input, not shape {in_shape}; "
                            f"add a flatten layer before it")
        if not _is_int_array(w) or w.ndim != 2:
            problems.append(f"{where}: weight must be a 2-D integer array, not "
                            f"{getattr(w, 'dtype', type(w))} of shape {np.shape(w)}")
            return None
        out_features, in_features = w.shape
        if len(in_shape) == 1 and in_shape[0] != in_features:
            problems.append(f"{where}: weight has in_features {in_features} but its input has "
                            f"{in_shape[0]} features")
        if not _is_int_array(bias) or bias.shape != (out_features,):
            problems.append(f"{where}: bias must be an integer array of shape ({out_features},), "
                            f"not {getattr(bias, 'dtype', type(bias))} {np.shape(bias)}")
        if not _is_int_array(bits) or bits.shape != (out_features,):
            problems.append(f"{where}: weight_bits must be an integer array of shape "
                            f"({out_features},), not {np.shape(bits)}")
            return (out_features,)
        lo_b, hi_b = WEIGHT_BITS_RANGE
        bad = np.flatnonzero((bits < lo_b) | (bits > hi_b))
        if bad.size:
            problems.append(f"{where}: weight_bits must be in {lo_b}..{hi_b}; filter {bad[0]} "
                            f"has {bits[bad[0]]}")
            return (out_features,)
        limit = (np.int64(1) << (bits.astype(np.int64) - 1)) - 1
        over = np.abs(w.astype(np.int64)) > limit[:, None]
        if over.any():
            c, i = np.argwhere(over)[0]
            problems.append(f"{where}: weight[{c}, {i}] = {w[c, i]} is outside filter {c}'s "
                            f"{bits[c]}-bit range ±{limit[c]} ({int(over.sum())} weights "
                            f"out of range)")
        return (out_features,)

    def _check_requantize(self, node, where, in_shape, problems):
        mult, a = node.tensors["multiplier"], node.attrs
        channels = in_shape[0] if in_shape else 0
        if not _is_int_array(mult) or mult.shape != (channels,):
            problems.append(f"{where}: multiplier must be an integer array with one entry per "
                            f"channel ({channels}), not {np.shape(mult)}")
        elif (mult < 1).any() or (mult >= (1 << MAX_MULTIPLIER_BITS)).any():
            problems.append(f"{where}: multiplier must be in 1..2^{MAX_MULTIPLIER_BITS}-1, not "
                            f"{int(mult.min())}..{int(mult.max())}")
        if not (0 <= a.get("shift", -1) <= MAX_SHIFT):
            problems.append(f"{where}: shift must be in 0..{MAX_SHIFT}, not {a.get('shift')}")
        if not (1 <= a.get("out_bits", 0) <= MAX_ACT_BITS):
            problems.append(f"{where}: out_bits must be in 1..{MAX_ACT_BITS}, not "
                            f"{a.get('out_bits')}")
        if len(in_shape) != 1:
            problems.append(f"{where}: requantize needs a vector input, not shape {in_shape}")
        return in_shape

    def _check_flatten(self, node, where, in_shape, problems):
        return (int(np.prod(in_shape)),)

    # -- derived facts -----------------------------------------------------------------------

    def shapes(self):
        """Output shape of every node (and ``"input"``), for a valid graph."""
        shapes = {"input": tuple(self.input.shape)}
        for node in self.nodes:
            src = shapes[node.inputs[0]]
            if node.op == "dense":
                shapes[node.name] = (node.tensors["weight"].shape[0],)
            elif node.op == "flatten":
                shapes[node.name] = (int(np.prod(src)),)
            else:
                shapes[node.name] = src
        return shapes

    def ranges(self):
        """Inclusive integer bounds ``(lo, hi)`` of every node's output, from worst cases.

        Dense bounds come from the actual weights, so they are tight and safe; they decide
        accumulator widths in hardware.
        """
        ranges = {"input": self.input.range}
        for node in self.nodes:
            lo, hi = ranges[node.inputs[0]]
            if node.op == "dense":
                t = node.tensors
                acc_lo, acc_hi = numerics.dense_range(t["weight"], t["bias"], lo, hi)
                ranges[node.name] = (int(acc_lo.min()), int(acc_hi.max()))
            elif node.op == "requantize":
                a = node.attrs
                ranges[node.name] = tuple(int(v) for v in numerics.int_range(
                    a["out_bits"], a["out_signed"]))
            else:
                ranges[node.name] = (lo, hi)
        return ranges

    def macs(self):
        """Multiply-accumulates per frame of every dense node."""
        return {n.name: int(n.tensors["weight"].size) for n in self.nodes if n.op == "dense"}

    def weight_bits_histogram(self):
        """``{bits: number of filters}`` over all dense layers."""
        hist = {}
        for n in self.nodes:
            if n.op == "dense":
                for b, count in zip(*np.unique(n.tensors["weight_bits"], return_counts=True)):
                    hist[int(b)] = hist.get(int(b), 0) + int(count)
        return dict(sorted(hist.items()))

    def copy(self):
        nodes = [Node(n.name, n.op, list(n.inputs), dict(n.attrs),
                      {k: v.copy() for k, v in n.tensors.items()}) for n in self.nodes]
        return QGraph(InputSpec(**self.input.to_json() | {"shape": tuple(self.input.shape)}),
                      nodes, dict(self.metadata))


def save(graph, path):
    """Write ``graph`` to a ``.qgraph`` file (validated first, so no broken file is written)."""
    graph.validate()
    _write(graph, path)


def _write(graph, path):
    header = {
        "schema_version": SCHEMA_VERSION,
        "input": graph.input.to_json(),
        "nodes": [{"name": n.name, "op": n.op, "inputs": n.inputs, "attrs": n.attrs,
                   "tensors": sorted(n.tensors)} for n in graph.nodes],
        "metadata": graph.metadata,
    }
    arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    for n in graph.nodes:
        for key, value in n.tensors.items():
            arrays[f"{n.name}/{key}"] = np.asarray(value)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    with open(path, "wb") as f:
        f.write(buffer.getvalue())


def load(path):
    """Read and validate a ``.qgraph`` file; a missing or corrupt file raises a clear error."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise GraphError(f"{path} is not a valid .qgraph file (not an npz archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(bytes(archive["header"]).decode())
            tensors = {key: archive[key] for key in archive.files if key != "header"}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise GraphError(f"{path} is not a valid .qgraph file ({e})") from None
    version = header.get("schema_version") if isinstance(header, dict) else None
    if version != SCHEMA_VERSION:
        raise GraphError(f"{path}: schema_version must be {SCHEMA_VERSION}, not {version}")
    try:
        spec = header["input"]
        input = InputSpec(tuple(spec["shape"]), int(spec["bits"]), bool(spec["signed"]),
                          float(spec.get("scale", 1.0)))
        nodes = [Node(n["name"], n["op"], list(n["inputs"]), dict(n["attrs"]),
                      {t: tensors[f"{n['name']}/{t}"] for t in n["tensors"]})
                 for n in header["nodes"]]
    except (KeyError, TypeError, ValueError) as e:
        raise GraphError(f"{path} is not a valid .qgraph file (header: missing {e})") from None
    return QGraph(input, nodes, header.get("metadata")).validate()
