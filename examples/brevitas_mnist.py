"""Brevitas on the MNIST digits: QAT -> QONNX -> QGraph -> Verilog -> cocotb == golden.

A Brevitas user's path into hwgen: train a Brevitas MLP or small residual CNN, export it
with ``brevitas.export.export_qonnx``, import the file (``quant.qonnx``), compare the golden
with qonnx's executor layer by layer, generate the accelerator and simulate it, and report
the accuracy of Brevitas, qonnx, the golden and the RTL side by side on the 1,000 test digits
(the RTL on ``--images`` of them). Needs the onnx extra: pip install '.[onnx]' torch==2.13.0.

Run: .venv/bin/python examples/brevitas_mnist.py [--model mlp|cnn]
     [--scaling float|power_of_two] [--epochs N] [--images N]
"""

import argparse
import json
from pathlib import Path

import hwgen
import quant
import sim
from quant import brevitas_models as bm, datasets, qonnx


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
    parser.add_argument("--scaling", default="float", choices=["float", "power_of_two"],
                        help="Brevitas's default float scales, or fixed-point ones")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--images", type=int, default=100, help="test digits run in RTL")
    parser.add_argument("--sim", default="icarus", choices=["icarus", "verilator"])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = Path(args.out or f"build/examples/brevitas_{args.model}_{args.scaling}")
    out.mkdir(parents=True, exist_ok=True)
    image = args.model == "cnn"

    # 1. Train with Brevitas: 4-bit weights, 5-bit activations, an 8-bit input quantizer.
    x_train, y_train, x_test, y_test = datasets.mnist()
    make = bm.cnn if image else bm.mlp
    model = make(w_bits=4, a_bits=5, scaling=args.scaling)
    bm.train(model, bm.as_model_inputs(x_train, image), y_train, epochs=args.epochs)
    inputs = bm.as_model_inputs(x_test, image)
    brevitas_pred = bm.predict(model, inputs).argmax(1)

    # 2. QONNX, as a Brevitas user exports it, and its import.
    path = bm.export(model, out / "model.onnx", inputs)
    imported = qonnx.import_model(path)
    quant.save(imported.graph, out / "model.qgraph")
    x = qonnx.quantize_inputs(imported, inputs)       # the input Quant, applied on the host

    # 3. Golden against qonnx's executor, layer by layer, on the test digits.
    rows = qonnx.agreement(imported, x)
    print("\n".join(qonnx.agreement_table(rows)))
    qonnx_pred = qonnx.run_model(imported, inputs)[imported.model.graph.output[0].name] \
        .argmax(1)
    golden_pred = quant.run(imported.graph, x)[imported.graph.output].argmax(1)

    # 4. Hardware, and the Verilog against the golden on the first --images digits.
    meta = hwgen.generate(imported.graph, out / "rtl")
    result = sim.simulate(imported.graph, x[:args.images], out_dir=out / "sim", design=meta,
                          simulator=args.sim)
    rtl_pred = result.outputs.argmax(1)
    n = args.images
    report = {
        "model": args.model, "scaling": args.scaling, "epochs": args.epochs,
        "accuracy": {"brevitas": float((brevitas_pred == y_test).mean()),
                     "qonnx": float((qonnx_pred == y_test).mean()),
                     "golden": float((golden_pred == y_test).mean()),
                     f"rtl_first_{n}": float((rtl_pred == y_test[:n]).mean()),
                     f"golden_first_{n}": float((golden_pred[:n] == y_test[:n]).mean())},
        "predictions_equal_golden_qonnx": float((golden_pred == qonnx_pred).mean()),
        "rtl_mismatches": result.mismatches, "cycles_per_frame": result.cycles_per_frame,
        "layers": [vars(r) for r in rows],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    a = report["accuracy"]
    print(f"accuracy on {len(y_test)} test digits: Brevitas {a['brevitas']:.4f}  qonnx "
          f"{a['qonnx']:.4f}  golden {a['golden']:.4f}; golden and qonnx predict alike on "
          f"{100 * report['predictions_equal_golden_qonnx']:.1f}%")
    print(f"RTL on the first {n}: accuracy {a[f'rtl_first_{n}']:.4f} (golden "
          f"{a[f'golden_first_{n}']:.4f}), {result.mismatches} mismatches in "
          f"{result.outputs_compared} outputs, {result.cycles_per_frame} cycles per frame")
    print(out / "report.json")


if __name__ == "__main__":
    main()
