"""Storage backends: one class per STORE_URL scheme (s3, file, memory), found by `parse_storage(url)`.

Each backend owns its options, the zarr store the chunk writers use, the filesystems of the
app's own I/O and its readiness probe, the words for its errors, and its timing bounds. A new
scheme is one class here and one line in BACKENDS (docs/architecture.md).
"""

from __future__ import annotations

import threading
from datetime import timedelta
from functools import cached_property, lru_cache
from typing import Any, ClassVar
from urllib.parse import urlparse

import botocore.exceptions
import fsspec
import obstore.exceptions
import obstore.store
from zarr.abc.store import Store
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import FsspecStore, LocalStore, ObjectStore

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

    def __init__(self, url: str, endpoint_url: str | None = None) -> None:
        self.root = url.rstrip("/")
        self.endpoint_url = endpoint_url
        self._signers: dict[str | None, obstore.store.S3Store] = {}

    @classmethod
    def url_problem(cls, url: str) -> str | None:
        """What is wrong with a STORE_URL of this scheme, or None."""
        return None

    def array_url(self, job_id: str) -> str:
        """The URL of a job's array."""
        return f"{self.root}/{job_id}.zarr"

    def options(self) -> dict[str, Any]:
        """fsspec options for the root; never credentials, which come from the environment."""
        return {}

    def probe_options(self) -> dict[str, Any]:
        """The options of the readiness probe's filesystem: one short attempt."""
        return self.options()

    @cached_property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem of the app's own listing, reading and deleting."""
        return fsspec.filesystem(self.scheme, **self.options())

    @cached_property
    def fs_root(self) -> str:
        """The root as a path of `fs` (the URL without its scheme, as fsspec spells it)."""
        return str(fsspec.core.url_to_fs(self.root, **self.options())[1])

    @cached_property
    def probe_fs(self) -> fsspec.AbstractFileSystem:
        """The filesystem the readiness probe writes through."""
        return fsspec.filesystem(self.scheme, **self.probe_options())

    @cached_property
    def worker_store(self) -> Store:
        """The zarr store of the chunk writers (and previews), rooted at the root; one per process."""
        return FsspecStore.from_url(self.root, storage_options=self.options())

    def array_store(self, job_id: str) -> Store:
        """A store rooted at the job's array, so zarr writes no parent group's zarr.json."""
        base = self.worker_store
        assert isinstance(base, FsspecStore)
        return FsspecStore(fs=base.fs, path=f"{base.path}/{job_id}.zarr")

    @cached_property
    def obstore(self) -> obstore.store.ObjectStore:
        """An obstore store rooted at the root (put(mode="create"), list(prefix), get, delete)."""
        raise NotImplementedError

    def describe(self, exc: BaseException) -> str | None:
        """A sentence for a storage error a person can act on, or None if it is not this backend's."""
        return None

    def put_new(self, key: str, body: bytes) -> bool:
        """Write `key` (under the root) unless it exists, as zarr does; False when it exists."""
        store = self.worker_store
        if sync(store.exists(key)):
            return False
        sync(store.set(key, default_buffer_prototype().buffer.from_bytes(body)))
        return True

    def presigned_get(self, key: str, expires_s: int, endpoint_url: str | None = None) -> str | None:
        """A URL anyone may GET `key` (under the root) from for `expires_s` seconds, or None: this backend has none."""
        return None


