"""The one-way import rule (pyproject.toml's import-linter contracts) holds, and a wrong-way import breaks it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))

pytestmark = pytest.mark.fast


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the package in `tree` with that tree's pyproject.toml."""
    # Wide, so that each contract's name and verdict stay on one line.
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "400"}
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120)


def copy_of_the_package(tmp_path: Path) -> Path:
    """The package and pyproject.toml, copied into `tmp_path`."""
    shutil.copytree(
        ROOT / "gateway_dask_zarr", tmp_path / "gateway_dask_zarr", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_package_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_imports(copy_of_the_package(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong_import", "contract"),
    [
        ("worker/blocks.py", "import gateway_dask_zarr.jobs.runner", "Layers"),
        ("settings.py", "import gateway_dask_zarr.cluster.manager", "Layers"),
        ("client/client.py", "import gateway_dask_zarr.storage.backends", "The client speaks HTTP only"),
        ("jobs/manager.py", "import flask", "Flask, werkzeug and JupyterHub only under server/"),
    ],
)
def test_a_wrong_way_import_breaks_a_contract(tmp_path: Path, module: str, wrong_import: str, contract: str) -> None:
    tree = copy_of_the_package(tmp_path)
    path = tree / "gateway_dask_zarr" / module
    path.write_text(path.read_text() + f"\n{wrong_import}  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout
