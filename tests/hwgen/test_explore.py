"""Design-space exploration: the chosen designs fit, meet their targets, agree with the built
accelerator's cycle model; bad requests fail with the reason."""

import json
import math

import pytest

from hwgen import compile_graph, generate
from hwgen.blocks import MatVecUnit, ParallelMapWindow
from hwgen.app.cli import main
from hwgen.explore import DesignError, compile as compile_design, estimate, greedy_folding

from quant.export import export
from quant.models import mnist_cnn
from quant.nn import fold_batchnorms

from .test_conv_accelerator import cnn2d, residual
from .graphs import budget_with_lut_lanes_and_block_roms, random_mlp


@pytest.mark.parametrize("make", [cnn2d, residual, lambda: random_mlp(3, (64, 32, 10), (4, 2))],
                         ids=["cnn2d", "residual", "mlp"])
def test_fastest_design_fits_and_its_cycles_are_the_accelerators(make):
    graph = make()
    design = compile_design(graph, device="xc7z020", clock_mhz=100)
    capacity = design.device.capacity()
    assert all(getattr(design.total, k) <= 0.8 * capacity[k] for k in capacity)
    acc = compile_graph(graph, design.folding, lut_lanes=design.lut_lanes)
    assert acc.cycles_per_frame == design.cycles_per_frame
    assert acc.dsp_count <= design.total.dsp   # MAC DSPs + requantizers, as the model counts


def test_a_frame_rate_target_takes_the_cheapest_design_that_meets_it():
    graph = residual()
    fastest = compile_design(graph, device="xc7z020", clock_mhz=100)
    slow = compile_design(graph, device="xc7z020", clock_mhz=100, target_fps=fastest.fps / 4)
    assert slow.cycles_per_frame <= 100e6 / (fastest.fps / 4)
    assert slow.cycles_per_frame > fastest.cycles_per_frame
    assert slow.total.dsp <= fastest.total.dsp and slow.total.lut <= fastest.total.lut
    acc = compile_graph(graph, slow.folding, lut_lanes=slow.lut_lanes)
    assert acc.cycles_per_frame == slow.cycles_per_frame


@pytest.mark.parametrize("make", [cnn2d, residual, lambda: random_mlp(3, (64, 32, 10), (4, 2))],
                         ids=["cnn2d", "residual", "mlp"])
@pytest.mark.parametrize("share", [0.1, 0.5])
def test_a_target_design_uses_no_more_luts_and_dsps_than_the_greedy_folding(make, share):
    graph = make()
    fastest = compile_design(graph, device="xc7z020", clock_mhz=100)
    ours = compile_design(graph, device="xc7z020", clock_mhz=100, target_fps=fastest.fps * share)
    target = math.floor(100 * 1e6 / (fastest.fps * share))      # as compile rounds it
    greedy = estimate(graph, greedy_folding(graph, target), "xc7z020", 100)
    assert ours.cycles_per_frame <= target and greedy.cycles_per_frame <= target
    theirs = {row["name"]: row["resources"] for row in greedy.rows}
    for row in ours.rows:
        if row["pe"] is not None:
            mine, ref = row["resources"], theirs[row["name"]]
            assert mine.lut <= ref.lut and mine.dsp <= ref.dsp, row["name"]


def test_a_model_too_big_for_the_device_names_the_resource_and_the_numbers():
    graph = random_mlp(0, (4096, 512, 10), (8, 1))    # 8.5 Mbit of weights
    with pytest.raises(DesignError, match=r"does not fit xc7z020 even fully folded: with every "
                                          r"layer's weight ROMs at its best split between block "
                                          r"RAM and logic, block RAM and LUTs still average "
                                          r"[\d.]+% of the device \(utilization 0.8\); "
                                          r"layer 'fc1' needs the most; its weights alone are "
                                          r"8.5 Mbit against 5.2 Mbit of block RAM"):
        compile_design(graph, device="xc7z020", clock_mhz=100)
    # A tiny budget still reads as a share, not as 0%.
    with pytest.raises(DesignError,
                       match=r"average 0\.\d+% of the device \(utilization 0.001\)"):
        compile_design(random_mlp(3, (64, 32, 10), (4, 2)), device="xczu9eg", clock_mhz=200,
                       utilization=0.001)
    # Below what any weighting can reach, the bound is given.
    with pytest.raises(DesignError, match=r"with every layer at its fewest of each resource, "
                                          r"the design still needs lut \d+ > 0.0005 x 53200, "
                                          r".*dsp \d+ > 0.0005 x 220.*; layer '\w+' needs the "
                                          r"most dsp"):
        compile_design(cnn2d(), device="xc7z020", clock_mhz=100, utilization=0.0005)


