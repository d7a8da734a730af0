"""sim.runner on stand-in designs: outputs, cycles, back-pressure, errors, both simulators."""

import json

import numpy as np
import pytest
from amaranth import signed, unsigned

from sim import SimulationError, ToolchainError, load_design, run_design
from sim.runner import check_simulator
from sim.verify import steady_cycles_per_frame

SEED = 1234


def _frames(rng, n, shape, bits, is_signed):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if is_signed else (0, (1 << bits) - 1)
    x = rng.integers(lo, hi, size=(n, *shape), endpoint=True)
    x.reshape(-1)[:4] = [lo, hi, 0, lo]  # extremes first
    return x


@pytest.fixture
def add5(make_design):
    """+5 on signed 6-bit elements (wrapping), 3 per beat, frames of 4 beats, 2 stages."""
    return make_design((4, 3), 3, signed(6), addend=5, depth=2)


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["no-backpressure", "backpressure"])
def test_outputs_equal_reference(add5, tmp_path, backpressure):
    component, meta = add5
    x = _frames(np.random.default_rng(SEED), 40, (4, 3), 6, True)
    run = run_design(meta, x, out_dir=tmp_path, backpressure=backpressure, seed=SEED)
    expected = component.reference(x)
    assert run.outputs.shape == (40, 4, 3) and run.outputs.dtype == np.int64
    bad = np.argwhere(run.outputs != expected)
    assert not len(bad), (f"first mismatch at {tuple(bad[0])}: expected "
                          f"{expected[tuple(bad[0])]}, got {run.outputs[tuple(bad[0])]} "
                          f"(seed {SEED}, backpressure {backpressure})")
    assert len(run.frame_cycles) == len(run.input_cycles) == 40
    assert np.all(np.diff(run.frame_cycles) > 0)
    assert run.cycles >= run.frame_cycles[-1]


def test_cycles_without_backpressure(add5, tmp_path):
    # Input beats transfer on cycles 1, 2, 3, ...: frame i's first beat on cycle 4i + 1, its
    # last beat leaves two stages later than it entered, on cycle 4i + 4 + 2.
    _, meta = add5
    x = _frames(np.random.default_rng(SEED), 12, (4, 3), 6, True)
    run = run_design(meta, x, out_dir=tmp_path, backpressure=0.0, seed=SEED)
    assert run.input_cycles.tolist() == [4 * i + 1 for i in range(12)]
    assert run.frame_cycles.tolist() == [4 * i + 6 for i in range(12)]
    assert steady_cycles_per_frame(run.frame_cycles) == 4.0


def test_backpressure_is_seeded(add5, tmp_path):
    _, meta = add5
    x = _frames(np.random.default_rng(SEED), 20, (4, 3), 6, True)
    a = run_design(meta, x, out_dir=tmp_path / "a", backpressure=0.3, seed=7)
    b = run_design(meta, x, out_dir=tmp_path / "b", backpressure=0.3, seed=7)
    c = run_design(meta, x, out_dir=tmp_path / "c", backpressure=0.3, seed=8)
    assert np.array_equal(a.frame_cycles, b.frame_cycles), "same seed 7, different timing"
    assert not np.array_equal(a.frame_cycles, c.frame_cycles), "seeds 7 and 8 gave one timing"
    assert np.array_equal(a.outputs, c.outputs)
    assert a.frame_cycles[-1] > 20 * 4 + 2, "back-pressure 0.3 did not slow the stream"


def test_unsigned_widening_single_beat(make_design, tmp_path):
    # unsigned 4-bit in, unsigned 5-bit out: 15 + 3 = 18 must not wrap.
    component, meta = make_design((2,), 2, unsigned(4), unsigned(5), addend=3, depth=1)
    x = _frames(np.random.default_rng(SEED), 30, (2,), 4, False)
    run = run_design(meta, x, out_dir=tmp_path, backpressure=0.25, seed=SEED)
    assert np.array_equal(run.outputs, component.reference(x)), f"seed {SEED}"
    assert run.outputs.max() <= 18 and (run.outputs == 18).any()


