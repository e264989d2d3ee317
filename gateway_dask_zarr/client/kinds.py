"""The job kinds a gateway declares, read from its OpenAPI document: the command line's `run` flags follow from them.

The declarations themselves (kinds/, params.py) live on the server's layers, which the client
may not import; the server publishes them in GET /openapi.json as one `JobRequest_<kind>`
schema per kind (its properties: `kind` and the kind's parameters), listed by `JobRequest`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway_dask_zarr.client.client import GatewayClient


@dataclass(frozen=True)
class DeclaredKind:
    """A job kind as the gateway declares it: name, help, parameters (name -> JSON schema), and if it is the default."""

    name: str
    help: str
    parameters: dict[str, dict[str, Any]]
    default: bool


def declared_kinds(gateway: GatewayClient) -> list[DeclaredKind]:
    """The gateway's job kinds, in its order; GatewayError if /openapi.json cannot be read."""
    schemas = gateway.request("GET", "/openapi.json").json()["components"]["schemas"]
    # A gateway from before job kinds has one JobRequest schema: its one kind, random.
    refs = schemas["JobRequest"].get("oneOf") or [{"$ref": "#/components/schemas/JobRequest"}]
    kinds = []
    for ref in refs:
        schema = schemas[ref["$ref"].rsplit("/", 1)[1]]
        parameters = dict(schema["properties"])
        kind = parameters.pop("kind", {"enum": ["random"]})
        # The default kind's body may leave `kind` out.
        default = "kind" not in schema.get("required", [])
        kinds.append(DeclaredKind(kind["enum"][0], kind.get("description", ""), parameters, default))
    return kinds