def test_weight_roms_move_when_a_resource_runs_short(tmp_path):
    # At 3% of the device the LUTs run short: the search puts the weight ROMs, which
    # synthesis would build from logic, in block RAM, and the generated Verilog says so.
    graph = random_mlp(3, (64, 32, 10), (4, 2))
    design = compile_design(graph, device="xc7z020", clock_mhz=100, utilization=0.03)
    assert design.rom_styles == {"fc1": "block", "fc2": "block"}
    capacity = design.device.capacity()
    assert all(getattr(design.total, k) <= 0.03 * capacity[k] for k in capacity)
    left_alone = estimate(graph, design.folding, "xc7z020", 100, lut_lanes=design.lut_lanes)
    assert left_alone.total.lut > design.total.lut
    assert left_alone.total.bram18 < design.total.bram18
    meta = generate(graph, tmp_path, **design.build_options)
    assert meta["cycles_per_frame"] == design.cycles_per_frame
    assert [layer["rom_style"] for layer in meta["layers"] if "rom_style" in layer] == \
        ["block", "block"]
    # Every weight memory of both layers (one word per fold pair, a memory each here).
    acc = compile_graph(graph, **design.build_options)
    memories = [len(block.rom_layout.widths) for _, block in acc.blocks
                if isinstance(block, MatVecUnit)]
    assert memories == [1, 1]
    assert (tmp_path / "top.v").read_text().count('(* rom_style = "block" *)') == 2


def test_greedy_folding_meets_its_target_layer_by_layer():
    graph = cnn2d()
    folding = greedy_folding(graph, 400)
    design = estimate(graph, folding, "xc7z020", 100)
    assert design.cycles_per_frame <= 400
    assert folding["conv1"][1] == 2        # SIMD first, to its maximum (2 input channels)


def test_bad_requests_say_why():
    graph = cnn2d()
    with pytest.raises(ValueError, match=r"device must be a part \(.*xc7z020, .*xczu9eg, .*\), "
                                         r"a part number or a board of `hwgen boards`, "
                                         r"not 'xc7z021'"):
        compile_design(graph, device="xc7z021")
    with pytest.raises(ValueError, match=r"clock_mhz must be within 4.69..464 MHz on xc7z020, "
                                         r"not 900"):
        compile_design(graph, device="xc7z020", clock_mhz=900)
    with pytest.raises(DesignError, match=r"1e\+09 frames/s at 100 MHz needs 0 cycles per "
                                          r"frame; the best design that fits xc7z020 "
                                          r"\(utilization 0.8\) takes \d+ \([\d.]+ frames/s\); "
                                          r"the bottleneck is layer '\w+'"):
        compile_design(graph, device="xc7z020", clock_mhz=100, target_fps=1e9)


def test_estimate_command_writes_the_report(tmp_path, capsys):
    import quant
    path = tmp_path / "cnn.qgraph"
    quant.save(cnn2d(), path)
    assert main(["estimate", str(path), "--device", "xczu9eg", "--clock-mhz", "200",
                 "--out", str(tmp_path / "est")]) == 0
    out = capsys.readouterr().out
    assert "conv1" in out and "frames/s at 200 MHz" in out
    report = json.loads((tmp_path / "est" / "report.json").read_text())
    assert report["device"]["name"] == "xczu9eg" and report["fps"] > 0
    assert report["latency_is_estimate"] and "latency about" in out     # line buffers
    assert report["latency_cycles"] >= report["cycles_per_frame"]
    assert {row["name"] for row in report["layers"]} >= {"conv1", "conv2", "fc"}
    assert (tmp_path / "est" / "estimate.png").stat().st_size > 1000
    assert main(["estimate", str(path), "--device", "nope", "--out", str(tmp_path / "x")]) == 1
    assert "nope" in capsys.readouterr().err


