"""The main job on a built-in example: from QAT to RTL verified against the golden.

Steps: train a FILM-QNN mixed-precision network (5% of each layer's filters 8-bit, the rest
4-bit, 5-bit Requantizer activations; the peak detector has 4-bit activations and 2-, 3- or
4-bit weights throughout), export the integer QGraph, score the golden on the test set,
generate Verilog, simulate test inputs in cocotb and compare every output with the golden,
measure the frame interval, and write ``report.json``. The examples are those of
:data:`hwgen.app.examples.EXAMPLES`.
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
from hwgen.engine import EngineConfig
from hwgen.explore import check_samples_per_cycle
from hwgen.generate import ARCHITECTURES
from hwgen.engine.model import metadata_cycles
from hwgen.synth import SynthesisError
from sim.engine import check_latency, latency_label, simulate_engine

from .examples import EXAMPLES, check_weight_bits, score, train_example
from .files import follow_umask, remove, write_text

__all__ = ["engine_report", "run_demo"]


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


def _run_dataflow(graph, x, out_dir, simulator, backpressure, seed, synth, steps,
                  distribution, samples_per_cycle=None):
    """Steps 3 to 5 on the dataflow architecture: its design (folded for
    ``samples_per_cycle`` when given), simulation (on Dask workers when ``distribution`` says
    so) and DSP check."""
    folding = lut_lanes = None
    if samples_per_cycle is not None:
        # Unfolded layers multiply by constants in LUTs (no DSP packing to check there).
        folding = hwgen.samples_folding(graph, samples_per_cycle)
        lut_lanes = hwgen.unfolded_lut_lanes(graph, folding)
    lanes = ("unfolded layers multiply by constants in LUTs, the others pack MAC lanes"
             if lut_lanes else "MAC lanes packed")
    _log(f"[3/{steps}] generate Verilog ({lanes} onto DSP48E1-sized multipliers)")
    meta = hwgen.generate(graph, out_dir / "rtl", device="xc7", folding=folding,
                          lut_lanes=lut_lanes)
    follow_umask(meta["verilog"], out_dir / "rtl" / "metadata.json")

    _log(f"[4/{steps}] simulate {len(x)} test inputs in cocotb ({simulator}, back-pressure "
         f"{backpressure})")
    result = sim.simulate(graph, x, out_dir=out_dir / "sim", simulator=simulator,
                          backpressure=backpressure, seed=seed, design=meta, **distribution)
    flow = result
    if backpressure != 0:
        flow = sim.simulate(graph, x[:6], out_dir=out_dir / "sim_flow", simulator=simulator,
                            seed=seed, design=meta)
    dsp, failure = {"predicted": meta["dsp"]}, None
    if synth:
        _log(f"[5/{steps}] synthesize with yosys for xcup and xc7 (DSP count check)")
        try:
            counts = _synthesize_both(meta["verilog"])
            dsp |= {f"synthesized_{family}": counts[family]["DSP"] for family in counts}
        except SynthesisError as error:
            # The simulation results stand; the report says synthesis failed, and so does
            # the exit status.
            failure, dsp["synthesis_error"] = error, str(error)
    report = {
        "rtl_vs_golden": {"images": len(x), "outputs_compared": result.outputs_compared,
                          "mismatches": result.mismatches,
                          "shards": 1 if result.shards is None else len(result.shards),
                          "retried_shards": result.retried_shards},
        "dsp": dsp,
        "cycles_per_frame": {"model": meta["cycles_per_frame"], "measured": _measured(flow)},
        "latency": {"model": meta["latency"], "measured": flow.frame_latency,
                    "model_is_estimate": meta["latency_is_estimate"]},
        "fifo_depths": meta["fifo_depths"],
        "macs_per_frame": meta["macs_per_frame"],
        "folding": meta["folding"],
    }
    length = hwgen.signal_length(graph)
    if length is not None:
        report["samples_per_cycle"] = {
            "requested": samples_per_cycle, "model": length / meta["cycles_per_frame"],
            "measured": None if flow.cycles_per_frame is None else
            length / flow.cycles_per_frame}
    return {"meta": meta, "result": result, "outputs": result.outputs, "failure": failure,
            "report": report}


def _run_engine(graph, x, out_dir, engine, simulator, backpressure, latency, seed, synth,
                steps):
    """Steps 3 to 5 on the layer-sequential engine: its design and DRAM image, simulation
    with every tensor checked, and the DSP check for the engine's multiplier family."""
    config = EngineConfig() if engine is None else engine
    _log(f"[3/{steps}] generate the engine's Verilog and DRAM image (tm {config.tm}, tn "
         f"{config.tn}, lanes {'/'.join(map(str, config.lane_bits))})")
    meta = hwgen.generate(graph, out_dir / "rtl", arch="engine", engine=config)
    follow_umask(meta["verilog"], meta["image"], out_dir / "rtl" / "metadata.json")

    _log(f"[4/{steps}] simulate {len(x)} test inputs in cocotb ({simulator}, AXI back-pressure "
         f"{backpressure}, DRAM latency {latency_label(latency)}), every tensor against the "
         f"golden")
    result = simulate_engine(graph, x, out_dir=out_dir / "sim", design=meta,
                             simulator=simulator, backpressure=backpressure, seed=seed,
                             latency=latency)
    flow = result
    lo, hi = check_latency(latency)
    if backpressure != 0 or lo != hi:
        # The cycle model's memory: no pauses, the shortest latency of the run's.
        flow = simulate_engine(graph, x[:2], out_dir=out_dir / "sim_flow", design=meta,
                               simulator=simulator, seed=seed, latency=lo)
    dsp, failure = {"predicted": config.dsp_count}, None
    if synth:
        _log(f"[5/{steps}] synthesize with yosys for {config.family} (DSP count check)")
        try:
            counts = hwgen.synth.synthesize(meta["verilog"], config.family)
            dsp[f"synthesized_{config.family}"] = counts["DSP"]
        except SynthesisError as error:
            failure, dsp["synthesis_error"] = error, str(error)
    report = engine_report(result, meta, flow=flow)
    report["dsp"] = dsp
    return {"meta": meta, "result": result, "outputs": result.outputs[graph.output],
            "failure": failure, "report": report}


