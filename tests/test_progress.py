"""Progress that moves: chunks written, reported from inside the tasks while they run."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gateway_dask_zarr.jobs.job import Job
from gateway_dask_zarr.jobs.progress import JobProgress, Progress
from gateway_dask_zarr.params import JobRequest


def test_a_1600_chunk_job_polled_every_half_second_shows_progress_moving(client: Any) -> None:
    # 1600 chunks of 320 kB: a few seconds' work on two cores, so polls every 0.5 s see it move.
    body = {"shape": [8000, 8000], "chunks": [200, 200], "dtype": "float64", "seed": 25}
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
    # Its chunks are verified elsewhere (test_api); 512 MB is not kept.
    assert client.delete(f"/jobs/{job['id']}").status_code in (200, 202, 204)


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
