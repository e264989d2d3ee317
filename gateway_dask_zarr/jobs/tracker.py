"""The jobs this process holds in memory, and their record writes: progress, final state, delete requests."""

from __future__ import annotations

import threading

from gateway_dask_zarr.jobs.job import Job, job_log
from gateway_dask_zarr.jobs.leases import Leases
from gateway_dask_zarr.jobs.records import Records

# How often a running job's record gets its status and progress (when they changed), and
# delete requests are looked for. A job that ends sooner has two record writes only: its
# claim ("queued") and its final state; a store round trip is a few percent of a small job.
PROGRESS_S = 1.0
# Ended jobs kept in memory while the store cannot take their final record (bounded: an outage
# longer than this many failures loses the newest ones' final state; their records then go stale).
MAX_UNSAVED = 1000


class Tracker:
    """Running jobs, and ended ones whose final record could not be written yet; a ticker writes them."""

    def __init__(self, records: Records, leases: Leases) -> None:
        self.records = records
        self.leases = leases
        # At most MAX_ACTIVE_JOBS running; unsaved ones are retried every tick and shown meanwhile.
        self.running: dict[str, Job] = {}
        self.unsaved: dict[str, Job] = {}
        self._closed = threading.Event()

    def start(self) -> Tracker:
        """Write progress and retry unsaved final records in a daemon thread until close()."""
        threading.Thread(target=self._tick, name="job-progress", daemon=True).start()
        return self

    def local(self, job_id: str) -> Job | None:
        """A job whose latest state is only in this process's memory: running, or complete and unsaved.

        An unsaved failure is not shown: while the store is out, another replica may take the
        job over and finish it, so the record (or the store's 503) says more than this replica knows.
        """
        job = self.running.get(job_id)
        if job is None and (unsaved := self.unsaved.get(job_id)) is not None and unsaved.status == "complete":
            job = unsaved
        return job if job is not None and not job.final else None

    def running_job(self, job_id: str) -> Job | None:
        """The job running in this process under `job_id`, if any."""
        return self.running.get(job_id)

    def fail_running(self, reason: str) -> None:
        """Every job running in this process will fail with this reason (the cluster was lost)."""
        for job in list(self.running.values()):
            job.error = reason

    def save(self, job: Job, final: bool = False) -> None:
        """Write the job's record; after the final write no other write of this attempt lands."""
        with job.lock:
            if job.final:
                return
            job.saved = (job.status, job.done)
            self.records.write(job.record())
            job.final = final
        if final:
            try:
                self.leases.forget(job.id)
            except Exception as exc:
                # `gateway-dask-zarr check --repair` removes what is left (the record is final).
                job_log(job).warning("job %s: its lease could not be removed: %s", job.id, type(exc).__name__)

    def save_final(self, job: Job) -> None:
        """Write the job's final record, or keep the job to retry while the store cannot take it."""
        try:
            self.save(job, final=True)
        except Exception as exc:
            job_log(job).warning("job %s: its record could not be written yet: %s", job.id, type(exc).__name__)
            if len(self.unsaved) < MAX_UNSAVED:
                self.unsaved[job.id] = job

    def _tick(self) -> None:
        while not self._closed.wait(PROGRESS_S):
            for job in list(self.unsaved.values()):
                try:
                    # Renewing its lease keeps the job from a takeover until its final record is in.
                    if self.leases.hold(job.id):
                        self.save(job, final=True)
                    else:
                        job_log(job).warning(
                            "job %s: another replica took it over; its final record here is dropped", job.id
                        )
                    del self.unsaved[job.id]
                except Exception as exc:
                    job_log(job).debug("job %s: its record still cannot be written: %s", job.id, type(exc).__name__)
            for job in list(self.running.values()):
                try:
                    if not job.final and not job.handed_back and not self.leases.hold(job.id):
                        # Its lease lapsed (the store was out for a slot) and another replica took the job.
                        job_log(job).warning("job %s: another replica took it over; stopping here", job.id)
                        job.handed_back = True
                        job.cancel_tasks()
                    if not job.cancel.is_set() and self.records.delete_requested(job.id):
                        job.cancel_tasks()
                    if job.status == "running" and (job.status, job.done) != job.saved:
                        self.save(job)
                except Exception as exc:
                    job_log(job).warning("job %s: its progress could not be saved: %s", job.id, type(exc).__name__)

    def close(self) -> None:
        """Stop the ticker."""
        self._closed.set()
