"""The job kinds in the OpenAPI document: the run routes' query parameters and description, from the declarations."""

from __future__ import annotations

from typing import Any

from gateway_dask_zarr.kinds.registry import KINDS, all_parameters, kind_parameter


def takers(name: str) -> list[str]:
    """The kinds that declare a parameter of this name."""
    return [kind.name for kind in KINDS.values() if name in [p.name for p in kind.parameters]]


def query_parameters() -> list[dict[str, Any]]:
    """`kind`, then every kind's parameters, each once, its description naming the kinds that take it."""
    kind = kind_parameter()
    parameters = [{"name": kind.name, "in": "query", "description": kind.help, "schema": kind.query_schema()}]
    for p in all_parameters():
        description = f"{p.help} Kinds: {', '.join(takers(p.name))}."
        parameters.append({"name": p.name, "in": "query", "description": description, "schema": p.query_schema()})
    return parameters


def run_description() -> str:
    """What each kind makes and the parameters it takes (another kind's are refused)."""
    lines = [f"- `{k.name}`: {k.help} Parameters: {', '.join(p.name for p in k.parameters)}." for k in KINDS.values()]
    return "The job kinds (`kind`, default `random`); a kind refuses another kind's parameters.\n\n" + "\n".join(lines)