def engine_report(result, meta, flow=None):
    """What an engine simulation showed: agreement on every tensor in DRAM, and the cycles
    per frame and per layer, modelled (:func:`hwgen.engine.model.metadata_cycles` at the
    shortest latency of the run) and measured (on ``flow``, when given: a run at that latency
    without pauses, the memory the model assumes), with each layer's MAC utilization and
    DRAM bytes by the model. Measured on a memory that pauses or varies its latency, the
    cycles are above the model's, which is then a lower bound."""
    flow = result if flow is None else flow
    cycles = metadata_cycles(meta, latency=check_latency(flow.latency)[0])
    measured = flow.layer_cycles.mean(axis=0)
    layers = [{"name": layer.name, "op": layer.op, "macs": layer.macs,
               "cycles": {"model": layer.total, "measured": _number(measured[i])},
               "utilization_model": round(layer.utilization, 4),
               "bytes_read": layer.bytes_read, "bytes_written": layer.bytes_written}
              for i, layer in enumerate(cycles.layers)]
    return {
        "architecture": "engine",
        "rtl_vs_golden": {"images": len(result.frame_cycles), "mismatches": result.mismatches,
                          "values_compared": result.values_compared,
                          "tensors": len(result.tensors),
                          "tensor_mismatches": {k: int(v) for k, v in
                                                result.tensor_mismatches.items() if v}},
        "cycles_per_frame": {"model": cycles.total,
                             "measured": _number(flow.frame_cycles.mean())},
        "dram_latency": latency_label(result.latency),
        "model_latency": cycles.latency,
        "macs_per_frame": cycles.macs,
        "utilization_model": round(cycles.utilization, 4),
        "engine": meta["engine"],
        "image_bytes": meta["image_bytes"],
        "layers": layers,
    }


def _check_samples_per_cycle(example, spec, arch, samples_per_cycle):
    """Before training: a count of samples per cycle fits a 1-D example on the dataflow
    architecture and divides its signal length."""
    if arch != "dataflow":
        raise ValueError("samples per cycle fold the dataflow accelerator, not the engine")
    if len(spec.input_shape) != 2:
        raise ValueError(f"samples per cycle are for a 1-D example (peaks); {example}'s "
                         f"input is {spec.input_shape}")
    check_samples_per_cycle(samples_per_cycle, spec.input_shape[1], f"{example}'s signal")


def _number(value):
    value = float(value)
    return int(value) if value.is_integer() else round(value, 1)