def test_generate_builds_the_design_of_an_estimate_report(tmp_path, capsys):
    import quant
    path = tmp_path / "mlp.qgraph"
    graph = random_mlp(3, (64, 32, 10), (4, 2))
    quant.save(graph, path)
    budget = budget_with_lut_lanes_and_block_roms(graph)
    assert main(["estimate", str(path), "--device", "xczu9eg", "--clock-mhz", "200",
                 "--utilization", str(budget), "--out", str(tmp_path / "est")]) == 0
    report_path = tmp_path / "est" / "report.json"
    report = json.loads(report_path.read_text())
    assert report["rom_styles"] and report["lut_lanes"]     # the search moved both
    assert main(["generate", str(path), "-o", str(tmp_path / "rtl"), "--design",
                 str(report_path)]) == 0
    meta = json.loads((tmp_path / "rtl" / "metadata.json").read_text())
    assert meta["cycles_per_frame"] == report["cycles_per_frame"]
    units = {layer["name"]: layer for layer in meta["layers"] if "rom_style" in layer}
    assert {name: [u["pe"], u["simd"]] for name, u in units.items()} == report["folding"]
    assert {name: u["rom_style"] for name, u in units.items() if u["rom_style"]} == \
        report["rom_styles"]
    assert {name: u["lut_lanes"] for name, u in units.items() if u["lut_lanes"]} == \
        {name: sum(lanes.values()) for name, lanes in report["lut_lanes"].items()}
    capsys.readouterr()
    for extra, message in (
            (["--folding", "fc1=1x1"], "--design gives the folding; leave out --folding"),
            (["--device", "xc7"], "--device xc7 differs from the family the design was "
                                  "estimated for (xcup of xczu9eg)")):
        assert main(["generate", str(path), "-o", str(tmp_path / "x"), "--design",
                     str(report_path), *extra]) == 1
        assert message in capsys.readouterr().err
    (tmp_path / "other.json").write_text('{"fc1": [1, 1]}')
    assert main(["generate", str(path), "-o", str(tmp_path / "x"), "--design",
                 str(tmp_path / "other.json")]) == 1
    assert "is not an estimate report of `hwgen estimate`: it has no folding, lut_lanes, " \
           "rom_styles, device" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_an_estimate_prices_the_blocks_between_the_layers():
    """Width converters, forks, line buffers the schedule deepened, the adds' FIFOs at their
    scheduled depths and the accelerator's counters: a row each, priced as the built blocks
    are, and in the total."""
    from hwgen.blocks import Broadcast, SlidingWindow, WidthConverter
    from hwgen.model import Resources, block_cost

    graph = residual()
    folding = {"conv1": (4, 1), "body1": (2, 4), "body2": (6, 2), "short2": (3, 4),
               "fc": (1, 6)}
    design = estimate(graph, folding, "xc7z020")
    rows = {row["name"]: row for row in design.rows}
    assert design.total == sum((row["resources"] for row in design.rows), Resources())
    acc = compile_graph(graph, **design.build_options)
    glue = [(name, block) for name, block in acc.blocks
            if isinstance(block, (WidthConverter, Broadcast))]
    assert len(glue) >= 4
    for name, block in glue:
        assert rows[name]["resources"] == block_cost(block, "xc7"), name
    window = dict(acc.blocks)["conv1_window"]
    own = SlidingWindow(channels=window.channels, height=window.height, width=window.width,
                        kernel=window.kernel, padding=window.padding, shape=window.shape,
                        simd=window.simd)
    assert window.buffer_rows > own.buffer_rows     # deepened by the schedule
    assert rows["conv1_window_buffer"]["resources"] == \
        block_cost(window, "xc7") - block_cost(own, "xc7")
    assert rows["accelerator"]["resources"].ff == 64 + 2    # two counters, 3 output beats
    # Each add, and the FIFOs on its operands at the depths the schedule gave them.
    blocks = dict(acc.blocks)
    for add, fifos in acc.netlist.joins.items():
        assert rows[add]["resources"] == block_cost(blocks[add], "xc7")
        for fifo in fifos:
            assert blocks[fifo].depth == acc.fifo_depths[fifo]
            assert rows[fifo]["resources"] == block_cost(blocks[fifo], "xc7"), fifo


def test_the_mnist_cnn_is_no_longer_bound_by_its_input_stream():
    """One channel of one window position a beat held the MNIST CNN at 28 * 28 * 9 = 7,056
    cycles per frame on xc7z020, and one pixel a beat at 28 * 28 = 784; whole windows of
    several positions a beat (and pools that take several pixels a beat) take it below, and
    the built accelerator agrees."""
    graph = export(fold_batchnorms(mnist_cnn().eval()), (1, 28, 28))
    design = compile_design(graph, device="xc7z020", clock_mhz=100)
    assert design.cycles_per_frame < 784
    _, simd = design.folding["conv1"]
    acc = compile_graph(graph, design.folding, lut_lanes=design.lut_lanes)
    assert acc.cycles_per_frame == design.cycles_per_frame
    window = dict(acc.blocks)["conv1_window"]
    assert isinstance(window, ParallelMapWindow) and window.positions * 9 == simd > 9
    assert isinstance(dict(acc.blocks)["pool1"].window, ParallelMapWindow)
    fps = 100e6 / design.cycles_per_frame
    with pytest.raises(DesignError, match=rf"takes {design.cycles_per_frame} \({fps:.1f} "
                                          r"frames/s\); the bottleneck is layer '\w+' \(lut\)"):
        compile_design(graph, device="xc7z020", clock_mhz=100, target_fps=2 * fps)
