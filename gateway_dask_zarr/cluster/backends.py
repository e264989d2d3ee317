"""Cluster backends (local, gateway, scheduler) behind one small interface, and the parts they share.

A backend makes a cluster (or connects to one) and its Client; ClusterManager (cluster/manager.py)
keeps the lifecycle: deadlines, waiting for workers, the watchdog and replacement.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, ClassVar

import dask
from distributed import Client

from gateway_dask_zarr.cluster.scaling import adapt, gateway_target
from gateway_dask_zarr.errors import ClusterUnavailable, describe
from gateway_dask_zarr.settings import ConfigError, Settings

log = logging.getLogger(__name__)

# Dask settings of the clusters this service starts. The workers' statistical profiler
# (every thread's stack sampled every 10 ms) and the 20 ms event-loop tick of every worker
# and scheduler kept an idle local cluster at about 6% of a core, CPU each job then lacked
# on a small machine (docs/benchmarks.md); the service reads neither. dask_gateway_config.yaml
# gives gateway clusters the same, as environment variables.
DASK_CONFIG: dict[str, Any] = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s"}

# The most that closing a client or a cluster may take (an unreachable gateway would hold a
# close for minutes): shutdown has to finish inside the pod's grace period.
CLOSE_TIMEOUT_S = 30.0


def in_thread(fn: Callable[[], Any], name: str) -> concurrent.futures.Future[Any]:
    """Run fn in a daemon thread (a hung call must not hold the process at exit); return its future."""
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def close_all(closers: list[Callable[[], Any]]) -> None:
    """Call closers newest first, logging failures, all within CLOSE_TIMEOUT_S."""

    def run() -> None:
        for closer in reversed(closers):
            try:
                closer()
            except Exception as exc:
                log.warning("closing a Dask part failed: %s", describe(exc))

    if not closers:
        return
    try:
        in_thread(run, "cluster-close").result(timeout=CLOSE_TIMEOUT_S)
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


def close_cluster(cluster: Any) -> None:
    """Close a cluster object (a GatewayCluster made by us also stops on the gateway)."""
    cluster.close()
    if hasattr(cluster, "gateway"):
        forget_loop(cluster.gateway)


def closers(cluster: Any, client: Client | None) -> list[Callable[[], Any]]:
    """How to close a cluster and its client (close_all calls them newest first: the client, then the cluster)."""
    closers: list[Callable[[], Any]] = []
    if cluster is not None:
        closers.append(partial(close_cluster, cluster))
    if client is not None:
        closers.append(partial(client.close, timeout=CLOSE_TIMEOUT_S))
    return closers


@contextlib.contextmanager
def gateway_client() -> Iterator[Any]:
    """A dask_gateway.Gateway configured by dask's config (DASK_GATEWAY__*), closed after use."""
    from dask_gateway import Gateway

    gateway = Gateway()
    try:
        yield gateway
    finally:
        gateway.close()
        forget_loop(gateway)


def stop_gateway_cluster(name: str) -> None:
    """Ask the gateway to stop a cluster by name (one whose GatewayCluster object never came)."""
    with gateway_client() as gateway:
        gateway.stop_cluster(name)


class Attempt:
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
        close_all([closer])
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
        close_all(closers)


class ClusterBackend:
    """How one kind of cluster is made: `make` returns the cluster object (or None) and a Client."""

    kind: ClassVar[str]

    def __init__(self, settings: Settings, *, in_process_workers: bool = False) -> None:
        self.settings = settings
        # A store that lives in this process (memory://) needs workers that are threads here.
        self.in_process_workers = in_process_workers

    def make(self, attempt: Attempt, deadline: float) -> tuple[Any, Client]:
        """Make the cluster and its client (not waiting for workers); record undo steps in `attempt`."""
        raise NotImplementedError

    def start(self, attempt: Attempt) -> tuple[Any, Client]:
        """Make the cluster and wait for its workers, all under CLUSTER_START_TIMEOUT_S; undo on failure."""
        deadline = self.settings.cluster_start_timeout_s
        # Cluster creation has been seen to hang (an unreachable gateway, a pending pod): run
        # it in a thread so that the deadline holds whatever the backend does.
        future = in_thread(partial(self._make_and_wait, attempt, deadline), "cluster-start")
        try:
            return future.result(timeout=deadline)
        except concurrent.futures.TimeoutError:
            attempt.abandon()
            raise ClusterUnavailable(
                f"the Dask cluster ({self.kind}) did not start within "
                f"CLUSTER_START_TIMEOUT_S={deadline} s; it was {attempt.stage}"
            ) from None
        except Exception as exc:
            attempt.abandon()
            # A setting the cluster refuses (WORKERS_MAX over the gateway's cap) names the setting.
            if isinstance(exc, ClusterUnavailable | ConfigError):
                raise
            raise ClusterUnavailable(
                f"the Dask cluster ({self.kind}) could not be started while {attempt.stage}: {describe(exc)}"
            ) from None

    def _make_and_wait(self, attempt: Attempt, deadline: float) -> tuple[Any, Client]:
        """Make the cluster and client and wait for the workers; runs in the start thread."""
        n = self.settings.n_workers
        started = time.monotonic()
        cluster, client = self.make(attempt, deadline)
        attempt.keep(partial(client.close, timeout=CLOSE_TIMEOUT_S))
        attempt.stage = f"waiting for its {n} workers to connect"
        client.wait_for_workers(n, timeout=max(1.0, deadline - (time.monotonic() - started)))
        return cluster, client

    def name(self, cluster: Any) -> str | None:
        """The cluster's name on its service (None when it has none)."""
        return None

    def target(self, cluster: Any, client: Client) -> int | None:
        """The workers the cluster is asked to have now (None when this service does not size it)."""
        return None


