"""Faults with real processes: a worker killed, the scheduler lost, S3 stopped, S3 slow and flaky.

Each job either completes with every chunk verified or fails with a reason a person can act on;
no job is ever published with a missing or wrong chunk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import BUCKET
from helpers import S3_CREDENTIALS, assert_verified, discard_store, wait_for
from stand_ins import FaultProxy

from gateway_dask_zarr.cluster.manager import ClusterManager
from gateway_dask_zarr.jobs.leases import JOB_LEASES
from gateway_dask_zarr.jobs.runner import STOP_WAIT_S
from gateway_dask_zarr.server import create_app
from gateway_dask_zarr.server.parts import parts
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.storage.embedded import EmbeddedS3

# 64 chunks of 2 MB: long enough to kill something in the middle of it.
LARGE = {"shape": [4000, 4000], "chunks": [500, 500], "dtype": "float64", "seed": 11}


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[ClusterManager]:
    """A LocalCluster for this module alone: its workers and scheduler get killed here."""
    manager = ClusterManager(Settings(n_workers=3), watch_interval_s=0.5).start()
    yield manager
    manager.close()


def _app(settings: Settings, cluster: ClusterManager) -> Any:
    return create_app(settings, cluster=cluster)


def _wait_job(client: Any, job_id: str, timeout: float = 180) -> dict[str, Any]:
    return wait_for(
        lambda: (d := client.get(f"/jobs/{job_id}").get_json())["status"] in ("complete", "failed") and d, timeout, 0.2
    )


def _published(s3fs_client: Any, bucket: str, job_id: str) -> bool:
    s3fs_client.invalidate_cache()
    return s3fs_client.exists(f"{bucket}/{job_id}.zarr/zarr.json")


def test_a_worker_killed_mid_job_its_chunks_are_rewritten(
    own_cluster: ClusterManager, settings: Settings, s3fs_client: Any
) -> None:
    app = _app(settings, own_cluster)
    try:
        client = app.test_client()
        job = client.post("/jobs", json=LARGE).get_json()
        dask = own_cluster.client

        # Kill (SIGKILL) a worker that is running one of the job's tasks, once some chunks are
        # written (a task owns a worker's share of the chunks: progress moves when one ends).
        def written() -> int:
            s3fs_client.invalidate_cache()
            return len(s3fs_client.find(f"test-bucket/{job['id']}.zarr"))

        busy = wait_for(lambda: written() > 0 and [w for w, keys in dask.processing().items() if keys], 120, 0.05)
        pid = dask.run(os.getpid)[busy[0]]
        psutil.Process(pid).kill()
        done = _wait_job(client, job["id"])
        assert done["status"] == "complete", done
        assert done["chunks_written"] == 64
        document = client.get(f"/jobs/{job['id']}").get_json()
        assert_verified(document)
        assert len(s3fs_client.find(f"test-bucket/{job['id']}.zarr")) == 65
        # The nanny brought the killed worker back.
        wait_for(lambda: len(dask.scheduler_info(n_workers=-1)["workers"]) == 3, 60)
        assert pid not in dask.run(os.getpid).values()
    finally:
        parts(app).service.close()


def test_the_scheduler_lost_readyz_503_then_a_new_cluster(own_cluster: ClusterManager, settings: Settings) -> None:
    app = _app(settings, own_cluster)
    try:
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        generation = own_cluster.generation
        local = own_cluster._cluster
        # The LocalCluster's scheduler lives in this process: stop it as abruptly as it allows.
        local.sync(local.scheduler.close, reason="killed by the test")
        lost = time.monotonic()
        wait_for(lambda: client.get("/readyz").status_code == 503, 60, 0.05)
        assert client.get("/healthz").status_code == 200
        refused = client.get("/run?shape=100,100&chunks=50,50")
        assert refused.status_code == 503 and refused.get_json()["error"]["code"] == "cluster_unavailable"
        wait_for(lambda: client.get("/readyz").status_code == 200, 180, 0.2)
        print(f"\nscheduler lost: /readyz was 503 for {time.monotonic() - lost:.1f} s while the cluster was replaced")
        assert own_cluster.generation == generation + 1 and own_cluster._cluster is not local
        response = client.get("/run?shape=1000,1000&chunks=100,100&seed=12")
        assert response.status_code == 200, response.get_json()
        assert_verified(response.get_json())
    finally:
        parts(app).service.close()


@pytest.fixture
def own_s3(tmp_path: Path) -> Iterator[EmbeddedS3]:
    """A SeaweedFS server of this test alone, which it stops and starts again on the same directory and port."""
    server = EmbeddedS3(tmp_path, "faults", credentials=S3_CREDENTIALS).start()
    yield server
    # The test's own stop and start on the directory are behind it: nothing serves it again.
    discard_store(server)


def test_s3_stopped_mid_job_fails_clearly_and_recovers(make_app: Any, own_s3: EmbeddedS3) -> None:
    settings = Settings(store_url="s3://faults", s3_endpoint_url=own_s3.endpoint_url)
    client = make_app(settings).test_client()
    assert client.get("/readyz").status_code == 200
    before = client.get("/run?shape=500,500&chunks=100,100&seed=14").get_json()
    assert_verified(before)
    job = client.post("/jobs", json=LARGE).get_json()
    # Mid-job: some of its chunks are in the store.
    chunks = own_s3.client()
    wait_for(lambda: chunks.list_objects_v2(Bucket="faults", Prefix=f"{job['id']}.zarr/c/")["KeyCount"], 60, 0.05)
    # Killed, as by a crash: a SIGTERM'd SeaweedFS answers 500 InternalError for its 16 s stop.
    assert own_s3.process is not None
    own_s3.process.kill()
    own_s3.close()
    stopped = time.monotonic()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503
    # Once its tasks have failed, the job is not running here any more and its record cannot be
    # read: a clear 503 (another replica might take the job over when the store is back).
    unreadable = wait_for(lambda: (r := client.get(f"/jobs/{job['id']}")).status_code == 503 and r, 180, 0.2)
    took = time.monotonic() - stopped
    error = unreadable.get_json()["error"]
    print(f"\njob ended here {took:.1f} s after S3 stopped: {error}")
    assert error["code"] == "store_unavailable" and unreadable.headers["Retry-After"]
    assert "object store could not be reached" in error["message"] and "S3_ENDPOINT_URL" in error["message"]
    assert took < 120
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "object store" in ready.get_json()["reason"]
    # The same directory and port again: what was written before the stop is still there, and
    # the failure this replica kept in memory becomes the record.
    own_s3.start()
    wait_for(lambda: client.get("/readyz").status_code == 200, 60, 0.2)
    failed = _wait_job(client, job["id"], timeout=60)
    assert failed["status"] == "failed", failed
    assert "object store could not be reached" in failed["error"] and "S3_ENDPOINT_URL" in failed["error"]
    assert "Traceback" not in failed["error"]
    assert_verified(client.get(f"/jobs/{before['id']}").get_json())
    response = client.get("/run?shape=1000,1000&chunks=100,100&seed=13")
    assert response.status_code == 200, response.get_json()
    assert_verified(response.get_json())


@pytest.fixture
def flaky(s3: EmbeddedS3) -> Iterator[FaultProxy]:
    proxy = FaultProxy(s3.endpoint_url, fail_share=0.3, delay_share=0.2, delay_s=0.3, seed=5).start()
    yield proxy
    proxy.stop()


def test_slow_and_flaky_s3_is_retried_and_the_data_verifies(make_app: Any, flaky: FaultProxy, s3fs_client: Any) -> None:
    settings = Settings(store_url="s3://test-bucket", s3_endpoint_url=flaky.url)
    client = make_app(settings).test_client()
    response = client.get("/run?shape=1000,600&chunks=100,100&seed=21")
    assert response.status_code == 200, response.get_json()
    assert_verified(response.get_json())
    assert len(s3fs_client.find(f"test-bucket/{response.get_json()['id']}.zarr")) == 61
    print(f"\nfault proxy: {flaky.counts}")
    assert flaky.counts["slowdown"] > 5 and flaky.counts["internal"] > 5 and flaky.counts["delayed"] > 5


def test_a_stopping_replica_hands_its_running_jobs_back(make_app: Any, settings: Settings, s3fs_client: Any) -> None:
    # Chunk PUTs held for 8 s (job records pass): the job is still running when the service closes.
    held = FaultProxy(settings.s3_endpoint_url or "", delay_share=1.0, delay_s=8.0, only="/c/").start()
    try:
        app = make_app(settings, s3_endpoint_url=held.url)
        client = app.test_client()
        job = client.post("/jobs", json={"shape": [200, 200], "chunks": [100, 100], "seed": 3}).get_json()
        wait_for(lambda: held.counts["delayed"] > 0, 60, 0.05)
        service = parts(app).service
        started = time.monotonic()
        service.close()  # as gunicorn's worker_exit does on a rolling update's SIGTERM
        took = time.monotonic() - started
        record = service.jobs.records.read(job["id"])
    finally:
        held.stop()
    # Not failed: still running in its record, its lease released at once for another replica
    # to take over (tests/test_takeover.py).
    assert record is not None
    assert record["status"] in ("queued", "running") and record["error"] is None
    # (SeaweedFS may list the emptied prefix as a directory for a while; a lease slot holds its holder's name.)
    slots = s3fs_client.find(f"{BUCKET}/{JOB_LEASES}/{job['id']}", detail=True).values()
    assert [s for s in slots if s["size"]] == []
    assert took < STOP_WAIT_S + 3
    # A running task cannot be interrupted: the held PUTs still land after the stop, and stay
    # until a DELETE of the job (the stopped replica's clean-up went with it). Waited for here,
    # so that they do not land in the next test's bucket.
    wait_for(lambda: len(s3fs_client.find(f"{BUCKET}/{job['id']}.zarr/c")) == 4, 60, 0.2)
