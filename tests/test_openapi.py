"""The OpenAPI document (server/openapi.py): every route of the API, the request schema, the probes open."""

from __future__ import annotations

import json

import jsonschema
import pytest

from gateway_dask_zarr.kinds.registry import KINDS, request_schema
from gateway_dask_zarr.params import PARAMETERS
from gateway_dask_zarr.server.edge import error_body
from gateway_dask_zarr.server.openapi import openapi_document
from gateway_dask_zarr.version import __version__

pytestmark = pytest.mark.fast

ROUTES = {
    "/run": {"get"},
    "/submit_job/{job_id}": {"get"},
    "/jobs": {"get", "post"},
    "/jobs/{job_id}": {"get", "delete"},
    "/jobs/{job_id}/preview.png": {"get"},
    "/healthz": {"get"},
    "/readyz": {"get"},
    "/metrics": {"get"},
    "/openapi.json": {"get"},
}


def test_every_route_of_the_api_is_described_with_its_methods() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.0") and document["info"]["version"] == __version__
    for path, methods in ROUTES.items():
        assert methods <= set(document["paths"][path]), path
    # JSON as served, references resolvable within the document.
    text = json.dumps(document)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        name = ref.removeprefix("#/components/schemas/")
        assert name in document["components"]["schemas"], ref


def test_errors_are_described_with_the_one_error_body() -> None:
    document = openapi_document()
    run = document["paths"]["/run"]["get"]["responses"]
    assert "200" in run
    assert run["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    error = document["components"]["schemas"]["Error"]
    jsonschema.validate(error_body("invalid_parameter", "shape must be positive", "shape"), error)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"message": "no error object"}, error)


def test_the_request_schemas_are_the_kinds_declarations() -> None:
    schemas = openapi_document()["components"]["schemas"]
    schema = schemas["JobRequest_random"]
    assert schema == request_schema()
    assert {k: v for k, v in schema["properties"].items() if k != "kind"} == {
        p.name: p.json_schema() for p in PARAMETERS
    }
    jsonschema.validate({"shape": [1000, 1000], "chunks": [100, 100], "seed": 7}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"shape": [1000, 1000], "colour": "red"}, schema)
    jsonschema.validate({"kind": "rechunk", "input": "a1b2", "chunks": [10, 10]}, schemas["JobRequest_rechunk"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"kind": "reduce", "input": "a1b2", "op": "median"}, schemas["JobRequest_reduce"])
    assert {"$ref": "#/components/schemas/JobRequest_reduce"} in schemas["JobRequest"]["oneOf"]


def test_the_run_routes_document_every_kinds_parameters_and_name_the_kinds_of_each() -> None:
    paths = openapi_document()["paths"]
    for operation in (paths["/run"]["get"], paths["/submit_job/{job_id}"]["get"]):
        query = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
        assert query["kind"]["schema"]["enum"] == list(KINDS)
        for kind in KINDS.values():
            # One line per kind in the description, naming its parameters; each parameter names its kinds.
            line = next(ln for ln in operation["description"].splitlines() if ln.startswith(f"- `{kind.name}`: "))
            assert line.endswith(f"Parameters: {', '.join(p.name for p in kind.parameters)}.")
            for p in kind.parameters:
                assert query[p.name]["schema"] == p.query_schema()
                kinds = query[p.name]["description"].rsplit("Kinds: ", 1)[1].rstrip(".").split(", ")
                assert kind.name in kinds, (p.name, kinds)
        assert set(query) == {"kind", *(p.name for k in KINDS.values() for p in k.parameters)}
        assert query["op"]["description"].endswith("Kinds: reduce.")
        assert query["chunks"]["description"].endswith("Kinds: random, rechunk, reduce.")
    # The body: one schema per kind, each its declared parameters exactly.
    schemas = openapi_document()["components"]["schemas"]
    for kind in KINDS.values():
        properties = schemas[f"JobRequest_{kind.name}"]["properties"]
        assert properties.pop("kind")["enum"] == [kind.name]
        assert properties == {p.name: p.json_schema() for p in kind.parameters}
    assert paths["/jobs"]["post"]["description"] == paths["/run"]["get"]["description"]


def test_secured_needs_a_bearer_token_except_for_the_probes() -> None:
    assert "security" not in openapi_document()
    document = openapi_document(secured=True)
    assert document["security"] == [{"bearer": []}]
    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert document["paths"]["/healthz"]["get"]["security"] == []
    assert document["paths"]["/readyz"]["get"]["security"] == []
    assert "security" not in document["paths"]["/jobs"]["get"]
