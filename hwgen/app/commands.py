"""The ``hwgen`` subcommands: each checks its options, then calls the library.

Every command takes the parsed arguments and returns the exit status; problems are raised
(:mod:`hwgen.app.cli` turns them into one line and an exit status). Results and file paths go
to standard output, progress to standard error.
"""

import contextlib
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

import boards
import hwgen
import quant
import sim
import sim.engine
from hwgen.design import DesignError
from hwgen.engine.search import check_bandwidth, search_engine
from hwgen.errors import UnsupportedLayerError
from hwgen.explore import signal_length
from hwgen.model import device as get_device
from hwgen.support import check_hardware_support
from hwgen.packing import lane_table, plan_lanes
from sim.cluster import open_client

from .demo import engine_report, run_demo
from .files import atomic, check_output_folder, follow_umask, remove, write_text
from .options import (check_design_fits, check_distribution, check_number, load_inputs,
                      parse_backpressure, parse_engine, parse_folding, read_design)
from .report import clear_report, engine_table, table, write_report
from .tables import boards_table, layers_table

__all__ = ["build", "boards_list", "demo", "estimate", "generate", "import_model", "inspect",
           "load_model", "packing", "simulate"]

#: The file a board build keeps in its folder until it finishes (see :func:`build`).
INCOMPLETE = "INCOMPLETE"


def load_model(path):
    """A QGraph from a ``.qgraph`` file, or from a QONNX ``.onnx`` model (imported; every
    construct the import cannot map is listed in one error)."""
    if str(path).lower().endswith(".onnx"):
        from quant import qonnx
        return qonnx.load(path)
    return quant.load(path)


def import_model(args):
    """``hwgen import``: a QONNX model to a ``.qgraph``, with the per-layer agreement of the
    golden and qonnx's executor on ``--inputs`` (or random inputs)."""
    from quant import qonnx
    check_number("--images", args.images, integer=True)
    imported = qonnx.import_model(args.model)
    graph = imported.graph
    if args.inputs is not None:
        x = load_inputs(args.inputs)
        if np.issubdtype(x.dtype, np.floating):
            x = qonnx.quantize_inputs(imported, x)
        x = quant.golden.check_inputs(graph, x)
    else:
        lo, hi = graph.input.range
        x = np.random.default_rng(args.seed).integers(lo, hi + 1,
                                                      (args.images, *graph.input.shape))
    rows = qonnx.agreement(imported, x)
    out = Path(args.out)
    quant.save(graph, out)
    follow_umask(out)
    print(f"agreement of the golden with qonnx's executor on {len(x)} inputs:")
    print("\n".join(qonnx.agreement_table(rows)))
    print(str(out))
    return 0


def _device(text):
    return None if text == "none" else text


def _build_options(args):
    """``generate`` keyword arguments: for ``--arch engine`` the ``--engine`` configuration;
    for the dataflow architecture ``--folding``/``--device`` or ``--design``, an estimate
    report: its folding, LUT lanes, ROM placement and the device family its lanes were packed
    for."""
    arch, engine = getattr(args, "arch", "dataflow"), getattr(args, "engine", None)
    if arch == "engine":
        given = [option for option, value in (("--folding", args.folding),
                                              ("--design", args.design),
                                              ("--device", args.device)) if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} configure the dataflow architecture; with "
                             f"--arch engine give --engine")
        return {"arch": "engine", "engine": parse_engine(engine)}
    if engine is not None:
        raise ValueError("--engine configures --arch engine; add --arch engine")
    check_number("--mac-budget", args.mac_budget, integer=True)
    if args.design is None:
        return {"folding": parse_folding(args.folding),
                "device": _device(args.device or "xc7"), "mac_budget": args.mac_budget}
    if args.folding is not None:
        raise ValueError("--design gives the folding; leave out --folding")
    design = read_design(args.design)
    if args.device is not None and args.device != design["device"]:
        raise ValueError(f"--device {args.device} differs from the family the design was "
                         f"estimated for ({design['device']} of {design['part']})")
    return {"folding": design["folding"], "lut_lanes": design["lut_lanes"],
            "rom_styles": design["rom_styles"], "device": design["device"],
            "mac_budget": args.mac_budget}


