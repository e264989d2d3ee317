"""The job arrays' format (codecs, metadata) and the JobStore: publishing, deleting and reading arrays."""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from typing import Any

import numpy as np
import obstore
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, GzipCodec, ZstdCodec
from zarr.errors import ContainsArrayError

from gateway_dask_zarr.storage.backends import StorageBackend

log = logging.getLogger(__name__)

METADATA_KEY = "zarr.json"
Shape = tuple[int, ...]


def _zarr_json(kwargs: dict[str, Any], attributes: dict[str, Any]) -> bytes:
    """The zarr.json document of an array made with these arguments and attributes."""
    written: dict[str, Any] = {}
    zarr.create_array(zarr.storage.MemoryStore(written), attributes=attributes, **kwargs)
    return bytes(written[METADATA_KEY].to_bytes())


def codecs_for(compressor: str) -> list[Any]:
    """The bytes-to-bytes codecs: an optional compressor, then crc32c for per-chunk integrity."""
    choices: dict[str, list[Any]] = {
        "none": [],
        "zstd": [ZstdCodec(level=3)],
        "blosc": [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")],
        "gzip": [GzipCodec(level=5)],
    }
    return [*choices[compressor], Crc32cCodec()]


def dimension_names(ndim: int) -> list[str]:
    """The axes' names xarray shows: x last, then y, z and t (as in CF); dim_0.. beyond four dimensions."""
    names = ["t", "z", "y", "x"]
    return names[-ndim:] if ndim <= len(names) else [f"dim_{i}" for i in range(ndim)]


def array_kwargs(
    shape: Shape, chunks: Shape, dtype: str, compressor: str, shards: Shape | None = None
) -> dict[str, Any]:
    """The zarr.create_array arguments every job array is made with.

    With shards, the codecs (compressor, crc32c) apply to each chunk inside a shard, and the
    shard's index gets zarr's default index codecs (bytes, crc32c).
    """
    return {
        "shape": shape,
        "chunks": chunks,
        "shards": shards,
        "dtype": dtype,
        "fill_value": np.nan,
        "compressors": codecs_for(compressor),
        "filters": None,
        "dimension_names": dimension_names(len(shape)),
        "config": {"write_empty_chunks": True},
    }


def array_metadata(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The zarr v3 metadata of an array made with these array_kwargs, as a dict, built in memory: nothing is written."""
    return zarr.create_array(zarr.storage.MemoryStore(), **kwargs).metadata.to_dict()


class JobStore:
    """The root of all job arrays: publishing, deleting and reading published job documents, on the backend's client."""

    def __init__(self, backend: StorageBackend) -> None:
        self.backend = backend
        self.root = backend.root
        self.client = backend.obstore
        # Build the chunk writers' and previews' client now, at start-up, not during the first request.
        _ = backend.worker_store

    def array_url(self, job_id: str) -> str:
        """The URL of a job's array."""
        return self.backend.array_url(job_id)

    def exists(self, job_id: str) -> bool:
        """True if any object at all is stored under the job's array path."""
        listed = obstore.list(self.client, f"{job_id}.zarr", chunk_size=1)
        return any(batch for batch in listed)

    def publish(self, job_id: str, kwargs: dict[str, Any], document: dict[str, Any]) -> None:
        """Write the array's zarr.json with the job document: the last write of a job, never over another."""
        body = _zarr_json(kwargs, {"gateway": document})
        if not self.backend.put_new(f"{job_id}.zarr/{METADATA_KEY}", body):
            raise ContainsArrayError(f"an array exists at {self.array_url(job_id)}")

    def delete(self, job_id: str) -> None:
        """Delete every object under the job's array path, its zarr.json first (readers stop at once)."""
        with contextlib.suppress(FileNotFoundError):
            obstore.delete(self.client, f"{job_id}.zarr/{METADATA_KEY}")
        self.backend.delete_tree(f"{job_id}.zarr")

    def read(self, job_id: str) -> dict[str, Any] | None:
        """The job document in a published (complete) array's attributes, or None."""
        try:
            raw = bytes(obstore.get(self.client, f"{job_id}.zarr/{METADATA_KEY}").bytes())
        except FileNotFoundError:
            return None
        document = json.loads(raw).get("attributes", {}).get("gateway")
        return document if isinstance(document, dict) and document.get("status") == "complete" else None

    def open_array(self, job_id: str) -> zarr.Array:
        """Open a job's published array for reading, through this process's shared store."""
        return zarr.open_array(self.backend.worker_store, path=f"{job_id}.zarr", mode="r")

    def check_writable(self) -> None:
        """Write and delete a small probe object; raise if the store cannot be written."""
        key = f".readyz-{uuid.uuid4().hex}"
        obstore.put(self.backend.probe_obstore, key, b"ok")
        obstore.delete(self.backend.probe_obstore, key)