@pytest.mark.parametrize("element", [unsigned(1), signed(1)], ids=["u1", "s1"])
def test_one_bit_ports(make_design, tmp_path, element):
    """A 1-bit payload reads as a cocotb ``Logic``, not a ``LogicArray``: both the driver and
    the monitor handle it."""
    component, meta = make_design((6,), 1, element, addend=1, depth=1)
    x = np.array([[0, 1, 1, 0, 0, 1], [1, 1, 1, 1, 1, 1]]) - (1 if element.signed else 0)
    run = run_design(meta, x, out_dir=tmp_path, backpressure=0.3, seed=SEED)
    assert run.outputs.tolist() == component.reference(x).tolist() == \
        ((1 - x) if not element.signed else (-1 - x)).tolist()


def test_measures_throttled_throughput(make_design, tmp_path):
    # One beat every 3 cycles, 2 beats per frame: a frame every 6 cycles.
    component, meta = make_design((2, 3), 3, signed(6), addend=-7, depth=3, interval=3)
    x = _frames(np.random.default_rng(SEED), 16, (2, 3), 6, True)
    run = run_design(meta, x, out_dir=tmp_path, seed=SEED)
    assert np.array_equal(run.outputs, component.reference(x)), f"seed {SEED}"
    assert steady_cycles_per_frame(run.frame_cycles) == 6.0
    assert np.all(np.diff(run.frame_cycles) == 6)


def test_one_build_per_design(add5, tmp_path):
    _, meta = add5
    x = _frames(np.random.default_rng(SEED), 2, (4, 3), 6, True)
    first = run_design(meta, x, out_dir=tmp_path, seed=1)
    second = run_design(meta, x, out_dir=tmp_path, seed=2)
    assert first.build_dir == second.build_dir
    assert first.build_seconds > 0 and second.build_seconds == 0
    assert first.run_dir != second.run_dir
    assert len(list((tmp_path / "sim_build").iterdir())) == 1
    config = json.loads((second.run_dir / "config.json").read_text())
    assert config["seed"] == 2 and config["backpressure"] == 0.0
    assert second.log.is_file()


def test_timeout_is_reported(make_design, tmp_path):
    _, meta = make_design((3,), 3, signed(6), stuck=True)
    x = np.zeros((2, 3), dtype=np.int64)
    with pytest.raises(SimulationError, match=r"timed out after 200 cycles: 2 of 2 input beats "
                                              r"and 0 of 2 output beats transferred \(seed 5"):
        run_design(meta, x, out_dir=tmp_path, seed=5, max_cycles=200)


def test_default_timeout_is_proportional(make_design, tmp_path):
    _, meta = make_design((3,), 3, signed(6), stuck=True)
    # 2 frames, latency 2, 1 beat per frame: 4 * (2 + 2 + 2) + 1000 cycles.
    with pytest.raises(SimulationError, match=r"timed out after 1024 cycles"):
        run_design(meta, np.zeros((2, 3), dtype=np.int64), out_dir=tmp_path)


def test_surplus_beats_are_reported(make_design, tmp_path):
    # The design sends two beats per frame while its metadata promises one.
    _, meta = make_design((2, 3), 3, signed(6), out_frame_shape=(3,))
    with pytest.raises(SimulationError, match=r"design sent 4 more output beats than the 4 "
                                              r"expected for 4 frames"):
        run_design(meta, np.zeros((4, 2, 3), dtype=int), out_dir=tmp_path)


def test_missing_port_is_reported(add5, tmp_path):
    _, meta = add5
    verilog = tmp_path / "renamed.v"
    text = open(meta["verilog"]).read().replace("o_stream__valid", "o_stream__vld")
    verilog.write_text(text)
    with pytest.raises(SimulationError, match=r"design has no port o_stream__valid; a stream "
                                              r"needs ports o_stream__payload, o_stream__valid "
                                              r"and o_stream__ready \(seed 0"):
        run_design(meta | {"verilog": str(verilog)}, np.zeros((1, 4, 3), dtype=int),
                   out_dir=tmp_path)


def test_frames_are_checked_before_running(add5, tmp_path):
    _, meta = add5
    with pytest.raises(ValueError, match=r"frames must have shape \(N, 4, 3\) for this design, "
                                         r"not \(2, 12\)"):
        run_design(meta, np.zeros((2, 12), dtype=int), out_dir=tmp_path)
    x = np.zeros((2, 4, 3), dtype=int)
    x[1, 2, 0] = 32
    with pytest.raises(ValueError, match=r"6-bit signed input range -32\.\.31; frame 1 has 32 "
                                         r"at \(2, 0\)"):
        run_design(meta, x, out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"backpressure must be a probability in \[0, 1\), "
                                         r".*not 1\.0"):
        run_design(meta, np.zeros((2, 4, 3), dtype=int), out_dir=tmp_path, backpressure=1.0)
    with pytest.raises(ValueError, match=r"\"bursty:H,L\" \(mean cycles high and low, at least "
                                         r"1\) or \"stall:S,N\" .*not 'bursty:0,5'"):
        run_design(meta, np.zeros((2, 4, 3), dtype=int), out_dir=tmp_path,
                   backpressure="bursty:0,5")
    assert not (tmp_path / "sim_run").exists()


