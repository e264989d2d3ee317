"""The one Dask cluster of this process: made at start-up, watched, replaced when lost, closed at exit."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from distributed import Client

from gateway_dask_zarr.config import Settings
from gateway_dask_zarr.errors import ClusterUnavailable

log = logging.getLogger(__name__)

# The most that closing a client or a cluster may take (an unreachable gateway would hold a
# close for minutes): shutdown has to finish inside the pod's grace period.
CLOSE_TIMEOUT_S = 30.0


def _in_thread(fn: Callable[[], Any], name: str) -> concurrent.futures.Future[Any]:
    """Run fn in a daemon thread (a hung call must not hold the process at exit); return its future."""
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def _close_all(closers: list[Callable[[], Any]]) -> None:
    """Call closers newest first, logging failures, all within CLOSE_TIMEOUT_S."""

    def run() -> None:
        for closer in reversed(closers):
            try:
                closer()
            except Exception as exc:
                log.warning("closing a Dask part failed: %s", _describe(exc))

    if not closers:
        return
    try:
        _in_thread(run, "cluster-close").result(timeout=CLOSE_TIMEOUT_S)
    except concurrent.futures.TimeoutError:
        log.warning(
            "closing the Dask cluster did not finish within %s s; left to finish in the background", CLOSE_TIMEOUT_S
        )


def forget_loop(gateway: Any) -> None:
    """Make a closed dask_gateway.Gateway safe to garbage-collect.

    Its __del__ closes it again, and with distributed 2026 a second close raises (the loop
    property of a stopped LoopRunner), printing "Exception ignored in Gateway.__del__".
    """
    gateway.__dict__.pop("_loop_runner", None)


def _close_cluster(cluster: Any) -> None:
    """Close a cluster object (a GatewayCluster made by us also stops on the gateway)."""
    cluster.close()
    if hasattr(cluster, "gateway"):
        forget_loop(cluster.gateway)


def _closers(cluster: Any, client: Client | None) -> list[Callable[[], Any]]:
    """How to close a cluster and its client (_close_all closes the client first)."""
    closers: list[Callable[[], Any]] = []
    if cluster is not None:
        closers.append(partial(_close_cluster, cluster))
    if client is not None:
        closers.append(partial(client.close, timeout=CLOSE_TIMEOUT_S))
    return closers


@contextlib.contextmanager
def _gateway() -> Iterator[Any]:
    """A dask_gateway.Gateway configured by dask's config (DASK_GATEWAY__*), closed after use."""
    from dask_gateway import Gateway

    gateway = Gateway()
    try:
        yield gateway
    finally:
        gateway.close()
        forget_loop(gateway)


def _stop_gateway_cluster(name: str) -> None:
    """Ask the gateway to stop a cluster by name (one whose GatewayCluster object never came)."""
    with _gateway() as gateway:
        gateway.stop_cluster(name)


class _Attempt:
    """What one start attempt has made so far, so that a passed deadline or a close can undo it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closers: list[Callable[[], Any]] = []
        self.abandoned = False
        self.stage = "starting"

    def keep(self, closer: Callable[[], Any]) -> None:
        """Record how to undo a part just made; undo it at once if the attempt was abandoned."""
        with self._lock:
            if not self.abandoned:
                self._closers.append(closer)
                return
        _close_all([closer])
        raise ClusterUnavailable("the cluster start was abandoned")

    def commit(self) -> None:
        """The attempt succeeded: its parts are owned elsewhere and are no longer undone here."""
        with self._lock:
            self._closers = []

    def abandon(self) -> None:
        """Undo every part made so far (a submitted gateway cluster is stopped)."""
        with self._lock:
            self.abandoned = True
            closers, self._closers = self._closers, []
        _close_all(closers)


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
        # A store that lives in this process (memory://) needs workers that are threads here.
        self.in_process_workers = in_process_workers
        self.watch_interval_s = watch_interval_s
        # A client that reconnects within this time keeps its cluster (a proxy restart, a
        # network blip); one that stays disconnected longer has lost it.
        self.lost_grace_s = lost_grace_s
        self._client: Client | None = None
        self._cluster: Any = None
        self._lock = threading.RLock()
        self._reason: str | None = "the Dask cluster is starting"
        self._closing = threading.Event()
        self._attempt: _Attempt | None = None
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
        attempt = _Attempt()
        with self._lock:
            if self._closing.is_set():
                raise ClusterUnavailable("the app is shutting down")
            self._attempt = attempt
        # Cluster creation has been seen to hang (an unreachable gateway, a pending pod): run
        # it in a thread so that the deadline holds whatever the backend does.
        future = _in_thread(partial(self._make, attempt, deadline), "cluster-start")
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
                f"while {attempt.stage}: {_describe(exc)}"
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

    def _make(self, attempt: _Attempt, deadline: float) -> tuple[Any, Client]:
        """Make the cluster and client and wait for the workers; runs in the start thread."""
        kind, n = self.settings.cluster, self.settings.n_workers
        started = time.monotonic()
        cluster: Any = None
        if kind == "local":
            from distributed import LocalCluster

            attempt.stage = "starting a LocalCluster"
            # Threads of this process (talking in-process, with no port) for a store that
            # lives here; otherwise worker processes on loopback.
            in_process = self.in_process_workers
            network = {} if in_process else {"host": "127.0.0.1", "scheduler_port": 0}
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=not in_process,
                dashboard_address="127.0.0.1:0",
                **network,
            )
            attempt.keep(cluster.close)
            client = Client(cluster, set_as_default=False)
        elif kind == "gateway":
            from dask_gateway import GatewayCluster

            # Address, proxy address and auth come from dask-gateway's own configuration
            # (DASK_GATEWAY__*), as a JupyterHub user pod already has it.
            attempt.stage = "asking the Dask Gateway for a new cluster"
            with _gateway() as gateway:
                name = gateway.submit(**self.settings.gateway_cluster_options)
            # From here a cluster exists on the gateway: whatever happens next must stop it.
            attempt.keep(partial(_stop_gateway_cluster, name))
            log.info("Dask Gateway cluster %s submitted", name)
            attempt.stage = f"waiting for the gateway to start cluster {name}"
            cluster = GatewayCluster.from_name(name, shutdown_on_close=True)
            attempt.keep(partial(_close_cluster, cluster))
            cluster.scale(n)
            client = cluster.get_client(set_as_default=False)
        else:
            attempt.stage = f"connecting to the scheduler at {self.settings.scheduler_address}"
            client = Client(self.settings.scheduler_address, set_as_default=False, timeout=deadline)
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
            for callback in self._on_lost:
                callback(reason)
        _close_all(_closers(cluster, client))

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
            return f"the Dask client is {client.status}: the connection to the scheduler was lost"
        workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        if workers < 1:
            # It had its workers when it started (start waits for them): they were lost.
            return "the Dask cluster has lost all its workers"
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

    @property
    def name(self) -> str | None:
        """The gateway cluster's name (None for the other backends)."""
        with self._lock:
            return getattr(self._cluster, "name", None) if self.settings.cluster == "gateway" else None

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
        """Call `callback(reason)` whenever the cluster goes away under running jobs (lost or closing)."""
        self._on_lost.append(callback)

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
        for callback in self._on_lost:
            callback(reason)
        # Closing a cluster whose scheduler is gone waits out connect timeouts (about 30 s
        # measured for a LocalCluster): do it aside, so the replacement starts now.
        threading.Thread(target=_close_all, args=(_closers(*old),), name="cluster-close-lost", daemon=True).start()
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


def _describe(exc: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
