"""The ``hwgen`` command: thin wrappers over the library functions.

``hwgen COMMAND ...`` or ``python -m hwgen.app.cli COMMAND ...``; :func:`main` takes the
arguments as a list, for tests and scripts. The exit statuses are :data:`EXIT_CODES`.
"""

import argparse
import os
import sys
from importlib import metadata

from boards.errors import BuildError
from hwgen.errors import ToolchainError
from hwgen.synth import SynthesisError
from sim.errors import SimulationError

from . import commands
from .examples import EXAMPLES, PEAKS_WEIGHT_BITS
from .options import ENGINE_FORM

__all__ = ["EXIT_CODES", "build_parser", "exit_code", "main"]

#: What a MODEL argument takes.
MODEL_HELP = "a .qgraph file, or a QONNX .onnx model (imported as `hwgen import` does)"

EXIT_OK, EXIT_INPUT, EXIT_FAILED, EXIT_TOOL, EXIT_USAGE, EXIT_PIPE = 0, 1, 2, 3, 64, 141

#: Exit status -> meaning, as ``hwgen --help`` and the README list them.
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_INPUT: "a problem with the model, the inputs, a report or an option's value "
                "(the message names it); nothing was built",
    EXIT_FAILED: "a build, synthesis or simulation failed, or the RTL disagreed with the "
                 "golden",
    EXIT_TOOL: "a tool the command needs is missing (Vivado, yosys, a simulator)",
    EXIT_USAGE: "the command line cannot be parsed: an unknown command or option, a missing "
                "argument, a value of the wrong kind (sysexits' EX_USAGE)",
    EXIT_PIPE: "standard output was closed before the command finished writing (as when "
               "piped into head); nothing more is printed",
}


def _epilog():
    lines = ["exit status:"]
    lines += [f"  {code:<3} {meaning}" for code, meaning in EXIT_CODES.items()]
    lines += ["", "-v/--verbose shows the traceback of an error."]
    return "\n".join(lines)


def _version():
    try:
        return metadata.version("hwgen")
    except metadata.PackageNotFoundError:
        return "(not installed; run from a source tree)"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors and their own exit status (:data:`EXIT_USAGE`)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def _add_sim_options(p):
    p.add_argument("--sim", choices=["icarus", "verilator"], default="icarus",
                   help="simulator (default: %(default)s)")
    p.add_argument("--backpressure", default="0", metavar="P",
                   help="probability of a stalled cycle on each stream, or an output pattern: "
                        "bursty:H,L (mean cycles ready and not) or stall:S,N (N cycles from "
                        "cycle S) (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="split the inputs into shards and simulate them on N local worker "
                        "processes (default: one simulator process, no shards)")
    p.add_argument("--cluster", default=None, metavar="ADDRESS",
                   help="simulate the shards on the Dask cluster whose scheduler is at "
                        "ADDRESS (tcp://HOST:PORT); its workers need hwgen and the simulator")
    p.add_argument("--shards", type=int, default=None, metavar="N",
                   help="shards of the inputs with --workers or --cluster (default: twice "
                        "the worker threads)")


def _add_arch_options(p):
    p.add_argument("--arch", choices=["dataflow", "engine"], default="dataflow",
                   help="dataflow: one folded unit per layer, weights on chip; engine: one "
                        "layer-sequential engine, weights and maps in DRAM (default: "
                        "%(default)s)")
    p.add_argument("--engine", metavar="SPEC",
                   help=f"the engine's configuration (--arch engine): {ENGINE_FORM} "
                        f"(default: tm=16, tn=16, FILM-QNN lanes, 64-bit bus)")


def _add_latency_option(p):
    p.add_argument("--latency", default=None, metavar="N|MIN..MAX",
                   help="--arch engine: cycles the simulated DRAM waits on each burst (before "
                        "a read's first beat, before taking a write), or a range each burst "
                        "draws from (default: 0)")


