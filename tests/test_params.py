"""The job parameters (params.py): parsing, limits, and the schemas and form made from one declaration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from gateway_dask_zarr.errors import ServiceError
from gateway_dask_zarr.jobs import Job, document_schema
from gateway_dask_zarr.kinds.registry import request_schema
from gateway_dask_zarr.params import PARAMETERS, JobRequest
from gateway_dask_zarr.server.edge import status_of
from gateway_dask_zarr.settings import Settings

pytestmark = pytest.mark.fast

SETTINGS = Settings()

# (parameters, status, code, field): the same table the HTTP tests once ran on a cluster.
BAD = [
    ({"shape": "abc"}, 400, "invalid_parameter", "shape"),
    ({"shape": "1000,-5"}, 400, "invalid_parameter", "shape"),
    ({"shape": "0,10"}, 400, "invalid_parameter", "shape"),
    ({"shape": "1,2,3,4,5", "chunks": "1,1,1,1,1"}, 400, "invalid_parameter", "shape"),
    ({"shape": "1000,1000", "chunks": "100"}, 400, "invalid_parameter", "chunks"),
    ({"shape": "100,100", "chunks": "200,50"}, 400, "invalid_parameter", "chunks"),
    ({"shape": "1000,1000", "chunks": "10,10"}, 400, "invalid_parameter", "chunks"),
    ({"dtype": "int8"}, 400, "invalid_parameter", "dtype"),
    ({"seed": "-1"}, 400, "invalid_parameter", "seed"),
    ({"seed": "9223372036854775808"}, 400, "invalid_parameter", "seed"),
    ({"seed": "1.5"}, 400, "invalid_parameter", "seed"),
    ({"colour": "red"}, 400, "unknown_parameter", "colour"),
    ({"shape": "200000,200000", "chunks": "1000,1000"}, 413, "array_too_large", "shape"),
    ({"shape": "20000,20000", "chunks": "20000,20000", "dtype": "float64"}, 413, "chunk_too_large", "chunks"),
    ({"shape": "60000,60000", "chunks": "128,128"}, 413, "too_many_chunks", "chunks"),
    ({"shape": [True, 3]}, 400, "invalid_parameter", "shape"),
    ({"shape": [100, 100], "chunks": [50.5, 50]}, 400, "invalid_parameter", "chunks"),
    ({"seed": "x"}, 400, "invalid_parameter", "seed"),
    ({"shape": "1000,1000", "chunks": "100,100", "shards": "1000"}, 400, "invalid_parameter", "shards"),
    ({"shape": "1000,1000", "chunks": "100,100", "shards": "150,200"}, 400, "invalid_parameter", "shards"),
    ({"shape": "1000,1000", "chunks": "100,100", "shards": "1000,1100"}, 400, "invalid_parameter", "shards"),
    ({"shape": "250,1000", "chunks": "100,100", "shards": "400,100"}, 400, "invalid_parameter", "shards"),
    ({"shape": [1000, 1000], "chunks": [100, 100], "shards": [0, 100]}, 400, "invalid_parameter", "shards"),
    # 8192 x 8192 float32 = 256 MiB is the most a shard may hold (MAX_CHUNK_BYTES): a task encodes it whole.
    ({"shape": "16384,16384", "chunks": "1024,1024", "shards": "16384,8192"}, 413, "shard_too_large", "shards"),
]


@pytest.mark.parametrize(("params", "status", "code", "field"), BAD)
def test_bad_parameters_are_refused_with_code_field_and_status(
    params: dict[str, Any], status: int, code: str, field: str
) -> None:
    with pytest.raises(ServiceError) as raised:
        JobRequest.parse(params, SETTINGS)
    assert (status_of(raised.value), raised.value.code, raised.value.field) == (status, code, field)
    assert field in raised.value.message or field.upper() in raised.value.message


def test_a_limit_is_named_in_the_message_with_sizes_a_person_reads() -> None:
    with pytest.raises(ServiceError) as raised:
        JobRequest.parse({"shape": "100000,100000", "chunks": "1000,1000"}, SETTINGS)
    assert raised.value.message == (
        "shape [100000, 100000] makes an array of 37.3 GiB (40000000000 bytes); "
        f"MAX_ARRAY_BYTES is 16 GiB ({16 * 2**30} bytes): use a smaller shape"
    )


@pytest.mark.parametrize(
    ("params", "echoed"),
    [
        ({"chunks": "0,0"}, "got chunks=0,0"),
        ({"chunks": [0, 0]}, "got chunks=[0, 0]"),
        ({"seed": True}, "got true"),
        ({"shape": [1, None]}, "got [1, null]"),
        ({"dtype": "int7"}, "got int7"),
    ],
)
def test_the_offending_value_is_echoed_in_json_spelling(params: dict[str, Any], echoed: str) -> None:
    with pytest.raises(ServiceError) as raised:
        JobRequest.parse(params, SETTINGS)
    assert raised.value.message.endswith(echoed), raised.value.message


def test_defaults_and_both_spellings() -> None:
    default = JobRequest.parse({}, SETTINGS)
    assert (default.shape, default.chunks, default.dtype) == ((1000, 1000), (100, 100), "float32")
    assert 0 <= default.seed < 2**63
    query = JobRequest.parse({"shape": "300,200", "chunks": "100,50", "dtype": "float64", "seed": "7"}, SETTINGS)
    body = JobRequest.parse({"shape": [300, 200], "chunks": [100, 50], "dtype": "float64", "seed": 7}, SETTINGS)
    assert query == body == JobRequest((300, 200), (100, 50), "float64", 7)
    assert (body.n_chunks, body.nbytes, body.chunk_bytes) == (12, 480_000, 40_000)
    assert JobRequest.parse({"shape": "1000000"}, SETTINGS).chunks == (10_000,)


def test_an_empty_value_means_the_default() -> None:
    assert JobRequest.parse({"shape": "", "seed": "", "dtype": ""}, SETTINGS).shape == (1000, 1000)
    assert JobRequest.parse({"shards": ""}, SETTINGS).shards is None
    assert JobRequest.parse({"shards": None}, SETTINGS).shards is None


def test_shards_are_whole_chunks_and_may_be_ragged_at_the_edge() -> None:
    query = JobRequest.parse({"shape": "250,330", "chunks": "100,100", "shards": "200,200", "seed": "1"}, SETTINGS)
    body = JobRequest.parse({"shape": [250, 330], "chunks": [100, 100], "shards": [200, 200], "seed": 1}, SETTINGS)
    assert query == body == JobRequest((250, 330), (100, 100), "float32", 1, (200, 200))
    # Shards may reach past the array up to whole chunks: 330 rounds up to 400.
    assert JobRequest.parse({"shape": "250,330", "chunks": "100,100", "shards": "300,400"}, SETTINGS).n_units == 1
    # 4 shards of 2 x 2 chunks; the edge ones hold 2, 2 and 1 chunks of the 9 inside the array.
    assert (body.n_units, body.n_chunks, body.unit_shape, body.unit_bytes) == (4, 12, (200, 200), 160_000)
    assert [body.chunks_in(range(u, u + 1)) for u in range(4)] == [4, 4, 2, 2]
    assert body.chunks_in(range(4)) == body.n_chunks
    assert body.document()["shards"] == [200, 200]
    plain = JobRequest.parse({"shape": "250,330", "chunks": "100,100"}, SETTINGS)
    assert (plain.shards, plain.unit_shape, plain.n_units, plain.document()["shards"]) == (None, (100, 100), 12, None)
    # The largest shard MAX_CHUNK_BYTES allows.
    assert JobRequest.parse({"shape": "8192,8192", "chunks": "1024,1024", "shards": "8192,8192"}, SETTINGS).n_units == 1


def test_the_request_schema_accepts_what_parse_accepts_and_refuses_unknowns() -> None:
    schema = request_schema()
    jsonschema.validate({"shape": [300, 200], "chunks": [100, 50], "dtype": "float64", "seed": 7}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"colour": "red"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"dtype": "int8"}, schema)
    shards = _json_schema(schema)["properties"]["shards"]
    jsonschema.validate([1000, 1000], shards)
    jsonschema.validate(None, shards)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([0, 100], shards)


def test_the_form_has_one_field_per_parameter_with_its_default() -> None:
    fields = {p.name: p.form_field() for p in PARAMETERS}
    assert list(fields) == [p.name for p in PARAMETERS]
    assert fields["shape"]["value"] == "1000,1000"
    assert fields["dtype"]["kind"] == "select" and fields["dtype"]["value"] == "float32"
    assert fields["seed"]["placeholder"] == "random"
    # Not sharded unless asked: the page's field starts empty.
    assert (fields["shards"]["value"], fields["shards"]["placeholder"]) == ("", "none")
    assert all(f["help"] for f in fields.values())


def _json_schema(openapi: Any) -> Any:
    """An OpenAPI 3.0 schema as plain JSON Schema: `nullable: true` becomes a "null" type."""
    if isinstance(openapi, list):
        return [_json_schema(v) for v in openapi]
    if not isinstance(openapi, dict):
        return openapi
    schema = {k: _json_schema(v) for k, v in openapi.items() if k != "nullable"}
    if openapi.get("nullable"):
        schema["type"] = [openapi["type"], "null"]
    return schema


@pytest.mark.parametrize("shards", [None, (300, 100)])
def test_the_job_document_matches_its_schema_exactly(shards: tuple[int, int] | None) -> None:
    request = JobRequest((300, 200), (100, 50), "float64", 7, shards)
    job = Job("j1", request, "ann", deadline=0.0, created=datetime(2026, 1, 1, tzinfo=UTC))
    document = job.document()
    schema = _json_schema(document_schema())
    assert set(document) == set(schema["properties"])
    jsonschema.validate(document, schema)
    assert document["shards"] == (list(shards) if shards else None)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**document, "extra": 1}, schema)