def _generate(graph, out_dir, options):
    """:func:`hwgen.generate`, with the written files' modes following the umask."""
    meta = hwgen.generate(graph, out_dir, **options)
    follow_umask(meta["verilog"], Path(out_dir) / "metadata.json", *(
        [meta["image"]] if "image" in meta else []))
    return meta


def _cluster(args):
    """The Dask client of ``--cluster`` for a ``with`` block (``None`` without it), connected
    at once: an unreachable scheduler stops the command before any work."""
    if args.cluster is None:
        return contextlib.nullcontext()
    return open_client(client=args.cluster)


def _distribution_report(args, result):
    """How a simulation was spread: workers, cluster, shards and retried shards."""
    return {"workers": args.workers, "cluster": args.cluster,
            "shards": 1 if result.shards is None else len(result.shards),
            "retried_shards": result.retried_shards}


def inspect(args):
    """``hwgen inspect``: layers, shapes, MACs, ranges, precisions, hardware support."""
    graph = load_model(args.model)
    spec = graph.input
    print(f"input: shape {'x'.join(map(str, spec.shape))}, {spec.bits}-bit "
          f"{'signed' if spec.signed else 'unsigned'}")
    print("\n".join(layers_table(graph)))
    hist = ", ".join(f"{c} filters of {b} bits" for b, c in graph.weight_bits_histogram().items())
    print(f"total: {sum(graph.macs().values()):,} MACs per frame; {hist}")
    try:
        check_hardware_support(graph)
    except UnsupportedLayerError as error:
        print("not supported in hardware (all of them):")
        for problem in error.problems:
            print(f"  {problem}")
        return 1
    print("hardware: every layer is supported")
    return 0


def generate(args):
    """``hwgen generate``: ``top.v``, ``metadata.json`` and ``model.qgraph`` in ``--out``."""
    graph = load_model(args.model)
    options = _build_options(args)
    check_output_folder(args.out, "-o/--out")
    meta = _generate(graph, args.out, options)
    print(meta["verilog"])
    print(str(Path(args.out) / "metadata.json"))
    if meta["architecture"] == "engine":
        print(meta["image"])
        print(f"{len(meta['layers'])} engine layers, DRAM image {meta['image_bytes']:,} bytes",
              file=sys.stderr)
    else:
        print(f"cycles per frame (model): {meta['cycles_per_frame']}", file=sys.stderr)
    return 0


def _check_latency(args, arch):
    """``--latency``: the engine's simulated DRAM latency, ``N`` or ``MIN..MAX`` cycles
    (default 0)."""
    if args.latency is None:
        return 0
    if arch != "engine":
        raise ValueError("--latency is the engine's DRAM latency; add --arch engine")
    text = str(args.latency)
    try:
        parts = [int(v) for v in text.split("..")]
        lo, hi = sim.engine.check_latency(parts[0] if len(parts) == 1 else tuple(parts))
        return lo if lo == hi else (lo, hi)
    except ValueError:
        raise ValueError(f"--latency must be N or MIN..MAX, cycles with 0 <= MIN <= MAX, not "
                         f"{text!r}") from None


def _check_engine_distribution(args, arch):
    if arch == "engine" and any(v is not None for v in (args.workers, args.cluster,
                                                         args.shards)):
        raise ValueError("--workers, --cluster and --shards split dataflow simulations; an "
                         "engine simulation runs in one process")