def _add_design_options(p, family=True):
    p.add_argument("--folding", metavar="SPEC",
                   help="NAME=PExSIMD,... or a JSON file {\"NAME\": [PE, SIMD]} (default: "
                        "automatic)")
    p.add_argument("--design", metavar="REPORT.json",
                   help="build the design of an estimate report (`hwgen estimate`): its "
                        "folding, LUT lanes, ROM placement and multiplier family")
    if family:
        p.add_argument("--device", choices=["xc7", "xcup", "ecp5", "none"], default=None,
                       help="multiplier family MAC lanes are packed onto; none: LUTs only "
                            "(default: xc7, or the --design report's)")
        p.add_argument("--mac-budget", type=int, default=64, metavar="N",
                       help="MACs per cycle of the largest layer when folding automatically "
                            "(default: %(default)s)")


def _demo_parser(p):
    p.add_argument("--example", default="mnist_mlp", choices=list(EXAMPLES),
                   help="the network (default: %(default)s)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: build/demo for mnist_mlp, else "
                        "build/EXAMPLE)")
    p.add_argument("--images", type=int, default=None, metavar="N",
                   help="test inputs simulated in RTL, 1..1000 (default: 200 for mnist_mlp, "
                        "else 100)")
    p.add_argument("--epochs", type=int, default=None, metavar="N",
                   help="QAT epochs (default: the example's own)")
    p.add_argument("--weight-bits", type=int, default=None, choices=PEAKS_WEIGHT_BITS,
                   metavar="W", help="the peaks example's weight width, 2, 3 or 4 (default: 4)")
    p.add_argument("--samples-per-cycle", type=int, default=None, metavar="P",
                   help="a 1-D example (peaks): fold every layer to take P samples of the "
                        "signal per clock cycle, a divisor of its length (default: the "
                        "automatic folding)")
    _add_sim_options(p)
    _add_arch_options(p)
    _add_latency_option(p)
    p.add_argument("--no-synth", action="store_true",
                   help="skip the yosys DSP-count check (two synthesis runs)")


def _estimate_parser(p):
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--device", default="xc7z020", metavar="PART",
                   help="a part (xc7z020, xczu9eg, lfe5u-85f, ...), a part number, or a board "
                        "of `hwgen boards` (pynq_z2, arty_a7_35, ...) (default: %(default)s)")
    p.add_argument("--clock-mhz", type=float, default=100.0, metavar="F",
                   help="clock frequency (default: %(default)s)")
    p.add_argument("--target-fps", type=float, default=None, metavar="N",
                   help="the cheapest design that reaches N frames/s (default: the fastest "
                        "that fits)")
    p.add_argument("--samples-per-second", type=float, default=None, metavar="R",
                   help="a 1-D model: the cheapest design that takes R samples of its signal "
                        "per second (R / length frames/s; instead of --target-fps)")
    p.add_argument("--utilization", type=float, default=0.8, metavar="U",
                   help="share of each resource the design may use, in (0, 1] (default: "
                        "%(default)s)")
    p.add_argument("--arch", choices=["dataflow", "engine", "auto"], default="dataflow",
                   help="dataflow: fold one unit per layer, weights on chip; engine: search "
                        "the layer-sequential engine's configuration (array, lanes, bus, "
                        "buffers); auto: price both, keep the faster that fits (default: "
                        "%(default)s)")
    p.add_argument("--bandwidth-gbs", type=float, default=None, metavar="B",
                   help="--arch engine or auto: DRAM bandwidth the engine may use, GB/s "
                        "(default: the boards' of the device, 13 on xczu9eg, 1.6 on "
                        "xc7z020; 13 on other parts)")
    p.add_argument("--out", default="build/estimate", metavar="DIR",
                   help="where report.json and estimate.png go (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _build_parser(p):
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--board", required=True, metavar="NAME",
                   help="a board from `hwgen boards`, or module:Class")
    p.add_argument("--out", metavar="DIR", help="output folder (default: build/MODEL-BOARD)")
    p.add_argument("--dry-run", action="store_true",
                   help="write the build tree without running the vendor tools")
    p.add_argument("--no-synth", action="store_true",
                   help="skip the yosys size estimate and its fit check (minutes on large "
                        "designs); an estimate report given as --design is still checked "
                        "against the part")
    p.add_argument("--selftest", action="store_true",
                   help="build the self-test top (vectors in ROM, LEDs show pass or fail)")
    p.add_argument("--clock-mhz", type=float, default=None, metavar="F",
                   help="the design's clock (default: the board's, see `hwgen boards`)")
    _add_arch_options(p)
    _add_design_options(p, family=False)


