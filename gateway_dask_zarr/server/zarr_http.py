"""Zarr v3 over HTTP: a job's array at /jobs/<id>/zarr/, and a group holding it at /jobs/<id>/dataset/ (xarray).

The caller must own the job (or be an admin), with the API's own auth; a share link
(server/share.py) reaches the same keys. The app serves the small metadata documents; each
chunk or shard key answers 307 to a presigned store URL, so array bytes go from the store
to the reader (Range requests included). The app streams a chunk itself (Range included,
in bounded pieces) only for a backend with no presigned URLs (file://, memory://: one
machine or tests) or a reader that cannot follow redirects and says so with the header
`X-Gateway-Stream: 1` (TensorStore's HTTP kvstore, measured: it fails on a 307).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import obstore
from flask import Blueprint, Response, request

from gateway_dask_zarr.errors import NotFound
from gateway_dask_zarr.jobs import check_job_id
from gateway_dask_zarr.server.edge import viewer
from gateway_dask_zarr.server.parts import parts
from gateway_dask_zarr.storage.arrays import METADATA_KEY

bp = Blueprint("zarr_http", __name__)

# The array's name in the /dataset/ group: xarray's variable name.
VARIABLE = "data"
# Chunk (or shard) keys of zarr's default key encoding: c/<i>/<j>...
CHUNK_KEY = re.compile(r"c(/[0-9]{1,18})+")
# Neither the metadata (a deleted job's must not linger) nor a redirect (its URL expires) is cached.
NO_STORE = {"Cache-Control": "private, no-store"}
# A reader that cannot follow a redirect asks the app to stream chunks with this header.
STREAM_HEADER = "X-Gateway-Stream"
RANGE = re.compile(r"bytes=([0-9]{1,15})-([0-9]{0,15})")
PIECE_BYTES = 1 << 20


def readable_document(job_id: str, who: str | None) -> dict[str, Any]:
    """The document of a complete job `who` may read (None: anyone, as for a checked share link); else NotFound."""
    document = parts().service.jobs.get(check_job_id(job_id), who)
    if document is None or document.get("status") != "complete":
        # The same answer for another user's job, a missing one and one not yet complete.
        raise NotFound(f"no complete job {job_id!r}")
    return document


def _metadata(job_id: str) -> bytes:
    """The array's zarr.json as stored."""
    backend = parts().service.store.backend
    try:
        return bytes(obstore.get(backend.obstore, f"{job_id}.zarr/{METADATA_KEY}").bytes())
    except FileNotFoundError:
        raise NotFound(f"no complete job {job_id!r}") from None


def array_key(document: dict[str, Any], key: str) -> Response:
    """One key of the job's array: zarr.json served, a chunk or shard redirected to the store (or served)."""
    job_id = document["id"]
    if key == METADATA_KEY:
        return Response(_metadata(job_id), mimetype="application/json", headers=NO_STORE)
    if not (CHUNK_KEY.fullmatch(key) and key.count("/") == len(document["shape"])):
        raise NotFound(f"the array of job {job_id!r} has no key {key!r}")
    service = parts().service
    backend = service.store.backend
    object_key = f"{job_id}.zarr/{key}"
    url = None
    if request.headers.get(STREAM_HEADER) != "1":
        url = backend.presigned_get(object_key, service.settings.zarr_url_ttl_s, service.public_endpoint_url)
    if url is None:
        return _streamed(backend.obstore, object_key, key, job_id)
    return Response(status=307, headers={"Location": url, **NO_STORE})


def _streamed(store: Any, object_key: str, key: str, job_id: str) -> Response:
    """The object (or its one `bytes=a-b` range) streamed from the store in pieces of at most PIECE_BYTES."""
    wanted = RANGE.fullmatch(request.headers.get("Range", "").strip())
    try:
        size = int(obstore.head(store, object_key)["size"])
    except FileNotFoundError:
        raise NotFound(f"the array of job {job_id!r} has no chunk {key!r}") from None
    start, end = 0, size
    if wanted is not None:
        start, end = int(wanted.group(1)), min(size, int(wanted.group(2) or size - 1) + 1)
        if start >= end:
            return Response(status=416, headers={"Content-Range": f"bytes */{size}", **NO_STORE})
    result = obstore.get(store, object_key, options={"range": (start, end)}) if end > start else None

    def pieces() -> Iterator[bytes]:
        if result is not None:
            for piece in result.stream(min_chunk_size=PIECE_BYTES):
                yield bytes(piece)

    headers = {"Content-Length": str(end - start), "Accept-Ranges": "bytes", **NO_STORE}
    if wanted is None:
        return Response(pieces(), mimetype="application/octet-stream", headers=headers)
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return Response(pieces(), status=206, mimetype="application/octet-stream", headers=headers)


def dataset_key(document: dict[str, Any], key: str) -> Response:
    """One key of the group view: its zarr.json (consolidated, so xarray needs no listing) or the array's keys."""
    if key == METADATA_KEY:
        array = json.loads(_metadata(document["id"]))
        group = {
            "zarr_format": 3,
            "node_type": "group",
            "attributes": {},
            "consolidated_metadata": {"kind": "inline", "must_understand": False, "metadata": {VARIABLE: array}},
        }
        return Response(json.dumps(group), mimetype="application/json", headers=NO_STORE)
    name, _, rest = key.partition("/")
    if name != VARIABLE or not rest:
        raise NotFound(f"the dataset of job {document['id']!r} has no key {key!r}")
    return array_key(document, rest)


@bp.get("/jobs/<job_id>/zarr/<path:key>")
def own_array(job_id: str, key: str) -> Response:
    """A key of the caller's job's array."""
    return array_key(readable_document(job_id, viewer()), key)


@bp.get("/jobs/<job_id>/dataset/<path:key>")
def own_dataset(job_id: str, key: str) -> Response:
    """A key of the group view of the caller's job's array."""
    return dataset_key(readable_document(job_id, viewer()), key)
