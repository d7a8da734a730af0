"""The ``hwgen`` command: thin wrappers over the library functions.

Exit codes: 0 success, 1 a problem with the model, inputs or configuration, 2 a build or
simulation failure, 3 a missing tool.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .demo import EXAMPLES
from .errors import FoldingError, GraphError, ToolchainError, UnsupportedLayerError

__all__ = ["main"]


def _load(path):
    import quant
    return quant.load(path)


def _device(text):
    return None if text == "none" else text


def _parse_folding(text):
    """``fc1=16x4,fc2=8x1`` or a JSON file ``{"fc1": [16, 4]}`` into ``{name: (pe, simd)}``."""
    if text is None:
        return None
    if text.endswith(".json"):
        with open(text) as f:
            return {k: tuple(v) for k, v in json.load(f).items()}
    folding = {}
    for item in text.split(","):
        try:
            name, value = item.split("=")
            pe, simd = value.lower().split("x")
            folding[name.strip()] = (int(pe), int(simd))
        except ValueError:
            raise ValueError(f"--folding must look like NAME=PExSIMD[,NAME=PExSIMD...], "
                             f"not {text!r}") from None
    return folding


def _build_options(args):
    """``generate`` keyword arguments from ``--folding``/``--device`` or from ``--design``, an
    estimate report (``hwgen estimate``): its folding, LUT lanes, ROM placement and the
    device family its lanes were packed for."""
    if args.design is None:
        return {"folding": _parse_folding(args.folding),
                "device": _device(args.device or "xc7")}
    options = _read_design(args)
    if args.device is not None and args.device != options["device"]:
        raise ValueError(f"--device {args.device} differs from the family the design was "
                         f"estimated for ({options['device']} of {options['part']})")
    del options["part"]
    return options


def _read_design(args):
    """The build options of the ``--design`` estimate report, and the ``part`` it is for."""
    if args.folding is not None:
        raise ValueError("--design gives the folding; leave out --folding")
    try:
        with open(args.design) as f:
            report = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"design report {args.design} does not exist") from None
    except ValueError as e:
        raise ValueError(f"{args.design} is not a JSON estimate report ({e})") from None
    missing = [k for k in ("folding", "lut_lanes", "rom_styles", "device")
               if not isinstance(report, dict) or k not in report]
    if missing:
        raise ValueError(f"{args.design} is not an estimate report of `hwgen estimate`: it has "
                         f"no {', '.join(missing)}")
    return {"folding": {k: tuple(v) for k, v in report["folding"].items()},
            "lut_lanes": {k: {int(b): n for b, n in v.items()}
                          for k, v in report["lut_lanes"].items()},
            "rom_styles": report["rom_styles"], "device": report["device"]["family"],
            "part": report["device"]["name"]}


def cmd_inspect(args):
    graph = _load(args.model)
    shapes, ranges, macs = graph.shapes(), graph.ranges(), graph.macs()
    spec = graph.input
    print(f"input: shape {tuple(spec.shape)}, {spec.bits}-bit "
          f"{'signed' if spec.signed else 'unsigned'}")
    print(f"{'layer':<12} {'op':<11} {'output':<10} {'MACs':>9}  {'range':<24} weight bits")
    for node in graph.nodes:
        hist = ""
        if node.op == "dense":
            bits, counts = np.unique(node.tensors["weight_bits"], return_counts=True)
            hist = ", ".join(f"{c} x {b}-bit" for b, c in zip(bits, counts))
        lo, hi = ranges[node.name]
        print(f"{node.name:<12} {node.op:<11} {str(shapes[node.name]):<10} "
              f"{macs.get(node.name, 0):>9}  {f'{lo}..{hi}':<24} {hist}")
    hist = ", ".join(f"{c} filters of {b} bits" for b, c in graph.weight_bits_histogram().items())
    print(f"total: {sum(macs.values())} MACs per frame; {hist}")
    from .accelerator import check_hardware_support
    try:
        check_hardware_support(graph)
    except UnsupportedLayerError as error:
        print("not supported in hardware (all of them):")
        for problem in error.problems:
            print(f"  {problem}")
        return 1
    print("hardware: every layer is supported")
    return 0


def cmd_generate(args):
    from .generate import generate
    graph = _load(args.model)
    meta = generate(graph, args.out, mac_budget=args.mac_budget, **_build_options(args))
    print(meta["verilog"])
    print(str(Path(args.out) / "metadata.json"))
    print(f"cycles per frame (model): {meta['cycles_per_frame']}", file=sys.stderr)
    return 0


def cmd_simulate(args):
    import quant
    import sim
    graph = _load(args.model)
    try:
        inputs = np.load(args.inputs, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"inputs file {args.inputs} does not exist") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"{args.inputs} is not a valid .npy file ({e})") from None
    import hwgen
    if not inputs.size or inputs.ndim == 0:
        raise ValueError(f"{args.inputs} holds no inputs")
    quant.golden.check_inputs(graph, inputs)  # bad inputs fail before any hardware is built
    design = hwgen.generate(graph, Path(args.out) / "rtl", **_build_options(args))
    result = sim.simulate(graph, inputs, out_dir=Path(args.out), simulator=args.sim,
                          backpressure=args.backpressure, seed=args.seed, design=design)
    np.save(Path(args.out) / "outputs.npy", result.outputs)
    report = {"images": len(result.outputs), "outputs_compared": result.outputs_compared,
              "mismatches": result.mismatches, "cycles_per_frame": result.cycles_per_frame,
              "simulator": args.sim, "seed": args.seed, "backpressure": args.backpressure}
    with open(Path(args.out) / "report.json", "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report))
    return 0


def cmd_estimate(args):
    from .estimate_report import table, write_report
    from .explore import compile as compile_design
    graph = _load(args.model)
    design = compile_design(graph, device=args.device, clock_mhz=args.clock_mhz,
                            target_fps=args.target_fps, utilization=args.utilization)
    json_path, png_path = write_report(design, args.out, {"model": str(args.model),
                                                          "target_fps": args.target_fps})
    if args.json:
        print(json_path.read_text(), end="")
    else:
        print(table(design))
        print(json_path)
        print(png_path)
    return 0


def cmd_packing(args):
    from .packing import lane_table, plan_lanes
    if (args.weight_bits is None) != (args.act_bits is None):
        raise ValueError("--weight-bits and --act-bits go together; give both or neither")
    if args.weight_bits is not None:
        plan = plan_lanes(args.device, args.weight_bits, args.act_bits,
                          act_signed=args.act_signed)
        rows = [{"weight_bits": plan.weight_bits, "act_bits": plan.act_bits,
                 "lanes": plan.lanes, "field_bits": plan.field_bits, "scheme": plan.scheme,
                 "finn_lanes": plan.finn_lanes}]
    else:
        rows = lane_table(args.device, act_signed=args.act_signed)
    if args.json:
        print(json.dumps({"device": args.device, "act_signed": args.act_signed, "rows": rows},
                         indent=2))
        return 0
    if len(rows) == 1:
        r = rows[0]
        print(f"W{r['weight_bits']}A{r['act_bits']} on {args.device}: {r['lanes']} lanes "
              f"(FINN formula {r['finn_lanes']}), {r['field_bits']}-bit fields, "
              f"scheme {r['scheme']}")
        return 0
    bits = sorted({r["weight_bits"] for r in rows})
    table = {(r["weight_bits"], r["act_bits"]): r for r in rows}
    print(f"lanes per multiplier on {args.device}, ours/FINN (rows W, columns A)")
    print("W\\A " + "".join(f"{a:>7}" for a in bits))
    for w in bits:
        print(f"{w:>4} " + "".join(f"{table[w, a]['lanes']:>4}/{table[w, a]['finn_lanes']:<2}"
                                   for a in bits))
    return 0


def cmd_boards(args):
    import boards
    print(boards.cli_list())
    return 0


def cmd_build(args):
    import boards
    options = {"folding": _parse_folding(args.folding)}
    if args.design is not None:
        options = _read_design(args)
        family = boards.get_board(args.board).family
        if options["device"] != family:
            raise ValueError(f"--design was estimated for {options['part']} "
                             f"({options['device']}); board {args.board} packs MAC lanes "
                             f"for {family}: estimate for the board's part")
        del options["device"], options["part"]
    print(boards.cli_build(args.model, args.board, args.out, dry_run=args.dry_run,
                           selftest=args.selftest, **options))
    return 0


def cmd_demo(args):
    from .demo import run_demo
    run_demo(example=args.example, out_dir=args.out, images=args.images, epochs=args.epochs,
             simulator=args.sim, backpressure=args.backpressure, seed=args.seed,
             synth=not args.no_synth)
    return 0


def _backpressure(text):
    from sim.runner import check_backpressure
    try:
        return check_backpressure(float(text))
    except ValueError:
        pass
    try:
        return check_backpressure(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_sim_options(p):
    p.add_argument("--sim", choices=["icarus", "verilator"], default="icarus",
                   help="simulator (default: %(default)s)")
    p.add_argument("--backpressure", type=_backpressure, default=0.0, metavar="P",
                   help="probability of a stalled cycle on each stream, or an output pattern: "
                        "bursty:H,L (mean cycles ready and not) or stall:S,N (N cycles from "
                        "cycle S) (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")


def _add_folding_option(p):
    p.add_argument("--folding", metavar="SPEC",
                   help="NAME=PExSIMD,... or a JSON file (default: automatic)")


def _add_design_options(p):
    _add_folding_option(p)
    p.add_argument("--design", metavar="REPORT.json",
                   help="build the design of an estimate report (`hwgen estimate`): its "
                        "folding, LUT lanes, ROM placement and multiplier family")


def build_parser():
    parser = argparse.ArgumentParser(prog="hwgen", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="train, export, generate and simulate a built-in example")
    p.add_argument("--example", default="mnist_mlp", choices=list(EXAMPLES),
                   help="the network (default: %(default)s)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: build/demo for mnist_mlp, else "
                        "build/EXAMPLE)")
    p.add_argument("--images", type=int, default=None, metavar="N",
                   help="test inputs simulated in RTL (default: 200 for mnist_mlp, else 100)")
    p.add_argument("--epochs", type=int, default=None, metavar="N",
                   help="QAT epochs (default: the example's own)")
    _add_sim_options(p)
    p.add_argument("--no-synth", action="store_true",
                   help="skip the yosys DSP-count check (two synthesis runs)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("generate", help="write top.v and metadata.json for a model")
    p.add_argument("model", metavar="MODEL.qgraph")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder")
    _add_design_options(p)
    p.add_argument("--device", choices=["xc7", "xcup", "ecp5", "none"], default=None,
                   help="multiplier family MAC lanes are packed onto; none: LUTs only "
                        "(default: xc7, or the --design report's)")
    p.add_argument("--mac-budget", type=int, default=64, metavar="N",
                   help="MACs per cycle of the largest layer when folding automatically "
                        "(default: %(default)s)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("simulate", help="simulate the RTL on inputs and compare with the golden")
    p.add_argument("model", metavar="MODEL.qgraph")
    p.add_argument("--inputs", required=True, metavar="X.npy",
                   help="integer inputs, shape (N, *input shape)")
    p.add_argument("-o", "--out", default="build/simulate", metavar="DIR",
                   help="output folder (default: %(default)s)")
    _add_sim_options(p)
    _add_design_options(p)
    p.add_argument("--device", choices=["xc7", "xcup", "ecp5", "none"], default=None,
                   help="multiplier family MAC lanes are packed onto (default: xc7, or the "
                        "--design report's)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("estimate", help="fold a model for a device: resources, cycles, FPS")
    p.add_argument("model", metavar="MODEL.qgraph")
    p.add_argument("--device", default="xc7z020", metavar="D",
                   help="xc7z020 (PYNQ-Z2), xczu9eg (ZCU102), lfe5u-85f (ULX3S) "
                        "(default: %(default)s)")
    p.add_argument("--clock-mhz", type=float, default=100.0, metavar="F",
                   help="clock frequency (default: %(default)s)")
    p.add_argument("--target-fps", type=float, default=None, metavar="N",
                   help="the cheapest design that reaches N frames/s (default: the fastest "
                        "that fits)")
    p.add_argument("--utilization", type=float, default=0.8, metavar="U",
                   help="share of each resource the design may use (default: %(default)s)")
    p.add_argument("--out", default="build/estimate", metavar="DIR",
                   help="where report.json and estimate.png go (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("packing", help="lanes per DSP for weight/activation widths")
    p.add_argument("--device", choices=["xc7", "xcup", "ecp5"], default="xcup",
                   help="multiplier family (default: %(default)s)")
    p.add_argument("--weight-bits", type=int, metavar="W", help="one weight width")
    p.add_argument("--act-bits", type=int, metavar="A", help="one activation width")
    p.add_argument("--act-signed", action="store_true", help="signed activations")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_packing)

    p = sub.add_parser("boards", help="list the boards a design can be built for")
    p.set_defaults(func=cmd_boards)

    p = sub.add_parser("build", help="write (and where possible run) a board build")
    p.add_argument("model", metavar="MODEL.qgraph")
    p.add_argument("--board", required=True, metavar="NAME",
                   help="a board from `hwgen boards`, or module:Class")
    p.add_argument("--out", metavar="DIR", help="output folder (default: build/MODEL-BOARD)")
    p.add_argument("--dry-run", action="store_true",
                   help="write the build tree without running the vendor tools")
    p.add_argument("--selftest", action="store_true",
                   help="build the self-test top (vectors in ROM, LEDs show pass or fail)")
    _add_design_options(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("inspect", help="layers, shapes, MACs and per-filter precision")
    p.add_argument("model", metavar="MODEL.qgraph")
    p.set_defaults(func=cmd_inspect)
    return parser


def _exit_code(error):
    from boards.errors import BuildError
    from sim.errors import SimulationError

    from .synth import SynthesisError
    if isinstance(error, ToolchainError):
        return 3
    if isinstance(error, (SimulationError, BuildError, SynthesisError)):
        return 2
    if isinstance(error, (GraphError, FoldingError, ValueError, FileNotFoundError, TypeError)):
        return 1
    return None


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as error:
        code = _exit_code(error)
        if code is None or args.verbose:
            raise
        print(f"error: {error}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
