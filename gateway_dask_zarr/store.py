"""STORE_URL to zarr stores and filesystems; job documents read from and written to the store."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlparse

import fsspec
import numpy as np
import zarr
from zarr.abc.store import Store
from zarr.codecs import BloscCodec, Crc32cCodec, GzipCodec, ZstdCodec
from zarr.storage import FsspecStore, LocalStore

log = logging.getLogger(__name__)

METADATA_KEY = "zarr.json"
# A dead or hung endpoint must fail a request in seconds, not botocore's 60 s default; five
# attempts (four backed-off retries, at most 15 s of sleep) ride out a throttling burst
# while a stopped store still fails a job within a minute.
S3_CONNECT_TIMEOUT_S = 5
S3_READ_TIMEOUT_S = 30
S3_MAX_ATTEMPTS = 5
# obstore's chunk PUTs: one request may take this long (a chunk may be 256 MiB), and its
# retries stop once this much time has passed.
S3_REQUEST_TIMEOUT_S = 4 * S3_READ_TIMEOUT_S
S3_RETRY_TIMEOUT_S = 2 * S3_READ_TIMEOUT_S
# The longest a chunk PUT begun before a job's deadline can still land after it.
S3_PUT_BOUND_S = S3_RETRY_TIMEOUT_S + S3_REQUEST_TIMEOUT_S


def storage_options(url: str, endpoint_url: str | None) -> dict[str, Any]:
    """fsspec options for a store URL; never credentials, which come from the environment."""
    if urlparse(url).scheme != "s3":
        return {}
    config = {
        "retries": {"max_attempts": S3_MAX_ATTEMPTS, "mode": "adaptive"},
        "connect_timeout": S3_CONNECT_TIMEOUT_S,
        "read_timeout": S3_READ_TIMEOUT_S,
        # Chunks carry their own crc32c (a zarr codec); hashing each body again on the
        # client (SHA-256 for the signature, CRC32 for a checksum header) costs CPU per PUT.
        "s3": {"payload_signing_enabled": False},
        "request_checksum_calculation": "when_required",
    }
    options: dict[str, Any] = {"config_kwargs": config}
    if endpoint_url:
        options["endpoint_url"] = endpoint_url
    return options


def probe_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options for a readiness probe: one short attempt, so /readyz answers in seconds."""
    if "config_kwargs" not in options:
        return dict(options)
    quick = {"retries": {"max_attempts": 1}, "connect_timeout": 2, "read_timeout": 5}
    return {**options, "config_kwargs": quick}


def _freeze(options: Mapping[str, Any]) -> str:
    return json.dumps(options, sort_keys=True)


def open_store(url: str, options: Mapping[str, Any]) -> Store:
    """A zarr store rooted at a URL."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStore(parsed.path)
    return FsspecStore.from_url(url, storage_options=dict(options))


def s3_store(url: str, options: Mapping[str, Any]) -> Any:
    """An obstore S3 store rooted at an s3:// URL, with the same bounds as botocore's above.

    Credentials and region come from the environment (AWS_*), as for botocore.
    """
    from obstore.store import S3Store

    parsed = urlparse(url)
    endpoint = options.get("endpoint_url")
    return S3Store(
        parsed.netloc,
        prefix=parsed.path.strip("/") or None,
        endpoint=endpoint,
        # As with s3fs above: chunks carry their own crc32c, so the body is not hashed again.
        unsigned_payload=True,
        # A dead endpoint fails a job within a minute. The whole-request timeout is longer
        # than a read timeout: a chunk may be 256 MiB.
        client_options={
            "connect_timeout": timedelta(seconds=S3_CONNECT_TIMEOUT_S),
            "timeout": timedelta(seconds=S3_REQUEST_TIMEOUT_S),
            "allow_http": bool(endpoint and endpoint.startswith("http://")),
        },
        retry_config={
            "max_retries": S3_MAX_ATTEMPTS - 1,
            "retry_timeout": timedelta(seconds=S3_RETRY_TIMEOUT_S),
            "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=5), "base": 2},
        },
    )


def object_store(url: str, options: Mapping[str, Any]) -> Store:
    """A zarr store on obstore's S3 client: measured faster than s3fs per PUT (bench/)."""
    from zarr.storage import ObjectStore

    return ObjectStore(s3_store(url, options))


_memory_stores: dict[str, Any] = {}


def obstore_for(url: str, endpoint_url: str | None) -> Any:
    """The obstore store rooted at STORE_URL (s3, file or memory), for job records and the index."""
    from obstore.store import LocalStore, MemoryStore

    parsed = urlparse(url)
    if parsed.scheme == "s3":
        return s3_store(url, storage_options(url, endpoint_url))
    if parsed.scheme == "file":
        return LocalStore(parsed.path, mkdir=True)
    # memory:// lives in this process, as fsspec's memory filesystem does: one store per URL.
    return _memory_stores.setdefault(url.rstrip("/"), MemoryStore())


@lru_cache(maxsize=16)
def _cached_store(url: str, frozen_options: str) -> Store:
    options = json.loads(frozen_options)
    return object_store(url, options) if urlparse(url).scheme == "s3" else open_store(url, options)