def build_parser():
    """The argument parser of ``hwgen`` and its subcommands."""
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="show tracebacks for errors")
    parser = _Parser(prog="hwgen", description=__doc__.splitlines()[0], epilog=_epilog(),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show tracebacks for errors")
    parser.add_argument("--version", action="version", version=f"hwgen {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, func, help, options=None):
        p = sub.add_parser(name, help=help, parents=[verbose], epilog="exit status: see "
                           "`hwgen --help`")
        if options is not None:
            options(p)
        p.set_defaults(func=func)
        return p

    command("demo", commands.demo, "train, export, generate and simulate a built-in example",
            _demo_parser)
    p = command("generate", commands.generate, "write top.v and metadata.json for a model")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder")
    _add_arch_options(p)
    _add_design_options(p)
    p = command("simulate", commands.simulate,
                "simulate the RTL on inputs and compare with the golden")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--inputs", required=True, metavar="X.npy",
                   help="integer inputs, shape (N, *input shape), a .npy file")
    p.add_argument("-o", "--out", default="build/simulate", metavar="DIR",
                   help="output folder (default: %(default)s)")
    _add_sim_options(p)
    _add_arch_options(p)
    _add_latency_option(p)
    _add_design_options(p)
    command("estimate", commands.estimate, "fold a model for a part, or search an engine for "
            "it: resources, cycles, FPS",
            _estimate_parser)
    p = command("packing", commands.packing, "lanes per DSP for weight/activation widths")
    p.add_argument("--device", choices=["xc7", "xcup", "ecp5"], default="xcup",
                   help="multiplier family (default: %(default)s)")
    p.add_argument("--weight-bits", type=int, metavar="W", help="one weight width")
    p.add_argument("--act-bits", type=int, metavar="A", help="one activation width")
    p.add_argument("--act-signed", action="store_true", help="signed activations")
    p.add_argument("--json", action="store_true", help="print JSON")
    command("boards", commands.boards_list, "list the boards a design can be built for")
    command("build", commands.build, "write (and where possible run) a board build",
            _build_parser)
    p = command("inspect", commands.inspect, "layers, shapes, MACs and per-filter precision")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p = command("import", commands.import_model,
                "a QONNX model (Brevitas, QKeras) to a .qgraph, with per-layer agreement")
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("-o", "--out", required=True, metavar="MODEL.qgraph", help="the QGraph file")
    p.add_argument("--inputs", metavar="X.npy",
                   help="inputs to compare on: integers (the QGraph's) or floats (the model's, "
                        "quantized by its input Quant) (default: random integers)")
    p.add_argument("--images", type=int, default=100, metavar="N",
                   help="random inputs when --inputs is not given (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the random inputs (default: %(default)s)")
    return parser


def exit_code(error):
    """The exit status for ``error``, or None for an error that is a bug (shown with its
    traceback)."""
    if isinstance(error, ToolchainError):
        return EXIT_TOOL
    if isinstance(error, (SimulationError, BuildError, SynthesisError)):
        return EXIT_FAILED
    # ValueError covers GraphError, FoldingError, DesignError and BoardError; OSError a
    # missing file or a folder that cannot be written.
    if isinstance(error, (ValueError, TypeError, OSError)):
        return EXIT_INPUT
    return None


def main(argv=None):
    """Run ``hwgen`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    An error prints ``error: <message>`` on standard error, without a traceback unless
    ``-v``; see :data:`EXIT_CODES`.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error (already printed)
        return stop.code
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader went away: print nothing more, not even at exit when Python flushes.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE
    except Exception as error:
        code = exit_code(error)
        if code is None or args.verbose:
            raise
        print(f"error: {error}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