def simulate(args):
    """``hwgen simulate``: the RTL on ``--inputs`` against the golden; ``outputs.npy`` and
    ``report.json`` in ``--out``. With ``--arch engine`` every tensor the engine writes to
    DRAM is compared, and the report gives each layer's cycles, modelled and measured."""
    graph = load_model(args.model)
    inputs = load_inputs(args.inputs)
    quant.golden.check_inputs(graph, inputs)  # bad inputs fail before any hardware is built
    backpressure = parse_backpressure(args.backpressure)
    check_number("--seed", args.seed, integer=True, low_open=False)
    check_distribution(args.workers, args.cluster, args.shards)
    options = _build_options(args)
    arch = options.get("arch", "dataflow")
    latency = _check_latency(args, arch)
    _check_engine_distribution(args, arch)
    out = Path(args.out)
    check_output_folder(out, "-o/--out")
    remove(out / "report.json", out / "outputs.npy")
    if arch == "engine":
        design = _generate(graph, out / "rtl", options)
        result = sim.simulate_engine(graph, inputs, out_dir=out, design=design,
                                     simulator=args.sim, backpressure=backpressure,
                                     seed=args.seed, latency=latency)
        outputs = result.outputs[graph.output]
        report = engine_report(result, design)
    else:
        with _cluster(args) as client:
            design = _generate(graph, out / "rtl", options)
            result = sim.simulate(graph, inputs, out_dir=out, simulator=args.sim,
                                  backpressure=backpressure, seed=args.seed, design=design,
                                  workers=args.workers, client=client, shards=args.shards)
        outputs = result.outputs
        report = {"architecture": "dataflow", "images": len(result.outputs),
                  "outputs_compared": result.outputs_compared,
                  "mismatches": result.mismatches, "cycles_per_frame": result.cycles_per_frame,
                  "frame_latency": result.frame_latency, **_distribution_report(args, result)}
    with atomic(out / "outputs.npy", "wb") as f:
        np.save(f, outputs)
    report |= {"simulator": args.sim, "seed": args.seed, "backpressure": backpressure}
    write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0


def estimate(args):
    """``hwgen estimate``: fold the model for a part (``--arch dataflow``), search an engine
    for it (``engine``), or both, keeping the faster that fits (``auto``); table,
    ``report.json`` and PNG."""
    graph = load_model(args.model)
    check_number("--clock-mhz", args.clock_mhz)
    check_number("--utilization", args.utilization, high=1.0)
    if args.target_fps is not None:
        check_number("--target-fps", args.target_fps)
    length = signal_length(graph)
    if args.samples_per_second is not None:
        check_number("--samples-per-second", args.samples_per_second)
        if args.target_fps is not None:
            raise ValueError("give --target-fps or --samples-per-second, not both")
        if length is None:
            raise ValueError(f"--samples-per-second is for a model of a 1-D signal (channels, "
                             f"length); this one's input is {tuple(graph.input.shape)}: use "
                             f"--target-fps")
        args.target_fps = args.samples_per_second / length
    arch = args.arch
    bandwidth = args.bandwidth_gbs
    if bandwidth is not None and arch == "dataflow":
        raise ValueError("--bandwidth-gbs is the engine's DRAM bandwidth; add --arch engine "
                         "or --arch auto")
    if arch != "dataflow":
        if bandwidth is not None:
            check_bandwidth(bandwidth)
        get_device(args.device).check_clock(args.clock_mhz)
    check_output_folder(args.out, "--out")
    clear_report(args.out)
    extra = {"model": str(args.model), "target_fps": args.target_fps}
    if args.samples_per_second is not None:
        extra["target_samples_per_second"] = args.samples_per_second
    common = {"device": args.device, "clock_mhz": args.clock_mhz,
              "target_fps": args.target_fps, "utilization": args.utilization}
    run = {"dataflow": lambda: hwgen.compile(graph, **common),
           "engine": lambda: search_engine(graph, bandwidth_gbs=bandwidth, **common)}
    if arch != "auto":
        design = run[arch]()
        json_path, png_path = write_report(design, args.out, extra | _rate(design, length))
        text = table(design) if arch == "dataflow" else engine_table(design)
    else:
        results = {}
        for name, price in run.items():
            try:
                results[name] = price()
            except (DesignError, UnsupportedLayerError) as error:
                results[name] = error
        fits = {name: d for name, d in results.items() if not isinstance(d, Exception)}
        if not fits:
            raise DesignError("neither architecture fits: " + "; ".join(
                f"{name}: {error}" for name, error in results.items()))
        choice = max(fits, key=lambda name: fits[name].fps)
        json_path, png_path = write_report(results, args.out, extra | {"chosen": choice}
                                           | _rate(fits[choice], length))
        parts = []
        for name, result in results.items():
            parts.append(f"{name}:")
            parts.append(f"does not fit: {result}" if isinstance(result, Exception) else
                         table(result) if name == "dataflow" else engine_table(result))
        parts.append(f"auto picks {choice}: {fits[choice].fps:,.1f} frames/s" + "".join(
            f" against {name}'s {d.fps:,.1f}" for name, d in fits.items() if name != choice))
        text = "\n".join(parts)
    if args.json:
        print(json_path.read_text(), end="")
    else:
        print(text)
        if length is not None:
            rate = _rate(design if arch != "auto" else fits[choice], length)
            print(f"{rate['samples_per_second']:,.4g} samples/s (signal of {length} samples)")
        print(json_path)
        print(png_path)
    return 0


