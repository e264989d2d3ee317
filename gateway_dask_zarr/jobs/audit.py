"""Does the store add up: records, index and usage entries, delete requests and array objects, checked and repaired.

One LIST of the store's root reads every key (O(objects) LIST requests); then one GET per
record and per complete array's zarr.json. Chunks are only read with `verify`, and are
rewritten by a repair from the deterministic rule (docs/reliability.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import obstore
import zarr

from gateway_dask_zarr.grid import BlockIndex, all_blocks, block_shape
from gateway_dask_zarr.jobs.job import ACTIVE, stale
from gateway_dask_zarr.jobs.leases import JOB_LEASES, Leases
from gateway_dask_zarr.jobs.records import (
    ACTIVE_MARKS,
    DELETES,
    INDEX,
    RECORDS,
    USAGE,
    Records,
    entries,
    index_name,
    now_iso,
    read_json,
    store_errors,
    usage_key,
)
from gateway_dask_zarr.jobs.resume import request_of
from gateway_dask_zarr.kinds.verify import mismatched
from gateway_dask_zarr.storage.arrays import METADATA_KEY, JobStore
from gateway_dask_zarr.storage.backends import StorageBackend
from gateway_dask_zarr.worker.blocks import block_data

ARRAY = ".zarr/"
# The readiness probe's objects live for one request.
PROBE = ".readyz-"
LOST = "its array was found missing or incomplete by `gateway-dask-zarr check`; submit the job again"


@dataclass(frozen=True)
class Finding:
    """One thing that does not add up: its kind, the job id (or key) it is about, and what is wrong."""

    kind: str
    subject: str
    detail: str
    keys: tuple[str, ...] = ()
    blocks: tuple[BlockIndex, ...] = ()

    def line(self) -> str:
        """The finding for people."""
        return f"{self.kind}  {self.subject}: {self.detail}"

    def as_json(self) -> dict[str, Any]:
        """The finding for scripts."""
        return {**asdict(self), "keys": list(self.keys), "blocks": [list(b) for b in self.blocks]}


def unit_keys(record: dict[str, Any]) -> set[str]:
    """The keys of every object a complete job's array holds: its zarr.json and one per chunk (or shard)."""
    unit = record.get("shards") or record["chunks"]
    keys = {f"c/{'/'.join(map(str, index))}" for index in all_blocks(record["shape"], unit)}
    return {*keys, METADATA_KEY}


class StoreReads:
    """What an audit reads from the store, counted: one LIST of every key, then JSON documents by key."""

    def __init__(self, backend: StorageBackend) -> None:
        self.backend = backend
        self.listed = 0
        self.read = 0

    def listing(self) -> dict[str, float]:
        """Every key under the root with its last-modified time (epoch seconds)."""
        keys: dict[str, float] = {}
        with store_errors(self.backend):
            for batch in obstore.list(self.backend.obstore, None, chunk_size=1000):
                for meta in batch:
                    keys[meta["path"]] = meta["last_modified"].timestamp()
        self.listed = len(keys)
        return keys

    def documents(self, keys: list[str]) -> list[dict[str, Any] | None]:
        """JSON documents at keys, concurrently; None where one is missing or not JSON."""
        self.read += len(keys)
        return read_json(self.backend, keys)


