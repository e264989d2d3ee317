"""The one Dask cluster of this process: made at start-up, watched, replaced when lost, closed at exit."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from distributed import Client

from gateway_dask_zarr.config import Settings

log = logging.getLogger(__name__)


class ClusterUnavailable(RuntimeError):
    """The cluster is starting, lost or being replaced; the message says which."""


class ClusterManager:
    """Owns one cluster and its Client for the life of the process (local, gateway or scheduler)."""

    def __init__(self, settings: Settings, *, watch_interval_s: float = 2.0) -> None:
        self.settings = settings
        self.watch_interval_s = watch_interval_s
        self._client: Client | None = None
        self._cluster: Any = None
        self._lock = threading.RLock()
        self._reason: str | None = "the Dask cluster is starting"
        self._closing = threading.Event()
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
        deadline = self.settings.cluster_start_timeout_s
        started = time.monotonic()
        # Cluster creation has been seen to hang (an unreachable gateway, a pending pod):
        # run it in a thread so that the deadline holds whatever the backend does.
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="cluster-start")
        attempt = pool.submit(self._make)
        pool.shutdown(wait=False)
        try:
            cluster, client = attempt.result(timeout=deadline)
        except concurrent.futures.TimeoutError:
            attempt.add_done_callback(lambda f: f.exception() is None and _close_quietly(*f.result()))
            raise ClusterUnavailable(
                f"the Dask cluster did not start within CLUSTER_START_TIMEOUT_S={deadline} s"
            ) from None
        try:
            client.wait_for_workers(self.settings.n_workers, timeout=max(1.0, deadline - (time.monotonic() - started)))
        except (TimeoutError, OSError) as exc:
            _close_quietly(cluster, client)
            raise ClusterUnavailable(
                f"the Dask cluster has not got its {self.settings.n_workers} workers within "
                f"CLUSTER_START_TIMEOUT_S={deadline} s ({exc})"
            ) from None
        with self._lock:
            self._cluster, self._client = cluster, client
            self._reason = None
            self.generation += 1
        log.info("Dask cluster ready: %s, %d workers, dashboard %s", self.settings.cluster, self.settings.n_workers, self.dashboard_link)

    def _make(self) -> tuple[Any, Client]:
        kind = self.settings.cluster
        if kind == "local":
            from distributed import LocalCluster

            # memory:// lives in this process, so its workers must be threads here.
            in_process = (self.settings.store_url or "").startswith("memory://")
            cluster = LocalCluster(
                n_workers=self.settings.n_workers,
                threads_per_worker=1,
                processes=not in_process,
                host="127.0.0.1",
                scheduler_port=0,
                dashboard_address="127.0.0.1:0",
            )
            return cluster, Client(cluster, set_as_default=False)
        if kind == "gateway":
            from dask_gateway import Gateway

            # Address, proxy address and auth come from dask-gateway's own configuration
            # (DASK_GATEWAY__*), as a JupyterHub user pod already has it.
            cluster = Gateway().new_cluster(**self.settings.gateway_cluster_options)
            cluster.scale(self.settings.n_workers)
            return cluster, cluster.get_client(set_as_default=False)
        client = Client(self.settings.scheduler_address, set_as_default=False, timeout=self.settings.cluster_start_timeout_s)
        return None, client

    def close(self) -> None:
        """Stop the watchdog and shut the cluster down (a gateway cluster is stopped, not left behind)."""
        self._closing.set()
        with self._lock:
            cluster, client = self._cluster, self._client
            self._cluster = self._client = None
            self._reason = "the app is shutting down"
        _close_quietly(cluster, client)

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
        with self._lock:
            if self._reason is not None:
                return self._reason
            client = self._client
        assert client is not None
        if client.status != "running":
            return f"the Dask client is {client.status}"
        workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        if workers < 1:
            return "the Dask cluster has no workers"
        return None

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard URL, when there is one."""
        with self._lock:
            client = self._client
        try:
            return client.dashboard_link if client is not None else None
        except Exception:
            return None

    def status(self) -> dict[str, Any]:
        """A small, secret-free summary for the page and the API."""
        with self._lock:
            client = self._client
        workers = 0
        if client is not None and client.status == "running":
            workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        return {
            "backend": self.settings.cluster,
            "workers": workers,
            "expected_workers": self.settings.n_workers,
            "dashboard": self.dashboard_link,
            "problem": self.problem(),
        }

    def on_lost(self, callback: Callable[[str], None]) -> None:
        """Call `callback(reason)` whenever the watchdog finds the cluster lost."""
        self._on_lost.append(callback)

    # -- the watchdog -----------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._closing.wait(self.watch_interval_s):
            with self._lock:
                client = self._client
            if client is None or client.status == "running":
                continue
            self._replace(f"the Dask cluster was lost (client {client.status}); a new one is being made")

    def _replace(self, reason: str) -> None:
        log.warning("%s", reason)
        with self._lock:
            old = self._cluster, self._client
            self._cluster = self._client = None
            self._reason = reason
        for callback in self._on_lost:
            callback(reason)
        # Closing a cluster whose scheduler is gone waits out connect timeouts (about 30 s
        # measured for a LocalCluster): do it aside, so the replacement starts now.
        threading.Thread(target=_close_quietly, args=old, name="cluster-close-lost", daemon=True).start()
        while not self._closing.is_set():
            try:
                self._connect()
                log.info("the Dask cluster was replaced")
                return
            except Exception as exc:
                with self._lock:
                    self._reason = f"the Dask cluster could not be replaced yet: {exc}"
                log.warning("%s", self._reason)
                self._closing.wait(self.watch_interval_s)


def _close_quietly(cluster: Any, client: Client | None) -> None:
    """Close a client and its cluster (a gateway cluster made by us shuts down on close)."""
    for thing in (client, cluster):
        if thing is None:
            continue
        try:
            thing.close()
        except Exception as exc:
            log.warning("closing %s failed: %s", type(thing).__name__, exc)
