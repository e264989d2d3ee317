"""A failed attempt's clean-up: its chunks deleted now and once more when its late writes have landed."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from gateway_dask_zarr.jobs.job import Job, job_log
from gateway_dask_zarr.jobs.reasons import DELETED
from gateway_dask_zarr.jobs.records import Records
from gateway_dask_zarr.storage.arrays import JobStore

log = logging.getLogger(__name__)


def delete_job(record: dict[str, Any], store: JobStore, records: Records) -> None:
    """Delete a job no runner acts on: a complete record first becomes cancelled, then its objects go, then the record.

    A delete cut short (its replica killed, the store lost) leaves a cancelled record, which a
    DELETE again or the sweeper finishes: never a complete record whose array is gone.
    """
    if record["status"] == "complete":
        records.write({**record, "status": "cancelled", "error": DELETED.format(id=record["id"]), "cleanup": "done"})
    store.delete(record["id"])
    records.remove(record)


class Cleanups:
    """Deletes a failed attempt's chunks now and once more when its late writes have landed.

    The record names the attempt and keeps the id claimed until the last delete is over, so
    a clean-up never touches the objects of a later job with the same id.
    """

    def __init__(self, grace_s: float, store: JobStore, records: Records) -> None:
        self.grace_s = grace_s
        self.store = store
        self.records = records
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()

    def start(self, job: Job) -> None:
        """Delete the attempt's chunks now and once more at its `frees_at`; then mark the record clean or remove it."""
        self._delete_chunks(job.id)
        try:
            # Its chunks are gone (and late ones will be): the job no longer counts against the quota.
            self.records.forget_usage(job.record())
        except Exception as exc:
            # DELETE /jobs/<id> removes the entry with the record.
            job_log(job).warning("job %s: its quota usage could not be released: %s", job.id, type(exc).__name__)
        assert job.frees_at is not None
        timer = threading.Timer(max(0.0, job.frees_at - time.time()), self._last, args=(job,))
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()

    def _last(self, job: Job) -> None:
        with self._lock:
            self._timers.discard(threading.current_thread())
        try:
            record = self.records.read(job.id)
            if record is None or record.get("attempt") != job.attempt:
                return  # deleted, and maybe claimed again since: not this attempt's to touch
            self._delete_chunks(job.id)
            if self.records.delete_requested(job.id):
                self.records.remove(record)
                job_log(job).info("job %s: cleaned up and deleted", job.id)
            else:
                self.records.write({**record, "cleanup": "done"})
                job_log(job).info("job %s: cleaned up; the record stays until it is deleted", job.id)
        except Exception as exc:
            job_log(job).warning("job %s: the last clean-up failed: %s", job.id, type(exc).__name__)

    def _delete_chunks(self, job_id: str) -> None:
        try:
            self.store.delete(job_id)
        except Exception as exc:
            log.warning("job %s: deleting its chunks failed: %s", job_id, type(exc).__name__)

    def close(self) -> None:
        """Cancel pending clean-ups: a later DELETE does what they would have done."""
        with self._lock:
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()
