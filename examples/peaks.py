"""Peak detection in 1-D signals (the Pistellato et al. case study): a 4-bit 1-D convolutional
QNN against scipy.signal.find_peaks and a smoothed-argmax/centroid detector.

Every detector sees the same signed 8-bit test signals; F1 counts a detection within 3
samples of a true peak as a hit; then the QNN goes to Verilog and cocotb checks it against
the golden. Run: .venv/bin/python examples/peaks.py [--weight-bits 3] [--signals N]
"""

import argparse
import json
from pathlib import Path

import quant
from quant import export, train
from hwgen import hardware_problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weight-bits", type=int, default=4, choices=[2, 3, 4])
    parser.add_argument("--out", default="build/examples/peaks")
    parser.add_argument("--signals", type=int, default=20, help="signals simulated in RTL")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    model, results = train.train_peaks(weight_bits=args.weight_bits)
    graph = export.export(model, input_shape=(1, 256))
    quant.save(graph, out / "peaks.qgraph")

    print(f"{'detector':<12} {'F1':>6} {'precision':>9} {'recall':>6} {'loc. error':>10}")
    for name in ("find_peaks", "centroid", "float", "fake_quant", "golden"):
        r = results[name]
        print(f"{name:<12} {r['f1']:6.4f} {r['precision']:9.4f} {r['recall']:6.4f} "
              f"{r['localization_error']:10.3f}")
    print(f"{sum(graph.macs().values()):,} MACs per signal, {results['seconds']:.0f} s")
    problems = hardware_problems(graph)
    print("hardware support:", "ok" if not problems else "\n  ".join(["", *problems]))

    # The QNN in RTL: Verilog, then the first test signals in cocotb against the golden.
    import hwgen
    import sim
    from quant import peaks

    meta = hwgen.generate(graph, out / "rtl")
    _, _, x_test, _ = peaks.dataset()
    result = sim.simulate(graph, x_test[:args.signals, None, :], out_dir=out / "sim",
                          design=meta, backpressure=0.5)
    print(f"RTL: {result.outputs_compared} outputs compared, {result.mismatches} mismatches; "
          f"cycles per signal {meta['cycles_per_frame']}")
    (out / "report.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
