"""The one Dask cluster of this process: made by its backend, watched, replaced when lost, closed at exit."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from distributed import Client

from gateway_dask_zarr.cluster_backends import (
    CLOSE_TIMEOUT_S,
    Attempt,
    close_all,
    closers,
    cluster_backend,
    describe,
    in_thread,
)
from gateway_dask_zarr.config import Settings
from gateway_dask_zarr.errors import ClusterUnavailable

log = logging.getLogger(__name__)


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
        self._closing = threading.Event()
        self._attempt: Attempt | None = None
        self._watchdog: threading.Thread | None = None
        self._on_lost: list[Callable[[str], None]] = []
        self.generation = 0

    # -- start and stop -------------------------------------------------------------------

    def start(self) -> ClusterManager:
        """Make (or connect to) the cluster, wait for its workers under a deadline, start the watchdog."""
        self._connect()
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, name="cluster-watchdog", daemon=True)
            self._watchdog.start()
        return self

    def _connect(self) -> None:
        """One start attempt: everything (gateway requests, cluster start, workers) under one deadline."""
        deadline = self.settings.cluster_start_timeout_s
        attempt = Attempt()
        with self._lock:
            if self._closing.is_set():
                raise ClusterUnavailable("the app is shutting down")
            self._attempt = attempt
        # Cluster creation has been seen to hang (an unreachable gateway, a pending pod): run
        # it in a thread so that the deadline holds whatever the backend does.
        future = in_thread(partial(self._make, attempt, deadline), "cluster-start")
        try:
            cluster, client = future.result(timeout=deadline)
        except concurrent.futures.TimeoutError:
            attempt.abandon()
            raise ClusterUnavailable(
                f"the Dask cluster ({self.settings.cluster}) did not start within "
                f"CLUSTER_START_TIMEOUT_S={deadline} s; it was {attempt.stage}"
            ) from None
        except Exception as exc:
            attempt.abandon()
            if isinstance(exc, ClusterUnavailable):
                raise
            raise ClusterUnavailable(
                f"the Dask cluster ({self.settings.cluster}) could not be started "
                f"while {attempt.stage}: {describe(exc)}"
            ) from None
        with self._lock:
            if self._closing.is_set():
                installed = False
            else:
                # The parts are the manager's now: a later close() must not undo them twice.
                attempt.commit()
                self._attempt = None
                self._cluster, self._client = cluster, client
                self._reason = None
                self.generation += 1
                installed = True
        if not installed:
            attempt.abandon()
            raise ClusterUnavailable("the app is shutting down")
        log.info(
            "Dask cluster ready: %s, %d workers, dashboard %s",
            self.settings.cluster,
            self.settings.n_workers,
            self.dashboard_link,
        )

    def _make(self, attempt: Attempt, deadline: float) -> tuple[Any, Client]:
        """Make the cluster and client and wait for the workers; runs in the start thread."""
        n = self.settings.n_workers
        started = time.monotonic()
        cluster, client = self.backend.make(attempt, deadline)
        attempt.keep(partial(client.close, timeout=CLOSE_TIMEOUT_S))
        attempt.stage = f"waiting for its {n} workers to connect"
        client.wait_for_workers(n, timeout=max(1.0, deadline - (time.monotonic() - started)))
        return cluster, client

    def close(self) -> None:
        """Stop the watchdog, fail running jobs, shut the cluster down (a gateway cluster is stopped)."""
        reason = "the app is shutting down"
        with self._lock:
            self._closing.set()
            cluster, client = self._cluster, self._client
            self._cluster = self._client = None
            self._reason = reason
            attempt = self._attempt
        if attempt is not None:
            # A replacement being made now must not outlive the app.
            attempt.abandon()
        if client is not None:
            for callback in list(self._on_lost):
                callback(reason)
        close_all(closers(cluster, client))

    # -- state ----------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The live Client; raise ClusterUnavailable with the reason when there is none."""
        with self._lock:
            if self._client is None or self._reason is not None:
                raise ClusterUnavailable(self._reason or "the Dask cluster is not running")
            return self._client

    def problem(self) -> str | None:
        """Why the cluster cannot take work now, or None when it can."""
        return self._state(count=False)[0]

    def _state(self, *, count: bool) -> tuple[str | None, int]:
        """The problem (or None) and the number of workers, asking the scheduler at most once.

        Without `count`, a known problem is answered without asking the scheduler.
        """
        with self._lock:
            reason, client = self._reason, self._client
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

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard URL, when there is one."""
        with self._lock:
            client = self._client
        try:
            return client.dashboard_link if client is not None else None
        except Exception:
            return None

    @property
    def name(self) -> str | None:
        """The cluster's name on its service (a gateway cluster's; None for the other backends)."""
        with self._lock:
            return self.backend.name(self._cluster) if self._cluster is not None else None

    def status(self) -> dict[str, Any]:
        """A small, secret-free summary for the page and the API."""
        problem, workers = self._state(count=True)
        return {
            "backend": self.settings.cluster,
            "workers": workers,
            "expected_workers": self.settings.n_workers,
            "dashboard": self.dashboard_link,
            "problem": problem,
        }

    def on_lost(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call `callback(reason)` whenever the cluster goes away under running jobs (lost or closing).

        Returns the call that removes the subscription (an app closing on a shared cluster).
        """
        with self._lock:
            self._on_lost.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._on_lost:
                    self._on_lost.remove(callback)

        return remove

    # -- the watchdog -----------------------------------------------------------------------

    def _watch(self) -> None:
        bad_since: float | None = None
        while not self._closing.wait(self.watch_interval_s):
            with self._lock:
                client = self._client
            if client is None or client.status == "running":
                bad_since = None
                continue
            now = time.monotonic()
            bad_since = bad_since or now
            # "connecting" may still recover; "closed" (reconnection given up) will not.
            if client.status == "connecting" and now - bad_since < self.lost_grace_s:
                continue
            bad_since = None
            self._replace(f"the Dask cluster was lost (client {client.status}); a new one is being made")

    def _replace(self, reason: str) -> None:
        log.warning("%s", reason)
        with self._lock:
            old = self._cluster, self._client
            self._cluster = self._client = None
            self._reason = reason
        for callback in list(self._on_lost):
            callback(reason)
        # Closing a cluster whose scheduler is gone waits out connect timeouts (about 30 s
        # measured for a LocalCluster): do it aside, so the replacement starts now.
        threading.Thread(target=close_all, args=(closers(*old),), name="cluster-close-lost", daemon=True).start()
        while not self._closing.is_set():
            try:
                self._connect()
                log.info("the Dask cluster was replaced")
                return
            except Exception as exc:
                with self._lock:
                    if not self._closing.is_set():
                        self._reason = f"the Dask cluster was lost and could not be replaced yet: {exc}"
                log.warning("the Dask cluster could not be replaced yet: %s", exc)
                self._closing.wait(self.watch_interval_s)