def test_metadata_problems_are_listed(add5, tmp_path):
    _, meta = add5
    bad = json.loads(json.dumps(meta))
    bad["input"]["beats_per_frame"] = 3
    bad["output"]["signed"] = "yes"
    del bad["latency"]
    with pytest.raises(ValueError) as info:
        load_design(bad)
    assert str(info.value).splitlines() == [
        "design metadata is invalid:",
        "metadata input: elements_per_beat 3 * beats_per_frame 3 = 9 must equal the 12 "
        "elements of shape (4, 3)",
        "metadata output.signed must be true or false, not 'yes'",
        "metadata latency must be a non-negative integer, not None",
    ]


def test_metadata_stream_orders(add5):
    """Stream entries are checked and normalized by StreamFormat, the order and a flattened
    map's shape included."""
    _, meta = add5
    hwc = meta | {"input": meta["input"] | {"shape": [3, 2, 2], "order": "HWC"},
                  "output": meta["output"] | {"shape": [12], "order": "HWC",
                                              "map_shape": [3, 2, 2]}}
    loaded = load_design(hwc)
    assert loaded["input"] == meta["input"] | {"shape": [3, 2, 2], "order": "HWC"}
    assert loaded["output"]["map_shape"] == [3, 2, 2] and loaded["output"]["order"] == "HWC"
    bad = hwc | {"input": hwc["input"] | {"shape": [12]},
                 "output": hwc["output"] | {"map_shape": [2, 2, 2]}}
    with pytest.raises(ValueError) as info:
        load_design(bad)
    assert str(info.value).splitlines() == [
        "design metadata is invalid:",
        "metadata input: map_shape must have a channel axis and at least one spatial axis "
        "for order \"HWC\", not (12,)",
        "metadata output: map_shape (2, 2, 2) must hold the 12 elements of shape (12,), not 8",
    ]


def test_metadata_from_directory(add5):
    _, meta = add5
    directory = meta["verilog"].rsplit("/", 1)[0]
    loaded = load_design(directory)
    assert loaded["verilog"] == meta["verilog"]
    # Streams without an order are in C order.
    assert loaded["input"] == meta["input"] | {"order": "C"}
    assert loaded["output"] == meta["output"] | {"order": "C"}
    with pytest.raises(FileNotFoundError, match="design Verilog file .*missing.v does not exist"):
        load_design(meta | {"verilog": directory + "/missing.v"})


def test_missing_simulator(add5, tmp_path, monkeypatch):
    _, meta = add5
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError, match=r"needs `iverilog`, which is not on PATH; install "
                                             r"Icarus Verilog with `apt-get install -y iverilog`"):
        check_simulator("icarus")
    with pytest.raises(ToolchainError, match="iverilog"):
        run_design(meta, np.zeros((1, 4, 3), dtype=int), out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"simulator must be one of 'icarus', 'verilator', not "
                                         r"'modelsim'"):
        check_simulator("modelsim")


@pytest.mark.verilator
def test_verilator_matches_icarus(add5, tmp_path):
    component, meta = add5
    x = _frames(np.random.default_rng(SEED), 30, (4, 3), 6, True)
    icarus = run_design(meta, x, out_dir=tmp_path, backpressure=0.5, seed=SEED)
    verilator = run_design(meta, x, out_dir=tmp_path, simulator="verilator", backpressure=0.5,
                           seed=SEED)
    assert np.array_equal(verilator.outputs, component.reference(x)), f"seed {SEED}"
    # The stream agents sample at the falling edge, so both simulators see the same timing.
    assert np.array_equal(verilator.frame_cycles, icarus.frame_cycles), f"seed {SEED}"
    assert np.array_equal(verilator.input_cycles, icarus.input_cycles), f"seed {SEED}"
    assert (verilator.build_dir / "top").is_file()
    # Amaranth's output has width warnings; -Wno-fatal keeps them from stopping the build.
    assert "%Warning-WIDTH" in (verilator.build_dir / "build.log").read_text()
