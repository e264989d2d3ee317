"""Load on the real server: gunicorn as in production, 50 concurrent GET /run, /healthz timed throughout."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import s3fs
from helpers import S3_CREDENTIALS, assert_verified, free_port, wait_for

from gateway_dask_zarr.embedded_s3 import EmbeddedS3, stop_process

ROOT = Path(__file__).resolve().parent.parent
CONCURRENT = 50


@pytest.fixture
def load_s3(tmp_path: Path) -> Iterator[EmbeddedS3]:
    """An S3 server of this test's own, so its priority can be lowered without touching the shared one."""
    server = EmbeddedS3(tmp_path / "seaweedfs", "load-bucket", credentials=S3_CREDENTIALS).start()
    yield server
    server.close()


@pytest.fixture
def bucket(load_s3: EmbeddedS3) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(endpoint_url=load_s3.endpoint_url, skip_instance_cache=True, use_listings_cache=False)


@pytest.fixture
def gunicorn(load_s3: EmbeddedS3) -> Iterator[str]:
    """`gunicorn -c gunicorn.conf.py app:app` on a free loopback port, on the test bucket."""
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "STORE_URL": "s3://load-bucket",
        "S3_ENDPOINT_URL": load_s3.endpoint_url,
        "N_WORKERS": "2",
        "MAX_ACTIVE_JOBS": "8",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:app"], cwd=ROOT, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _status(f"{url}/readyz") == 200 or process.poll() is not None, 180, 0.2)
        assert process.poll() is None, "gunicorn exited"
        # In production the Dask workers and S3 run on other machines; here they share two
        # cores with the web process, so lower their priority to leave it what it would have.
        (worker,) = psutil.Process(process.pid).children()
        for part in [*worker.children(recursive=True), psutil.Process(load_s3.process.pid)]:
            part.nice(10)
        yield url
    finally:
        stop_process(process, 60)


def _status(url: str) -> int | None:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return None


def test_fifty_concurrent_runs_answered_200_or_429_and_healthz_stays_fast(gunicorn: str, bucket: Any) -> None:
    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                started = time.perf_counter()
                assert session.get(f"{gunicorn}/healthz", timeout=10).status_code == 200
                latencies.append(time.perf_counter() - started)
                stop.wait(0.005)

    prober = threading.Thread(target=probe)
    prober.start()
    time.sleep(0.2)
    clients = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "load_clients.py"), gunicorn, str(CONCURRENT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    stop.set()
    prober.join()

    responses = json.loads(clients.stdout)
    statuses = [status for status, _, _ in responses]
    assert len(statuses) == CONCURRENT and set(statuses) <= {200, 429}, statuses
    complete = [json.loads(body) for status, _, body in responses if status == 200]
    for _, headers, body in (r for r in responses if r[0] == 429):
        assert headers["Retry-After"] and json.loads(body)["error"]["code"] == "too_many_jobs"
    assert len(complete) >= 8
    for document in complete:
        assert_verified(document)
    # Nothing lost, nothing extra: each complete job's 100 chunks and its zarr.json, and no
    # object at all from a refused request.
    assert len(bucket.find("load-bucket")) == 101 * len(complete)
    ordered = sorted(latencies)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    print(
        f"\n{CONCURRENT} concurrent /run: {statuses.count(200)} x 200, {statuses.count(429)} x 429; "
        f"/healthz p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms over {len(ordered)} probes"
    )
    assert len(ordered) >= 20
    assert p99 < 0.050


def test_escaping_ids_refused_by_the_real_server(gunicorn: str, bucket: Any) -> None:
    host, port = gunicorn.removeprefix("http://").split(":")
    for path in [
        "/submit_job/..",
        "/submit_job/%2e%2e",
        "/submit_job/..%2F..%2Fx",
        "/submit_job/a%00b",
        "/jobs/%2e%2e%2fzarr.json",
        "/jobs/../jobs",
    ]:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read().decode()
        connection.close()
        assert response.status in (400, 404), (path, response.status)
        assert "Traceback" not in body
    assert bucket.find("load-bucket") == []
