"""Progress that moves: chunks written, reported from inside the tasks while they run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from stand_ins import FaultProxy

from gateway_dask_zarr.jobs.job import Job
from gateway_dask_zarr.jobs.progress import JobProgress, Progress
from gateway_dask_zarr.params import JobRequest
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.storage.embedded import EmbeddedS3


@pytest.fixture
def held_chunks(s3: EmbeddedS3) -> Iterator[FaultProxy]:
    """Each chunk PUT held 150 ms: a job of small chunks lasts seconds on any machine, at little cost."""
    # At 50 ms an idle machine wrote the 1600 chunks in 2.3 s (about 35 PUTs at once): 4 polls.
    proxy = FaultProxy(s3.endpoint_url, delay_share=1.0, delay_s=0.15, only="/c/").start()
    yield proxy
    proxy.stop()


def test_a_1600_chunk_job_polled_every_half_second_shows_progress_moving(
    make_app: Any, settings: Settings, held_chunks: FaultProxy
) -> None:
    client = make_app(settings, s3_endpoint_url=held_chunks.url).test_client()
    # 1600 chunks of 40 kB, each PUT held 150 ms: seconds of work, so polls every 0.5 s see it move.
    body = {"shape": [4000, 4000], "chunks": [100, 100], "dtype": "float32", "seed": 25}
    job = client.post("/jobs", json=body).get_json()
    seen: list[int] = []
    deadline = time.monotonic() + 300
    while (doc := client.get(f"/jobs/{job['id']}").get_json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, doc
        seen.append(doc["progress"]["done"])
        time.sleep(0.5)  # the poll interval under test, not a wait for a condition
    assert doc["status"] == "complete", doc
    assert doc["chunks_written"] == 1600
    # Both counted from the job's acceptance, on one clock: its wait is part of its time.
    assert 0 <= doc["queued_s"] <= doc["seconds"], doc
    moving = sorted(set(seen) - {0, 1600})
    assert seen == sorted(seen), seen  # never backwards
    assert len(moving) >= 5, seen
    print(f"\nprogress seen: {seen} in {doc['seconds']} s")


class _Future:
    def __init__(self, status: str) -> None:
        self.status = status


@pytest.mark.fast
def test_progress_never_goes_back_nor_passes_the_total_when_a_task_reruns() -> None:
    job = Job("j", JobRequest((160,), (1,), "float32", 1), "ann", deadline=time.time() + 60)
    tally = JobProgress(job, ["a", "b"], [100, 60])
    progress = Progress()
    progress.jobs["j"] = tally
    progress.on_event((0.0, {"job": "j", "key": "a", "done": 40}))
    # Its first task's first report ends its time in the queue.
    assert job.queued_s is not None and 0 <= job.queued_s < 60
    progress.on_event((0.0, {"job": "j", "key": "b", "done": 30}))
    assert job.done == 70
    # Task a's worker was lost: its rerun reports from 0 again, and a stale attempt's key is ignored.
    progress.on_event((0.0, {"job": "j", "key": "a", "done": 10}))
    progress.on_event((0.0, {"job": "j", "key": "a-old", "done": 99}))
    progress.on_event((0.0, {"job": "other", "key": "a", "done": 99}))
    assert job.done == 70
    progress.on_event((0.0, {"job": "j", "key": "b", "done": 500}))
    assert job.done == 100
    tally.finished("a", _Future("finished"))
    tally.finished("b", _Future("error"))
    assert job.done == 160


@pytest.mark.fast
def test_queued_s_is_never_above_seconds_even_for_a_report_after_the_end() -> None:
    job = Job("j", JobRequest((10,), (5,), "float32", 1), "ann", deadline=time.time() + 60)
    tally = JobProgress(job, ["a", "b"], [5, 5])
    tally.report("a", 1)
    queued = job.queued_s
    job.stop_clock()
    assert queued is not None and 0 <= queued <= job.seconds  # type: ignore[operator]
    tally.report("b", 5)  # a late report keeps the first reading
    assert job.queued_s == queued

    # A job that ended before any task ran (cancelled, failed) stays without queued_s.
    idle = Job("k", JobRequest((10,), (5,), "float32", 1), "ann", deadline=time.time() + 60)
    idle.stop_clock()
    JobProgress(idle, ["a"], [10]).report("a", 3)
    assert idle.queued_s is None and idle.seconds is not None
