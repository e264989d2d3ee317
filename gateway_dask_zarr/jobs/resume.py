"""Taking over: a live replica finishes the queued and running jobs whose lease is free (their replica is gone)."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from gateway_dask_zarr.errors import ServiceError
from gateway_dask_zarr.jobs.job import ACTIVE, Job, job_log
from gateway_dask_zarr.jobs.periodic import Periodic
from gateway_dask_zarr.jobs.records import now_iso
from gateway_dask_zarr.jobs.runner import Runner
from gateway_dask_zarr.kinds.registry import KINDS
from gateway_dask_zarr.params import JobRequest

# A record's keys that are JobRequest's own fields; a kind's other parameters are its options.
JOB_REQUEST_FIELDS = {"shape", "chunks", "dtype", "seed", "shards", "input"}

log = logging.getLogger(__name__)

# A job started this many times (its replicas stopped or died each time) fails instead.
MAX_ATTEMPTS = 3
EXHAUSTED = "the job was started {n} times and each replica that ran it stopped or died; submit it again"


def request_of(record: dict[str, Any]) -> JobRequest:
    """The request a record was accepted with (validated then: not checked against today's limits)."""
    shards = record.get("shards")
    kind = KINDS[record.get("kind") or "random"]
    inputs = (record.get("provenance") or {}).get("inputs") or [{}]
    options = {p.name: record.get(p.name) for p in kind.parameters if p.name not in JOB_REQUEST_FIELDS}
    return JobRequest(
        tuple(record["shape"]),
        tuple(record["chunks"]),
        record["dtype"],
        record["seed"],
        tuple(shards) if shards else None,
        kind=kind.name,
        input=record.get("input"),
        input_url=inputs[0].get("url"),
        options=options,
    )


class Resumer(Periodic):
    """Every LEASE_S / 2, takes the free leases of active jobs and runs them here, as a new attempt of the same job."""

    name = "resume"
    failure = "looking for free jobs failed"

    def __init__(self, runner: Runner) -> None:
        super().__init__(runner.settings.lease_s / 2)
        self.runner = runner
        self.leases = runner.leases
        self.records = runner.records
        self.resumed = 0

    def run_once(self) -> list[str]:
        """Take over every free job this replica has room for: their ids."""
        taken = []
        for job_id in self.leases.active():
            if self.closed:
                break
            if job_id in self.runner.tracker.running or self.leases.held_here(job_id):
                continue  # its runner is here, or starts it now (a claim holds the lease before it starts)
            record = self.records.read(job_id)
            if record is None or record["status"] not in ACTIVE:
                continue  # ended; `check --repair` removes a mark left behind
            if self.leases.hold(job_id):
                # Read again under the lease: its runner may have ended it (and released it) meanwhile.
                record = self.records.read(job_id)
                if record is not None and record["status"] in ACTIVE and self._take(record):
                    taken.append(job_id)
                else:
                    self.leases.release(job_id)
        return taken

    def _take(self, record: dict[str, Any]) -> bool:
        """Run a held job's next attempt here (or fail it when its attempts are spent); False to hand it back."""
        attempts = int(record.get("attempts") or 1) + 1
        owner = record["owner"]
        if attempts > MAX_ATTEMPTS:
            self._give_up(record)
            return True
        try:
            self.runner.admission.admit(owner)
        except ServiceError:
            return False  # busy here: another replica (or this one, later) takes it
        job = Job(
            record["id"],
            request_of(record),
            owner,
            deadline=time.time() + self.runner.settings.job_timeout_s,
            created=datetime.fromisoformat(record["created"].replace("Z", "+00:00")),
            attempts=attempts,
        )
        job.resumed = [*(record.get("resumed") or []), {"by": self.leases.holder, "at": now_iso(), "attempt": attempts}]
        try:
            self.records.write(job.record())
        except Exception:
            self.runner.admission.release(owner)
            raise
        job_log(job).info("job %s taken over by %s: attempt %d", job.id, self.leases.holder, attempts)
        self.resumed += 1
        self.runner.start(job)
        return True

    def _give_up(self, record: dict[str, Any]) -> None:
        """End a job whose attempts are spent: complete if its array was published, else failed."""
        published = self.runner.store.read(record["id"])
        if published is not None and published.get("created") == record["created"]:
            # Its last attempt published the array, and its replica stopped before the record said so.
            self.records.write({**record, **published, "owner": record["owner"]})
            self.leases.forget(record["id"])
            return
        error = EXHAUSTED.format(n=MAX_ATTEMPTS)
        frees_at = record["deadline"] + self.runner.settings.cleanup_grace_s
        self.records.write(
            {
                **record,
                "status": "failed",
                "error": error,
                "finished": now_iso(),
                "frees_at": frees_at,
                "cleanup": "pending",
            }
        )
        self.records.forget_usage(record)
        self.leases.forget(record["id"])
        log.warning("job %s: %s", record["id"], error)
