"""Storage backends: one class per STORE_URL scheme (s3, file, memory), found by `parse_storage(url)`.

Each backend owns its one store client (obstore: the app's own reads, lists, writes and
deletes, and the zarr store of the chunk writers and previews on top of it), its readiness
probe's client, the words for its errors, and its timing bounds. A new scheme is one class
here and one line in BACKENDS (docs/architecture.md).
"""

from __future__ import annotations

import shutil
import threading
from datetime import timedelta
from functools import cached_property, lru_cache
from typing import Any, ClassVar
from urllib.parse import urlparse

import obstore.exceptions
import obstore.store
from zarr.abc.store import Store
from zarr.storage import ObjectStore

from gateway_dask_zarr.errors import describe

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


class StorageBackend:
    """The root of every job array, on one kind of storage."""

    scheme: ClassVar[str]
    # memory:// lives in one process: its Dask workers must be threads of that process.
    in_process_workers: ClassVar[bool] = False
    # The longest a chunk write begun before a job's deadline can still land after it.
    put_bound_s: ClassVar[float] = 0.0
    # A LIST gives keys in order (S3, memory); a local directory lists in its own order.
    lists_in_order: ClassVar[bool] = True

    def __init__(self, url: str, endpoint_url: str | None = None) -> None:
        self.root = url.rstrip("/")
        self.endpoint_url = endpoint_url

    @classmethod
    def url_problem(cls, url: str) -> str | None:
        """What is wrong with a STORE_URL of this scheme, or None."""
        return None

    def array_url(self, job_id: str) -> str:
        """The URL of a job's array."""
        return f"{self.root}/{job_id}.zarr"

    # (Declared before `obstore`: below it, that name in an annotation is the property.)
    @cached_property
    def probe_obstore(self) -> obstore.store.ObjectStore:
        """The client the readiness probe writes through (S3: one short attempt)."""
        return self.obstore

    @cached_property
    def obstore(self) -> obstore.store.ObjectStore:
        """The backend's one store client, rooted at the root (put(mode="create"), list(prefix), get, delete)."""
        raise NotImplementedError

    @cached_property
    def worker_store(self) -> Store:
        """The zarr store of the chunk writers (and previews) on the one client; one per process."""
        return ObjectStore(self.obstore)

    def array_store(self, job_id: str) -> Store:
        """A store rooted at the job's array, so zarr writes no parent group's zarr.json (bench/steps.py)."""
        raise NotImplementedError

    def delete_tree(self, prefix: str) -> None:
        """Delete every object under `prefix` (a folder under the root)."""
        keys = [m["path"] for batch in obstore.list(self.obstore, prefix, chunk_size=1000) for m in batch]
        for start in range(0, len(keys), 1000):
            obstore.delete(self.obstore, keys[start : start + 1000])

    def put_new(self, key: str, body: bytes) -> bool:
        """Write `key` (under the root) unless it exists: one conditional create; False when it exists."""
        try:
            obstore.put(self.obstore, key, body, mode="create")
        except obstore.exceptions.AlreadyExistsError:
            return False
        return True

    def presigned_get(self, key: str, expires_s: int, endpoint_url: str | None = None) -> str | None:
        """A URL anyone may GET `key` (under the root) from for `expires_s` seconds, or None: this backend has none."""
        return None

    def describe(self, exc: BaseException) -> str | None:
        """A sentence for a storage error a person can act on, or None if it is not this backend's."""
        return None

    def sentence(self, exc: BaseException) -> str:
        """A failed store request as the sentence a person reads: this backend's words, else the error's own line."""
        return self.describe(exc) or f"the object store cannot be used now ({describe(exc)}); try again shortly"


