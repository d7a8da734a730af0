"""Differential testing on seeded random graphs (see :mod:`tests.graphgen`).

Every case is a small valid graph over every op of the IR with random precisions, folding,
multiplier family, LUT lanes, ROM placement and back-pressure. The golden equals a loop-based
reference of the documented integer semantics; the generated Verilog, simulated in cocotb,
equals the golden on every output, and without back-pressure its measured frame interval and
latency equal the model's. A failure names the seed and the case in one line: replay it with
``python -m tests.graphgen SEED``.
"""

import numpy as np
import pytest

import hwgen
import quant
import sim
from hwgen.generate import compile_graph

from .graphgen import random_case, random_inputs
from .quant import loop_reference

#: Cases simulated in the default tier, and in the slow tier.
DEFAULT_SEEDS = range(24)
SLOW_SEEDS = range(24, 324)


@pytest.mark.parametrize("seed", range(300))
def test_golden_equals_the_loop_reference(seed):
    case = random_case(seed)
    x = random_inputs(case.graph, 3, seed)
    expected = loop_reference.run(case.graph, x)
    got = quant.run(case.graph, x)[case.graph.output]
    assert np.array_equal(got, expected), case.summary()


def check_case(seed, tmp_path):
    case = random_case(seed)
    meta = hwgen.generate(case.graph, tmp_path / "rtl", **case.options)
    x = random_inputs(case.graph, case.frames, seed)
    result = sim.simulate(case.graph, x, out_dir=tmp_path, design=meta,
                          backpressure=case.backpressure, seed=seed, check=False)
    assert result.ok, f"{result.describe()}\n{case.summary()}"
    if case.backpressure == 0:
        assert result.cycles_per_frame == meta["cycles_per_frame"], \
            f"interval: model {meta['cycles_per_frame']}, measured " \
            f"{result.cycles_per_frame}\n{case.summary()}"
        if not meta["latency_is_estimate"]:
            assert result.frame_latency == meta["latency"], \
                f"latency: model {meta['latency']}, measured {result.frame_latency}\n" \
                f"{case.summary()}"


def test_every_case_elaborates():
    """Every case of both tiers builds its blocks (seconds, not the slow tier's hour): a
    folding the lowering cannot build fails here first."""
    for seed in (*DEFAULT_SEEDS, *SLOW_SEEDS):
        case = random_case(seed)
        try:
            compile_graph(case.graph, **case.options)
        except Exception as error:
            raise AssertionError(f"{error}\n{case.summary()}") from error


@pytest.mark.parametrize("seed", DEFAULT_SEEDS)
def test_rtl_equals_golden(seed, tmp_path):
    check_case(seed, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW_SEEDS)
def test_rtl_equals_golden_slow(seed, tmp_path):
    check_case(seed, tmp_path)
