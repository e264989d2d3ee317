"""Bad input: a clear 4xx JSON error naming the parameter, and nothing written."""

from __future__ import annotations

from typing import Any

import pytest

# One case per error code through the HTTP layer, checking that nothing is written; every
# parameter case is in tests/test_params.py, which needs no cluster.
BAD_QUERIES = [
    ("shape=abc", 400, "invalid_parameter", "shape"),
    ("seed=1&seed=2", 400, "invalid_parameter", "seed"),
    ("colour=red", 400, "unknown_parameter", "colour"),
    ("shape=200000,200000&chunks=1000,1000", 413, "array_too_large", "shape"),
    ("shape=20000,20000&chunks=20000,20000&dtype=float64", 413, "chunk_too_large", "chunks"),
    ("shape=60000,60000&chunks=128,128", 413, "too_many_chunks", "chunks"),
]


@pytest.mark.parametrize(("query", "status", "code", "field"), BAD_QUERIES)
def test_bad_run_query_is_refused_and_writes_nothing(
    client: Any, s3fs_client: Any, query: str, status: int, code: str, field: str
) -> None:
    response = client.get(f"/run?{query}")
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["field"] == field
    assert field in error["message"] or field.upper() in error["message"]
    assert s3fs_client.find("test-bucket") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"shape": [True, 3]}, "shape"),
        ({"whatever": 1}, "whatever"),
    ],
)
def test_bad_post_body_is_refused_and_writes_nothing(
    client: Any, s3fs_client: Any, body: dict[str, Any], field: str
) -> None:
    response = client.post("/jobs", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field
    assert s3fs_client.find("test-bucket") == []


@pytest.mark.parametrize("raw", [b"[1, 2]", b"not json", b'"shape"'])
def test_post_body_must_be_a_json_object(client: Any, raw: bytes) -> None:
    response = client.post("/jobs", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_body"


def test_a_body_that_does_not_parse_is_said_so_with_the_position(client: Any) -> None:
    response = client.post("/jobs", data=b'{"shape": [10, 10] "seed": 1}', content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["message"].startswith(
        "the body is not JSON: Expecting ',' delimiter at line 1, column 20"
    )


@pytest.mark.parametrize("job_id", [".hidden", "a" * 65, "bad id", "x%00y", "semi;colon"])
def test_bad_job_ids_are_refused(client: Any, s3fs_client: Any, job_id: str) -> None:
    response = client.get(f"/submit_job/{job_id}?shape=100,100&chunks=50,50")
    assert response.status_code in (400, 404)
    assert "error" in response.get_json()
    assert s3fs_client.find("test-bucket") == []


@pytest.mark.parametrize("path", ["/jobs?limit=0", "/jobs?limit=abc", "/jobs?limit=5000", "/jobs?sort=x"])
def test_bad_list_parameters(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] in ("invalid_parameter", "unknown_parameter")


def test_unknown_route_and_method_are_json(client: Any) -> None:
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    wrong = client.delete("/run")
    assert wrong.status_code == 405 and wrong.get_json()["error"]["code"] == "method_not_allowed"