class Audit:
    """Checks a store against its records; `grace_s`: objects younger than this are in flight, not findings."""

    def __init__(self, records: Records, store: JobStore, grace_s: float) -> None:
        self.records = records
        self.store = store
        self.grace_s = grace_s
        self.started = time.time()
        self.reads = StoreReads(records.backend)

    def _young(self, modified: float) -> bool:
        return self.started - modified < self.grace_s

    def findings(self, verify: bool = False) -> list[Finding]:
        """What does not add up in the store now."""
        listing = self.reads.listing()
        arrays: dict[str, dict[str, float]] = {}
        for key, modified in listing.items():
            if ARRAY in key and not key.startswith("_jobs/"):
                job_id, rest = key.split(ARRAY, 1)
                arrays.setdefault(job_id, {})[rest] = modified
        record_keys = [k for k in listing if k.startswith(f"{RECORDS}/") and k.endswith(".json")]
        records = {
            k[len(RECORDS) + 1 : -len(".json")]: r
            for k, r in zip(record_keys, self.reads.documents(record_keys), strict=True)
            if r is not None
        }
        found: list[Finding] = []
        for job_id, record in sorted(records.items()):
            found += self._record(record, arrays.get(job_id, {}), listing, verify)
        for job_id, objects in sorted(arrays.items()):
            if job_id not in records and not any(self._young(m) for m in objects.values()):
                keys = tuple(f"{job_id}{ARRAY}{rest}" for rest in sorted(objects))
                found.append(Finding("array_without_record", job_id, f"{len(keys)} objects and no record", keys))
        found += self._entries(records, listing)
        return found

    def _record(
        self, record: dict[str, Any], objects: dict[str, float], listing: dict[str, float], verify: bool
    ) -> list[Finding]:
        job_id, status = record["id"], record["status"]
        if status in ACTIVE and f"{ACTIVE_MARKS}/{job_id}" not in listing:
            # Only a claim writes a record before its mark; a runner removes the mark after the final record.
            if self._young(listing[f"{RECORDS}/{job_id}.json"]):
                return []
            keys = tuple(k for k in entries(record) if k in listing)
            detail = f"{status}, and no active mark: its submission failed part-way (its client was told so)"
            return [Finding("unfinished_claim", job_id, detail, keys)]
        found: list[Finding] = []
        name = index_name(record)
        for key in (f"{INDEX}/all/{name}", f"{INDEX}/owner/{record['owner'].encode().hex()}/{name}"):
            if key not in listing:
                found.append(Finding("record_without_index", job_id, f"no index entry {key}", (key,)))
        if status == "complete":
            found += self._complete(record, objects, verify)
        elif status in ACTIVE:
            if stale(record, self.grace_s, self.started):
                found.append(Finding("stale_record", job_id, f"{status} past its deadline and every bound"))
        elif objects and (record.get("frees_at") or 0) <= self.started:
            keys = tuple(f"{job_id}{ARRAY}{rest}" for rest in sorted(objects))
            found.append(
                Finding("failed_attempt_chunks", job_id, f"{status}, yet {len(keys)} of its objects remain", keys)
            )
        return found

    def _complete(self, record: dict[str, Any], objects: dict[str, float], verify: bool) -> list[Finding]:
        job_id = record["id"]
        expected = unit_keys(record)
        if METADATA_KEY not in objects:
            return [Finding("record_without_array", job_id, "complete, but its array has no zarr.json")]
        found: list[Finding] = []
        missing = sorted(expected - set(objects))
        if missing:
            # Unsharded, a missing object is one block; a missing shard is rewritten with the whole array.
            blocks = () if record.get("shards") else tuple(tuple(int(i) for i in k[2:].split("/")) for k in missing)
            detail = f"{len(missing)} of {len(expected) - 1} objects missing"
            found.append(Finding("missing_chunks", job_id, detail, blocks=blocks))
        extra = tuple(f"{job_id}{ARRAY}{rest}" for rest in sorted(set(objects) - expected))
        if extra:
            found.append(Finding("orphaned_chunks", job_id, f"{len(extra)} objects outside its array's grid", extra))
        (metadata,) = self.reads.documents([f"{job_id}{ARRAY}{METADATA_KEY}"])
        document = ((metadata or {}).get("attributes") or {}).get("gateway") or {}
        if document.get("id") != job_id or document.get("status") != "complete":
            found.append(Finding("metadata_mismatch", job_id, "its zarr.json does not carry this job's document"))
        elif verify and not missing:
            # Each kind's own rule (a derived kind's against its input).
            request = request_of(record)
            source = self.store.open_array(request.input) if request.input else None
            wrong = mismatched(request, self.store.open_array(job_id), source)
            if wrong:
                found.append(
                    Finding("chunk_mismatch", job_id, f"{len(wrong)} chunks differ from the rule", blocks=tuple(wrong))
                )
        return found

    def _entries(self, records: dict[str, dict[str, Any]], listing: dict[str, float]) -> list[Finding]:
        """Index and usage entries and delete requests against the records."""
        found: list[Finding] = []
        # A claim that did not finish counts against nobody: its entries are removed with it.
        counted = {
            usage_key(r)
            for r in records.values()
            if r["status"] == "complete" or (r["status"] in ACTIVE and f"{ACTIVE_MARKS}/{r['id']}" in listing)
        }
        names = {index_name(r) for r in records.values()}
        for key, modified in sorted(listing.items()):
            if self._young(modified):
                continue
            leaf = key.rsplit("/", 1)[-1]
            if key.startswith(f"{INDEX}/") and leaf not in names:
                found.append(Finding("index_without_record", leaf.split("-", 1)[-1], f"index entry {key}", (key,)))
            elif key.startswith(f"{USAGE}/") and key not in counted:
                found.append(Finding("usage_mismatch", leaf.split("-", 1)[-1], f"usage entry {key}", (key,)))
            elif key.startswith(f"{DELETES}/") and leaf not in records:
                found.append(Finding("delete_without_record", leaf, f"delete request {key}", (key,)))
            elif key.startswith((f"{ACTIVE_MARKS}/", f"{JOB_LEASES}/")):
                job_id = key.split("/")[2 if key.startswith(ACTIVE_MARKS) else 3]
                if records.get(job_id, {}).get("status") not in ACTIVE:
                    found.append(Finding("mark_without_active_job", job_id, f"active mark or lease {key}", (key,)))
        for key in sorted(counted - set(listing)):
            job_id = key.rsplit("/", 1)[-1].split("-", 1)[1]
            found.append(Finding("usage_missing", job_id, f"no usage entry {key}", (key,)))
        return found


