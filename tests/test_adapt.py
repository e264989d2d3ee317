"""Issue 21: on a real LocalCluster, WORKERS_MAX > WORKERS_MIN grows the cluster under load and shrinks it after."""

from __future__ import annotations

import time

from helpers import wait_for

from gateway_dask_zarr.cluster.backends import Attempt, LocalBackend
from gateway_dask_zarr.settings import Settings


def busy(seconds: float) -> float:
    """A task that holds its worker thread for `seconds` (the load that makes the cluster adapt)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return seconds


def test_a_local_cluster_adapts_between_workers_min_and_max() -> None:
    settings = Settings.from_env({"N_WORKERS": "1", "WORKERS_MIN": "1", "WORKERS_MAX": "2"})
    attempt = Attempt()
    backend = LocalBackend(settings, in_process_workers=True)
    cluster, client = backend.start(attempt)
    try:
        workers = lambda: len(client.scheduler_info(n_workers=-1)["workers"])  # noqa: E731
        assert workers() == 1 and backend.target(cluster, client) == 1
        futures = client.map(busy, [0.3] * 40, pure=False)
        # The target (what /readyz, the page and /metrics show) moves first, then the workers follow.
        assert wait_for(lambda: backend.target(cluster, client) > 1 and backend.target(cluster, client), 60) == 2
        grown = wait_for(lambda: workers() > 1 and workers(), timeout=60)
        assert grown == 2  # never above WORKERS_MAX
        client.gather(futures)
        wait_for(lambda: workers() == 1 and backend.target(cluster, client) == 1, timeout=60)
    finally:
        attempt.abandon()
