"""Retention: jobs older than RETENTION_DAYS are deleted (array and record), by one replica at a time."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, timedelta

from gateway_dask_zarr.jobs.manager import JobManager
from gateway_dask_zarr.jobs.periodic import Periodic
from gateway_dask_zarr.jobs.records import Records

log = logging.getLogger(__name__)

# One sweep per slot of this length, by whichever replica claims the slot first.
SLOT_S = 3600
PAGE = 1000


class Retention(Periodic):
    """A background sweep: each hour one replica claims the hour's lease and deletes the old jobs."""

    name = "retention"
    failure = "the sweep failed"

    def __init__(self, jobs: JobManager, records: Records, days: int) -> None:
        super().__init__(SLOT_S / 4, first_s=0)
        self.jobs = jobs
        self.records = records
        self.days = days
        self.holder = f"{socket.gethostname()}-{id(self):x}"

    def run_once(self, now: datetime | None = None) -> int | None:
        """Sweep if this replica wins the lease of the current slot: the number deleted, or None."""
        now = now or datetime.now(UTC)
        slot = f"{int(now.timestamp()) // SLOT_S:012d}"
        if not self.records.take_lease("retention", slot, self.holder):
            return None
        return self.sweep(now - timedelta(days=self.days))

    def sweep(self, cutoff: datetime) -> int:
        """Delete every job created before `cutoff` that no runner still acts on; the number deleted."""
        deleted = 0
        before = None
        while not self.closed:
            names = (
                self.records.index_page(None, PAGE, before) if before else self.records.index_older_than(cutoff, PAGE)
            )
            for record in self.records.read_many(names):
                if self.jobs.delete(record["id"], None) is None:
                    deleted += 1
            if len(names) < PAGE:
                break
            before = names[-1]
        if deleted:
            log.info("retention: %d jobs older than %d days deleted", deleted, self.days)
        return deleted