class Repair:
    """Fixes findings, each only if it still holds when read again (another replica may have fixed it)."""

    def __init__(self, records: Records, store: JobStore, leases: Leases | None = None) -> None:
        self.records = records
        self.store = store
        # With leases (the sweeper), an id's lease is held while its orphaned array is deleted,
        # so that no replica claims the id meanwhile (a claim takes the lease first).
        self.leases = leases

    def __call__(self, finding: Finding) -> str | None:
        """Fix one finding if it still holds: what was done, or None if it was left (see docs/reliability.md)."""
        record = self.records.read(finding.subject)
        kind = finding.kind
        if kind in ("index_without_record", "usage_mismatch", "delete_without_record", "mark_without_active_job"):
            if record is not None and self._wanted(finding.keys[0], record):
                return None
            self.records.delete_keys(list(finding.keys))
            return f"deleted {finding.keys[0]}"
        if kind in ("record_without_index", "usage_missing"):
            if record is None:
                return None
            self.records.put_empty(list(finding.keys))
            return f"wrote {finding.keys[0]}"
        if kind == "array_without_record":
            return self._orphan(finding)
        if kind == "unfinished_claim":
            return self._unclaim(finding)
        if kind in ("failed_attempt_chunks", "orphaned_chunks"):
            if record is None or record["status"] in ACTIVE:
                return None
            self.records.delete_keys(list(finding.keys))
            return f"deleted {len(finding.keys)} objects"
        if kind in ("missing_chunks", "chunk_mismatch"):
            # Only the random kind's chunks are a rule of the record alone; a derived job's are reported.
            if record is None or record["status"] != "complete" or (record.get("kind") or "random") != "random":
                return None
            return f"rewrote {self._rewrite(record, finding.blocks)} chunks from the rule"
        if kind in ("record_without_array", "stale_record"):
            if record is None or record["status"] not in ("complete", *ACTIVE):
                return None
            self.store.delete(finding.subject)
            self.records.write({**record, "status": "failed", "error": LOST, "finished": now_iso(), "cleanup": "done"})
            self.records.forget_usage(record)
            self.records.delete_keys([f"{ACTIVE_MARKS}/{record['id']}"])
            return "marked failed, its objects deleted"
        return None

    @contextmanager
    def _holding(self, job_id: str) -> Iterator[bool]:
        """Hold the id's lease while a repair acts on it, if this is a replica; False if another holds it."""
        if self.leases is None:
            yield True
            return
        if not self.leases.hold(job_id):
            yield False
            return
        try:
            yield True
        finally:
            self.leases.release(job_id)

    def _orphan(self, finding: Finding) -> str | None:
        """Delete an array no record references."""
        with self._holding(finding.subject) as held:
            if not held or self.records.read(finding.subject) is not None:
                return None
            self.store.delete(finding.subject)
        return f"deleted {len(finding.keys)} objects"

    def _unclaim(self, finding: Finding) -> str | None:
        """Remove a claim that did not finish: the record and whatever entries it wrote (the id is free after)."""
        with self._holding(finding.subject) as held:
            record = self.records.read(finding.subject)
            if not held or record is None or record["status"] not in ACTIVE or self.records.marked_active(record["id"]):
                return None
            self.records.remove(record)
        return "removed its record and entries"

    def _wanted(self, key: str, record: dict[str, Any]) -> bool:
        """True if the record (read again) wants this entry: another replica fixed it meanwhile."""
        name = index_name(record)
        if key.startswith(f"{USAGE}/"):
            return record["status"] in (*ACTIVE, "complete") and key == usage_key(record)
        if key.startswith(f"{DELETES}/"):
            return True
        if key.startswith((f"{ACTIVE_MARKS}/", f"{JOB_LEASES}/")):
            return record["status"] in ACTIVE
        return key.rsplit("/", 1)[-1] == name

    def _rewrite(self, record: dict[str, Any], blocks: tuple[BlockIndex, ...]) -> int:
        """Write blocks (all of them when none are named) of a complete array again, from the rule."""
        array = zarr.open_array(self.store.backend.worker_store, path=f"{record['id']}.zarr", mode="r+")
        shape, chunks = tuple(record["shape"]), tuple(record["chunks"])
        todo = blocks or tuple(all_blocks(shape, chunks))
        for index in todo:
            data = block_data(record["seed"], index, block_shape(shape, chunks, index), record["dtype"])
            array[tuple(slice(i * c, i * c + n) for i, c, n in zip(index, chunks, data.shape, strict=True))] = data
        return len(todo)
