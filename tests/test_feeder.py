"""How jobs share the cluster (jobs/feeder.py): short tasks, a bounded number in flight, owners in turn; no cluster."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

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


class StandInFuture:
    """A future that ends when the test says so (the feeder's policy needs no cluster)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.status = "pending"
        self.callbacks: list[Callable[[Any], None]] = []

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        self.callbacks.append(fn)

    def end(self, status: str = "finished") -> None:
        self.status = status
        for fn in self.callbacks:
            fn(self)


class StandInClient:
    """Counts what the feeder submits; answers nthreads like a Dask client."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.sent: list[StandInFuture] = []

    def nthreads(self, callback_timeout: float) -> dict[str, int]:
        return {f"worker-{i}": 1 for i in range(self.threads)}

    def feed(self, name: str, n: int, owner: str) -> feeder.Feed:
        def submit(i: int) -> StandInFuture:
            self.sent.append(future := StandInFuture(f"{name}{i}"))
            return future

        return feeder.Feed(owner, n, submit, lambda i, future: None)

    def running(self) -> list[str]:
        return [f.name for f in self.sent if f.status == "pending"]

    def end_first(self, prefix: str) -> None:
        next(f for f in self.sent if f.status == "pending" and f.name.startswith(prefix)).end()


def fed(threads: int = 3) -> tuple[feeder.Feeder, StandInClient]:
    the_feeder, client = feeder.Feeder(), StandInClient(threads)
    the_feeder.resize(client)
    return the_feeder, client


def test_a_job_alone_holds_one_task_per_thread_and_the_next_goes_as_one_ends() -> None:
    the_feeder, client = fed(3)
    large = client.feed("L", 5, "alice")
    the_feeder.add(large)
    assert client.running() == ["L0", "L1", "L2"]
    client.end_first("L")
    assert client.running() == ["L1", "L2", "L3"]
    for _ in range(4):
        client.end_first("L")
    assert [f.name for f in client.sent] == ["L0", "L1", "L2", "L3", "L4"] and client.running() == []
    assert [f.name for f in large.ends(time.monotonic() + 5)] == ["L0", "L1", "L2", "L3", "L4"]


def test_owners_of_long_jobs_share_the_slots_while_both_have_jobs() -> None:
    the_feeder, client = fed(4)
    the_feeder.add(client.feed("L", 100, "alice"))
    the_feeder.add(other := client.feed("M", 6, "bob"))  # more tasks than slots: not short
    assert client.running() == ["L0", "L1", "L2", "L3"]  # no slot is taken back
    client.end_first("L")
    client.end_first("L")
    assert client.running() == ["L2", "L3", "M0", "M1"]  # bob had fewer in flight both times
    client.end_first("L")
    assert client.running() == ["L3", "M0", "M1", "L4"]  # alice had fewer: owners share the slots
    client.end_first("M")
    assert client.running() == ["L3", "M1", "L4", "M2"]
    for _ in range(4):
        client.end_first("M")
    client.end_first("M")
    assert client.running() == ["L3", "L4"]  # bob's job is publishing: alice keeps to her half meanwhile
    the_feeder.stop(other)
    assert client.running() == ["L3", "L4", "L5", "L6"]


def running_within(client: StandInClient, seconds: float) -> list[str]:
    """What runs once the feeder's anticipation timer has had `seconds` to fire (polled)."""
    deadline = time.monotonic() + seconds
    while not client.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    return client.running()


def test_a_short_job_takes_every_slot_as_it_frees_and_the_long_job_resumes_after_it() -> None:
    the_feeder, client = fed(3)
    the_feeder.add(client.feed("L", 100, "alice"))
    the_feeder.add(short := client.feed("S", 3, "bob"))  # one task a slot: short
    assert client.running() == ["L0", "L1", "L2"]
    for _ in range(3):
        client.end_first("L")
    assert client.running() == ["S0", "S1", "S2"]  # the long job's tasks drained; none was sent meanwhile
    for _ in range(3):
        client.end_first("S")
    assert client.running() == []  # the short job publishes with the store to itself
    stopped = time.monotonic()
    the_feeder.stop(short)
    assert client.running() == []  # anticipating the next short job
    assert running_within(client, 10 * feeder.ANTICIPATE_S) == ["L3", "L4", "L5"]  # the timer, no task end
    assert time.monotonic() - stopped >= feeder.ANTICIPATE_S


def test_the_next_short_job_within_anticipate_s_finds_every_slot_free() -> None:
    the_feeder, client = fed(3)
    the_feeder.add(client.feed("L", 100, "alice"))
    the_feeder.add(first := client.feed("S", 3, "bob"))
    for _ in range(3):
        client.end_first("L")
    for _ in range(3):
        client.end_first("S")
    the_feeder._long_fed = time.monotonic()  # so that no LONG_EVERY_S slot falls due within this test
    the_feeder.stop(first)
    the_feeder.add(client.feed("T", 3, "bob"))  # bob's notebook asks for the next small array
    assert client.running() == ["T0", "T1", "T2"]  # at once: no long task to drain first
    time.sleep(2 * feeder.ANTICIPATE_S)  # the first job's timer fires: T still runs, so L waits
    assert client.running() == ["T0", "T1", "T2"]


def test_a_short_job_alone_leaves_no_anticipation_behind() -> None:
    the_feeder, client = fed(3)
    the_feeder.add(short := client.feed("S", 3, "bob"))
    for _ in range(3):
        client.end_first("S")
    the_feeder.stop(short)
    the_feeder.add(client.feed("L", 100, "alice"))  # no longer job waited: it starts at once
    assert client.running() == ["L0", "L1", "L2"]


def test_while_short_jobs_keep_coming_a_long_job_still_gets_a_slot_every_long_every_s() -> None:
    the_feeder, client = fed(2)
    the_feeder.add(client.feed("L", 100, "alice"))
    the_feeder.add(client.feed("S", 2, "bob"))
    the_feeder.add(client.feed("T", 2, "carol"))
    client.end_first("L")
    client.end_first("L")
    assert client.running() == ["T0", "S0"]
    the_feeder._long_fed -= feeder.LONG_EVERY_S  # a second went by with the long job held back
    client.end_first("S")
    assert client.running() == ["T0", "L2"]  # one slot for it, then short jobs first again
    client.end_first("T")
    assert client.running() == ["L2", "T1"]


def test_an_owners_jobs_take_turns_and_owners_take_turns_among_equals() -> None:
    the_feeder, client = fed(1)
    the_feeder.add(client.feed("A", 3, "alice"))
    the_feeder.add(client.feed("B", 3, "alice"))
    the_feeder.add(client.feed("C", 3, "carol"))
    for _ in range(6):
        client.end_first("")
    assert [f.name for f in client.sent] == ["A0", "C0", "B0", "C1", "A1", "C2", "B1"]


def test_a_stopped_job_frees_its_slots_at_once_and_gets_no_more() -> None:
    the_feeder, client = fed(2)
    large = client.feed("L", 10, "alice")
    the_feeder.add(large)
    the_feeder.add(client.feed("S", 2, "bob"))
    the_feeder.stop(large)  # its runner cancels L0 and L1; their ends may come late or never
    assert client.running() == ["L0", "L1", "S0", "S1"]
    client.end_first("L")
    client.end_first("S")
    assert [f.name for f in client.sent] == ["L0", "L1", "S0", "S1"]


def test_a_cancelled_task_stops_its_jobs_feed_and_frees_its_slots() -> None:
    # A DELETE or a hand-back cancels what was submitted: the slots it frees go to others, not to more of it.
    the_feeder, client = fed(2)
    the_feeder.add(client.feed("L", 10, "alice"))
    the_feeder.add(client.feed("S", 4, "bob"))
    next(f for f in client.sent if f.name == "L0").end("cancelled")
    assert client.running() == ["L1", "S0", "S1"]  # L1's slot is free at once: its runner cancels it
    next(f for f in client.sent if f.name == "L1").end("cancelled")
    client.end_first("S")
    assert client.running() == ["S1", "S2"]


def test_the_budget_follows_the_clusters_threads() -> None:
    the_feeder, client = fed(2)
    the_feeder.add(client.feed("L", 10, "alice"))
    assert len(client.running()) == 2
    client.threads = 5  # adapt added workers
    the_feeder._sized -= feeder.RESIZE_S
    the_feeder.resize(client)
    assert len(client.running()) == 5


def test_for_an_adaptive_cluster_every_task_is_submitted_at_once() -> None:
    # Dask's adaptive target follows the scheduler's backlog: a bounded feed would hide it.
    the_feeder, client = feeder.Feeder(bounded=False), StandInClient(3)
    the_feeder.resize(client)
    the_feeder.add(client.feed("L", 200, "alice"))
    the_feeder.add(client.feed("S", 3, "bob"))
    assert len(client.running()) == 203


def test_a_failed_submit_ends_the_feed_with_its_error_and_a_wait_ends_at_its_deadline() -> None:
    the_feeder = feeder.Feeder()

    def closed(i: int) -> Any:
        raise RuntimeError("the client is closed")

    broken = feeder.Feed("alice", 2, closed, lambda i, future: None)
    the_feeder.add(broken)
    with pytest.raises(RuntimeError, match="closed"):
        next(iter(broken.ends(time.monotonic() + 5)))
    _, client = fed(1)
    waiting = client.feed("W", 1, "bob")  # never fed: no feeder has it
    ends = waiting.ends(time.monotonic() + 0.05)
    assert next(ends) is None  # a poll: its runner looks at the job meanwhile
    with pytest.raises(TimeoutError):
        list(ends)


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
