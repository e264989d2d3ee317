"""Jobs: validate a request, plan its chunk tasks, submit them in one batch, track them, publish or clean up."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from distributed import as_completed
from zarr.errors import ContainsArrayError

from gateway_dask_zarr.blocks import ArrayTarget, write_blocks
from gateway_dask_zarr.cluster import ClusterManager
from gateway_dask_zarr.config import Settings
from gateway_dask_zarr.errors import (
    Busy,
    ClusterUnavailable,
    Conflict,
    InvalidParameter,
    ServiceError,
    StoreUnavailable,
)
from gateway_dask_zarr.params import PARAMETERS, JobRequest
from gateway_dask_zarr.store import JobStore, array_kwargs, array_metadata
from gateway_dask_zarr.version import __version__

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")
# A task's chunks in flight at once: enough concurrency to hide S3 latency, few enough
# bytes that a worker holds only a handful of chunks (each chunk in flight costs about
# three copies of itself: the encoded chunk, the request body and the client's buffers).
TASK_BYTES_IN_FLIGHT = 8 * 2**20
MAX_TASK_CONCURRENCY = 16
# Chunks a task owns before a job is split into more than one task per worker.
CHUNKS_PER_TASK = 1000
MAX_TASKS_PER_WORKER = 8
FINISHED_JOBS_KEPT = 1000
CANCELLED = "the job's tasks were cancelled: the Dask cluster was lost or restarted; submit the job again"


def new_job_id(now: datetime | None = None) -> str:
    """A time-sortable id: YYYYMMDDTHHMMSSZ- and 8 lowercase hex digits."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def check_job_id(job_id: str) -> str:
    """Refuse ids that are not 1-64 of A-Za-z0-9_.- or that start with a dot."""
    if not JOB_ID.fullmatch(job_id) or job_id.startswith("."):
        raise InvalidParameter(
            "a job id must be 1 to 64 of A-Z a-z 0-9 _ . - and must not start with '.'",
            code="invalid_job_id",
            field="job_id",
        )
    return job_id


def _iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z") if t else None


@dataclass
class Job:
    """One job's state in this process."""

    id: str
    request: JobRequest
    status: str = "queued"
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished: datetime | None = None
    seconds: float | None = None
    done: int = 0
    chunks_written: int = 0
    bytes_written: int = 0
    stats: dict[str, float] | None = None
    error: str | None = None
    ended: threading.Event = field(default_factory=threading.Event, repr=False)

    def document(self) -> dict[str, Any]:
        """The job document as stored in the array's attributes (no URLs, no secrets)."""
        return {
            "id": self.id,
            "status": self.status,
            **self.request.document(),
            "created": _iso(self.created),
            "finished": _iso(self.finished),
            "seconds": self.seconds,
            "chunks_written": self.chunks_written,
            "bytes_written": self.bytes_written,
            "stats": self.stats,
            "error": self.error,
            "version": __version__,
            "progress": {"done": self.done, "total": self.request.n_chunks},
        }


STATUSES = ("queued", "running", "complete", "failed")


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
            "status": {"type": "string", "enum": list(STATUSES)},
            **{p.name: p.json_schema() for p in PARAMETERS},
            "created": text,
            "finished": {**text, "nullable": True},
            "seconds": {**number, "nullable": True},
            "chunks_written": integer,
            "bytes_written": integer,
            "stats": stats,
            "error": {**text, "nullable": True},
            "version": text,
            "progress": progress,
        },
    }


def plan_tasks(request: JobRequest, n_workers: int) -> list[range]:
    """Split the chunks (numbered in C order) into contiguous ranges, one task each.

    One task per worker for a job of up to CHUNKS_PER_TASK chunks a worker; above that,
    more tasks (at most MAX_TASKS_PER_WORKER a worker), so progress moves and a slow
    worker's share is small. Each task costs the scheduler and the app a round trip.
    """
    n = request.n_chunks
    per_worker = max(1, min(MAX_TASKS_PER_WORKER, math.ceil(n / (max(1, n_workers) * CHUNKS_PER_TASK))))
    n_tasks = max(1, min(n, n_workers * per_worker))
    size = math.ceil(n / n_tasks)
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


