"""The AXI board top in cocotb (Icarus, cocotbext-axi) against the golden, bit for bit.

The input bytes are packed by the PYNQ driver and the output bytes unpacked by it, so these
tests also prove that the driver's packing is the hardware's.
"""

import json

import numpy as np
import pytest

import boards
import hwgen
import quant
from boards.axi import MAGIC, REGISTERS, AXIAccelerator, axi_verilog, design_id, tdata_bits_for
from boards.drivers import pynq as driver

from ..hwgen.graphs import random_inputs, random_mlp
from . import cocotb_bench
from .test_selftest import MULT18X18D_MODEL, image_graph

FRAMES = 10


def _graph():
    # Output beats of 5 x 13-bit elements: TDATA is padded from 65 to 72 bits.
    return random_mlp(3, sizes=(24, 16, 8, 5), high=(4, 2, 1))


def _bench(tmp_path_factory, folding=None, device="xc7", platform=None, graph=None,
           **options):
    if graph is None:
        graph, folding = _graph(), folding or {"fc1": (4, 6)}
    top = AXIAccelerator(hwgen.compile_graph(graph, folding=folding, device=device), **options)
    root = tmp_path_factory.mktemp("axi")
    sources = [MULT18X18D_MODEL] if platform is not None else []
    for name, text in axi_verilog(top, platform=platform).items():
        (root / name).write_text(text)
        sources.append(root / name)
    runner = cocotb_bench.build(sources, "hwgen_axi", root / "build")
    return graph, top.description(), runner, root / "build"


@pytest.fixture(scope="module")
def axi_design(tmp_path_factory):
    """The AXI top with the default TDATA widths (beat width rounded up to whole bytes)."""
    return _bench(tmp_path_factory)


