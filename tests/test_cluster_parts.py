"""Cluster parts without a cluster: backends by kind, subscriptions that can be removed, the state rule."""

from __future__ import annotations

import pytest

from gateway_dask_zarr.cluster.backends import (
    CLUSTER_BACKENDS,
    GatewayBackend,
    LocalBackend,
    SchedulerBackend,
    cluster_backend,
)
from gateway_dask_zarr.cluster.manager import ClusterManager, Subscribers
from gateway_dask_zarr.cluster.state import cluster_state
from gateway_dask_zarr.settings import CLUSTER_KINDS, Settings

pytestmark = pytest.mark.fast


def test_every_cluster_kind_has_one_backend() -> None:
    assert set(CLUSTER_BACKENDS) == set(CLUSTER_KINDS)
    assert isinstance(cluster_backend(Settings()), LocalBackend)
    assert isinstance(cluster_backend(Settings(cluster="gateway")), GatewayBackend)
    assert isinstance(cluster_backend(Settings(cluster="scheduler", scheduler_address="tcp://x:1")), SchedulerBackend)
    assert cluster_backend(Settings(), in_process_workers=True).in_process_workers


def test_a_subscription_is_removed_by_its_unsubscribe() -> None:
    heard: list[str] = []
    subscribers = Subscribers()
    remove = subscribers.add(heard.append)
    subscribers.notify("lost")
    remove()
    remove()  # twice is harmless
    subscribers.notify("closing")
    assert heard == ["lost"] and len(subscribers) == 0


def test_a_manager_that_never_started_says_it_is_starting() -> None:
    manager = ClusterManager(Settings())
    assert manager.problem() == "the Dask cluster is starting"
    assert manager.status()["workers"] == 0
    assert manager.status()["target_workers"] is None
    assert manager.name is None
    remove = manager.on_lost(lambda reason: None)
    remove()
    manager.close()
    assert manager.problem() == "the app is shutting down"


def test_a_known_problem_is_answered_without_a_client() -> None:
    assert cluster_state("the Dask cluster is starting", None, count=True) == ("the Dask cluster is starting", 0)
