"""Job records and the listing index in the object store: the one source of truth for every job.

Layout under the store's root (see docs/storage.md):

- `_jobs/records/{id}.json`: the job record; created with a conditional create, which claims the id.
- `_jobs/index/all/{newest}-{id}` and `_jobs/index/owner/{hex owner}/{newest}-{id}`: empty
  objects whose keys sort newest first (`newest` is an inverted millisecond timestamp), so a
  listing reads `limit` keys and `limit` records, whatever the number of jobs.
- `_jobs/usage/{hex owner}/{bytes}-{id}`: an empty object per job that counts against its
  owner's STORAGE_QUOTA_BYTES (queued, running or complete); the key carries the array's
  bytes, so one LIST (per 1000 jobs) sums a user's usage without reading a record.
- `_jobs/delete/{id}`: a request to delete a job that another replica (or this one) runs
  or is still cleaning up; its runner acts on it.
- `_jobs/leases/{name}/{slot}`: who runs a periodic task (retention) in a time slot;
  `_jobs/leases/job/{id}/{slot}`: who holds a queued or running job (jobs/leases.py).
- `_jobs/active/{id}`: an empty object per queued or running job, for the replicas that take over.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import obstore
from obstore.exceptions import AlreadyExistsError

from gateway_dask_zarr.errors import Conflict, StoreUnavailable
from gateway_dask_zarr.storage.backends import StorageBackend

# Requests in flight at once for a batch of small objects (one listing page's records).
CONCURRENT_REQUESTS = 16
PREFIX = "_jobs"
RECORDS = f"{PREFIX}/records"
INDEX = f"{PREFIX}/index"
DELETES = f"{PREFIX}/delete"
LEASES = f"{PREFIX}/leases"
USAGE = f"{PREFIX}/usage"
ACTIVE_MARKS = f"{PREFIX}/active"
# Inverted milliseconds since the epoch, 13 digits: later times sort first until the year 2286.
NEWEST_BASE = 10**13 - 1
CURSOR = re.compile(r"[0-9]{13}-[A-Za-z0-9_.-]{1,64}")


def newest_first(created: datetime) -> str:
    """The sort prefix of an index key: smaller for later times."""
    return f"{NEWEST_BASE - int(created.timestamp() * 1000):013d}"


def index_name(record: dict[str, Any]) -> str:
    """The name of a job's index entries (also the paging cursor): `{newest}-{id}`."""
    created = datetime.fromisoformat(record["created"].replace("Z", "+00:00"))
    return f"{newest_first(created)}-{record['id']}"


def _owner_dir(owner: str) -> str:
    # Any user name, made safe for a key: its UTF-8 bytes in hex.
    return f"{INDEX}/owner/{owner.encode().hex()}"


def _usage_dir(owner: str) -> str:
    return f"{USAGE}/{owner.encode().hex()}"


def usage_key(record: dict[str, Any]) -> str:
    """The key of a job's usage entry: `{bytes}-{id}` under its owner's usage directory."""
    nbytes = math.prod(record["shape"]) * np.dtype(record["dtype"]).itemsize
    return f"{_usage_dir(record['owner'])}/{nbytes}-{record['id']}"


def entries(record: dict[str, Any]) -> list[str]:
    """A job's index and usage entries."""
    name = index_name(record)
    return [f"{INDEX}/all/{name}", f"{_owner_dir(record['owner'])}/{name}", usage_key(record)]


T = TypeVar("T")


def concurrently(call: Callable[[str], T], keys: list[str]) -> list[T]:
    """call(key) for every key, in threads, results in order.

    Threads and obstore's blocking calls, not asyncio.run on its async ones: a process that
    had used those now and then aborted at exit, after its output (SIGABRT or SIGBUS;
    `gateway-dask-zarr check` on a store with records: 1 run in 4, and 0 in 60 with threads).
    """
    if len(keys) <= 1:
        return [call(key) for key in keys]
    with ThreadPoolExecutor(min(CONCURRENT_REQUESTS, len(keys))) as pool:
        return list(pool.map(call, keys))


