"""Admission: how many jobs this process runs at once (in all, per user), and whether its cluster can take one more."""

from __future__ import annotations

import threading

from gateway_dask_zarr.cluster.manager import ClusterManager
from gateway_dask_zarr.errors import Busy, ClusterUnavailable

RETRY_AFTER_S = 2


class Admission:
    """Counts this process's active jobs against MAX_ACTIVE_JOBS and MAX_ACTIVE_JOBS_PER_USER (None: no per-user bound).

    Both counts are this process's own (in memory, no store request): with N replicas a user
    may hold N x MAX_ACTIVE_JOBS_PER_USER jobs in all (docs/limits.md).
    """

    def __init__(self, max_active: int, max_per_user: int | None, cluster: ClusterManager) -> None:
        self.max_active = max_active
        self.max_per_user = max_per_user
        self.cluster = cluster
        self.active = 0
        self.per_owner: dict[str, int] = {}
        self._lock = threading.Lock()

    def _refusal(self, owner: str) -> Busy | None:
        # The user's own bound first: it is the one they can act on, and it holds however idle the service is.
        mine = self.per_owner.get(owner, 0)
        if self.max_per_user is not None and mine >= self.max_per_user:
            return Busy(
                f"you have {mine} jobs queued or running, the most MAX_ACTIVE_JOBS_PER_USER allows "
                f"({self.max_per_user} per user); wait for one to end, then retry",
                code="too_many_jobs_per_user",
                retry_after=RETRY_AFTER_S,
            )
        if self.active >= self.max_active:
            return Busy(
                f"{self.active} jobs are running, the most MAX_ACTIVE_JOBS allows; retry later",
                code="too_many_jobs",
                retry_after=RETRY_AFTER_S,
            )
        return None

    def admit(self, owner: str) -> None:
        """Take one slot for `owner` or raise Busy (full) or ClusterUnavailable; release(owner) gives it back."""
        # Refuse a full service before asking the cluster: a burst of refusals then costs no
        # scheduler round trip each (measured: they delayed /healthz under load).
        refusal = self._refusal(owner)
        if refusal is not None:
            raise refusal
        problem = self.cluster.problem()
        if problem:
            raise ClusterUnavailable(f"{problem}; try again shortly", retry_after=10)
        with self._lock:
            refusal = self._refusal(owner)
            if refusal is not None:
                raise refusal
            self.active += 1
            self.per_owner[owner] = self.per_owner.get(owner, 0) + 1

    def release(self, owner: str) -> None:
        """Give back a slot taken by admit(owner)."""
        with self._lock:
            self.active -= 1
            left = self.per_owner.pop(owner) - 1
            if left:
                self.per_owner[owner] = left