@pytest.fixture(scope="module")
def ecp5_design(tmp_path_factory):
    """The AXI top elaborated for the ULX3S: MULT18X18D instances (and their model) whose
    registers must hold while the accelerator stalls. fc3 issues a fold every cycle and sends
    five output beats per frame, so output back-pressure stalls it with its multipliers
    full."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    return _bench(tmp_path_factory, folding={"fc1": (4, 6), "fc3": (1, 8)}, device="ecp5",
                  platform=ULX3S_85F_Platform())


@pytest.fixture(scope="module")
def image_design(tmp_path_factory):
    """A 3-channel 5x4 image in, a 4-channel map out: both streamed pixel by pixel."""
    return _bench(tmp_path_factory, graph=image_graph())


@pytest.fixture(scope="module")
def shallow_design(tmp_path_factory):
    """Room for the start times of only two frames in flight: the input waits at frame
    starts while the output is held back."""
    return _bench(tmp_path_factory, frames_in_flight=2)


@pytest.fixture(scope="module")
def pynq_tree(tmp_path_factory):
    """The RTL and design.json of a PYNQ-Z2 build tree (TDATA widths of the AXI DMA)."""
    graph = _graph()
    out = tmp_path_factory.mktemp("pynq_z2")
    boards.build(graph, "pynq_z2", out, dry_run=True, folding={"fc1": (4, 6)}, estimate=False,
                 log=None)
    design = json.loads((out / "design.json").read_text())
    runner = cocotb_bench.build([out / "rtl" / "hwgen_axi_core.v", out / "rtl" / "hwgen_axi.v"],
                                "hwgen_axi", out / "sim_build")
    return graph, design, runner, out / "sim_build"


def _run(bench, tmp_path, x, *, pause, seed):
    graph, design, runner, build_dir = bench
    np.save(tmp_path / "input.npy", driver.pack_input(x, design))
    config = {"design": design, "latency": design["latency"], "frames": len(x),
              "input": str(tmp_path / "input.npy"), "pause": pause}
    return cocotb_bench.run(runner, toplevel="hwgen_axi", module="tests.boards.cocotb_axi",
                            config=config, env_var="BOARDS_AXI_CONFIG", work_dir=tmp_path,
                            build_dir=build_dir, seed=seed)


def _outputs(results, name, design):
    data = b"".join(bytes.fromhex(p) for p in results[name]["packets"])
    return driver.unpack_output(np.frombuffer(data, dtype=np.uint8), design)


def _check_all(results, design, golden, what, seed):
    expected = {"identity_and_latency": golden[:1],
                "frames_under_backpressure": golden,
                "one_packet_for_all_frames": golden,
                "tlast_errors_are_flagged": golden[[0, 1, 0]]}
    for name, want in expected.items():
        cocotb_bench.assert_frames_equal(_outputs(results, name, design), want,
                                         what=f"{name} ({what})", seed=seed)


def test_widths_and_description(axi_design):
    graph, design, _, _ = axi_design
    assert design["input"]["beat_bits"] == 6 * 8 and design["input"]["tdata_bits"] == 48
    assert design["output"]["beat_bits"] == 5 * design["output"]["bits"]
    assert design["output"]["tdata_bits"] - 8 < design["output"]["beat_bits"] \
        <= design["output"]["tdata_bits"]
    assert design["output"]["tdata_bits"] % 8 == 0
    assert design["registers"] == REGISTERS and design["magic"] == MAGIC
    assert design["input"]["beats_per_frame"] == 24 // 6
    assert tdata_bits_for(65) == 72 and tdata_bits_for(65, power_of_two=True) == 128


@pytest.mark.parametrize("pause", [0.0, 0.4], ids=["flow", "backpressure"])
def test_axi_top_matches_golden(axi_design, tmp_path, pause):
    graph, design, _, _ = axi_design
    seed = 11 if pause else 12
    x = random_inputs(graph, FRAMES, seed=seed)
    golden = quant.run(graph, x)[graph.output]
    results = _run(axi_design, tmp_path, x, pause=pause, seed=seed)
    _check_all(results, design, golden, f"pause {pause}", seed)
    reads = results["frames_under_backpressure"]["reads"]
    # Registers were read while frames were in flight, not only before or after.
    assert any(0 < r[0] < FRAMES for r in reads) or any(0 < r[1] < FRAMES for r in reads)


def test_ecp5_multipliers_hold_under_backpressure(ecp5_design, tmp_path):
    """Random back-pressure on both streams stalls the pipelines around the multipliers'
    own registers: no beat lost or repeated, every output equal to the golden."""
    graph, design, _, build_dir = ecp5_design
    assert "MULT18X18D #(" in (build_dir.parent / "hwgen_axi_core.v").read_text()
    x = random_inputs(graph, FRAMES, seed=13)
    golden = quant.run(graph, x)[graph.output]
    results = _run(ecp5_design, tmp_path, x, pause=0.5, seed=13)
    _check_all(results, design, golden, "ECP5 multipliers, pause 0.5", 13)


def test_input_waits_when_frame_starts_cannot_be_queued(shallow_design, tmp_path):
    graph, design, _, _ = shallow_design
    x = random_inputs(graph, FRAMES, seed=31)
    golden = quant.run(graph, x)[graph.output]
    results = _run(shallow_design, tmp_path, x, pause=0.6, seed=31)
    _check_all(results, design, golden, "two frames in flight", 31)
    final = results["frames_under_backpressure"]["final"]
    assert final["IN_FRAMES"] == final["FRAMES"] == FRAMES
    in_flight = [started - done for done, started, _ in
                 results["frames_under_backpressure"]["reads"]]
    assert max(in_flight) == 2, in_flight


def test_axi_top_arguments():
    acc = hwgen.compile_graph(_graph(), folding={"fc1": (4, 6)})
    with pytest.raises(ValueError, match="in_tdata_bits must be a multiple of 8 of at least 48, "
                                         "not 40"):
        AXIAccelerator(acc, in_tdata_bits=40)
    with pytest.raises(ValueError, match="out_tdata_bits must be a multiple of 8 of at least"):
        AXIAccelerator(acc, out_tdata_bits=100)
    with pytest.raises(ValueError, match="frames_in_flight must be an integer of at least 2"):
        AXIAccelerator(acc, frames_in_flight=1)
    with pytest.raises(TypeError, match="accelerator must be an hwgen.Accelerator"):
        AXIAccelerator(object())
    top = AXIAccelerator(acc, in_tdata_bits=64, out_tdata_bits=128)
    assert (top.in_tdata_bits, top.out_tdata_bits, top.addr_bits) == (64, 128, 12)


def test_pynq_build_tree_round_trip(pynq_tree, tmp_path):
    """The PYNQ-Z2 tree's own RTL and design.json: frames packed by the driver go in as the
    DMA would stream them, the driver unpacks what comes out, and it equals the golden."""
    graph, design, _, _ = pynq_tree
    assert design["input"]["tdata_bits"] == 64 and design["output"]["tdata_bits"] == 128
    x = random_inputs(graph, FRAMES, seed=21)
    golden = quant.run(graph, x)[graph.output]
    results = _run(pynq_tree, tmp_path, x, pause=0.3, seed=21)
    _check_all(results, design, golden, "pynq_z2 tree", 21)


def test_pynq_driver_round_trip_on_a_three_channel_image(image_design, tmp_path):
    """The driver packs a 3-channel image pixel by pixel (HWC), as the accelerator reads it,
    and unpacks its 4-channel output map back to CHW: equal to the golden."""
    graph, design, _, _ = image_design
    assert design["input"]["order"] == design["output"]["order"] == "HWC"
    assert design["input"]["shape"] == [3, 5, 4] and design["output"]["shape"] == [4, 3, 2]
    x = random_inputs(graph, FRAMES, seed=41)
    x[0] = np.arange(60).reshape(3, 5, 4) % 16  # channel, row and column all tell apart
    golden = quant.run(graph, x)[graph.output]
    results = _run(image_design, tmp_path, x, pause=0.3, seed=41)
    _check_all(results, design, golden, "3-channel image", 41)


def test_edge_values_match_golden(axi_design, tmp_path):
    """Inputs at the ends of their range (all zeros, all maximum)."""
    graph, design, _, _ = axi_design
    lo, hi = graph.input.range
    x = np.stack([np.full(graph.input.shape, lo), np.full(graph.input.shape, hi)] * 3)
    golden = quant.run(graph, x)[graph.output]
    results = _run(axi_design, tmp_path, x, pause=0.2, seed=3)
    cocotb_bench.assert_frames_equal(
        _outputs(results, "frames_under_backpressure", design), golden,
        what="edge values", seed=3)


def test_a_wrong_golden_is_reported(axi_design, tmp_path):
    """The comparison can fail: one changed bias in the golden's model is caught."""
    graph, design, _, _ = axi_design
    x = random_inputs(graph, FRAMES, seed=4)
    wrong = graph.copy()
    wrong["fc3"].tensors["bias"][1] += 1
    results = _run(axi_design, tmp_path, x, pause=0.0, seed=4)
    with pytest.raises(AssertionError, match=r"first at frame 0, index \(1,\)"):
        cocotb_bench.assert_frames_equal(
            _outputs(results, "frames_under_backpressure", design),
            quant.run(wrong, x)[wrong.output], what="wrong golden", seed=4)


def test_design_id_changes_with_one_weight():
    graph = _graph()
    changed = graph.copy()
    changed["fc2"].tensors["weight"][0, 0] ^= 1
    ids = [design_id(hwgen.compile_graph(g, folding={"fc1": (4, 6)})) for g in (graph, changed)]
    assert ids[0] != ids[1]
    assert ids[0] == design_id(hwgen.compile_graph(_graph(), folding={"fc1": (4, 6)}))
