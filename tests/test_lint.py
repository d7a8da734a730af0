"""Static checks of the project's Python: no unused imports or variables, no undefined names."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("quant", "hwgen", "sim", "boards", "tests", "benchmarks", "examples")


def test_pyflakes_finds_nothing():
    run = subprocess.run([sys.executable, "-m", "pyflakes", *PACKAGES], cwd=ROOT,
                         capture_output=True, text=True)
    problems = [line for line in (run.stdout + run.stderr).splitlines()
                if "unable to detect undefined names" not in line]
    assert not problems, "\n".join(problems)
