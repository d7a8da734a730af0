"""QONNX models (Brevitas, or QKeras through qonnx) to QGraphs, and how well they agree.

A QONNX model is float ONNX with quantizers: ``Quant`` nodes on the input, the weights, the
biases and the activations (``y = clip(round(x / s + z), lo, hi) - z) * s``). Between two
quantizers everything is integer arithmetic in disguise, which is what the QGraph holds:

- the input ``Quant`` becomes the graph input (its scale is the :class:`~quant.InputSpec`
  scale; :func:`quantize_inputs` applies it to float data);
- ``Gemm``/``MatMul`` and ``Conv`` on a quantized input with ``Quant``-ed weights become
  ``dense``/``conv`` nodes on the integers; their output is ``scale[c] * acc + bias[c]``
  with ``scale = s_in * s_w[c]``. A bias quantized on that scale (Brevitas's ``Int32Bias``)
  is the node's integer bias; any other bias waits, as a real per-channel offset, for the
  next quantizer;
- a ``Quant`` of such a value becomes a ``requantize``: ``M[c] / 2^S = scale[c] / s_out``,
  the waiting bias its per-channel offset, ties to even (QONNX's ``ROUND``); a ``Relu``
  before it is the clamp at 0;
- ``MaxPool``, ``AveragePool``/``GlobalAveragePool`` (sums; the division joins the scale),
  ``Add`` of two values on one scale, ``Flatten``/``Reshape`` to a vector, a
  ``BatchNormalization`` (folded into the scale and the waiting bias) and a
  ``MultiThreshold`` with evenly spaced thresholds (a requantize that floors) map one to
  one;
- the head: a value whose scale differs between channels, or that still carries a bias,
  is rescaled onto one scale (a last ``requantize``, up to 32-bit signed) so that an
  integer argmax picks what the float model picks.

With power-of-two scales the ratios are exact and the QGraph equals the QONNX model bit
for bit; with float scales ``M`` has 16 significant bits and the agreement is measured
(:func:`agreement`). What cannot be mapped is listed at once, one line per problem naming
the node, its op type, the attribute and the reason, before any QGraph is built.

Needs the ``onnx`` and ``qonnx`` packages (``pip install .[onnx]``); ``import quant`` does
not import this module. The op rules live in :mod:`quant.qonnx_mapping`, the comparison with
qonnx's executor in :mod:`quant.qonnx_agreement`.
"""

import numpy as np

from .errors import GraphError, UnsupportedLayerError
from .qonnx_agreement import LayerAgreement, agreement, agreement_table, model_inputs, run_model
from .qonnx_mapping import MAPPED_OPS, Imported, map_model

__all__ = ["Imported", "LayerAgreement", "import_model", "load", "quantize_inputs",
           "model_inputs", "run_model", "agreement", "agreement_table"]

_QONNX_OPS = ("Quant", "BipolarQuant", "Trunc", "MultiThreshold", "FloatQuant", "IntQuant")


def _modules():
    """``onnx`` and the qonnx pieces used here, or a clear error naming the extra."""
    try:
        import onnx
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.util.cleanup import cleanup_model
    except ImportError as error:
        raise ImportError(f"reading QONNX models needs the onnx and qonnx packages ({error}); "
                          f"install them with pip install '.[onnx]' torch==2.13.0") from None
    return onnx, ModelWrapper, cleanup_model


def load(path):
    """The QGraph of the QONNX model at ``path`` (see :func:`import_model`)."""
    return import_model(path).graph


def import_model(path):
    """Read a QONNX ``.onnx`` file, clean it with qonnx's transforms and map it to a QGraph.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    UnsupportedLayerError
        Listing every op, attribute or structure the mapping cannot take, one per line.
    GraphError
        When the file is not an ONNX model (a truncated or corrupt file).
    """
    onnx, ModelWrapper, cleanup_model = _modules()
    path = str(path)
    try:
        proto = onnx.load(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"model file {path} does not exist") from None
    except Exception as error:  # protobuf's DecodeError and friends: not an ONNX file
        raise GraphError(f"{path} is not a valid ONNX model ({type(error).__name__}: "
                         f"{error})") from None
    if not proto.graph.node:
        raise GraphError(f"{path} is not a valid ONNX model (its graph has no nodes)")
    problems = _precheck(onnx, proto)
    if problems:
        raise UnsupportedLayerError(problems)
    originals = {}
    for i, node in enumerate(proto.graph.node):
        node.doc_string = node.name or f"#{i}"
    try:
        model = cleanup_model(ModelWrapper(proto))
    except Exception as error:
        raise GraphError(f"{path}: qonnx's cleanup failed ({type(error).__name__}: "
                         f"{error})") from None
    for node in model.graph.node:
        originals[node.name] = node.doc_string
    imported = map_model(model, originals)
    imported.graph.metadata["qonnx"] = {"file": path, "input": imported.input_name,
                                        "input_shape": list(imported.input_shape)}
    return imported


def _precheck(onnx, proto):
    """Problems that stop qonnx's cleanup: one input and output, fixed shapes, ops known to
    ONNX or qonnx, every input produced by a node, an initializer or the graph input."""
    graph = proto.graph
    problems = []
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        problems.append(f"graph: the model must have exactly one input, not {len(inputs)} "
                        f"({', '.join(i.name for i in inputs) or 'none'})")
    if len(graph.output) != 1:
        problems.append(f"graph: the model must have exactly one output, not "
                        f"{len(graph.output)}")
    for value in inputs:
        dims = value.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            if axis == 0:
                continue   # the batch axis may be named
            if not dim.HasField("dim_value") or dim.dim_value < 1:
                shown = dim.dim_param or "unknown"
                problems.append(f"graph: tensor '{value.name}' axis {axis} has a dynamic size "
                                f"({shown}); every axis but the batch must have a fixed size")
    known = set(inits) | {i.name for i in graph.input}
    for i, node in enumerate(graph.node):
        where = f"node '{node.name or '#' + str(i)}' ({node.op_type})"
        if node.op_type not in _QONNX_OPS and not onnx.defs.has(node.op_type, node.domain):
            problems.append(f"{where}: op type {node.op_type} (domain '{node.domain}') is "
                            f"neither an ONNX nor a QONNX op; supported: "
                            f"{', '.join(MAPPED_OPS)}")
        for name in node.input:
            if name and name not in known:
                problems.append(f"{where}: input '{name}' is neither an initializer, nor "
                                f"the graph input, nor the output of an earlier node")
        known.update(node.output)
    return problems


def quantize_inputs(imported, x):
    """Float model inputs ``(N, *model input shape)`` as the QGraph's integer inputs, as the
    input ``Quant`` computes them (float32 division, its rounding mode, clamped)."""
    from qonnx.custom_op.general.quant import resolve_rounding_mode
    spec = imported.graph.input
    x = np.asarray(x, dtype=np.float32)
    lo, hi = spec.range
    q = resolve_rounding_mode(imported.input_rounding)(x / np.float32(spec.scale))
    q = np.clip(q, lo, hi).astype(np.int64)
    return q.reshape(len(q), *spec.shape)