def read_json(backend: StorageBackend, keys: list[str]) -> list[dict[str, Any] | None]:
    """The JSON objects at keys, read concurrently, in order; None where one is missing or not a JSON object."""

    def one(key: str) -> dict[str, Any] | None:
        try:
            value = json.loads(bytes(obstore.get(backend.obstore, key).bytes()))
        except (FileNotFoundError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    with store_errors(backend):
        return concurrently(one, keys)


@contextmanager
def store_errors(backend: StorageBackend) -> Iterator[None]:
    """Turn a failed store request into StoreUnavailable, in the backend's sentence for it."""
    try:
        yield
    except Conflict:
        raise
    except Exception as exc:
        raise StoreUnavailable(backend.sentence(exc), retry_after=10) from None


class Records:
    """Job records, the newest-first index and delete requests, on the backend's client (rooted at STORE_URL)."""

    def __init__(self, backend: StorageBackend) -> None:
        self.backend = backend
        self.store = backend.obstore
        # Where a listing comes unsorted (a local directory), the whole directory is read and sorted.
        self.listed_in_order = backend.lists_in_order

    # -- one record -------------------------------------------------------------------

    def claim(self, record: dict[str, Any]) -> None:
        """Create a new job's record, then its index entries and active mark; Conflict if the id is taken.

        When the entries cannot be written, the record is removed again: its caller is told the
        store failed, so the job must not exist. Where even that fails, the sweeper removes the
        claim that did not finish (jobs/audit.py, `unfinished_claim`).
        """
        body = json.dumps(record).encode()
        with store_errors(self.backend):
            try:
                obstore.put(self.store, f"{RECORDS}/{record['id']}.json", body, mode="create")
            except AlreadyExistsError:
                raise Conflict(
                    f"job {record['id']!r} exists; choose another id, or DELETE /jobs/{record['id']} first",
                    code="job_exists",
                    field="job_id",
                ) from None
            try:
                self.put_empty([*entries(record), f"{ACTIVE_MARKS}/{record['id']}"])
            except Exception:
                with suppress(StoreUnavailable):
                    self.remove(record)
                raise

    def put_empty(self, keys: list[str]) -> None:
        """PUT empty objects at once: one round trip to the store, not one per key (a job's claim waits on it)."""

        concurrently(lambda key: obstore.put(self.store, key, b""), keys)

    def write(self, record: dict[str, Any]) -> None:
        """Replace a record (only its runner, or the replica deleting it, writes one)."""
        with store_errors(self.backend):
            obstore.put(self.store, f"{RECORDS}/{record['id']}.json", json.dumps(record).encode())

    def read(self, job_id: str) -> dict[str, Any] | None:
        """A job's record, or None."""
        with store_errors(self.backend):
            try:
                return json.loads(bytes(obstore.get(self.store, f"{RECORDS}/{job_id}.json").bytes()))
            except FileNotFoundError:
                return None

    def remove(self, record: dict[str, Any]) -> None:
        """Remove a record's index and usage entries, its delete request, then the record: the id is free after."""
        self.delete_keys([*entries(record), f"{DELETES}/{record['id']}", f"{ACTIVE_MARKS}/{record['id']}"])
        self.delete_keys([f"{RECORDS}/{record['id']}.json"])

    def forget_usage(self, record: dict[str, Any]) -> None:
        """Stop counting a job against its owner's quota (it failed: its chunks are deleted)."""
        self.delete_keys([usage_key(record)])

    def usage(self, owner: str) -> int:
        """The bytes of the owner's queued, running and complete jobs: one LIST per 1000 jobs, no record read."""
        with store_errors(self.backend):
            return sum(
                int(meta["path"].rsplit("/", 1)[-1].split("-", 1)[0])
                for batch in obstore.list(self.store, _usage_dir(owner), chunk_size=1000)
                for meta in batch
            )

    def delete_keys(self, keys: list[str]) -> None:
        with store_errors(self.backend):
            try:
                obstore.delete(self.store, keys)
            except FileNotFoundError:
                # A local store refuses a batch with a missing key; S3 does not.
                for key in keys:
                    with suppress(FileNotFoundError):
                        obstore.delete(self.store, key)

    # -- delete requests ----------------------------------------------------------------

    def request_delete(self, job_id: str) -> None:
        """Ask whoever runs (or cleans up) the job to delete it when it can."""
        with store_errors(self.backend), suppress(AlreadyExistsError):
            obstore.put(self.store, f"{DELETES}/{job_id}", b"", mode="create")

    def delete_requested(self, job_id: str) -> bool:
        """True if someone asked for the job to be deleted."""
        return self._exists(f"{DELETES}/{job_id}")

    def marked_active(self, job_id: str) -> bool:
        """True if the job's active mark exists (its claim finished, and it has not ended)."""
        return self._exists(f"{ACTIVE_MARKS}/{job_id}")

    def _exists(self, key: str) -> bool:
        with store_errors(self.backend):
            try:
                obstore.head(self.store, key)
                return True
            except FileNotFoundError:
                return False

    # -- listing ------------------------------------------------------------------------

    def index_page(self, owner: str | None, limit: int, before: str | None) -> list[str]:
        """Up to `limit` index names, newest first, after the cursor `before`: about limit/1000 LISTs."""
        directory = f"{INDEX}/all" if owner is None else _owner_dir(owner)
        names: list[str] = []
        with store_errors(self.backend):
            stream = obstore.list(
                self.store, directory, offset=f"{directory}/{before}" if before else None, chunk_size=limit
            )
            for batch in stream:
                names.extend(meta["path"].rsplit("/", 1)[-1] for meta in batch)
                if len(names) >= limit and self.listed_in_order:
                    break
        return sorted(n for n in names if before is None or n > before)[:limit]

    def read_many(self, names: list[str]) -> list[dict[str, Any]]:
        """The records of index names, concurrently, in order; an entry whose record is gone is skipped."""
        found = read_json(self.backend, [f"{RECORDS}/{name.split('-', 1)[1]}.json" for name in names])
        return [r for r, name in zip(found, names, strict=True) if r is not None and index_name(r) == name]

    def index_older_than(self, cutoff: datetime, limit: int) -> list[str]:
        """Up to `limit` names from the all-jobs index of jobs created before `cutoff`, newest first."""
        # "~" sorts after every id character: entries created at the cutoff itself are not older.
        return self.index_page(None, limit, newest_first(cutoff) + "~")

    # -- leases -------------------------------------------------------------------------

    def take_lease(self, name: str, slot: str, holder: str) -> bool:
        """Claim `name` for a time slot; exactly one caller per slot gets True. Older slots are forgotten."""
        with store_errors(self.backend):
            try:
                obstore.put(self.store, f"{LEASES}/{name}/{slot}", holder.encode(), mode="create")
            except AlreadyExistsError:
                return False
            old = [m["path"] for batch in obstore.list(self.store, f"{LEASES}/{name}") for m in batch]
        self.delete_keys([k for k in old if k.rsplit("/", 1)[-1] < slot])
        return True


def now_iso(now: datetime | None = None) -> str:
    """A UTC time as the records and documents write it (milliseconds, Z)."""
    return (now or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
