"""MNIST CNN or ResNet: QAT -> integer QGraph -> golden -> Verilog -> cocotb against the golden.

FILM-QNN intra-layer mixed precision (5% of each layer's filters at 8 bits, the rest at 4),
5-bit activations, batch normalization in the float phase folded before fine-tuning.
Run: .venv/bin/python examples/mnist_cnn.py [--model resnet] [--images N]
"""

import argparse
import json
from pathlib import Path

import quant
from quant import export, train
from hwgen import hardware_problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn", choices=["cnn", "resnet"])
    parser.add_argument("--images", type=int, default=20, help="images simulated in RTL")
    parser.add_argument("--out", default=None, help="output folder (default: build/examples/"
                                                    "mnist_<model>)")
    args = parser.parse_args()
    out = Path(args.out or f"build/examples/mnist_{args.model}")
    out.mkdir(parents=True, exist_ok=True)

    # 1. Float twin, precision assignment, QAT (about a minute or two on one core).
    recipe = train.train_mnist_cnn if args.model == "cnn" else train.train_resnet_mnist
    model, accuracy = recipe()
    x_train, y_train, x_test, y_test = train.mnist_images()

    # 2. The integer model: images are (channels, height, width) = (1, 28, 28) uint8.
    graph = export.export(model, input_shape=(1, 28, 28))
    quant.save(graph, out / f"mnist_{args.model}.qgraph")
    golden = quant.run(graph, x_test)[graph.output].argmax(axis=1)
    macs = sum(graph.macs().values())
    print(f"float {accuracy['float']:.4f}  fake-quant {accuracy['fake_quant']:.4f}  "
          f"golden {(golden == y_test).mean():.4f}  ({accuracy['seconds']:.0f} s, "
          f"{macs:,} MACs per image, filters by bits {graph.weight_bits_histogram()})")

    # 3. Hardware: every layer must be supported (residual joins get analytically sized
    #    FIFOs), then Verilog and a cocotb run with random back-pressure.
    problems = hardware_problems(graph)
    print("hardware support:", "ok" if not problems else "\n  ".join(["", *problems]))
    import hwgen
    import sim

    meta = hwgen.generate(graph, out / "rtl")
    print(f"cycles per frame (model) {meta['cycles_per_frame']}, skip FIFOs "
          f"{meta['fifo_depths'] or 'none'}")
    result = sim.simulate(graph, x_test[:args.images], out_dir=out / "sim", design=meta,
                          backpressure=0.5)
    print(f"{result.outputs_compared} outputs compared, {result.mismatches} mismatches")
    (out / "report.json").write_text(json.dumps({"model": args.model, **accuracy,
                                                 "macs": macs}, indent=2))


if __name__ == "__main__":
    main()
