"""What the cluster is now, for /readyz, the page and /metrics: its problem, its workers, the workers asked for."""

from __future__ import annotations

from typing import Any

from distributed import Client

from gateway_dask_zarr.cluster.backends import ClusterBackend
from gateway_dask_zarr.settings import Settings


def cluster_state(reason: str | None, client: Client | None, *, count: bool) -> tuple[str | None, int]:
    """The problem (or None) and the number of workers, asking the scheduler at most once.

    Without `count`, a known problem is answered without asking the scheduler.
    """
    running = client is not None and client.status == "running"
    if reason is not None and not (count and running):
        return reason, 0
    assert client is not None
    if not running:
        return f"the Dask client is {client.status}: the connection to the scheduler was lost", 0
    workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
    if reason is None and workers < 1:
        # It had its workers when it started (start waits for them): they were lost.
        reason = "the Dask cluster has lost all its workers"
    return reason, workers


def dashboard_link(client: Client | None) -> str | None:
    """The Dask dashboard URL, when there is one."""
    try:
        return client.dashboard_link if client is not None else None
    except Exception:
        return None


def cluster_status(
    settings: Settings, backend: ClusterBackend, reason: str | None, cluster: Any, client: Client | None
) -> dict[str, Any]:
    """A small, secret-free summary: workers now, the workers asked for (adaptive scaling moves it), the bounds."""
    problem, workers = cluster_state(reason, client, count=True)
    target = None
    if problem is None and cluster is not None and client is not None:
        target = backend.target(cluster, client)
    return {
        "backend": settings.cluster,
        "workers": workers,
        "target_workers": target,
        "expected_workers": settings.n_workers,
        "workers_min": settings.workers_min,
        "workers_max": settings.workers_max,
        "dashboard": dashboard_link(client),
        "problem": problem,
    }
