"""How a QGraph imported from QONNX agrees with qonnx's executor, layer by layer."""

from dataclasses import dataclass

import numpy as np

from . import golden

__all__ = ["LayerAgreement", "model_inputs", "run_model", "agreement", "agreement_table"]


def model_inputs(imported, q):
    """Integer QGraph inputs as the float tensors the model reads (``q * scale``, which its
    input Quant maps back to ``q``)."""
    q = np.asarray(q, dtype=np.int64)
    scale = np.float32(imported.graph.input.scale)
    return (q.astype(np.float32) * scale).reshape(len(q), *imported.input_shape)


@dataclass
class LayerAgreement:
    """How a QGraph node's output compares with the model's tensor: ``equal`` is the share
    of outputs on the same step, ``max_steps`` the largest difference in output steps."""
    layer: str
    tensor: str
    op: str
    outputs: int
    equal: float
    max_steps: float


def run_model(imported, inputs, batch=256):
    """Every tensor of the QONNX model, by qonnx's executor, for float ``inputs``."""
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes
    wanted = {t for t, _, _ in imported.trace.values()}
    results = {}
    models = {}
    for start in range(0, len(inputs), batch):
        chunk = inputs[start:start + batch]
        if len(chunk) not in models:
            models[len(chunk)] = imported.model.transform(ChangeBatchSize(len(chunk))) \
                .transform(InferShapes())
        context = execute_onnx(models[len(chunk)], {imported.input_name: chunk}, True)
        for name in wanted:
            results.setdefault(name, []).append(np.asarray(context[name]))
    return {name: np.concatenate(parts) for name, parts in results.items()}


def agreement(imported, x, golden_values=None):
    """Per traced QGraph node, the agreement of the golden with qonnx's executor on the
    integer inputs ``x`` (``(N, *input shape)``); a list of :class:`LayerAgreement` in graph
    order."""
    x = golden.check_inputs(imported.graph, x)
    ours = golden_values or golden.run(imported.graph, x)
    theirs = run_model(imported, model_inputs(imported, x))
    rows = []
    for node in ["input"] + [n.name for n in imported.graph.nodes]:
        if node not in imported.trace:
            continue
        tensor, scale, bias = imported.trace[node]
        mine = ours[node].astype(np.float64)
        value = theirs[tensor].astype(np.float64).reshape(mine.shape)
        shape = (1, -1) + (1,) * (mine.ndim - 2)
        if bias is not None:
            value = value - np.asarray(bias).reshape(shape)
        steps = value / np.asarray(scale).reshape(shape)
        diff = np.abs(mine - steps)
        op = "input" if node == "input" else imported.graph[node].op
        rows.append(LayerAgreement(node, tensor, op, int(mine.size),
                                   float((mine == np.round(steps)).mean()),
                                   float(diff.max()) if diff.size else 0.0))
    return rows


def agreement_table(rows):
    """Lines of a table of :func:`agreement` rows."""
    width = max([len(r.layer) for r in rows] + [5])
    twidth = max([len(r.tensor) for r in rows] + [6])
    lines = [f"{'layer':<{width}}  {'op':<14} {'tensor':<{twidth}}  {'outputs':>9}  "
             f"{'equal':>8}  {'max steps':>10}"]
    for r in rows:
        lines.append(f"{r.layer:<{width}}  {r.op:<14} {r.tensor:<{twidth}}  {r.outputs:>9,}  "
                     f"{100 * r.equal:>7.3f}%  {r.max_steps:>10.4g}")
    return lines
