"""One job's state: what a runner holds in memory, and the record and document made from it."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway_dask_zarr.jobs.records import now_iso
from gateway_dask_zarr.kinds.provenance import provenance, provenance_schema
from gateway_dask_zarr.kinds.registry import all_parameters, kind_parameter
from gateway_dask_zarr.params import JobRequest
from gateway_dask_zarr.version import __version__

log = logging.getLogger("gateway_dask_zarr.jobs")

# The keys of a record that a job document shows; the others are the service's own.
DOCUMENT_KEYS = (
    "id",
    "owner",
    "status",
    "kind",
    *(p.name for p in all_parameters()),
    "provenance",
    "created",
    "finished",
    "seconds",
    "queued_s",
    "chunks_written",
    "bytes_written",
    "stats",
    "error",
    "version",
    "progress",
)
ACTIVE = ("queued", "running")
STATUSES = (*ACTIVE, "complete", "failed", "cancelled")


@dataclass
class Job:
    """A job this process runs: its request, owner, attempt and progress."""

    id: str
    request: JobRequest
    owner: str
    deadline: float  # epoch seconds: no chunk write starts after it
    attempt: str = field(default_factory=lambda: secrets.token_hex(8))
    status: str = "queued"
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished: datetime | None = None
    seconds: float | None = None  # from accepted to ended, on the clock below
    queued_s: float | None = None  # from accepted to its first task running (jobs/progress.py)
    # This replica's monotonic clock when it accepted (or took over) the job: seconds and
    # queued_s both count from it, so queued_s never exceeds seconds.
    accepted: float = field(default_factory=time.monotonic, repr=False)
    done: int = 0
    chunks_written: int = 0
    bytes_written: int = 0
    stats: dict[str, float] | None = None
    error: str | None = None
    # Epoch seconds after which no write of this attempt can land (set when it fails or is cancelled).
    frees_at: float | None = None
    cleanup: str | None = None  # "pending" until the last delete of a failed attempt's chunks, then "done"
    attempts: int = 1  # how many replicas have started it (docs/reliability.md)
    resumed: list[dict[str, Any]] = field(default_factory=list)  # each takeover: by whom, when, which attempt
    handed_back: bool = False  # this replica stopped or lost the lease: another finishes the job
    futures: list[Any] = field(default_factory=list, repr=False)
    saved: tuple[str, int] = ("queued", 0)  # the status and progress the record has (the claim's)
    final: bool = False  # the record has its final status: no more writes of this attempt
    ended: threading.Event = field(default_factory=threading.Event, repr=False)
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    # Serialises this job's record writes: a progress write must never land after the final one.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Orders the two readings of the clock: a late first report must not set queued_s after seconds.
    clock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def started_running(self) -> None:
        """Its first task runs: queued_s, once, and never after the job ended."""
        with self.clock:
            if self.queued_s is None and self.seconds is None:
                self.queued_s = round(time.monotonic() - self.accepted, 3)

    def stop_clock(self) -> None:
        """The job ended: seconds since it was accepted."""
        with self.clock:
            self.seconds = round(time.monotonic() - self.accepted, 3)

    def document(self) -> dict[str, Any]:
        """The job document (no URLs, no secrets)."""
        return {
            "id": self.id,
            "owner": self.owner,
            "status": self.status,
            # Every kind's parameters: another kind's are null.
            **{p.name: None for p in all_parameters()},
            **self.request.document(),
            "provenance": provenance(self.request),
            "created": now_iso(self.created),
            "finished": now_iso(self.finished) if self.finished else None,
            "seconds": self.seconds,
            "queued_s": self.queued_s,
            "chunks_written": self.chunks_written,
            "bytes_written": self.bytes_written,
            "stats": self.stats,
            "error": self.error,
            "version": __version__,
            "progress": {"done": self.done, "total": self.request.n_chunks},
        }

    def take_published(self, published: dict[str, Any]) -> None:
        """End complete, as the document an earlier attempt published with its (whole) array says."""
        self.chunks_written, self.bytes_written = published["chunks_written"], published["bytes_written"]
        self.stats, self.done, self.error = published.get("stats"), self.request.n_chunks, None
        self.finished = datetime.now(UTC)
        self.stop_clock()
        self.status = "complete"

    def cancel_tasks(self) -> None:
        """Cancel the job: its tasks are cancelled and it ends as cancelled."""
        self.cancel.set()
        for future in self.futures:
            future.cancel()

    def record(self) -> dict[str, Any]:
        """The record stored for this job: its document and what replicas need to act on it."""
        return {
            **self.document(),
            "attempt": self.attempt,
            "deadline": self.deadline,
            "frees_at": self.frees_at,
            "cleanup": self.cleanup,
            "attempts": self.attempts,
            "resumed": self.resumed,
            "updated": time.time(),
        }


def job_log(job: Job) -> logging.LoggerAdapter[logging.Logger]:
    """The jobs logger with the job's id on every record (a field of LOG_FORMAT=json lines)."""
    return logging.LoggerAdapter(log, {"job_id": job.id})


def document_of(record: dict[str, Any]) -> dict[str, Any]:
    """A record as a job document: only the keys a document has."""
    return {key: record.get(key) for key in DOCUMENT_KEYS}


def stale(record: dict[str, Any], grace_s: float, now: float | None = None) -> bool:
    """True for a queued or running record whose runner stopped: past its deadline and every bound."""
    now = time.time() if now is None else now
    return record["status"] in ACTIVE and now > record["deadline"] + 2 * grace_s


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with null allowed (an enum lists it too, as OpenAPI 3.0 requires)."""
    enum = {"enum": [*schema["enum"], None]} if "enum" in schema else {}
    return {**schema, "nullable": True, **enum}


def document_schema() -> dict[str, Any]:
    """The JSON schema of Job.document(): the parameters' from their declarations, the rest beside it."""
    integer, number, text = {"type": "integer"}, {"type": "number"}, {"type": "string"}
    progress = {"type": "object", "properties": {"done": integer, "total": integer}, "additionalProperties": False}
    stats = {"type": "object", "nullable": True, "properties": {"min": number, "max": number, "mean": number}}
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "id": text,
            "owner": text,
            "status": {"type": "string", "enum": list(STATUSES)},
            "kind": kind_parameter().json_schema(),
            **{p.name: _nullable(p.json_schema()) for p in all_parameters()},
            "provenance": provenance_schema(),
            "created": text,
            "finished": {**text, "nullable": True},
            "seconds": {**number, "nullable": True},
            "queued_s": {**number, "nullable": True},
            "chunks_written": integer,
            "bytes_written": integer,
            "stats": stats,
            "error": {**text, "nullable": True},
            "version": text,
            "progress": progress,
        },
    }