class LocalBackend(ClusterBackend):
    """A distributed.LocalCluster of this process: worker processes on loopback."""

    kind = "local"

    def make(self, attempt: Attempt, deadline: float) -> tuple[Any, Client]:
        """Start a LocalCluster."""
        from distributed import LocalCluster

        attempt.stage = "starting a LocalCluster"
        # Threads of this process (talking in-process, with no port) for a store that lives
        # here; otherwise worker processes on loopback.
        in_process = self.in_process_workers
        network = {} if in_process else {"host": "127.0.0.1", "scheduler_port": 0}
        # Read when the scheduler and each worker's nanny are made, inside this block.
        with dask.config.set(DASK_CONFIG):
            cluster = LocalCluster(
                n_workers=self.settings.n_workers,
                threads_per_worker=1,
                processes=not in_process,
                dashboard_address="127.0.0.1:0",
                # Worker processes ignore Ctrl-C: the app stops them (worker/quiet.py).
                **({} if in_process else {"preload": ["gateway_dask_zarr.worker.quiet"]}),
                **network,
            )
        attempt.keep(cluster.close)
        adapt(cluster, self.settings)
        return cluster, Client(cluster, set_as_default=False)

    def target(self, cluster: Any, client: Client) -> int | None:
        """The workers the LocalCluster asks for (its adaptive scaling changes them)."""
        return len(cluster.worker_spec)


class GatewayBackend(ClusterBackend):
    """A new cluster on a Dask Gateway, stopped when the app closes."""

    kind = "gateway"

    def make(self, attempt: Attempt, deadline: float) -> tuple[Any, Client]:
        """Submit a cluster to the gateway, wait for it, scale it."""
        from dask_gateway import GatewayCluster

        # Address, proxy address and auth come from dask-gateway's own configuration
        # (DASK_GATEWAY__*), as a JupyterHub user pod already has it.
        attempt.stage = "asking the Dask Gateway for a new cluster"
        with gateway_client() as gateway:
            name = gateway.submit(**self.settings.gateway_cluster_options)
        # From here a cluster exists on the gateway: whatever happens next must stop it.
        attempt.keep(partial(stop_gateway_cluster, name))
        log.info("Dask Gateway cluster %s submitted", name)
        attempt.stage = f"waiting for the gateway to start cluster {name}"
        cluster = GatewayCluster.from_name(name, shutdown_on_close=True)
        attempt.keep(partial(close_cluster, cluster))
        cluster.scale(self.settings.n_workers)
        adapt(cluster, self.settings)
        return cluster, cluster.get_client(set_as_default=False)

    def name(self, cluster: Any) -> str | None:
        """The gateway cluster's name."""
        return getattr(cluster, "name", None)

    def target(self, cluster: Any, client: Client) -> int | None:
        """The workers the gateway is asked for: its scheduler keeps the count, which its adaptive loop moves."""
        return gateway_target(client)


class SchedulerBackend(ClusterBackend):
    """An existing scheduler at SCHEDULER_ADDRESS, left running when the app closes."""

    kind = "scheduler"

    def make(self, attempt: Attempt, deadline: float) -> tuple[Any, Client]:
        """Connect a client to the scheduler."""
        attempt.stage = f"connecting to the scheduler at {self.settings.scheduler_address}"
        return None, Client(self.settings.scheduler_address, set_as_default=False, timeout=deadline)


# The one registry: a new kind of cluster is a class above, a line here and a CLUSTER choice.
CLUSTER_BACKENDS: dict[str, type[ClusterBackend]] = {
    b.kind: b for b in (LocalBackend, GatewayBackend, SchedulerBackend)
}


def cluster_backend(settings: Settings, *, in_process_workers: bool = False) -> ClusterBackend:
    """The backend of settings.cluster."""
    return CLUSTER_BACKENDS[settings.cluster](settings, in_process_workers=in_process_workers)
