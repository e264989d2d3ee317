"""The one Dask cluster of this process: made by its backend, watched, replaced when lost, closed at exit."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from distributed import Client

from gateway_dask_zarr.cluster.backends import (
    Attempt,
    close_all,
    closers,
    cluster_backend,
)
from gateway_dask_zarr.cluster.state import cluster_state, cluster_status, dashboard_link
from gateway_dask_zarr.errors import ClusterUnavailable
from gateway_dask_zarr.settings import Settings

log = logging.getLogger(__name__)


class Subscribers:
    """Callbacks told a reason when the cluster goes away; each subscription can be removed."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[str], None]] = []
        self._lock = threading.Lock()

    def add(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Subscribe; return the call that unsubscribes (an app closing on a shared cluster)."""
        with self._lock:
            self._callbacks.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return remove

    def notify(self, reason: str) -> None:
        """Call every subscriber with the reason."""
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback(reason)

    def __len__(self) -> int:
        return len(self._callbacks)


class ClusterManager:
    """Owns one cluster and its Client for the life of the process (local, gateway or scheduler)."""

    def __init__(
        self,
        settings: Settings,
        *,
        in_process_workers: bool = False,
        watch_interval_s: float = 2.0,
        lost_grace_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self.backend = cluster_backend(settings, in_process_workers=in_process_workers)
        self.watch_interval_s = watch_interval_s
        # A client that reconnects within this time keeps its cluster (a proxy restart, a
        # network blip); one that stays disconnected longer has lost it.
        self.lost_grace_s = lost_grace_s
        self._client: Client | None = None
        self._cluster: Any = None
        self._lock = threading.RLock()
        self._reason: str | None = "the Dask cluster is starting"
        self.closing = threading.Event()
        self._attempt: Attempt | None = None
        self._watchdog: Watchdog | None = None
        self._on_lost = Subscribers()
        self.generation = 0

    def start(self) -> ClusterManager:
        """Make (or connect to) the cluster, wait for its workers under a deadline, start the watchdog."""
        self.connect()
        if self._watchdog is None:
            self._watchdog = Watchdog(self).start()
        return self

    def connect(self) -> None:
        """One start attempt: everything (gateway requests, cluster start, workers) under one deadline."""
        attempt = Attempt()
        with self._lock:
            if self.closing.is_set():
                raise ClusterUnavailable("the app is shutting down")
            self._attempt = attempt
        cluster, client = self.backend.start(attempt)
        with self._lock:
            installed = not self.closing.is_set()
            if installed:
                # The parts are the manager's now: a later close() must not undo them twice.
                attempt.commit()
                self._attempt = None
                self._cluster, self._client = cluster, client
                self._reason = None
                self.generation += 1
        if not installed:
            attempt.abandon()
            raise ClusterUnavailable("the app is shutting down")
        log.info(
            "Dask cluster ready: %s, %d workers, dashboard %s",
            self.settings.cluster,
            self.settings.n_workers,
            self.dashboard_link,
        )

    def close(self) -> None:
        """Stop the watchdog, fail running jobs, shut the cluster down (a gateway cluster is stopped)."""
        reason = "the app is shutting down"
        with self._lock:
            self.closing.set()
            cluster, client = self._cluster, self._client
            self._cluster = self._client = None
            self._reason = reason
            attempt = self._attempt
        if attempt is not None:
            # A replacement being made now must not outlive the app.
            attempt.abandon()
        if client is not None:
            self._on_lost.notify(reason)
        close_all(closers(cluster, client))

    @property
    def client(self) -> Client:
        """The live Client; raise ClusterUnavailable with the reason when there is none."""
        with self._lock:
            if self._client is None or self._reason is not None:
                raise ClusterUnavailable(self._reason or "the Dask cluster is not running")
            return self._client

    def problem(self) -> str | None:
        """Why the cluster cannot take work now, or None when it can."""
        with self._lock:
            reason, client = self._reason, self._client
        return cluster_state(reason, client, count=False)[0]

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard URL, when there is one."""
        return dashboard_link(self.current_client())

    @property
    def name(self) -> str | None:
        """The cluster's name on its service (a gateway cluster's; None for the other backends)."""
        with self._lock:
            return self.backend.name(self._cluster) if self._cluster is not None else None

    def status(self) -> dict[str, Any]:
        """A small, secret-free summary for the page, the API and the metrics (cluster/state.py)."""
        with self._lock:
            reason, cluster, client = self._reason, self._cluster, self._client
        return cluster_status(self.settings, self.backend, reason, cluster, client)

    def on_lost(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call `callback(reason)` whenever the cluster goes away (lost or closing); return the unsubscribe."""
        return self._on_lost.add(callback)

    def current_client(self) -> Client | None:
        """The client now, whatever its state (None while there is none)."""
        with self._lock:
            return self._client

    def drop(self, reason: str) -> None:
        """The cluster is lost: forget it (closed aside), tell the subscribers, refuse work with `reason`."""
        log.warning("%s", reason)
        with self._lock:
            old = self._cluster, self._client
            self._cluster = self._client = None
            self._reason = reason
        self._on_lost.notify(reason)
        # Closing a cluster whose scheduler is gone waits out connect timeouts (about 30 s
        # measured for a LocalCluster): do it aside, so the replacement starts now.
        threading.Thread(target=close_all, args=(closers(*old),), name="cluster-close-lost", daemon=True).start()

    def still_lost(self, reason: str) -> None:
        """A replacement failed: say why, unless the app is closing."""
        with self._lock:
            if not self.closing.is_set():
                self._reason = reason


class Watchdog:
    """Watches a manager's client; a cluster lost for longer than the grace is replaced."""

    def __init__(self, manager: ClusterManager) -> None:
        self.manager = manager
        self._thread = threading.Thread(target=self._watch, name="cluster-watchdog", daemon=True)

    def start(self) -> Watchdog:
        """Start watching, in a daemon thread that ends when the manager closes."""
        self._thread.start()
        return self

    def _watch(self) -> None:
        manager = self.manager
        bad_since: float | None = None
        while not manager.closing.wait(manager.watch_interval_s):
            client = manager.current_client()
            if client is None or client.status == "running":
                bad_since = None
                continue
            now = time.monotonic()
            bad_since = bad_since or now
            # "connecting" may still recover; "closed" (reconnection given up) will not.
            if client.status == "connecting" and now - bad_since < manager.lost_grace_s:
                continue
            bad_since = None
            self._replace(f"the Dask cluster was lost (client {client.status}); a new one is being made")

    def _replace(self, reason: str) -> None:
        manager = self.manager
        manager.drop(reason)
        while not manager.closing.is_set():
            try:
                manager.connect()
                log.info("the Dask cluster was replaced")
                return
            except Exception as exc:
                manager.still_lost(f"the Dask cluster was lost and could not be replaced yet: {exc}")
                log.warning("the Dask cluster could not be replaced yet: %s", exc)
                manager.closing.wait(manager.watch_interval_s)
