"""Fail when a module, class or function of the package is over the project's size limits.

Limits (the project's standard): a module 350 lines, a class 150, a function 60.
Run by `make lint`: `python scripts/check_sizes.py`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gateway_dask_zarr"
MODULE_LINES, CLASS_LINES, FUNCTION_LINES = 350, 150, 60


def findings(path: Path) -> list[str]:
    """Every size limit a file is over, one line each."""
    text = path.read_text()
    name = path.relative_to(ROOT)
    found = []
    lines = len(text.splitlines())
    if lines > MODULE_LINES:
        found.append(f"{name}: module of {lines} lines (limit {MODULE_LINES})")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            limit = CLASS_LINES if isinstance(node, ast.ClassDef) else FUNCTION_LINES
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            if size > limit:
                found.append(f"{name}:{node.lineno}: {node.name} has {size} lines (limit {limit})")
    return found


def main() -> int:
    """Print every finding; exit 1 if there is one."""
    found = [line for path in sorted(PACKAGE.rglob("*.py")) for line in findings(path)]
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
