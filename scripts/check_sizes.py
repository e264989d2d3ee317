"""Fail when a module, class or function of the package is over the project's size limits.

Limits (the project's standard): a module 350 lines, a class 150, a function 60. A unit at
90% of its limit or more is printed as a warning (it does not fail): split it before it grows.
Run by `make lint`: `python scripts/check_sizes.py`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gateway_dask_zarr"
MODULE_LINES, CLASS_LINES, FUNCTION_LINES = 350, 150, 60
WARN_AT = 0.9


def sizes(path: Path) -> list[tuple[str, int, int]]:
    """Every unit of a file as (where, lines, limit): the module, then its classes and functions."""
    text = path.read_text()
    name = path.relative_to(ROOT)
    found = [(f"{name}: module", len(text.splitlines()), MODULE_LINES)]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            limit = CLASS_LINES if isinstance(node, ast.ClassDef) else FUNCTION_LINES
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            found.append((f"{name}:{node.lineno}: {node.name}", lines, limit))
    return found


def main() -> int:
    """Print every unit over its limit (exit 1) and, as warnings, every one within 10% of it."""
    units = [unit for path in sorted(PACKAGE.rglob("*.py")) for unit in sizes(path)]
    over = [f"{where} has {lines} lines (limit {limit})" for where, lines, limit in units if lines > limit]
    near = [
        f"warning: {where} has {lines} lines (limit {limit})"
        for where, lines, limit in units
        if WARN_AT * limit <= lines <= limit
    ]
    for line in over + near:
        print(line)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
