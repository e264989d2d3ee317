"""Two app processes (gunicorn, each with its own LocalCluster) sharing one S3 store, as two replicas do."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import s3fs
import serve
from helpers import assert_verified, wait_for
from stand_ins import FaultProxy

from gateway_dask_zarr.storage.embedded import EmbeddedS3

BUCKET = "replicas"
# Replica A's JOB_TIMEOUT_S: a job whose chunk PUTs hang longer fails. Above what A's longest
# job here takes (a 1 s hang on each chunk PUT: about 5 s on a loaded machine), as short as that
# allows: the clean-up tests wait past TIMEOUT_S + 2 * GRACE_S.
TIMEOUT_S = 10
GRACE_S = 5  # replica A's CLEANUP_GRACE_S: more than a hung PUT takes to land after the deadline (1 s)
HANG_S = TIMEOUT_S + 1


class Replica(serve.Replica):
    """A replica with two workers on the shared bucket, stopped gracefully by stop()."""

    def __init__(self, name: str, endpoint: str, log_dir: Path, **env: str) -> None:
        super().__init__(name, f"s3://{BUCKET}", endpoint, log_dir, N_WORKERS="2", **env)

    def stop(self) -> None:
        self.served.close(90)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def hangs(own_s3: EmbeddedS3) -> Iterator[FaultProxy]:
    """Replica A's way to the store: chunk PUTs can be made to hang (records and the rest pass)."""
    proxy = FaultProxy(own_s3.endpoint_url, only="/c/").start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def replicas(own_s3: EmbeddedS3, hangs: FaultProxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Replica A (through `hangs`, JOB_TIMEOUT_S and CLEANUP_GRACE_S short) and replica B (straight to the store)."""
    logs = tmp_path_factory.mktemp("replicas")
    with serve.replica_pair(
        lambda: Replica("a", hangs.url, logs, JOB_TIMEOUT_S=str(TIMEOUT_S), CLEANUP_GRACE_S=str(GRACE_S)),
        lambda: Replica("b", own_s3.endpoint_url, logs),
    ) as both:
        yield both


@pytest.fixture
def bucket(own_s3: EmbeddedS3) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(endpoint_url=own_s3.endpoint_url, skip_instance_cache=True, use_listings_cache=False)


def _hang(proxy: FaultProxy, seconds: float) -> None:
    proxy.delay_share, proxy.delay_s = (1.0, seconds) if seconds else (0.0, 0.0)


def _objects_of(bucket: s3fs.S3FileSystem, job_id: str) -> list[str]:
    """Every object of a job: its array, record, index entries and delete request."""
    mine = (f"/{job_id}.zarr/", f"/records/{job_id}.json", f"/delete/{job_id}")
    return [k for k in bucket.find(BUCKET) if any(m in k for m in mine) or k.endswith(f"-{job_id}")]


def test_races_for_one_id_have_exactly_one_winner_and_its_array_verifies(replicas: Any, bucket: Any) -> None:
    a, b = replicas
    for i in range(8):
        job_id = f"race-{i}"
        query = f"/submit_job/{job_id}?seed={i}&shape=300,300&chunks=100,100"
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(Replica.get, (a, b), (query, query)))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [200, 409], [r.text for r in answers]
        loser = next(r for r in answers if r.status_code == 409)
        assert loser.json()["error"]["code"] == "job_exists"
        winner = next(r for r in answers if r.status_code == 200).json()
        # The loser has finished (answered); the winner's array is whole, chunk by chunk.
        assert_verified(winner)
        assert len(bucket.find(f"{BUCKET}/{job_id}.zarr")) == 9 + 1
        # Both replicas give the same document (each names its own way to the store).
        assert {**a.job(job_id), "endpoint_url": None} == {**b.job(job_id), "endpoint_url": None}


def test_a_running_job_on_a_is_seen_from_b_with_progress_at_most_about_2_s_old(
    replicas: Any, hangs: FaultProxy
) -> None:
    a, b = replicas
    _hang(hangs, 1.0)
    try:
        created = requests.post(
            f"{a.url}/jobs", json={"shape": [1000, 1000], "chunks": [100, 100], "seed": 3}, timeout=60
        )
        assert created.status_code == 202
        job_id = created.json()["id"]
        seen: list[tuple[float, int, int]] = []  # (time, A's done, B's done)
        while (on_b := b.job(job_id))["status"] in ("queued", "running"):
            on_a = a.job(job_id)
            seen.append((time.monotonic(), on_a["progress"]["done"], on_b["progress"]["done"]))
            time.sleep(0.2)
    finally:
        _hang(hangs, 0)
    assert on_b["status"] == "complete", on_b
    assert_verified(b.job(job_id))
    # B saw it running (its progress moves a task at a time: one task per worker here).
    assert seen, "B never saw the job running"
    # What B shows is never older than what A had 3 s before (records get progress every second).
    for t, _, done_b in seen:
        earlier = [done_a for when, done_a, _ in seen if when <= t - 3]
        assert not earlier or done_b >= max(earlier), (t, done_b, seen)


def test_a_failed_job_on_a_is_read_from_b_and_kept_across_a_restart(replicas: Any, hangs: FaultProxy) -> None:
    a, b = replicas
    _hang(hangs, HANG_S)
    try:
        failed = a.get("/submit_job/kept?seed=1&shape=400,400&chunks=100,100")
    finally:
        _hang(hangs, 0)
    assert failed.status_code == 503
    reason = f"the job did not finish within JOB_TIMEOUT_S={TIMEOUT_S} s"
    assert failed.json()["job"]["error"] == reason
    assert b.job("kept")["status"] == "failed" and b.job("kept")["error"] == reason
    a.stop()
    a.start()
    assert a.job("kept")["status"] == "failed" and a.job("kept")["error"] == reason
    assert b.get("/submit_job/kept?seed=2&shape=400,400&chunks=100,100").status_code == 409
    assert "kept" in [d["id"] for d in b.get("/jobs").json()]


def test_a_failed_named_job_resubmitted_is_never_deleted_by_the_first_attempts_clean_up(
    replicas: Any, hangs: FaultProxy, bucket: Any
) -> None:
    a, b = replicas
    _hang(hangs, HANG_S)
    try:
        assert a.get("/submit_job/again?seed=1&shape=400,400&chunks=100,100").status_code == 503
        first = a.job("again")
        # The id stays claimed by the failed attempt: a resubmission is refused, a DELETE waits for its clean-up.
        assert b.get("/submit_job/again?seed=2&shape=400,400&chunks=100,100").status_code == 409
        deleting = requests.delete(f"{b.url}/jobs/again", timeout=60)
        assert deleting.status_code == 202 and deleting.json()["status"] == "failed"
    finally:
        _hang(hangs, 0)
    wait_for(lambda: b.get("/jobs/again").status_code == 404, timeout=60, interval=0.5)
    second = b.get("/submit_job/again?seed=2&shape=400,400&chunks=100,100")
    assert second.status_code == 200, second.text
    assert_verified(second.json())
    # Until past every bound of the first attempt, the second one's array stays whole.
    bound = _epoch(first["created"]) + TIMEOUT_S + 2 * GRACE_S

    def whole_until_bound() -> bool:
        assert len(bucket.find(f"{BUCKET}/again.zarr")) == 16 + 1
        return time.time() > bound

    wait_for(whole_until_bound, timeout=60, interval=0.5)
    assert_verified(b.job("again"))
    assert len(bucket.find(f"{BUCKET}/again.zarr")) == 16 + 1


def test_delete_of_a_running_job_leaves_no_object_of_it(replicas: Any, hangs: FaultProxy, bucket: Any) -> None:
    a, b = replicas
    _hang(hangs, 2.0)
    try:
        created = requests.post(
            f"{a.url}/jobs", json={"shape": [1000, 1000], "chunks": [100, 100], "seed": 4}, timeout=60
        )
        job_id = created.json()["id"]
        # Chunk PUTs take 2 s each: the job runs for several seconds after its record says running.
        wait_for(lambda: b.job(job_id)["status"] == "running", timeout=60, interval=0.2)
        deleting = requests.delete(f"{b.url}/jobs/{job_id}", timeout=60)
        assert deleting.status_code == 202
        wait_for(lambda: b.job(job_id).get("status") == "cancelled", timeout=30, interval=0.2)
    finally:
        _hang(hangs, 0)
    assert "DELETE" in b.job(job_id)["error"]
    wait_for(lambda: b.get(f"/jobs/{job_id}").status_code == 404, timeout=60, interval=0.5)
    assert _objects_of(bucket, job_id) == []
    assert job_id not in [d["id"] for d in a.get("/jobs").json()]


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
