"""Bounded jobs: JOB_TIMEOUT_S stops the job's tasks, fails it and leaves no chunk behind; JSON logs name the job."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import assert_verified, wait_for
from stand_ins import FaultProxy

from gateway_dask_zarr import logs
from gateway_dask_zarr.server.parts import parts
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.storage.embedded import EmbeddedS3


@pytest.fixture
def slow(s3: EmbeddedS3) -> Iterator[FaultProxy]:
    """Every PUT waits 2 s: a 100-chunk job then needs far longer than its 3 s timeout."""
    proxy = FaultProxy(s3.endpoint_url, delay_share=1.0, delay_s=2.0).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Every log record, formatted by the JSON formatter, one a line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


def test_job_timeout_cancels_fails_and_deletes_every_chunk(
    make_app: Any, slow: FaultProxy, s3fs_client: Any, cluster: Any, json_lines: io.StringIO
) -> None:
    # A clean-up bound above the proxy's 2 s per PUT: by then the last PUT in flight has landed.
    settings = Settings(
        store_url="s3://test-bucket", s3_endpoint_url=slow.url, job_timeout_s=3, cleanup_grace_s=3, log_format="json"
    )
    app = make_app(settings)
    assert isinstance(logs._handler.formatter, logs.JsonFormatter)
    jobs = parts(app).service.jobs
    client = app.test_client()

    started = time.monotonic()
    response = client.get("/run?shape=1000,1000&chunks=100,100&seed=31")
    took = time.monotonic() - started
    assert response.status_code == 503
    failed = response.get_json()["job"]
    job_id = failed["id"]
    assert failed["status"] == "failed" and "JOB_TIMEOUT_S=3" in failed["error"], failed
    assert took < 30
    # No reader can open it: nothing was published.
    assert not s3fs_client.exists(f"test-bucket/{job_id}.zarr/zarr.json")
    # The scheduler forgot the job's tasks, the re-delete ran, and no chunk is left.
    scheduler = cluster._cluster.scheduler
    wait_for(lambda: not [k for k in scheduler.tasks if job_id in str(k)], 30)
    wait_for(lambda: jobs.records.read(job_id)["cleanup"] == "done", 60)

    # No task of it still runs on a worker and no PUT is in flight: nothing more can land.
    def quiet() -> bool:
        executing = cluster.client.run(lambda dask_worker: len(dask_worker.state.executing))
        return slow.in_flight == 0 and not any(executing.values())

    wait_for(quiet, 30)
    s3fs_client.invalidate_cache()
    # Listed by key prefix: SeaweedFS keeps an emptied folder a while, and s3fs's find falls
    # back to a HEAD of `<id>.zarr/` that then answers 200 (S3 would answer 404).
    assert s3fs_client.find("test-bucket", prefix=f"{job_id}.zarr") == []
    # The deadline stopped the tasks: far from all 100 chunks were even attempted.
    print(f"\ntimeout: job failed after {took:.1f} s; {slow.counts['put']} of 100 chunk PUTs attempted, 0 objects left")
    assert slow.counts["put"] < 100

    # The next job on a healthy path completes.
    healthy = make_app(
        Settings(store_url="s3://test-bucket", s3_endpoint_url=slow.upstream.geturl(), log_format="json")
    ).test_client()
    done = healthy.get("/run?shape=300,300&chunks=100,100&seed=32").get_json()
    assert_verified(done)

    records = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    for job in (job_id, done["id"]):
        about = [r for r in records if job in r["message"]]
        assert len(about) >= 2, about
        assert all(r.get("job_id") == job for r in about), [r for r in about if r.get("job_id") != job]
        assert {"time", "level", "logger", "message"} <= set(about[0])
    assert any(r.get("job_id") == job_id and "cleaned up" in r["message"] for r in records)