class JobManager:
    """Runs jobs on the cluster and keeps the running and failed ones in memory."""

    def __init__(self, settings: Settings, cluster: ClusterManager, store: JobStore) -> None:
        self.settings = settings
        self.cluster = cluster
        self.store = store
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._active = 0
        # One thread per active job only waits on futures; the work happens on the workers.
        self._runner = ThreadPoolExecutor(settings.max_active_jobs, thread_name_prefix="job")
        self.listeners: list[Any] = []
        # After a failed job's deadline, how long a chunk write already in flight may still
        # land (the storage backend's bounds); then its chunks are deleted again.
        self.late_write_grace_s = store.backend.put_bound_s
        self._timers: set[threading.Timer] = set()

    @property
    def active(self) -> int:
        """Jobs queued or running now."""
        return self._active

    def _full(self) -> Busy:
        """The refusal for a service running MAX_ACTIVE_JOBS jobs."""
        return Busy(f"{self._active} jobs are running, the most MAX_ACTIVE_JOBS allows; retry later", retry_after=2)

    def submit(self, request: JobRequest, job_id: str | None = None) -> Job:
        """Start a job; raise Conflict, Busy, ClusterUnavailable or StoreUnavailable when it cannot."""
        # Refuse a full service before asking the cluster: a burst of refusals then costs no
        # scheduler round trip each (measured: they delayed /healthz under load).
        if self._active >= self.settings.max_active_jobs:
            raise self._full()
        problem = self.cluster.problem()
        if problem:
            raise ClusterUnavailable(f"{problem}; try again shortly", retry_after=10)
        named = job_id is not None
        job_id = check_job_id(job_id) if job_id is not None else new_job_id()
        with self._lock:
            if self._active >= self.settings.max_active_jobs:
                raise self._full()
            if job_id in self._jobs and self._jobs[job_id].status != "failed":
                raise Conflict(f"job {job_id!r} exists; choose another id", code="job_exists", field="job_id")
            self._active += 1
            job = Job(job_id, request)
            self._jobs[job_id] = job
        try:
            if named and self.store.exists(job_id):
                raise Conflict(
                    f"job {job_id!r} exists in the store; choose another id", code="job_exists", field="job_id"
                )
        except ServiceError:
            self._finish_bookkeeping(job, forget=True)
            raise
        except Exception as exc:
            self._finish_bookkeeping(job, forget=True)
            raise StoreUnavailable(f"the object store cannot be reached: {type(exc).__name__}") from None
        self._runner.submit(self._run, job)
        return job

    def _finish_bookkeeping(self, job: Job, forget: bool = False) -> None:
        with self._lock:
            self._active -= 1
            if forget:
                self._jobs.pop(job.id, None)
            while len(self._jobs) > FINISHED_JOBS_KEPT:
                oldest = next(iter(self._jobs))
                if not self._jobs[oldest].ended.is_set():
                    break
                self._jobs.pop(oldest)

    def _run(self, job: Job) -> None:
        started = time.monotonic()
        deadline = time.time() + self.settings.job_timeout_s
        futures: list[Any] = []
        try:
            client = self.cluster.client
            request = job.request
            target = ArrayTarget(
                root_url=self.store.root,
                endpoint_url=self.store.backend.endpoint_url,
                job_id=job.id,
                metadata=array_metadata(request.shape, request.chunks, request.dtype, self.settings.compressor),
                seed=request.seed,
                concurrency=max(1, min(MAX_TASK_CONCURRENCY, TASK_BYTES_IN_FLIGHT // request.chunk_bytes)),
                deadline=deadline,
            )
            batches = plan_tasks(request, self.settings.n_workers)
            job.status = "running"
            _log(job).info(
                "job %s running: shape %s, chunks %s, %s, %d tasks",
                job.id,
                list(request.shape),
                list(request.chunks),
                request.dtype,
                len(batches),
            )
            futures = client.map(
                partial(write_blocks, target),
                batches,
                key=[f"write-{job.id}-{i}" for i in range(len(batches))],
                pure=False,
                # A lost worker is not a retry (the scheduler reruns its tasks anyway);
                # this is for a task that failed once although the S3 client retried its PUTs.
                retries=1,
            )
            for future, batch in zip(futures, batches, strict=True):
                future.add_done_callback(partial(self._progress, job, len(batch)))
            _log(job).info("job %s: planned and submitted in %.3f s", job.id, time.monotonic() - started)
            # The first task that fails for good fails the job now, not when the rest end. The
            # client's loop is given, not made current: Client.as_current() sets dask's global
            # config (scheduler="dask.distributed"), which overlapping jobs left set for good.
            for future in as_completed(futures, loop=client.loop, timeout=self.settings.job_timeout_s):
                self._check(future)
            # One gather for all the results: a result() per future is a round trip each.
            self._complete(job, client.gather(futures), started)
        except Exception as exc:
            self._fail(job, _reason(exc, self.settings, self.store), futures, started, deadline)
        finally:
            # Bookkeeping and listeners (metrics) first, so whoever waits on `ended` sees them done.
            self._finish_bookkeeping(job)
            for listener in self.listeners:
                try:
                    listener(job)
                except Exception:
                    log.exception("a job listener failed on job %s", job.id)
            job.ended.set()

    @staticmethod
    def _progress(job: Job, n: int, future: Any) -> None:
        if future.status == "finished":
            job.done += n

    @staticmethod
    def _check(future: Any) -> None:
        if future.status == "cancelled":
            # Only a lost or restarted cluster cancels our tasks (a failed job cancels its own
            # tasks after it has failed).
            raise ClusterUnavailable(CANCELLED)
        if future.status != "finished":
            raise future.exception() or RuntimeError(f"a chunk task ended {future.status}")

    def _complete(self, job: Job, facts: list[dict[str, Any]], started: float) -> None:
        count = sum(f["count"] for f in facts)
        job.chunks_written = sum(f["chunks"] for f in facts)
        job.bytes_written = sum(f["bytes"] for f in facts)
        job.stats = {
            "min": min(f["min"] for f in facts),
            "max": max(f["max"] for f in facts),
            "mean": sum(f["sum"] for f in facts) / count,
        }
        if job.chunks_written != job.request.n_chunks:
            raise RuntimeError(f"{job.chunks_written} of {job.request.n_chunks} chunks were written")
        job.finished = datetime.now(UTC)
        job.seconds = round(time.monotonic() - started, 3)
        request = job.request
        document = job.document()
        del document["progress"]
        document["status"] = "complete"
        self.store.publish(
            job.id, array_kwargs(request.shape, request.chunks, request.dtype, self.settings.compressor), document
        )
        # Only now: a reader polling the job must not see "complete" before the array exists.
        job.status = "complete"
        _log(job).info(
            "job %s complete: %d chunks, %d bytes in %.3f s", job.id, job.chunks_written, job.bytes_written, job.seconds
        )

    def _fail(self, job: Job, reason: str, futures: list[Any], started: float, deadline: float) -> None:
        job.status = "failed"
        # A reason recorded earlier (the cluster was lost) says more than the cancellation it caused.
        job.error = job.error or reason
        job.finished = datetime.now(UTC)
        job.seconds = round(time.monotonic() - started, 3)
        _log(job).warning("job %s failed: %s", job.id, job.error)
        for future in futures:
            future.cancel()
        self._delete_chunks(job)
        # A task already running cannot be stopped and may still PUT chunks until the job's
        # deadline (blocks.py writes none after it): delete once more when those have landed.
        delay = max(0.0, deadline - time.time()) + self.late_write_grace_s
        timer = threading.Timer(delay, self._delete_late_chunks, args=(job,))
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()

    def _delete_late_chunks(self, job: Job) -> None:
        self._delete_chunks(job)
        with self._lock:
            self._timers.discard(threading.current_thread())
        _log(job).info("job %s: chunks deleted again after its deadline", job.id)

    def _delete_chunks(self, job: Job) -> None:
        try:
            self.store.delete(job.id)
        except Exception as exc:
            _log(job).warning("job %s: deleting its chunks failed: %s", job.id, type(exc).__name__)

    def fail_running(self, reason: str) -> None:
        """Called when the cluster is lost: running jobs will fail with this reason."""
        with self._lock:
            running = [j for j in self._jobs.values() if not j.ended.is_set()]
        for job in running:
            job.error = reason

    def get(self, job_id: str) -> dict[str, Any] | None:
        """A job's document from memory (queued, running, failed) or from the store (complete)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None and job.status != "complete":
            return job.document()
        with _store_errors():
            document = self.store.read(job_id)
        if document is None and job is not None:
            return job.document()
        return document

    def list(self, limit: int) -> list[dict[str, Any]]:
        """Recent jobs, newest first: running and failed from memory, complete from the store."""
        with self._lock:
            in_memory = [j.document() for j in self._jobs.values() if j.status != "complete"]
        with _store_errors():
            documents = in_memory + self.store.list(limit)
        documents.sort(key=lambda d: d.get("created") or "", reverse=True)
        return documents[:limit]

    def close(self) -> None:
        """Stop taking jobs and pending re-deletes; running jobs end when the cluster closes."""
        self._runner.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()


@contextmanager
def _store_errors() -> Iterator[None]:
    """Turn a failed store read into a 503 a person can act on (not a 500)."""
    try:
        yield
    except ServiceError:
        raise
    except Exception as exc:
        raise StoreUnavailable(
            f"the object store cannot be read now ({type(exc).__name__}); try again shortly", retry_after=10
        ) from None


def _log(job: Job) -> logging.LoggerAdapter[logging.Logger]:
    """The jobs logger with the job's id on every record (a field of LOG_FORMAT=json lines)."""
    return logging.LoggerAdapter(log, {"job_id": job.id})


def _reason(exc: BaseException, settings: Settings, store: JobStore) -> str:
    """A sentence a person can act on, with no secret and no traceback."""
    if isinstance(exc, ClusterUnavailable):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"the job did not finish within JOB_TIMEOUT_S={settings.job_timeout_s} s"
    if isinstance(exc, asyncio.CancelledError | concurrent.futures.CancelledError):
        return CANCELLED
    if isinstance(exc, ContainsArrayError):
        return "an array with this id already exists in the store"
    described = store.backend.describe(exc)
    if described:
        return described
    name = type(exc).__name__
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{name}: {text}" if text else name
