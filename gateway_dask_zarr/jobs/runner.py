"""Running jobs on the cluster: submit the chunk tasks (jobs/feeder.py shares the workers), track progress, publish."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any

from zarr.errors import ContainsArrayError

from gateway_dask_zarr.cluster.manager import ClusterManager
from gateway_dask_zarr.errors import ClusterUnavailable
from gateway_dask_zarr.grid import chunks_in_units, grid
from gateway_dask_zarr.jobs import feeder
from gateway_dask_zarr.jobs.admission import Admission
from gateway_dask_zarr.jobs.cleanup import Cleanups, delete_job
from gateway_dask_zarr.jobs.job import Job, job_log
from gateway_dask_zarr.jobs.leases import Leases
from gateway_dask_zarr.jobs.progress import Progress
from gateway_dask_zarr.jobs.reasons import CANCELLED, DELETED, reason
from gateway_dask_zarr.jobs.records import Records
from gateway_dask_zarr.jobs.tracker import Tracker
from gateway_dask_zarr.kinds.base import INPUT_DELETED
from gateway_dask_zarr.kinds.registry import KINDS
from gateway_dask_zarr.params import JobRequest
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.storage.arrays import JobStore, array_kwargs, array_metadata
from gateway_dask_zarr.worker.blocks import ArrayTarget, write_blocks

log = logging.getLogger(__name__)

# A task's chunks in flight at once: enough concurrency to hide S3 latency, few enough
# bytes that a worker holds only a handful of chunks (each chunk in flight costs about
# three copies of itself: the encoded chunk, the request body and the client's buffers).
TASK_BYTES_IN_FLIGHT = 8 * 2**20
MAX_TASK_CONCURRENCY = 16
# Chunks a task owns before a job is split into more than one task per worker.
CHUNKS_PER_TASK = 1000
MAX_TASKS_PER_WORKER = 8
# How long a closing service waits for its running jobs' final records (gunicorn's graceful
# timeout must leave time for this and for the cluster's close after it).
STOP_WAIT_S = 5.0


def plan_tasks(request: JobRequest, n_workers: int, band: tuple[int, ...] | None = None) -> list[range]:
    """Split the bands (`band`, whole write units; by default one unit each; in C order) into contiguous ranges.

    One task per worker for a job of up to CHUNKS_PER_TASK chunks a worker; above that,
    more tasks (at most MAX_TASKS_PER_WORKER a worker), so progress moves and a slow
    worker's share is small. Each task costs the scheduler and the app a round trip. Then
    cut to short tasks (jobs/feeder.py), so that other jobs' tasks get worker threads soon.
    """
    shape = band or request.unit_shape
    n = math.prod(grid(request.shape, shape))
    per_worker = max(1, min(MAX_TASKS_PER_WORKER, math.ceil(n / (max(1, n_workers) * CHUNKS_PER_TASK))))
    n_tasks = max(1, min(n, n_workers * per_worker))
    size = math.ceil(n / n_tasks)
    band_bytes = math.prod(shape) * request.itemsize
    return feeder.split([range(start, min(start + size, n)) for start in range(0, n, size)], band_bytes)


def job_array_kwargs(request: JobRequest, settings: Settings) -> dict[str, Any]:
    """The zarr.create_array arguments of a job's array (shards included) with this service's compressor."""
    return array_kwargs(request.shape, request.chunks, request.dtype, settings.compressor, request.shards)


def plan_job(job: Job, store: JobStore, settings: Settings) -> tuple[ArrayTarget, list[range], list[int]]:
    """A job's task target, its tasks (ranges of bands, jobs.runner.plan_tasks) and the chunks in each."""
    request = job.request
    kind = KINDS[request.kind]
    # A derived kind plans by its input's layout (one small GET of the input's zarr.json).
    band = kind.band(request, store.read(request.input) if request.input else None)
    kwargs = job_array_kwargs(request, settings)
    target = ArrayTarget(
        root_url=store.root,
        endpoint_url=store.backend.endpoint_url,
        job_id=job.id,
        metadata=array_metadata(kwargs),
        source=kind.source(request),
        concurrency=max(1, min(MAX_TASK_CONCURRENCY, TASK_BYTES_IN_FLIGHT // request.unit_bytes)),
        deadline=job.deadline,
        band=None if band == request.unit_shape else band,
    )
    batches = plan_tasks(request, settings.n_workers, band)
    return target, batches, [chunks_in_units(request.shape, request.chunks, band, b) for b in batches]


class Runner:
    """Runs each job on the cluster from a thread of its own; the tracker keeps its record current."""

    def __init__(
        self, settings: Settings, cluster: ClusterManager, store: JobStore, records: Records, admission: Admission
    ) -> None:
        self.settings = settings
        self.admission = admission
        self.cluster = cluster
        self.store = store
        self.records = records
        # One thread per active job only waits on futures; the work happens on the workers.
        self._pool = ThreadPoolExecutor(settings.max_active_jobs, thread_name_prefix="job")
        self.on_end: list[Callable[[Job], None]] = []
        self.cleanups = Cleanups(settings.cleanup_grace_s, store, records)
        self.leases = Leases(records, settings.lease_s)
        self.tracker = Tracker(records, self.leases).start()
        self.progress = Progress()
        self.feeder = feeder.Feeder(bounded=settings.workers_max == settings.workers_min)

    def start(self, job: Job) -> None:
        """Run a claimed job (holding an admission slot) in the background."""
        self.tracker.running[job.id] = job
        self._pool.submit(self._run, job)

    def _run(self, job: Job) -> None:
        started = time.monotonic()
        feed: feeder.Feed | None = None
        try:
            client = self.cluster.client
            job.status = "running"
            feed = _feed(job, client, self)
            job_log(job).info(
                "job %s running: shape %s, chunks %s, %s, %d tasks planned and submitted in %.3f s",
                job.id,
                list(job.request.shape),
                list(job.request.chunks),
                job.request.dtype,
                feed.n,
                time.monotonic() - started,
            )
            # The first task that fails for good fails the job now, not when the rest end.
            for future in feed.ends(started + self.settings.job_timeout_s):
                if future is None:
                    _still_wanted(job, client, self)
                else:
                    _check(job, future)
            # One gather for all the results: a result() per future is a round trip each.
            self._complete(job, client.gather(feed.futures))
        except Exception as exc:
            self._fail(job, reason(exc, self.settings, self.store), feed)
        finally:
            if feed is not None:
                self.feeder.stop(feed)
            self.tracker.running.pop(job.id, None)
            self.progress.end(job.id)
            self.admission.release(job.owner)
            for listener in self.on_end:
                try:
                    listener(job)
                except Exception:
                    log.exception("a job listener failed on job %s", job.id)
            job.ended.set()

    def _complete(self, job: Job, facts: list[dict[str, Any]]) -> None:
        _summarise(job, facts)
        _check_written(job, self.store)
        if not self._still_held(job):
            raise ClusterUnavailable("another replica took the job over")
        job.finished = datetime.now(UTC)
        job.stop_clock()
        # A complete job has no error, whatever a lost cluster or a stopping replica set meanwhile.
        job.error = None
        request = job.request
        document = {**job.document(), "status": "complete"}
        del document["progress"]
        try:
            self.store.publish(job.id, job_array_kwargs(request, self.settings), document)
        except ContainsArrayError:
            # A taken-over job's earlier attempt published the same array (deterministic chunks).
            if job.attempts == 1 or self.store.read(job.id) is None:
                raise
        # Only now: a reader polling the job must not see "complete" before the array exists.
        job.status = "complete"
        self.tracker.save_final(job)
        job_log(job).info(
            "job %s complete: %d chunks, %d bytes in %.3f s", job.id, job.chunks_written, job.bytes_written, job.seconds
        )
        if job.final and self.records.delete_requested(job.id):
            # A DELETE that came while the job ended: it deletes a complete job now.
            delete_job(job.record(), self.store, self.records)

    def _still_held(self, job: Job) -> bool:
        """Renew the job's lease before a final write: False (handed back) if another replica took the job over.

        While the store was out for longer than LEASE_S, another replica may have taken the job;
        this attempt then writes no final record and deletes nothing. An unreachable store
        answers True: no final write can land then anyway, and the tracker retries it.
        """
        try:
            held = self.leases.hold(job.id)
        except Exception:
            return True
        if not held:
            job.handed_back = True
        return held

    def _fail(self, job: Job, why: str, feed: feeder.Feed | None) -> None:
        if job.handed_back or not self._still_held(job):
            # Not a failure: another replica takes the job over and rewrites its chunks.
            job_log(job).info("job %s handed back after %s", job.id, why)
            return
        published = _published_earlier(job, self.store)
        if published is not None:
            # Its earlier attempt published the array, and its replica stopped before the record said so.
            job.take_published(published)
            job_log(job).info("job %s complete: an earlier attempt published it (this one failed: %s)", job.id, why)
            self.tracker.save_final(job)
            return
        # A task neither finished nor failed may still be running on a worker, and cancelling
        # cannot stop it: it may PUT chunks until the deadline (worker/blocks.py starts none after it),
        # and a PUT begun then lands within the S3 client's bounds.
        futures = [] if feed is None else feed.futures
        if feed is not None:
            self.feeder.stop(feed)  # before the cancel: no task of it is submitted after
        late = any(f.status not in ("finished", "error") for f in futures)
        for future in futures:
            future.cancel()
        job.status = "cancelled" if job.cancel.is_set() else "failed"
        # A reason recorded earlier (the cluster was lost) says more than the cancellation it caused.
        job.error = DELETED.format(id=job.id) if job.cancel.is_set() else job.error or why
        job.finished = datetime.now(UTC)
        job.stop_clock()
        job.frees_at = job.deadline + self.settings.cleanup_grace_s if late else time.time()
        job.cleanup = "pending"
        job_log(job).warning("job %s %s: %s", job.id, job.status, job.error)
        self.tracker.save_final(job)
        self.cleanups.start(job)

    def close(self) -> None:
        """Hand the running jobs back (another replica finishes them) and stop taking jobs and pending clean-ups."""
        _stop(list(self.tracker.running.values()), self.leases)
        self.tracker.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.cleanups.close()


def _stop(jobs: list[Job], leases: Leases) -> None:
    """Hand a stopping replica's jobs back: cancel their tasks, wait up to STOP_WAIT_S, release their leases.

    Their records stay queued or running, and another replica takes them over at once, not
    when their leases lapse.
    """
    running = [job for job in jobs if not job.final]
    for job in running:
        job.handed_back = True
    futures = [future for job in running for future in job.futures]
    deadline = time.monotonic() + STOP_WAIT_S
    if futures:
        # One cancel for all, in a thread of its own: an unreachable scheduler holds it for
        # the comm timeout, and the wait below must stay bounded.
        threading.Thread(target=_cancel, args=(futures,), name="job-stop", daemon=True).start()
    for job in running:
        job.ended.wait(max(0.0, deadline - time.monotonic()))
    for job in running:
        try:
            if not job.final:
                leases.release(job.id)
        except Exception as exc:
            # Its lease lapses within 2 x LEASE_S instead.
            job_log(job).warning("job %s: its lease could not be released: %s", job.id, type(exc).__name__)


def _cancel(futures: list[Any]) -> None:
    try:
        futures[0].client.cancel(futures)
    except Exception as exc:  # a closed client or a lost scheduler: the tasks go with the cluster
        log.info("cancelling a stopping replica's tasks failed: %s", type(exc).__name__)


def _feed(job: Job, client: Any, runner: Runner) -> feeder.Feed:
    """Plan the job's tasks and hand them to the runner's feeder (jobs/feeder.py), progress followed: its Feed."""
    request = job.request
    target, batches, totals = plan_job(job, runner.store, runner.settings)
    keys = [f"write-{job.id}-{job.attempt}-{i}" for i in range(len(batches))]
    tally = runner.progress.watch(client, job, keys, totals)
    submit = partial(_submit, client, partial(write_blocks, target), batches, keys, feeder.priority(request.nbytes))
    feed = feeder.Feed(job.owner, len(batches), submit, lambda i, future: tally.finished(keys[i], future))
    # The same list: cancelling the job cancels every task submitted so far.
    job.futures = feed.futures
    runner.feeder.resize(client)
    runner.feeder.add(feed)
    return feed


def _still_wanted(job: Job, client: Any, runner: Runner) -> None:
    """Between task ends: raise when the job was cancelled, handed back or lost its cluster; follow adapt."""
    if job.cancel.is_set():
        raise ClusterUnavailable(DELETED.format(id=job.id))
    if job.handed_back or runner.cluster.current_client() is not client:
        raise ClusterUnavailable(job.error or CANCELLED)
    runner.feeder.resize(client)


def _submit(client: Any, task: Any, batches: list[range], keys: list[str], priority: int, index: int) -> Any:
    """Submit one chunk task of a job (its batch of write units): its future."""
    # retries=1: for a task that failed although the S3 client retried (a lost worker's rerun anyway).
    return client.submit(task, batches[index], key=keys[index], pure=False, priority=priority, retries=1)


def _summarise(job: Job, facts: list[dict[str, Any]]) -> None:
    """The job's counts and stats from its tasks' results."""
    count = sum(f["count"] for f in facts)
    job.chunks_written = sum(f["chunks"] for f in facts)
    job.bytes_written = sum(f["bytes"] for f in facts)
    job.stats = {
        "min": min(f["min"] for f in facts),
        "max": max(f["max"] for f in facts),
        "mean": sum(f["sum"] for f in facts) / count,
    }


def _published_earlier(job: Job, store: JobStore) -> dict[str, Any] | None:
    """What an earlier attempt of a taken-over job published with its array, if any (failing would delete it)."""
    if job.attempts == 1 or job.cancel.is_set():
        return None
    try:
        published = store.read(job.id)
    except Exception:
        return None  # the store is out: the job fails (and its clean-up's deletes fail the same way)
    return published if published is not None and published.get("created") == job.document()["created"] else None


def _check_written(job: Job, store: JobStore) -> None:
    """Raise unless every chunk was written from an input (if any) that still exists."""
    if job.chunks_written != job.request.n_chunks:
        raise RuntimeError(f"{job.chunks_written} of {job.request.n_chunks} chunks were written")
    if job.request.input is not None and store.read(job.request.input) is None:
        # A deleted input's chunks read as its fill value (NaN): the job fails rather than publish them.
        raise FileNotFoundError(INPUT_DELETED.format(id=job.request.input))


def _check(job: Job, future: Any) -> None:
    if future.status == "cancelled":
        if job.cancel.is_set():
            raise ClusterUnavailable(DELETED.format(id=job.id))
        # Otherwise only a lost or restarted cluster cancels our tasks (a failed job cancels
        # its own tasks after it has failed).
        raise ClusterUnavailable(CANCELLED)
    if future.status != "finished":
        raise future.exception() or RuntimeError(f"a chunk task ended {future.status}")
