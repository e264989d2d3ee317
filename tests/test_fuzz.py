"""Bad input: property-based fuzzing of every endpoint (hypothesis, and schemathesis from /openapi.json).

Every answer is below 500, JSON where the API promises JSON, free of tracebacks, and a refused
request writes nothing to the bucket.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway_dask_zarr.server.parts import parts
from gateway_dask_zarr.settings import Settings

# Small limits: most generated arrays are refused and the few accepted ones take a moment.
LIMITS = {"max_array_bytes": 64 * 2**10, "max_chunk_bytes": 16 * 2**10, "max_chunks": 16, "max_active_jobs": 4}
FUZZ = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
SCHEMA_EXAMPLES = 25
HYPOTHESIS_EXAMPLES = 40

INTERESTING = [
    "",
    " ",
    "0",
    "-1",
    "1",
    "10",
    "10,10",
    "4,4",
    "1000,1000",
    "1e3",
    "0x10",
    "1,,1",
    "1,2,3,4,5",
    "²",
    "١٢",
    "nan",
    "float16",
    "float32",
    "float64",
    "Float32",
    "99999999999999999999",
    "9223372036854775808",
    "..",
    "%00",
    "\x00",
    "a/b",
]
# Digits of other scripts ("²", "١٢") pass str.isdigit() but not int(): a classic 500.
texts = (
    st.sampled_from(INTERESTING)
    | st.text(st.characters(categories=("Nd", "No", "Nl")), min_size=1, max_size=4)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
)
keys = st.sampled_from(["shape", "chunks", "dtype", "seed", "limit", "id"]) | st.text(
    st.characters(exclude_categories=("Cs",)), max_size=8
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)
bodies = st.dictionaries(keys, json_values, max_size=5) | json_values


def _snapshot(s3fs_client: Any) -> list[str]:
    s3fs_client.invalidate_cache()
    return sorted(s3fs_client.find("test-bucket"))


def _check(response: Any, before: list[str], after: list[str]) -> None:
    text = response.get_data(as_text=True)
    assert response.status_code < 500, (response.status_code, text[:300])
    assert "Traceback" not in text and 'File "' not in text
    if response.status_code >= 400:
        assert response.is_json and "error" in response.get_json()
        assert after == before, "a refused request wrote to the bucket"


@pytest.fixture
def fuzz_app(make_app: Callable[..., Any], settings: Settings) -> Any:
    return make_app(settings, **LIMITS)


def _idle(app: Any) -> None:
    jobs = parts(app).service.jobs
    for _ in range(600):
        if jobs.active == 0:
            return
        time.sleep(0.05)
    raise AssertionError("jobs did not end")


def test_hypothesis_fuzzes_every_endpoint(fuzz_app: Any, s3fs_client: Any) -> None:
    client = fuzz_app.test_client()
    tried = {"n": 0}
    job = ["shape", "chunks", "dtype", "seed"]
    routes = {
        "/run": job,
        "/submit_job/{}": job,
        "/jobs": ["limit"],
        "/jobs/{}": [],
        "/healthz": [],
        "/readyz": [],
        "/openapi.json": [],
        "/jobs/{}/preview.png": [],
    }

    # The route under test, read by `one` (run within its iteration, so no late binding).
    current: dict[str, str] = {}
    for route, names in routes.items():
        current["route"] = route
        query = st.dictionaries(st.sampled_from([*names, "x"]) | keys, texts, max_size=4) | st.binary(max_size=40).map(
            lambda b: quote(b, safe="=&,")
        )

        @settings(FUZZ, max_examples=HYPOTHESIS_EXAMPLES)
        @given(
            query=query,
            job_id=texts,
            body=bodies,
            method=st.sampled_from(["GET", "GET", "GET", "POST", "PUT", "DELETE"]),
        )
        def one(query: Any, job_id: str, body: Any, method: str) -> None:
            tried["n"] += 1
            _idle(fuzz_app)
            before = _snapshot(s3fs_client)
            path = current["route"].format(quote(job_id, safe="") or "x")
            if method == "POST" and current["route"] == "/jobs":
                response = client.post(path, data=json.dumps(body), content_type="application/json")
            else:
                response = client.open(path, method=method, query_string=query)
            _idle(fuzz_app)
            _check(response, before, _snapshot(s3fs_client))

        one()
    print(f"\nhypothesis: {tried['n']} requests tried")


def test_schemathesis_fuzzes_the_openapi_document(fuzz_app: Any, s3fs_client: Any) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    tried: dict[str, int] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    # schemathesis leaves out the document's own path; the hypothesis test covers it.
    labels = {operation.label for operation in operations}
    assert labels >= {
        "GET /run",
        "GET /submit_job/{job_id}",
        "POST /jobs",
        "GET /jobs",
        "GET /jobs/{job_id}",
        "GET /healthz",
        "GET /readyz",
    }
    # The operation under test, read by `one` (run within its iteration, so no late binding).
    current: dict[str, str] = {}
    for operation in operations:
        current["label"] = operation.label
        has_input = len(operation.query) or len(operation.path_parameters) or len(operation.body)
        modes = [schemathesis.GenerationMode.POSITIVE] + ([schemathesis.GenerationMode.NEGATIVE] if has_input else [])
        for mode in modes:

            @settings(FUZZ, max_examples=SCHEMA_EXAMPLES)
            @given(case=operation.as_strategy(generation_mode=mode))
            def one(case: Any) -> None:
                tried[current["label"]] = tried.get(current["label"], 0) + 1
                _idle(fuzz_app)
                before = _snapshot(s3fs_client)
                response = case.call_and_validate(checks=checks)
                _idle(fuzz_app)
                # Bodies include PNG previews: search the bytes, not decoded text.
                assert b"Traceback" not in response.content
                if response.status_code >= 400:
                    assert _snapshot(s3fs_client) == before, "a refused request wrote to the bucket"

            one()
    print(f"\nschemathesis: {sum(tried.values())} cases tried: {tried}")
