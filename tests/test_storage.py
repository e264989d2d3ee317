"""Store URLs (s3, file, memory), history after a restart, and failures that publish nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import obstore
import pytest
import zarr
from helpers import assert_verified

from gateway_dask_zarr.server.parts import parts
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.storage.backends import parse_storage
from gateway_dask_zarr.worker.verify import mismatched_blocks


def test_history_survives_a_restart_on_a_file_store(make_app: Any, tmp_path: Path) -> None:
    settings = Settings(store_url=f"file://{tmp_path}/jobs")
    first = make_app(settings).test_client()
    ids = [first.get(f"/run?seed={s}&shape=300,300&chunks=100,100").get_json()["id"] for s in (1, 2)]
    parts(first.application).service.close()

    # A new app (a restart, or a second replica) reads the history from the store alone.
    second = make_app(settings).test_client()
    listed = second.get("/jobs").get_json()
    assert [d["id"] for d in listed] == ids[::-1]
    for doc in listed:
        assert doc["url"] == f"file://{tmp_path}/jobs/{doc['id']}.zarr"
        assert_verified(doc)
    assert second.get(f"/jobs/{ids[0]}").get_json()["seed"] == 1
    # chunks + 1 files on disk, nothing else.
    assert len([p for p in (tmp_path / "jobs" / f"{ids[0]}.zarr").rglob("*") if p.is_file()]) == 9 + 1


def test_memory_store_for_tests(make_app: Any) -> None:
    # memory:// lives in this process: the shared cluster's worker processes cannot see it,
    # so the app is given an in-process cluster of its own.
    from gateway_dask_zarr.server import create_app

    app = create_app(Settings(store_url="memory://gateway-tests", n_workers=2))
    try:
        client = app.test_client()
        doc = client.get("/run?seed=4&shape=200,200&chunks=100,100").get_json()
        assert doc["url"] == f"memory://gateway-tests/{doc['id']}.zarr"
        # memory:// is this process's obstore MemoryStore, reached through its backend (not fsspec's memory).
        array = zarr.open_array(parse_storage("memory://gateway-tests").worker_store, path=f"{doc['id']}.zarr")
        assert doc["status"] == "complete" and mismatched_blocks(array, 4) == []
        # Zarr over HTTP reads the same store: zarr.json served, a chunk streamed (memory has no presigned URLs).
        meta = client.get(f"/jobs/{doc['id']}/zarr/zarr.json")
        assert meta.status_code == 200 and meta.get_json()["attributes"]["gateway"]["id"] == doc["id"]
        chunk = client.get(f"/jobs/{doc['id']}/zarr/c/1/0")
        stored = obstore.get(parse_storage("memory://gateway-tests").obstore, f"{doc['id']}.zarr/c/1/0").bytes()
        assert chunk.status_code == 200 and chunk.data == bytes(stored)
    finally:
        parts(app).service.close()
        parse_storage("memory://gateway-tests").delete_tree("")


@pytest.mark.parametrize("compressor", ["zstd", "blosc"])
def test_compressor_setting_adds_a_codec_before_crc32c(
    make_app: Any, settings: Settings, s3fs_client: Any, compressor: str
) -> None:
    client = make_app(settings, compressor=compressor).test_client()
    doc = client.get("/run?seed=8&shape=300,300&chunks=100,100").get_json()
    assert_verified(doc)
    meta = json.loads(s3fs_client.cat_file(f"test-bucket/{doc['id']}.zarr/zarr.json"))
    assert [c["name"] for c in meta["codecs"]] == ["bytes", compressor, "crc32c"]


def test_a_store_that_cannot_be_written_refuses_the_job_and_says_why(
    make_app: Any, settings: Settings, s3fs_client: Any
) -> None:
    # The job's record cannot be written to a bucket that does not exist: the id is never
    # claimed, no task starts, and the answer names the store's error.
    client = make_app(settings, store_url="s3://no-such-bucket").test_client()
    response = client.get("/run?seed=1&shape=200,200&chunks=100,100")
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"]["code"] == "store_unavailable"
    assert "NoSuchBucket" in body["error"]["message"], body
    assert response.headers["Retry-After"] == "10"
    assert s3fs_client.find("test-bucket") == []
