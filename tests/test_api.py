"""The HTTP contract end to end: real S3 server, real LocalCluster, every chunk verified."""

from __future__ import annotations

import json
import math
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dask
import numpy as np
import pytest
from helpers import assert_verified, open_job_array, wait_for

from gateway_dask_zarr.worker.blocks import block_data


def test_run_default_job_writes_the_seeds_array(client: Any, s3fs_client: Any) -> None:
    response = client.get("/run?seed=7")
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["shape"] == [1000, 1000] and doc["chunks"] == [100, 100] and doc["dtype"] == "float32"
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", doc["id"])
    assert doc["url"] == f"s3://test-bucket/{doc['id']}.zarr"
    assert doc["progress"] == {"done": 100, "total": 100}
    assert doc["chunks_written"] == 100 and doc["bytes_written"] == 1000 * 1000 * 4
    array = assert_verified(doc)
    data = array[:]
    assert doc["stats"]["min"] == pytest.approx(float(data.min()))
    assert doc["stats"]["max"] == pytest.approx(float(data.max()))
    assert doc["stats"]["mean"] == pytest.approx(float(data.mean(dtype=np.float64)))
    # chunks + 1 objects: every chunk and the metadata document, nothing else.
    keys = s3fs_client.find(f"test-bucket/{doc['id']}.zarr")
    assert len(keys) == 101


def test_array_metadata_follows_the_storage_contract(client: Any, s3fs_client: Any) -> None:
    doc = client.get("/run?seed=1").get_json()
    meta = json.loads(s3fs_client.cat_file(f"test-bucket/{doc['id']}.zarr/zarr.json"))
    assert meta["zarr_format"] == 3 and meta["node_type"] == "array"
    assert [c["name"] for c in meta["codecs"]] == ["bytes", "crc32c"]
    assert meta["fill_value"] == "NaN"
    assert meta["dimension_names"] == ["y", "x"]
    stored = meta["attributes"]["gateway"]
    assert stored["status"] == "complete" and stored["id"] == doc["id"] and stored["seed"] == 1
    assert set(stored) >= {
        "created",
        "finished",
        "seconds",
        "chunks_written",
        "bytes_written",
        "stats",
        "version",
        "error",
    }


def test_same_seed_same_array_whatever_the_job(client: Any) -> None:
    a = open_job_array(client.get("/run?seed=42&shape=300,200&chunks=100,100").get_json())[:]
    b = open_job_array(client.get("/run?seed=42&shape=300,200&chunks=100,100").get_json())[:]
    c = open_job_array(client.get("/run?seed=43&shape=300,200&chunks=100,100").get_json())[:]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    ("query", "shape", "chunks", "dtype"),
    [
        ("shape=1001,999&chunks=100,100&dtype=float64", [1001, 999], [100, 100], "float64"),
        ("shape=5000&chunks=1024", [5000], [1024], "float32"),
        ("shape=30,40,50&chunks=16,16,16&dtype=float64", [30, 40, 50], [16, 16, 16], "float64"),
        ("shape=257,3&chunks=100,3", [257, 3], [100, 3], "float32"),
    ],
)
def test_shapes_dtypes_and_ragged_edges_verify(
    client: Any, query: str, shape: list[int], chunks: list[int], dtype: str
) -> None:
    doc = client.get(f"/run?seed=3&{query}").get_json()
    assert (doc["shape"], doc["chunks"], doc["dtype"]) == (shape, chunks, dtype)
    array = assert_verified(doc)
    n_chunks = math.prod(math.ceil(s / c) for s, c in zip(shape, chunks, strict=True))
    assert doc["chunks_written"] == n_chunks
    # The last block is clipped at the edge and still follows the rule.
    last = tuple(math.ceil(s / c) - 1 for s, c in zip(shape, chunks, strict=True))
    edge = tuple(s - i * c for s, c, i in zip(shape, chunks, last, strict=True))
    region = tuple(slice(i * c, None) for i, c in zip(last, chunks, strict=True))
    assert np.array_equal(array[region], block_data(3, last, edge, dtype))


