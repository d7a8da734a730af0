"""Import layers: quant <- generator core <- sim, boards <- application layer (hwgen.app).

`lint-imports` checks the contracts of pyproject.toml; these tests run it (so the default test
run enforces the layers), keep the core's module list complete, and check that `import hwgen`
loads neither the layers above it nor torch.
"""

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE_CONTRACT = "the generator core imports no sim, boards, application layer or torch"


def _env():
    """The environment of a child interpreter that imports this checkout's packages."""
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=str(ROOT) + (os.pathsep + path if path else ""))


def _contracts():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {c["name"]: c for c in config["tool"]["importlinter"]["contracts"]}


def _hwgen_modules():
    """Every module of the hwgen package on disk, by dotted name."""
    modules = set()
    for path in (ROOT / "hwgen").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def uncovered(modules, sources):
    """The modules of ``hwgen`` outside the application layer that no entry of ``sources``
    (packages, as import-linter reads them) covers; ``hwgen`` itself has its own contract."""
    def covered(module):
        return any(module == s or module.startswith(s + ".") for s in sources)
    return sorted(m for m in modules
                  if m != "hwgen" and m != "hwgen.app" and not m.startswith("hwgen.app.")
                  and not covered(m))


def test_lint_imports_keeps_every_contract():
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) \
        or shutil.which("lint-imports")
    assert command, "lint-imports is missing: install the dev extra (pip install -e .[dev])"
    run = subprocess.run([command, "--no-cache"], cwd=ROOT, env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout and "4 kept" in run.stdout, run.stdout


def test_every_core_module_is_in_the_core_contract():
    contract = _contracts()[CORE_CONTRACT]
    missing = uncovered(_hwgen_modules(), contract["source_modules"])
    assert not missing, (f"add {', '.join(missing)} to source_modules of the contract "
                         f"{CORE_CONTRACT!r} in pyproject.toml")
    assert set(contract["forbidden_modules"]) == {"sim", "boards", "hwgen.app", "torch"}


def test_a_new_core_module_is_reported_until_listed():
    sources = ["hwgen.blocks", "hwgen.generate"]
    modules = {"hwgen", "hwgen.generate", "hwgen.blocks", "hwgen.blocks.add", "hwgen.ops",
               "hwgen.app", "hwgen.app.cli", "hwgen.lowering"}
    assert uncovered(modules, sources) == ["hwgen.lowering", "hwgen.ops"]
    assert uncovered(modules, sources + ["hwgen.ops", "hwgen.lowering"]) == []


@pytest.mark.parametrize("statement", ["import hwgen", "import quant"])
def test_import_loads_no_upper_layer_and_no_torch(statement):
    code = (f"import sys; {statement}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sim', 'boards', "
            "'torch') or m == 'hwgen.app' or m.startswith('hwgen.app.')))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]", run.stdout


def test_import_hwgen_gives_the_generator_api():
    code = ("import hwgen; print(all(callable(getattr(hwgen, name)) for name in "
            "('generate', 'compile', 'compile_graph', 'estimate', 'metadata')))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "True", run.stdout + run.stderr
