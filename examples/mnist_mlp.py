"""MNIST MLP, step by step: QAT -> integer QGraph -> golden -> Verilog -> cocotb == golden.

The same pipeline as `hwgen demo`, written out with the library calls so each step can be
changed. Run: .venv/bin/python examples/mnist_mlp.py [--images N] [--sim verilator]
"""

import argparse
from pathlib import Path

import hwgen
import quant
import sim
from quant import datasets, export, train


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="images simulated in RTL")
    parser.add_argument("--sim", default="icarus", choices=["icarus", "verilator"])
    parser.add_argument("--out", default="build/examples/mnist_mlp")
    args = parser.parse_args()
    out = Path(args.out)

    # 1. QAT: 95% of each hidden layer's filters at 4 bits, 5% at 8 bits, 5-bit activations.
    #    The 8-bit counts are multiples of 8 and 4 so that the folds share them evenly.
    model, accuracy = train.train_mnist_mlp(granularity=(8, 4, 1))
    x_train, y_train, x_test, y_test = datasets.mnist()

    # 2. The integer model and its golden accuracy.
    graph = export.export(model, input_shape=(784,))
    out.mkdir(parents=True, exist_ok=True)
    quant.save(graph, out / "mnist_mlp.qgraph")
    golden = quant.run(graph, x_test)[graph.output].argmax(axis=1)
    print(f"float {accuracy['float']:.4f}  fake-quant {accuracy['fake_quant']:.4f}  "
          f"golden {(golden == y_test).mean():.4f}")

    # 3. Hardware: folding is chosen automatically (64 MACs per cycle in the largest layer).
    meta = hwgen.generate(graph, out / "rtl")
    print(f"folding {meta['folding']}, {meta['cycles_per_frame']} cycles per frame")

    # 4. The Verilog against the golden, bit for bit.
    result = sim.simulate(graph, x_test[:args.images], out_dir=out / "sim", design=meta,
                          simulator=args.sim)
    print(f"{result.outputs_compared} outputs compared, {result.mismatches} mismatches, "
          f"{result.cycles_per_frame} cycles per frame measured")


if __name__ == "__main__":
    main()