def run_demo(example="mnist_mlp", out_dir=None, images=None, epochs=None, simulator="icarus",
             backpressure=0.0, seed=0, synth=True, *, arch="dataflow", engine=None, latency=0,
             float_epochs=None, workers=None, client=None, shards=None, weight_bits=None,
             samples_per_cycle=None):
    """Run one example end to end and return the report (also written to ``report.json``).

    ``images`` test inputs are simulated with ``backpressure`` (see :func:`sim.simulate`),
    in shards on ``workers`` local worker processes or a Dask ``client`` when given;
    when it is not 0 a second, short run without back-pressure measures the frame interval.
    With ``synth``, yosys synthesizes the Verilog for xc7 and xcup and the report compares
    the DSP counts with the packing planner's prediction. ``epochs`` and ``float_epochs``
    override the training recipe's (to make a quick model; the metrics then drop).
    ``weight_bits`` (2, 3 or 4; peaks only, default 4) is the peak detector's weight width.
    ``samples_per_cycle`` (a 1-D example, dataflow) folds every layer to take that many
    samples of the signal per cycle (:func:`hwgen.samples_folding`); the report gives the
    samples per cycle by the model and measured.

    ``arch="engine"`` runs the network on the layer-sequential engine built as ``engine`` (an
    :class:`~hwgen.engine.EngineConfig`, default the default one) instead: every tensor it
    writes to DRAM is compared with the golden, the simulated DRAM waits ``latency`` cycles
    before each read burst's first beat and pauses every AXI channel with ``backpressure``;
    yosys synthesizes it for its own multiplier family.
    """
    # Lazy: quant.export imports torch (seconds), which `hwgen --help` should not wait for.
    from quant import export

    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {', '.join(ARCHITECTURES)}, not {arch!r}")
    if example not in EXAMPLES:
        raise ValueError(f"example must be one of {', '.join(EXAMPLES)}, not {example!r}")
    spec = EXAMPLES[example]
    weight_bits = check_weight_bits(example, weight_bits)
    images = spec.images if images is None else images
    if not 1 <= images <= 1000:
        raise ValueError(f"images must be in 1..1000, not {images}")
    sim.runner.check_backpressure(backpressure)
    if samples_per_cycle is not None:
        _check_samples_per_cycle(example, spec, arch, samples_per_cycle)
    out_dir = Path(out_dir or ("build/demo" if example == "mnist_mlp" else f"build/{example}"))
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path = out_dir / "report.json"
    remove(report_path)  # never leave an old report beside new artifacts
    started = time.monotonic()

    steps = 5 if synth else 4
    title = spec.title if weight_bits is None else f"{spec.title}, W{weight_bits}"
    _log(f"[1/{steps}] {example}: quantization-aware training ({title})")
    model, scores, x_test, labels = train_example(example, seed, epochs, float_epochs,
                                                  weight_bits)

    _log(f"[2/{steps}] export to the integer QGraph and golden run on {len(x_test)} test inputs")
    graph = export.export(model, input_shape=spec.input_shape)
    qgraph_path = out_dir / f"{example}.qgraph"
    quant.save(graph, qgraph_path)
    golden = quant.run(graph, x_test)[graph.output]

    if arch == "engine":
        run = _run_engine(graph, x_test[:images], out_dir, engine, simulator, backpressure,
                          latency, seed, synth, steps)
    else:
        run = _run_dataflow(graph, x_test[:images], out_dir, simulator, backpressure, seed,
                            synth, steps, {"workers": workers, "client": client,
                                           "shards": shards}, samples_per_cycle)
    meta, result, outputs, failure = run["meta"], run["result"], run["outputs"], run["failure"]

    metric = spec.metric
    if metric == "accuracy":
        measures = {k: scores[k] for k in ("float", "fake_quant")}
    else:
        measures = {k: scores[k]["f1"] for k in ("float", "fake_quant", "find_peaks",
                                                  "centroid") if k in scores}
    measures |= {
        "golden": score(example, graph, golden, labels, scores),
        "golden_on_simulated": score(example, graph, golden[:images], labels[:images], scores),
        "rtl": score(example, graph, outputs, labels[:images], scores)}
    report = {
        "example": example,
        "architecture": arch,
        **({} if weight_bits is None else {"weight_bits": weight_bits}),
        metric: {k: round(v, 4) for k, v in measures.items()},
        **run["report"],
        "weight_bits_histogram": {str(k): v for k, v in
                                  graph.weight_bits_histogram().items()},
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
    compared = report["rtl_vs_golden"]
    what = (f"{compared['values_compared']} values of {compared['tensors']} tensors"
            if arch == "engine" else f"{compared['outputs_compared']} outputs")
    print(f"{'RTL vs golden':<24} {images} inputs, {what}, {result.mismatches} mismatches; "
          f"RTL {metric} {m['rtl']:.4f} (golden on the same inputs "
          f"{m['golden_on_simulated']:.4f})")
    cycles = report["cycles_per_frame"]
    print(f"{'cycles per frame':<24} model {cycles['model']}, measured {cycles['measured']}")
    print(f"{'DSPs':<24} " + ", ".join(f"{k.replace('_', ' ')} {v}"
                                      for k, v in report["dsp"].items()))
    hist = ", ".join(f"{v} x {k}-bit" for k, v in report["weight_bits_histogram"].items())
    print(f"{'filters':<24} {hist}")
    print(report_path)
    return report
