"""Job leases in the store: exactly one replica holds each queued or running job, and a free one can be taken over.

A lease is a run of time slots of LEASE_S seconds: `_jobs/leases/job/{id}/{slot}` holds its
holder's name and is made with a conditional create (`If-None-Match: *`), so of any replicas
that try, exactly one owns a slot; no conditional update is needed. The holder creates the
next slot ahead, on every tick, so while it lives nobody else can own one. A replica that
stops deletes its slots: the job is free at once. One that dies stops creating them: the job
is free from the first slot it did not create, at most 2 x LEASE_S after its last renewal.
`_jobs/active/{id}` marks a job that is queued or running (written with its claim, removed
with its final record): one LIST of it finds the jobs that may need a holder.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from contextlib import suppress

import obstore
from obstore.exceptions import AlreadyExistsError

from gateway_dask_zarr.jobs.records import ACTIVE_MARKS, LEASES, Records, store_errors

log = logging.getLogger(__name__)

JOB_LEASES = f"{LEASES}/job"


def replica_name() -> str:
    """This replica's name in leases and records: host and process, unique per start."""
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


class Leases:
    """The job leases this replica holds, and the taking of free ones."""

    def __init__(self, records: Records, lease_s: float, holder: str | None = None) -> None:
        self.records = records
        self.store = records.store
        self.lease_s = lease_s
        self.holder = holder or replica_name()
        # The newest slot created per job held: renewing costs one PUT per slot, not per tick.
        self._newest: dict[str, int] = {}
        self._lock = threading.Lock()

    def _slot(self) -> int:
        return int(time.time() // self.lease_s)

    def _key(self, job_id: str, slot: int) -> str:
        return f"{JOB_LEASES}/{job_id}/{slot:012d}"

    def _create(self, job_id: str, slot: int) -> bool:
        """Own one slot: True if this replica made it now or before."""
        key = self._key(job_id, slot)
        with store_errors(self.records.backend):
            try:
                obstore.put(self.store, key, self.holder.encode(), mode="create")
                return True
            except AlreadyExistsError:
                with suppress(FileNotFoundError):
                    return bytes(obstore.get(self.store, key).bytes()).decode() == self.holder
                return False

    def hold(self, job_id: str) -> bool:
        """Take or renew a job's lease (the current slot and the next); False if another replica holds it."""
        slot = self._slot()
        with self._lock:
            newest = self._newest.get(job_id, slot - 1)
        # The slots not made yet: none while renewed on time, the next one each slot, both at first.
        for each in range(max(newest + 1, slot), slot + 2):
            if not self._create(job_id, each):
                with self._lock:
                    self._newest.pop(job_id, None)
                return False
        with self._lock:
            self._newest[job_id] = max(newest, slot + 1)
        return True

    def held_here(self, job_id: str) -> bool:
        """True while this replica holds the job's lease (from its claim or takeover to its end or hand-back)."""
        with self._lock:
            return job_id in self._newest

    def release(self, job_id: str) -> None:
        """Hand a job back: its slots deleted, so another replica may take it at once."""
        with self._lock:
            self._newest.pop(job_id, None)
        with store_errors(self.records.backend):
            keys = [m["path"] for batch in obstore.list(self.store, f"{JOB_LEASES}/{job_id}/") for m in batch]
        self.records.delete_keys(keys)

    def forget(self, job_id: str) -> None:
        """The job ended: its lease and its active mark are removed."""
        self.release(job_id)
        self.records.delete_keys([f"{ACTIVE_MARKS}/{job_id}"])

    def active(self) -> list[str]:
        """The ids of the queued and running jobs in the store (one LIST per 1000)."""
        with store_errors(self.records.backend):
            return [
                m["path"].rsplit("/", 1)[-1] for batch in obstore.list(self.store, f"{ACTIVE_MARKS}/") for m in batch
            ]
