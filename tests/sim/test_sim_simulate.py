"""sim.simulate: golden vs RTL on a flatten-only graph and identity stand-in designs."""

import json
import sys
import types

import numpy as np
import pytest
from amaranth import signed

from quant.graph import InputSpec, QGraph, flatten
from sim import SimulationError, SimulationResult, simulate

SEED = 11


def flatten_graph():
    """A graph the golden treats as identity on (2, 3) signed 6-bit inputs -> (6,)."""
    return QGraph(InputSpec((2, 3), bits=6, signed=True), [flatten("flat")])


@pytest.fixture
def identity(make_design):
    _, meta = make_design((2, 3), 3, signed(6), out_frame_shape=(6,), addend=0, depth=2)
    return meta


@pytest.fixture
def broken(make_design):
    # Lane 1 of a beat is one too high whenever it is 5.
    _, meta = make_design((2, 3), 3, signed(6), out_frame_shape=(6,), addend=0, depth=2,
                          fault=(1, 5))
    return meta


def _inputs(n, seed=SEED):
    rng = np.random.default_rng(seed)
    x = rng.integers(-32, 31, size=(n, 2, 3), endpoint=True)
    x[x == 5] = 4
    x[0] = [[-32, 31, 0], [-1, 1, -32]]
    return x


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["no-backpressure", "backpressure"])
def test_rtl_equals_golden(identity, tmp_path, backpressure):
    x = _inputs(50)
    result = simulate(flatten_graph(), x, out_dir=tmp_path, design=identity,
                      backpressure=backpressure, seed=SEED)
    assert isinstance(result, SimulationResult)
    assert result.ok and result.mismatches == 0 and result.first_mismatch is None
    assert result.outputs_compared == 50 * 6
    assert np.array_equal(result.outputs, x.reshape(50, 6))
    assert np.array_equal(result.golden, x.reshape(50, 6))
    assert result.seed == SEED and result.simulator == "icarus"
    assert len(result.frame_cycles) == 50
    if backpressure == 0.0:
        # Two beats per frame, one beat per cycle: exactly two cycles per frame.
        assert result.cycles_per_frame == 2.0
        assert result.frame_latency == 1 + 2  # second beat one cycle later, two stages
    else:
        assert result.cycles_per_frame > 2.0
    report = json.loads((tmp_path / "sim_report.json").read_text())
    assert report["ok"] is True and report["outputs_compared"] == 300
    assert report["seed"] == SEED and report["cycles_per_frame"] == result.cycles_per_frame
    assert "equals the golden on all 300 output values" in result.describe()


def test_single_input_without_batch_axis(identity, tmp_path):
    x = _inputs(1)[0]
    result = simulate(flatten_graph(), x, out_dir=tmp_path, design=identity)
    assert result.outputs.shape == (1, 6) and result.ok
    assert result.cycles_per_frame is None  # one frame has no interval


def _faulty_inputs():
    x = _inputs(12)
    x[1, 0, 0] = 5  # lane 0: not affected by the fault
    x[3, 1, 1] = 5  # lane 1 of beat 1 of input 3: flattened output index 4
    x[7, 0, 1] = 5  # lane 1 of beat 0 of input 7: flattened output index 1
    return x


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["no-backpressure", "backpressure"])
def test_mismatch_is_reported(broken, tmp_path, backpressure):
    x = _faulty_inputs()
    with pytest.raises(SimulationError) as info:
        simulate(flatten_graph(), x, out_dir=tmp_path, design=broken,
                 backpressure=backpressure, seed=SEED)
    message = str(info.value)
    assert message == (f"RTL differs from the golden in 2 of 72 output values; first at input "
                       f"3, output index (4,): expected 5, got 6 (simulator icarus, "
                       f"backpressure {backpressure:g}, seed {SEED})")
    result = info.value.result
    assert result.mismatches == 2
    assert json.loads((tmp_path / "sim_report.json").read_text())["first_mismatch"] == {
        "input_index": 3, "output_index": [4], "expected": 5, "got": 6}


def test_mismatch_returned_without_check(broken, tmp_path):
    x = _faulty_inputs()
    result = simulate(flatten_graph(), x, out_dir=tmp_path, design=broken, seed=SEED,
                      check=False)
    assert not result.ok and result.mismatches == 2
    first = result.first_mismatch
    assert (first.input_index, first.output_index, first.expected, first.got) == (3, (4,), 5, 6)
    differ = np.argwhere(result.outputs != result.golden).tolist()
    assert differ == [[3, 4], [7, 1]]


@pytest.mark.parametrize("inputs,message", [
    (np.zeros((4, 6), dtype=int), r"inputs must have shape \(2, 3\) or \(N, 2, 3\), not "
                                  r"\(4, 6\)"),
    (np.full((2, 2, 3), 32), r"inputs must lie in the 6-bit signed range -32\.\.31"),
    (np.zeros((2, 2, 3)), r"inputs must be integers, not float64"),
], ids=["shape", "range", "dtype"])
def test_bad_inputs_simulate_nothing(identity, tmp_path, inputs, message):
    with pytest.raises(ValueError, match=message):
        simulate(flatten_graph(), inputs, out_dir=tmp_path, design=identity)
    assert not (tmp_path / "sim_build").exists() and not (tmp_path / "sim_run").exists()


def test_design_must_fit_graph(make_design, tmp_path):
    _, meta = make_design((2, 3), 3, signed(6), addend=0)  # output (2, 3), graph gives (6,)
    with pytest.raises(ValueError, match=r"design output shape \(2, 3\) does not match the "
                                         r"graph output shape \(6,\)"):
        simulate(flatten_graph(), _inputs(2), out_dir=tmp_path, design=meta)
    _, meta = make_design((6,), 3, signed(6), addend=0)
    with pytest.raises(ValueError, match=r"design input shape \(6,\) does not match the graph "
                                         r"input shape \(2, 3\)"):
        simulate(flatten_graph(), _inputs(2), out_dir=tmp_path, design=meta)


def test_bad_arguments(identity, tmp_path):
    with pytest.raises(ValueError, match=r"backpressure must be a probability in \[0, 1\), "
                                         r".*not -0\.1"):
        simulate(flatten_graph(), _inputs(2), out_dir=tmp_path, design=identity,
                 backpressure=-0.1)
    with pytest.raises(ValueError, match=r"simulator must be one of 'icarus', 'verilator'"):
        simulate(flatten_graph(), _inputs(2), out_dir=tmp_path, design=identity,
                 simulator="xsim")


def test_design_generated_by_hwgen(identity, tmp_path, monkeypatch):
    calls = []

    def generate(graph, out_dir, folding=None):
        calls.append((graph, out_dir, folding))
        return identity

    monkeypatch.setitem(sys.modules, "hwgen", types.SimpleNamespace(generate=generate))
    graph = flatten_graph()
    result = simulate(graph, _inputs(3), out_dir=tmp_path, folding={"flat": 1})
    assert result.ok
    assert calls == [(graph, tmp_path / "rtl", {"flat": 1})]