def packing(args):
    """``hwgen packing``: lanes per multiplier, ours against FINN's formula, and the ROM bits
    per weight."""
    if (args.weight_bits is None) != (args.act_bits is None):
        raise ValueError("--weight-bits and --act-bits go together; give both or neither")
    if args.weight_bits is not None:
        plan = plan_lanes(args.device, args.weight_bits, args.act_bits,
                          act_signed=args.act_signed)
        rows = [{"weight_bits": plan.weight_bits, "act_bits": plan.act_bits,
                 "lanes": plan.lanes, "field_bits": plan.field_bits, "scheme": plan.scheme,
                 "finn_lanes": plan.finn_lanes, "stored_bits_per_weight": plan.weight_bits,
                 "prepacked_bits_per_weight": round(plan.word_bits / plan.lanes, 2)}]
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
              f"scheme {r['scheme']}; ROM bits per weight: {r['stored_bits_per_weight']} "
              f"stored (packed as read), {r['prepacked_bits_per_weight']} as a pre-packed word")
        return 0
    bits = sorted({r["weight_bits"] for r in rows})
    cells = {(r["weight_bits"], r["act_bits"]): r for r in rows}
    print(f"lanes per multiplier on {args.device}, ours/FINN (rows W, columns A)")
    print("W\\A " + "".join(f"{a:>7}" for a in bits))
    for w in bits:
        print(f"{w:>4} " + "".join(f"{cells[w, a]['lanes']:>4}/{cells[w, a]['finn_lanes']:<2}"
                                   for a in bits))
    print(f"\nROM bits per weight on {args.device}: stored (each weight at its own width, "
          f"packed as read) / as a pre-packed word (rows W, columns A)")
    print("W\\A " + "".join(f"{a:>9}" for a in bits))

    def storage(row):
        prepacked = row["prepacked_bits_per_weight"]
        return f"{row['stored_bits_per_weight']:>4}/" + \
            ("-" if prepacked is None else f"{prepacked:.1f}").ljust(4)

    for w in bits:
        print(f"{w:>4} " + "".join(storage(cells[w, a]) for a in bits))
    return 0


def boards_list(args):
    """``hwgen boards``: the registered boards."""
    print("\n".join(boards_table(boards.list_boards())))
    print("A board can also be given as 'module:Class' (an Amaranth Xilinx or ECP5 "
          "platform); DEVICE is the part `hwgen estimate --device` prices.")
    return 0


def _build_design(args, board):
    """The build options of ``--folding`` or ``--design`` for ``board``; a design is checked
    against the board's multiplier family and its part's capacity."""
    if args.design is None:
        return {"folding": parse_folding(args.folding)}
    if args.folding is not None:
        raise ValueError("--design gives the folding; leave out --folding")
    design = read_design(args.design)
    if design["device"] != board.family:
        raise ValueError(f"--design was estimated for {design['part']} ({design['device']}); "
                         f"board {board.name} packs MAC lanes for {board.family}: estimate "
                         f"for the board's part")
    check_design_fits(design, board)
    return {k: design[k] for k in ("folding", "lut_lanes", "rom_styles")}


def _build_engine(args, board):
    """The build options of ``--arch engine``: the ``--engine`` configuration, its lanes
    packed for the board's family unless ``--engine`` names one."""
    given = [option for option, value in (("--folding", args.folding),
                                          ("--design", args.design)) if value is not None]
    if given:
        raise ValueError(f"{', '.join(given)} configure the dataflow architecture; with "
                         f"--arch engine give --engine")
    config = parse_engine(args.engine)
    keys = {item.partition("=")[0].strip() for item in (args.engine or "").split(",")}
    if "family" not in keys:
        config = dataclasses.replace(config, family=board.family)
    return {"arch": "engine", "engine": config}


