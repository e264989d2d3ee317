"""STORAGE_QUOTA_BYTES: what a user stores, counted from the store, against the per-user quota."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from dask.utils import format_bytes

from gateway_dask_zarr.errors import TooLarge
from gateway_dask_zarr.jobs.records import Records

# Check-and-claim takes turns per user within a process; a fixed set of locks, so memory
# does not grow with the number of users (two users may share one: they only wait longer).
LOCKS = 64


def _figure(n: int) -> str:
    return f"{n} bytes ({format_bytes(n)})"


class Quota:
    """Refuses a job that would take its owner's stored and running bytes over STORAGE_QUOTA_BYTES (0: off)."""

    def __init__(self, quota_bytes: int, records: Records) -> None:
        self.quota_bytes = quota_bytes
        self.records = records
        self._locks = [threading.Lock() for _ in range(LOCKS)]

    @contextmanager
    def room_for(self, owner: str, nbytes: int) -> Iterator[None]:
        """Raise TooLarge if `owner` has no room for `nbytes` more; else hold the owner's turn while the job is claimed.

        Usage is one LIST of the owner's usage entries (docs/limits.md); the claim inside the
        block writes the new job's entry, so the next check in this process counts it.
        """
        if not self.quota_bytes:
            yield
            return
        with self._locks[zlib.crc32(owner.encode()) % LOCKS]:
            used = self.records.usage(owner)
            if used + nbytes > self.quota_bytes:
                raise TooLarge(
                    f"storage quota exceeded: you use {_figure(used)} in complete and running jobs, this job needs "
                    f"{_figure(nbytes)}, and STORAGE_QUOTA_BYTES allows {_figure(self.quota_bytes)} per user; "
                    "delete jobs you no longer need (DELETE /jobs/<id>) to make room",
                    code="storage_quota_exceeded",
                )
            yield
