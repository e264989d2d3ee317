"""Storage backends (storage.py) without a cluster or a server: the registry, file:// and memory://."""

from __future__ import annotations

import uuid
from pathlib import Path

import obstore
import pytest
import zarr
from obstore.exceptions import AlreadyExistsError

from gateway_dask_zarr.params import JobRequest
from gateway_dask_zarr.storage.arrays import JobStore, array_kwargs
from gateway_dask_zarr.storage.backends import (
    BACKENDS,
    FileBackend,
    MemoryBackend,
    S3Backend,
    StorageBackend,
    parse_storage,
    url_problem,
)

pytestmark = pytest.mark.fast


def test_the_registry_finds_a_backend_by_scheme() -> None:
    assert set(BACKENDS) == {"s3", "file", "memory"}
    assert isinstance(parse_storage("s3://bucket/prefix", "http://127.0.0.1:9"), S3Backend)
    assert isinstance(parse_storage("file:///tmp/x"), FileBackend)
    assert isinstance(parse_storage("memory://x"), MemoryBackend)
    with pytest.raises(ValueError, match="no storage backend for 'gs'"):
        parse_storage("gs://bucket")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("s3://bucket/prefix", None),
        ("s3://", "needs a bucket"),
        ("file:///abs/path", None),
        ("file://relative/path", "absolute path"),
        ("memory://x", None),
        ("gs://bucket", "scheme must be"),
    ],
)
def test_each_backend_judges_its_urls(url: str, problem: str | None) -> None:
    found = url_problem(url)
    assert found is None if problem is None else problem in (found or "")


def test_only_memory_needs_in_process_workers_and_only_s3_has_a_put_bound() -> None:
    assert [b.scheme for b in BACKENDS.values() if b.in_process_workers] == ["memory"]
    assert S3Backend.put_bound_s > 0 and FileBackend.put_bound_s == MemoryBackend.put_bound_s == 0


def test_s3_options_carry_the_endpoint_and_no_credentials() -> None:
    backend = S3Backend("s3://bucket", "http://127.0.0.1:9")
    assert backend.options()["endpoint_url"] == "http://127.0.0.1:9"
    assert not any("key" in k.lower() or "secret" in k.lower() for k in backend.options())


def test_s3_describes_an_unreachable_store_and_nothing_else() -> None:
    backend = S3Backend("s3://bucket")
    assert "could not be reached (OSError)" in (backend.describe(OSError("error sending request for url")) or "")
    assert backend.describe(ValueError("something else")) is None


def _publish_and_read(backend: StorageBackend) -> None:
    store = JobStore(backend)
    request = JobRequest((20, 20), (10, 10), "float32", 1)
    document = {"id": "j1", "status": "complete", "created": "2026-01-01T00:00:00.000Z", **request.document()}
    assert not store.exists("j1") and store.read("j1") is None
    store.publish("j1", array_kwargs(request.shape, request.chunks, request.dtype, "none"), document)
    assert store.exists("j1")
    assert JobStore(backend).read("j1") == document
    assert isinstance(store.open_array("j1"), zarr.Array)
    store.check_writable()
    store.delete("j1")
    assert not store.exists("j1")


def test_a_file_store_publishes_reads_and_deletes(tmp_path: Path) -> None:
    _publish_and_read(parse_storage(f"file://{tmp_path}/jobs"))
    assert list((tmp_path / "jobs").iterdir()) == []


def test_a_memory_store_publishes_reads_and_deletes() -> None:
    _publish_and_read(parse_storage(f"memory://tests-{uuid.uuid4().hex}"))


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_the_obstore_of_a_backend_is_rooted_at_its_root(tmp_path: Path, scheme: str) -> None:
    url = f"file://{tmp_path}" if scheme == "file" else f"memory://tests-{uuid.uuid4().hex}"
    backend = parse_storage(url)
    obstore.put(backend.obstore, "_jobs/a", b"1", mode="create")
    with pytest.raises(AlreadyExistsError):
        obstore.put(backend.obstore, "_jobs/a", b"2", mode="create")
    assert bytes(obstore.get(parse_storage(url).obstore, "_jobs/a").bytes()) == b"1"
    listed = [m["path"] for batch in obstore.list(backend.obstore, prefix="_jobs/") for m in batch]
    assert listed == ["_jobs/a"]
    obstore.delete(backend.obstore, "_jobs/a")
    if scheme == "file":
        assert (tmp_path / "_jobs").is_dir() and not (tmp_path / "_jobs" / "a").exists()


def test_a_failed_store_request_is_one_sentence_in_the_backends_words() -> None:
    backend = S3Backend("s3://bucket")
    assert backend.sentence(OSError("error sending request for url")).startswith(
        "the object store could not be reached"
    )
    said = backend.sentence(ValueError("odd\nmore"))
    assert said == "the object store cannot be used now (ValueError: odd); try again shortly"