def build(args):
    """``hwgen build``: a board build tree, run where the tools are here. With ``--arch
    engine`` the layer-sequential engine (:mod:`boards.engine`).

    Until the build finishes, its folder holds a file ``INCOMPLETE``; when the build fails it
    says why, and a ``report.json`` already written is marked ``"complete": false``.
    """
    board = boards.get_board(args.board)
    graph = load_model(args.model)
    if args.clock_mhz is not None:
        check_number("--clock-mhz", args.clock_mhz)
        if board.device is not None:
            board.device.check_clock(args.clock_mhz)
    if args.arch == "engine":
        options = _build_engine(args, board)
    elif args.engine is not None:
        raise ValueError("--engine configures --arch engine; add --arch engine")
    else:
        options = _build_design(args, board)
    out = Path(args.out or Path("build") / f"{Path(args.model).stem}-"
                                           f"{str(args.board).replace(':', '_')}")
    check_output_folder(out, "--out")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    marker = out / INCOMPLETE
    write_text(marker, "hwgen build is running in this folder; it has not finished.\n")
    try:
        report = boards.build(graph, board, out, dry_run=args.dry_run, selftest=args.selftest,
                              estimate=not args.no_synth, clock_mhz=args.clock_mhz, **options)
    except BaseException as error:
        _mark_failed(out, marker, created, error)
        raise
    marker.unlink()
    print(boards.summary(report))
    return 0


def _mark_failed(out, marker, created, error):
    """Leave a failed build's folder as it is, saying so; remove it when the build wrote
    nothing into the folder it was given."""
    if created and [p.name for p in out.iterdir()] == [INCOMPLETE]:
        marker.unlink()
        out.rmdir()
        return
    reason = str(error) or type(error).__name__
    write_text(marker, f"hwgen build did not finish: {reason}\n")
    report = out / "report.json"
    if report.is_file():
        data = json.loads(report.read_text())
        data |= {"complete": False, "error": reason}
        write_text(report, json.dumps(data, indent=2) + "\n")


def _rate(design, length):
    """``{"samples_per_second": ...}`` of a design for a 1-D signal of ``length`` samples."""
    return {} if length is None else {"samples_per_second": design.fps * length}


def demo(args):
    """``hwgen demo``: one built-in example end to end, on either architecture."""
    if args.images is not None:
        check_number("--images", args.images, integer=True, high=1000)
    if args.epochs is not None:
        check_number("--epochs", args.epochs, integer=True)
    check_number("--seed", args.seed, integer=True, low_open=False)
    backpressure = parse_backpressure(args.backpressure)
    if args.engine is not None and args.arch != "engine":
        raise ValueError("--engine configures --arch engine; add --arch engine")
    engine = parse_engine(args.engine) if args.arch == "engine" else None
    latency = _check_latency(args, args.arch)
    if args.weight_bits is not None and args.example != "peaks":
        raise ValueError("--weight-bits is the peaks example's weight width; add --example "
                         "peaks")
    if args.samples_per_cycle is not None:
        check_number("--samples-per-cycle", args.samples_per_cycle, integer=True)
        if args.arch != "dataflow":
            raise ValueError("--samples-per-cycle folds the dataflow accelerator; drop "
                             "--arch engine")
    check_distribution(args.workers, args.cluster, args.shards)
    _check_engine_distribution(args, args.arch)
    if args.out is not None:
        check_output_folder(args.out, "--out")
    with _cluster(args) as client:
        run_demo(example=args.example, out_dir=args.out, images=args.images,
                 epochs=args.epochs, simulator=args.sim, backpressure=backpressure,
                 seed=args.seed, synth=not args.no_synth, workers=args.workers,
                 client=client, shards=args.shards, arch=args.arch, engine=engine,
                 latency=latency, weight_bits=args.weight_bits,
                 samples_per_cycle=args.samples_per_cycle)
    return 0
