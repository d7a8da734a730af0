"""Build a Verilog design with Icarus and run a cocotb test module on it (one build per design).

The test module reads its configuration from a JSON file named by an environment variable and
writes what it observed to ``results.json``; failures of its assertions come back as an
AssertionError with the cocotb messages and the end of the simulator log.
"""

import json
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

TIMESCALE = ("1ns", "1ps")


def build(sources, toplevel, build_dir):
    """Compile ``sources`` with Icarus into ``build_dir``; return the runner."""
    from cocotb_tools.runner import get_runner

    runner = get_runner("icarus")
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    runner.build(sources=[str(s) for s in sources], hdl_toplevel=toplevel,
                 build_dir=build_dir, timescale=TIMESCALE, always=True,
                 log_file=build_dir / "build.log")
    return runner


def _failures(results_xml):
    if not Path(results_xml).is_file():
        return ["the simulation ended without a results file"]
    failures = []
    for case in ElementTree.parse(results_xml).getroot().iter("testcase"):
        for problem in list(case.findall("failure")) + list(case.findall("error")):
            failures.append(f"{case.get('name')}: {problem.get('message') or problem.text}")
    return failures


def run(runner, *, toplevel, module, config, env_var, work_dir, build_dir, seed=0):
    """Run the cocotb ``module``; return ``results.json`` as a dict."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    results = work_dir / "results.json"
    results.unlink(missing_ok=True)
    config = dict(config, results=str(results), seed=seed)
    config_path = work_dir / "config.json"
    config_path.write_text(json.dumps(config, indent=1))
    log, xml = work_dir / "sim.log", work_dir / "results.xml"
    try:
        runner.test(test_module=module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                    build_dir=build_dir, test_dir=work_dir,
                    extra_env={env_var: str(config_path)}, results_xml=str(xml),
                    timescale=TIMESCALE, log_file=log, seed=seed)
    except SystemExit:
        pass  # failures are read from the results file below
    failures = _failures(xml)
    if failures:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:]) \
            if log.is_file() else ""
        raise AssertionError("cocotb failures (seed {}):\n{}\n--- {}:\n{}".format(
            seed, "\n".join(failures), log, tail))
    return json.loads(results.read_text())


def assert_frames_equal(got, expected, *, what, seed):
    """Exact comparison; the message names the first mismatching frame and index."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, expected {expected.shape}"
    bad = np.argwhere(got != expected)
    if len(bad):
        first = tuple(int(i) for i in bad[0])
        raise AssertionError(f"{what}: {len(bad)} mismatches, first at frame {first[0]}, index "
                             f"{first[1:]}: expected {expected[first]}, got {got[first]} "
                             f"(seed {seed})")