class S3Backend(StorageBackend):
    """s3://bucket/prefix on any S3 (AWS, Ceph, MinIO, SeaweedFS), through obstore's S3 client."""

    scheme = "s3"
    put_bound_s = float(S3_PUT_BOUND_S)
    # obstore's words for a request that never got an answer (its errors say it only in text).
    UNREACHABLE_WORDS = ("error sending request", "operation timed out", "timed out")

    def __init__(self, url: str, endpoint_url: str | None = None) -> None:
        super().__init__(url, endpoint_url)
        # One signing client per endpoint readers reach (the host is part of the signature).
        self._signers: dict[str | None, obstore.store.S3Store] = {}

    @classmethod
    def url_problem(cls, url: str) -> str | None:
        """An s3:// URL needs a bucket."""
        return None if urlparse(url).netloc else f"an s3:// URL needs a bucket, got {url!r}"

    def options(self) -> dict[str, Any]:
        """s3fs options with the same bounds, for fsspec readers of this store (bench's s3fs rows, tests)."""
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
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        return options

    def _s3store(self, url: str, quick: bool = False) -> obstore.store.S3Store:
        """An obstore S3 client rooted at a URL (measured faster than s3fs per PUT, bench/); `quick`: one short try."""
        parsed = urlparse(url)
        endpoint = self.endpoint_url
        attempts, connect_s, request_s = (
            (1, 2, 5) if quick else (S3_MAX_ATTEMPTS, S3_CONNECT_TIMEOUT_S, S3_REQUEST_TIMEOUT_S)
        )
        return obstore.store.S3Store(
            parsed.netloc,
            prefix=parsed.path.strip("/") or None,
            endpoint=endpoint,
            # Chunks carry their own crc32c, so the body is not hashed again.
            unsigned_payload=True,
            # A dead endpoint fails a job within a minute. The whole-request timeout is longer
            # than a read timeout: a chunk may be 256 MiB.
            client_options={
                "connect_timeout": timedelta(seconds=connect_s),
                "timeout": timedelta(seconds=request_s),
                "allow_http": bool(endpoint and endpoint.startswith("http://")),
            },
            retry_config={
                "max_retries": attempts - 1,
                "retry_timeout": timedelta(seconds=S3_RETRY_TIMEOUT_S),
                "backoff": {
                    "init_backoff": timedelta(milliseconds=100),
                    "max_backoff": timedelta(seconds=5),
                    "base": 2,
                },
            },
        )

    @cached_property
    def probe_obstore(self) -> obstore.store.S3Store:
        """One short attempt, so /readyz answers in seconds."""
        return self._s3store(self.root, quick=True)

    @cached_property
    def obstore(self) -> obstore.store.S3Store:
        """obstore's S3 client rooted at the root; credentials and region come from the environment (AWS_*)."""
        return self._s3store(self.root)

    def array_store(self, job_id: str) -> Store:
        """An obstore client at the array (no botocore set-up, which held the GIL for about a second per job)."""
        return ObjectStore(self._s3store(self.array_url(job_id)))

    def presigned_get(self, key: str, expires_s: int, endpoint_url: str | None = None) -> str:
        """A SigV4 query-signed GET URL on `endpoint_url` (the one readers reach; default the app's); signed locally."""
        endpoint = endpoint_url or self.endpoint_url
        if endpoint not in self._signers:
            # The host is part of the signature: sign with a client of the endpoint the reader will use.
            parsed = urlparse(self.root)
            self._signers[endpoint] = obstore.store.S3Store(
                parsed.netloc,
                prefix=parsed.path.strip("/") or None,
                endpoint=endpoint,
                client_options={"allow_http": bool(endpoint and endpoint.startswith("http://"))},
            )
        return obstore.sign(self._signers[endpoint], "GET", key, timedelta(seconds=expires_s))

    def describe(self, exc: BaseException) -> str | None:
        """An unreachable endpoint, in words that say what to check."""
        if any(w in str(exc) for w in self.UNREACHABLE_WORDS):
            return (
                f"the object store could not be reached ({type(exc).__name__}); "
                "check that it is up and S3_ENDPOINT_URL is right, then submit the job again"
            )
        return None


class FileBackend(StorageBackend):
    """file:///path: a persistent local store (one machine, or a shared file system)."""

    scheme = "file"
    lists_in_order = False

    @classmethod
    def url_problem(cls, url: str) -> str | None:
        """A file:// URL needs an absolute local path."""
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            return f"a file:// URL needs an absolute path, got {url!r}"
        return None

    @property
    def path(self) -> str:
        """The root's local path."""
        return urlparse(self.root).path

    def array_store(self, job_id: str) -> Store:
        """An obstore LocalStore at the array."""
        return ObjectStore(obstore.store.LocalStore(f"{self.path}/{job_id}.zarr", mkdir=True))

    def delete_tree(self, prefix: str) -> None:
        """Remove the folder, its emptied subfolders with it (objects deleted one by one would leave them)."""
        shutil.rmtree(f"{self.path}/{prefix}", ignore_errors=True)

    @cached_property
    def obstore(self) -> obstore.store.LocalStore:
        """obstore's LocalStore at the root (made if missing)."""
        return obstore.store.LocalStore(self.path, mkdir=True)


_MEMORY: dict[str, obstore.store.MemoryStore] = {}
_MEMORY_LOCK = threading.Lock()


class MemoryBackend(StorageBackend):
    """memory://name: in this process only, for tests; its workers are threads of this process (in_process_workers)."""

    scheme = "memory"
    in_process_workers = True

    @cached_property
    def obstore(self) -> obstore.store.MemoryStore:
        """One MemoryStore per root URL in this process, shared by every app on it."""
        with _MEMORY_LOCK:
            return _MEMORY.setdefault(self.root, obstore.store.MemoryStore())


# The one registry: a new scheme is a class above and a line here.
BACKENDS: dict[str, type[StorageBackend]] = {b.scheme: b for b in (S3Backend, FileBackend, MemoryBackend)}


def parse_storage(url: str, endpoint_url: str | None = None) -> StorageBackend:
    """The backend of a STORE_URL by its scheme; ValueError for a scheme with none."""
    scheme = urlparse(url).scheme
    if scheme not in BACKENDS:
        raise ValueError(f"no storage backend for {scheme!r} URLs; known: {', '.join(BACKENDS)}")
    return BACKENDS[scheme](url, endpoint_url)


def url_problem(url: str) -> str | None:
    """What is wrong with a STORE_URL (its scheme has no backend, or its backend refuses it), or None."""
    backend = BACKENDS.get(urlparse(url).scheme)
    if backend is None:
        return f"scheme must be {', '.join(f'{s}://' for s in BACKENDS)}, got {url!r}"
    return backend.url_problem(url)


@lru_cache(maxsize=16)
def cached_backend(url: str, endpoint_url: str | None) -> StorageBackend:
    """One backend per (URL, endpoint) per process, so a worker reuses its S3 client across tasks."""
    return parse_storage(url, endpoint_url)
