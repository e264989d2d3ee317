"""How jobs share the cluster (jobs/feeder.py): short tasks, smaller jobs first; no cluster."""

from __future__ import annotations

import pytest

from gateway_dask_zarr.client.client import RemoteJob
from gateway_dask_zarr.env_values import ConfigError
from gateway_dask_zarr.jobs import feeder, plan_tasks
from gateway_dask_zarr.params import JobRequest
from gateway_dask_zarr.settings import Settings

pytestmark = pytest.mark.fast


def test_a_large_jobs_tasks_are_short_and_cover_every_chunk_once() -> None:
    # The 1.6 GB job: 200 chunks of 8 MB, planned as 3 tasks, now one chunk a task.
    request = JobRequest((20000, 10000), (1000, 1000), "float64", 1)
    tasks = plan_tasks(request, 3)
    assert len(tasks) == 200 and all(len(t) * request.unit_bytes <= feeder.TASK_MAX_BYTES for t in tasks)
    assert [n for task in tasks for n in task] == list(range(request.n_units))


def test_a_default_job_keeps_one_task_a_worker() -> None:
    assert plan_tasks(JobRequest((1000, 1000), (100, 100), "float32", 1), 3) == [
        range(0, 34),
        range(34, 68),
        range(68, 100),
    ]


def test_a_unit_larger_than_the_bound_is_one_task() -> None:
    assert feeder.split([range(0, 3)], 4 * feeder.TASK_MAX_BYTES) == [range(0, 1), range(1, 2), range(2, 3)]


def test_a_smaller_job_has_a_higher_priority() -> None:
    default, large = 4_000_000, 1_600_000_000
    assert feeder.priority(default) > feeder.priority(large)
    assert feeder.priority(default) == feeder.priority(default + 1)


def test_workers_min_and_max_default_to_three_and_max_below_min_is_refused() -> None:
    settings = Settings.from_env({})
    assert (settings.workers_min, settings.workers_max) == (3, 3)
    assert Settings.from_env({"WORKERS_MIN": "4"}).workers_max == 4
    assert Settings.from_env({"WORKERS_MAX": "6"}).workers_max == 6
    with pytest.raises(ConfigError, match="WORKERS_MAX"):
        Settings.from_env({"WORKERS_MIN": "4", "WORKERS_MAX": "3"})


def test_the_client_says_a_job_waits_for_workers_until_its_queued_s_is_known() -> None:
    document = {"id": "j", "status": "running", "shape": [10], "chunks": [10], "queued_s": None}
    assert RemoteJob(None, document).waiting  # type: ignore[arg-type]
    assert not RemoteJob(None, {**document, "queued_s": 0.2}).waiting  # type: ignore[arg-type]
    assert not RemoteJob(None, {**document, "status": "complete"}).waiting  # type: ignore[arg-type]
