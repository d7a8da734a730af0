"""The main job on a built-in example: from QAT to RTL verified against the golden.

Steps: train a FILM-QNN mixed-precision network (5% of each layer's filters 8-bit, the rest
4-bit, 5-bit Requantizer activations; the peak detector is 4-bit throughout), export the
integer QGraph, score the golden on the test set, generate Verilog, simulate test inputs in
cocotb and compare every output with the golden, measure the frame interval, and write
``report.json``. The examples are those of :data:`hwgen.app.examples.EXAMPLES`.
"""

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hwgen
import hwgen.synth
import quant
import sim
from hwgen.synth import SynthesisError

from .examples import EXAMPLES, score, train_example
from .files import follow_umask, remove, write_text

__all__ = ["run_demo"]


def _log(message):
    print(message, file=sys.stderr, flush=True)


def _synthesize_both(verilog):
    """DSP counts from yosys for xc7 and xcup, the two runs side by side (one per core)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {family: pool.submit(hwgen.synth.synthesize, verilog, family)
                for family in ("xcup", "xc7")}
        return {family: run.result() for family, run in runs.items()}


def _measured(result):
    measured = result.cycles_per_frame
    return int(measured) if measured is not None and float(measured).is_integer() else measured


def run_demo(example="mnist_mlp", out_dir=None, images=None, epochs=None, simulator="icarus",
             backpressure=0.0, seed=0, synth=True, *, float_epochs=None, workers=None,
             client=None, shards=None):
    """Run one example end to end and return the report (also written to ``report.json``).

    ``images`` test inputs are simulated with ``backpressure`` (see :func:`sim.simulate`),
    in shards on ``workers`` local worker processes or a Dask ``client`` when given;
    when it is not 0 a second, short run without back-pressure measures the frame interval.
    With ``synth``, yosys synthesizes the Verilog for xc7 and xcup and the report compares
    the DSP counts with the packing planner's prediction. ``epochs`` and ``float_epochs``
    override the training recipe's (to make a quick model; the metrics then drop).
    """
    # Lazy: quant.export imports torch (seconds), which `hwgen --help` should not wait for.
    from quant import export

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
    remove(report_path)  # never leave an old report beside new artifacts
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
    meta = hwgen.generate(graph, out_dir / "rtl", device="xc7")
    follow_umask(meta["verilog"], out_dir / "rtl" / "metadata.json")

    _log(f"[4/{steps}] simulate {images} test inputs in cocotb ({simulator}, back-pressure "
         f"{backpressure})")
    result = sim.simulate(graph, x_test[:images], out_dir=out_dir / "sim", simulator=simulator,
                          backpressure=backpressure, seed=seed, design=meta, workers=workers,
                          client=client, shards=shards)
    flow = result
    if backpressure != 0:
        flow = sim.simulate(graph, x_test[:min(images, 6)], out_dir=out_dir / "sim_flow",
                            simulator=simulator, seed=seed, design=meta)

    dsp = {"predicted": meta["dsp"]}
    failure = None
    if synth:
        _log("[5/5] synthesize with yosys for xcup and xc7 (DSP count check)")
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
        "golden": score(example, graph, golden, labels, scores),
        "golden_on_simulated": score(example, graph, golden[:images], labels[:images], scores),
        "rtl": score(example, graph, result.outputs, labels[:images], scores)}
    report = {
        "example": example,
        metric: {k: round(v, 4) for k, v in measures.items()},
        "rtl_vs_golden": {"images": images, "outputs_compared": result.outputs_compared,
                          "mismatches": result.mismatches,
                          "shards": 1 if result.shards is None else len(result.shards),
                          "retried_shards": result.retried_shards},
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
    write_text(report_path, json.dumps(report, indent=2) + "\n")
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