def zarr_store(url: str, options: Mapping[str, Any]) -> Store:
    """The chunk writers' store: one per (URL, options) per process, so its S3 client is reused."""
    return _cached_store(url, _freeze(options))


@lru_cache(maxsize=8)
def _filesystem(protocol: str, frozen_options: str) -> fsspec.AbstractFileSystem:
    return fsspec.filesystem(protocol, **json.loads(frozen_options))


def codecs_for(compressor: str) -> list[Any]:
    """The bytes-to-bytes codecs: an optional compressor, then crc32c for per-chunk integrity."""
    chosen = {
        "none": [],
        "zstd": [ZstdCodec(level=3)],
        "blosc": [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")],
        "gzip": [GzipCodec(level=5)],
    }[compressor]
    return [*chosen, Crc32cCodec()]


def array_kwargs(shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str, compressor: str) -> dict[str, Any]:
    """The zarr.create_array arguments every job array is made with."""
    return {
        "shape": shape,
        "chunks": chunks,
        "dtype": dtype,
        "fill_value": np.nan,
        "compressors": codecs_for(compressor),
        "filters": None,
        "dimension_names": ["y", "x"] if len(shape) == 2 else None,
        "config": {"write_empty_chunks": True},
    }


def array_metadata(shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str, compressor: str) -> dict[str, Any]:
    """The array's zarr v3 metadata as a dict, built in memory: nothing is written."""
    array = zarr.create_array(zarr.storage.MemoryStore(), **array_kwargs(shape, chunks, dtype, compressor))
    return array.metadata.to_dict()


@dataclass
class JobStore:
    """The root of all job arrays: publishing, deleting and reading published job documents."""

    root: str
    endpoint_url: str | None = None

    def __post_init__(self) -> None:
        self.root = self.root.rstrip("/")
        self.protocol = urlparse(self.root).scheme
        self.options = storage_options(self.root, self.endpoint_url)
        self.fs = _filesystem(self.protocol, _freeze(self.options))
        self.probe_fs = _filesystem(self.protocol, _freeze(probe_options(self.options)))
        if self.protocol == "s3":
            # s3fs's own retries (on timeouts) come on top of botocore's: none for a probe.
            self.probe_fs.retries = 1
            # Build the previews' client now, at start-up, not during the first request.
            zarr_store(self.root, self.options)

    def array_url(self, job_id: str) -> str:
        """The URL of a job's array."""
        return f"{self.root}/{job_id}.zarr"

    def _path(self, *parts: str) -> str:
        return "/".join([self.fs._strip_protocol(self.root), *parts])

    def exists(self, job_id: str) -> bool:
        """True if anything at all is stored under the job's array path."""
        self.fs.invalidate_cache()
        return bool(self.fs.find(self._path(f"{job_id}.zarr")))

    def publish(self, job_id: str, kwargs: dict[str, Any], document: dict[str, Any]) -> None:
        """Write the array's zarr.json with the job document: the last write of a job."""
        zarr.create_array(self._array_store(job_id), attributes={"gateway": document}, overwrite=False, **kwargs)

    def _array_store(self, job_id: str) -> Store:
        """A store rooted at the job's array, so zarr writes no parent group's zarr.json.

        On S3 an obstore client (no botocore set-up, which held the GIL for about a second
        per job with s3fs); otherwise one that reuses the process's filesystem.
        """
        if self.protocol == "s3":
            return object_store(self.array_url(job_id), self.options)
        base = zarr_store(self.root, self.options)
        if isinstance(base, FsspecStore):
            return FsspecStore(fs=base.fs, path=f"{base.path}/{job_id}.zarr")
        return open_store(self.array_url(job_id), self.options)

    def delete(self, job_id: str) -> None:
        """Delete every object under the job's array path, its zarr.json first (readers stop at once)."""
        path = self._path(f"{job_id}.zarr")
        for target, recursive in ((f"{path}/{METADATA_KEY}", False), (path, True)):
            with suppress(FileNotFoundError):
                self.fs.rm(target, recursive=recursive)
        self.fs.invalidate_cache()

    def read(self, job_id: str) -> dict[str, Any] | None:
        """The job document in a published (complete) array's attributes, or None."""
        try:
            raw = self.fs.cat_file(self._path(f"{job_id}.zarr", METADATA_KEY))
        except FileNotFoundError:
            return None
        document = json.loads(raw).get("attributes", {}).get("gateway")
        return document if isinstance(document, dict) and document.get("status") == "complete" else None

    def open_array(self, job_id: str) -> zarr.Array:
        """Open a job's published array for reading, through this process's shared store."""
        return zarr.open_array(zarr_store(self.root, self.options), path=f"{job_id}.zarr", mode="r")

    def check_writable(self) -> None:
        """Write and delete a small probe object; raise if the store cannot be written."""
        path = self._path(f".readyz-{uuid.uuid4().hex}")
        self.probe_fs.pipe_file(path, b"ok")
        self.probe_fs.rm_file(path)
