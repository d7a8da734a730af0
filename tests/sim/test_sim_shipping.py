"""sim.shipping: a build packed here runs from another folder with only the shipped files;
a build made for another platform is rebuilt there."""

import dataclasses

import numpy as np
import pytest
from amaranth import signed

from sim import run_design
from sim.runner import build_design, load_design
from sim.shipping import ShippedBuild, platform_fingerprint


@pytest.fixture
def add3(make_design):
    """+3 on signed 6-bit elements, 3 per beat, frames of 4 beats."""
    return make_design((4, 3), 3, signed(6), addend=3, depth=2)


def _frames(n):
    return np.random.default_rng(5).integers(-32, 32, (n, 4, 3))


def _packed(meta, tmp_path, simulator):
    meta = load_design(meta)
    build_dir, digest, _ = build_design(meta, out_dir=tmp_path / "here", simulator=simulator)
    return ShippedBuild.pack(meta, build_dir, digest, simulator), digest


@pytest.mark.parametrize("simulator", ["icarus", pytest.param("verilator",
                                                              marks=pytest.mark.verilator)])
def test_a_shipped_build_runs_elsewhere(add3, tmp_path, simulator):
    component, meta = add3
    build, digest = _packed(meta, tmp_path, simulator)
    assert build.fingerprint == platform_fingerprint(simulator)
    there = tmp_path / "there"
    installed, how, _ = build.install(there)
    assert how == "shipped"
    assert installed["verilog"].startswith(str(there))
    run_file = "sim.vvp" if simulator == "icarus" else installed["top"]
    assert sorted(p.name for p in (there / "sim_build" / f"{simulator}-{digest}").iterdir()) \
        == sorted([run_file, "build.ok"])
    x = _frames(10)
    run = run_design(installed, x, out_dir=there, simulator=simulator)
    assert run.build_seconds == 0.0  # the shipped build, not a new one
    np.testing.assert_array_equal(run.outputs, component.reference(x))
    assert build.install(there)[1] == "cached"


def test_a_build_for_another_platform_is_rebuilt(add3, tmp_path):
    component, meta = add3
    build, digest = _packed(meta, tmp_path, "icarus")
    foreign = dataclasses.replace(build, fingerprint=(("machine", "another"),))
    there = tmp_path / "there"
    installed, how, _ = foreign.install(there)
    assert how == "rebuilt"
    assert (there / "sim_build" / f"icarus-{digest}" / "build.log").is_file()
    x = _frames(5)
    run = run_design(installed, x, out_dir=there)
    assert run.build_seconds == 0.0
    np.testing.assert_array_equal(run.outputs, component.reference(x))
