"""The job kinds this service runs, by name; a new kind is one module and one line here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway_dask_zarr.kinds.base import Kind
from gateway_dask_zarr.kinds.random import RANDOM
from gateway_dask_zarr.kinds.rechunk import RECHUNK
from gateway_dask_zarr.kinds.reduce import REDUCE
from gateway_dask_zarr.param_types import Choice, Parameter

KINDS: dict[str, Kind] = {kind.name: kind for kind in (RANDOM, RECHUNK, REDUCE)}


def kind_parameter() -> Choice:
    """The kind parameter, its choices the registered kinds."""
    return Choice("kind", "The job kind.", default=RANDOM.name, choices=tuple(KINDS))


def kind_of(params: Mapping[str, Any]) -> Kind:
    """The kind a request names (random if none)."""
    name = params.get("kind") or RANDOM.name
    return KINDS[kind_parameter().parse(name)]


def all_parameters() -> list[Parameter]:
    """Every kind's parameters, each name once (the job document has them all)."""
    found: dict[str, Parameter] = {}
    for kind in KINDS.values():
        for parameter in kind.parameters:
            found.setdefault(parameter.name, parameter)
    return list(found.values())


def request_schema(kind: Kind = RANDOM) -> dict[str, Any]:
    """The JSON schema of a request body of one kind."""
    names = {"enum": [kind.name], "type": "string", "description": kind.help}
    properties = {"kind": names, **{p.name: p.json_schema() for p in kind.parameters}}
    schema = {"type": "object", "additionalProperties": False, "properties": properties}
    # The random kind is the default: its body may leave kind out.
    required = [] if kind is RANDOM else ["kind", *(["input"] if kind.derived else [])]
    return {**schema, "required": required} if required else schema


def request_schemas() -> dict[str, dict[str, Any]]:
    """The OpenAPI schemas of a job request body, one per kind (JobRequest_<kind>), and JobRequest, one of them."""
    schemas = {f"JobRequest_{kind.name}": request_schema(kind) for kind in KINDS.values()}
    schemas["JobRequest"] = {"oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in schemas]}
    return schemas