class S3Backend(StorageBackend):
    """s3://bucket/prefix on any S3 (AWS, Ceph, MinIO, SeaweedFS): obstore for chunks, s3fs for the rest."""

    scheme = "s3"
    put_bound_s = float(S3_PUT_BOUND_S)
    # botocore's errors for a request that never got an answer (the app's s3fs), and
    # obstore's words for it (the workers' chunk PUTs: its errors say it only in text).
    UNREACHABLE_TYPES = (
        botocore.exceptions.EndpointConnectionError,
        botocore.exceptions.ConnectTimeoutError,
        botocore.exceptions.ReadTimeoutError,
        botocore.exceptions.ConnectionClosedError,
    )
    UNREACHABLE_WORDS = ("error sending request", "operation timed out", "timed out")

    @classmethod
    def url_problem(cls, url: str) -> str | None:
        """An s3:// URL needs a bucket."""
        return None if urlparse(url).netloc else f"an s3:// URL needs a bucket, got {url!r}"

    def options(self) -> dict[str, Any]:
        """s3fs options: the timeouts and retries above, no payload hashing (chunks carry crc32c)."""
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

    def probe_options(self) -> dict[str, Any]:
        """One short attempt, so /readyz answers in seconds."""
        quick = {"retries": {"max_attempts": 1}, "connect_timeout": 2, "read_timeout": 5}
        return {**self.options(), "config_kwargs": quick}

    @cached_property
    def probe_fs(self) -> fsspec.AbstractFileSystem:
        """s3fs with its own retries (on timeouts, on top of botocore's) off."""
        fs = super().probe_fs
        fs.retries = 1
        return fs

    def _s3store(self, url: str) -> obstore.store.S3Store:
        """An obstore S3 client rooted at a URL: measured faster than s3fs per PUT (bench/)."""
        parsed = urlparse(url)
        endpoint = self.endpoint_url
        return obstore.store.S3Store(
            parsed.netloc,
            prefix=parsed.path.strip("/") or None,
            endpoint=endpoint,
            # As with s3fs above: chunks carry their own crc32c, so the body is not hashed again.
            unsigned_payload=True,
            # The same bounds as botocore's: a dead endpoint fails a job within a minute. The
            # whole-request timeout is longer than a read timeout: a chunk may be 256 MiB.
            client_options={
                "connect_timeout": timedelta(seconds=S3_CONNECT_TIMEOUT_S),
                "timeout": timedelta(seconds=S3_REQUEST_TIMEOUT_S),
                "allow_http": bool(endpoint and endpoint.startswith("http://")),
            },
            retry_config={
                "max_retries": S3_MAX_ATTEMPTS - 1,
                "retry_timeout": timedelta(seconds=S3_RETRY_TIMEOUT_S),
                "backoff": {
                    "init_backoff": timedelta(milliseconds=100),
                    "max_backoff": timedelta(seconds=5),
                    "base": 2,
                },
            },
        )

    @cached_property
    def worker_store(self) -> Store:
        """obstore's S3 client; credentials and region come from the environment (AWS_*)."""
        return ObjectStore(self.obstore)

    def array_store(self, job_id: str) -> Store:
        """An obstore client at the array (no botocore set-up, which held the GIL for about a second per job)."""
        return ObjectStore(self._s3store(self.array_url(job_id)))

    @cached_property
    def obstore(self) -> obstore.store.S3Store:
        """obstore's S3 client rooted at the root."""
        return self._s3store(self.root)

    def put_new(self, key: str, body: bytes) -> bool:
        """One conditional PUT through the process's own S3 client; False when the key exists.

        zarr.create_array on a new obstore client per job cost the app about 27 ms of CPU a
        job (building the client), and it reads before it writes (bench/steps.py, py-spy).
        """
        try:
            obstore.put(self.obstore, key, body, mode="create")
        except obstore.exceptions.AlreadyExistsError:
            return False
        return True

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
        name = type(exc).__name__
        if isinstance(exc, self.UNREACHABLE_TYPES) or any(w in str(exc) for w in self.UNREACHABLE_WORDS):
            return (
                f"the object store could not be reached ({name}); "
                "check that it is up and S3_ENDPOINT_URL is right, then submit the job again"
            )
        return None


class FileBackend(StorageBackend):
    """file:///path: a persistent local store (one machine, or a shared file system)."""

    scheme = "file"

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

    @cached_property
    def worker_store(self) -> Store:
        """zarr's LocalStore at the root."""
        return LocalStore(self.path)

    def array_store(self, job_id: str) -> Store:
        """zarr's LocalStore at the array."""
        return LocalStore(f"{self.path}/{job_id}.zarr")

    @cached_property
    def obstore(self) -> obstore.store.LocalStore:
        """obstore's LocalStore at the root (made if missing)."""
        return obstore.store.LocalStore(self.path, mkdir=True)


_MEMORY: dict[str, obstore.store.MemoryStore] = {}
_MEMORY_LOCK = threading.Lock()


class MemoryBackend(StorageBackend):
    """memory://name: in this process only, for tests."""

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