def test_seed_is_drawn_and_reported_when_absent(client: Any) -> None:
    doc = client.get("/run?shape=200,200&chunks=100,100").get_json()
    assert isinstance(doc["seed"], int) and 0 <= doc["seed"] < 2**63
    assert_verified(doc)


def test_post_jobs_answers_202_then_completes(client: Any) -> None:
    response = client.post("/jobs", json={"shape": [2000, 2000], "chunks": [200, 200], "seed": 5})
    assert response.status_code == 202
    doc = response.get_json()
    assert response.headers["Location"] == f"/jobs/{doc['id']}" == doc["links"]["self"]
    assert doc["status"] in ("queued", "running")
    assert doc["progress"]["total"] == 100
    final = wait_for(lambda: (d := client.get(doc["links"]["self"]).get_json())["status"] == "complete" and d)
    assert final["progress"] == {"done": 100, "total": 100}
    assert_verified(final)


def test_jobs_lists_newest_first_with_limit(client: Any) -> None:
    ids = [client.get(f"/run?seed={s}&shape=100,100&chunks=50,50").get_json()["id"] for s in range(3)]
    listed = client.get("/jobs").get_json()
    assert [d["id"] for d in listed] == ids[::-1]
    assert all(d["status"] == "complete" and d["url"].endswith(f"{d['id']}.zarr") for d in listed)
    assert [d["id"] for d in client.get("/jobs?limit=2").get_json()] == ids[:0:-1]


def test_unknown_job_is_404_json(client: Any) -> None:
    response = client.get("/jobs/nope")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_submit_job_uses_the_callers_id_and_refuses_it_twice(client: Any, s3fs_client: Any) -> None:
    first = client.get("/submit_job/my-run_1.a?seed=9&shape=200,200&chunks=100,100")
    assert first.status_code == 200
    doc = first.get_json()
    assert doc["id"] == "my-run_1.a" and doc["url"].endswith("/my-run_1.a.zarr")
    assert_verified(doc)
    before = s3fs_client.cat_file("test-bucket/my-run_1.a.zarr/zarr.json")
    second = client.get("/submit_job/my-run_1.a?seed=10&shape=200,200&chunks=100,100")
    assert second.status_code == 409
    assert second.get_json()["error"]["code"] == "job_exists"
    assert s3fs_client.cat_file("test-bucket/my-run_1.a.zarr/zarr.json") == before
    assert_verified(doc)


def test_concurrent_jobs_do_not_mix(client: Any) -> None:
    seeds = list(range(100, 108))
    with ThreadPoolExecutor(len(seeds)) as pool:
        responses = list(pool.map(lambda s: client.get(f"/run?seed={s}&shape=400,400&chunks=100,100"), seeds))
    assert [r.status_code for r in responses] == [200] * len(seeds), [r.get_json() for r in responses]
    docs = [r.get_json() for r in responses]
    assert len({d["id"] for d in docs}) == len(seeds)
    # Overlapping jobs leave dask's global config as it was: this process may still compute with
    # its own scheduler (a user's dask array, the client's to_xarray()).
    assert dask.config.get("scheduler", None) is None
    for seed, doc in zip(seeds, docs, strict=True):
        assert doc["seed"] == seed
        assert_verified(doc)


def test_health_ready_and_openapi(client: Any) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    cluster = ready.get_json()["cluster"]
    counts = (cluster["workers"], cluster["target_workers"], cluster["workers_min"], cluster["workers_max"])
    assert counts == (3, 3, 3, 3)
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"/run", "/submit_job/{job_id}", "/jobs", "/jobs/{job_id}", "/healthz", "/readyz"} <= set(spec["paths"])


def test_too_many_jobs_is_429_with_retry_after(make_app: Any, settings: Any) -> None:
    client = make_app(settings, max_active_jobs=1).test_client()
    first = client.post("/jobs", json={"shape": [4000, 4000], "chunks": [500, 500], "seed": 1})
    assert first.status_code == 202
    second = client.post("/jobs", json={"shape": [100, 100], "chunks": [50, 50]})
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) > 0
    assert second.get_json()["error"]["code"] == "too_many_jobs"
    job = first.get_json()
    assert wait_for(lambda: client.get(job["links"]["self"]).get_json()["status"] == "complete", timeout=120)
