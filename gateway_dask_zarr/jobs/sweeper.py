"""The sweeper: one replica per slot removes, after a grace, what no record references, and repairs usage entries."""

from __future__ import annotations

import logging
import time

from gateway_dask_zarr.jobs.audit import Audit, Repair
from gateway_dask_zarr.jobs.leases import Leases
from gateway_dask_zarr.jobs.periodic import Periodic
from gateway_dask_zarr.jobs.records import Records
from gateway_dask_zarr.storage.arrays import JobStore

log = logging.getLogger(__name__)

# One sweep per slot of this length, by whichever replica claims the slot first (as retention).
SLOT_S = 600
# What it fixes on its own: objects and entries no live or resumable job can want. The rest of
# `check`'s findings (a lost array, a wrong chunk, a stale record) are left to an operator.
SWEPT = frozenset(
    {
        "array_without_record",
        "failed_attempt_chunks",
        "orphaned_chunks",
        "usage_mismatch",
        "usage_missing",
        "index_without_record",
        "mark_without_active_job",
        "delete_without_record",
        "unfinished_claim",
    }
)


class Sweeper(Periodic):
    """A background sweep of the whole store (one LIST per 1000 objects) with `check`'s audit and repairs."""

    name = "sweeper"
    failure = "the sweep failed"

    def __init__(self, records: Records, store: JobStore, leases: Leases, grace_s: float) -> None:
        super().__init__(SLOT_S / 4)
        self.records = records
        self.store = store
        self.leases = leases
        self.grace_s = grace_s
        self.swept = 0  # objects and entries removed or repaired by this replica

    def run_once(self) -> int | None:
        """Sweep if this replica wins the current slot's lease: the number of objects and entries fixed, or None."""
        slot = f"{int(time.time()) // SLOT_S:012d}"
        if not self.records.take_lease("sweeper", slot, self.leases.holder):
            return None
        return self.sweep()

    def sweep(self) -> int:
        """Fix every sweepable finding older than the grace; the number of objects and entries fixed."""
        repair = Repair(self.records, self.store, self.leases)
        fixed = 0
        for finding in Audit(self.records, self.store, self.grace_s).findings():
            if self.closed:
                break
            if finding.kind in SWEPT and repair(finding) is not None:
                fixed += max(1, len(finding.keys))
                log.info("sweeper: %s", finding.line())
        self.swept += fixed
        if fixed:
            log.info("sweeper: %d objects and entries removed or repaired", fixed)
        return fixed
