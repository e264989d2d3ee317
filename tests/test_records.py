"""Job records and the index on in-process stores (memory and file): claims, listing, deletes, leases, clean-up."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import obstore
import pytest

from gateway_dask_zarr.errors import Conflict, StoreUnavailable
from gateway_dask_zarr.jobs import Job, JobManager, Records
from gateway_dask_zarr.jobs.audit import Audit, Repair
from gateway_dask_zarr.jobs.leases import Leases
from gateway_dask_zarr.jobs.records import ACTIVE_MARKS, index_name, store_errors
from gateway_dask_zarr.jobs.retention import Retention
from gateway_dask_zarr.jobs.runner import Cleanups, job_array_kwargs
from gateway_dask_zarr.params import JobRequest
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.storage.arrays import JobStore
from gateway_dask_zarr.storage.backends import S3_PUT_BOUND_S, parse_storage

pytestmark = pytest.mark.fast
REQUEST = JobRequest((200, 200), (100, 100), "float32", 1)


def keys(store: Any) -> list[str]:
    return sorted(m["path"] for batch in obstore.list(store) for m in batch)


def record(job_id: str, owner: str = "ann", created: datetime | None = None, **fields: Any) -> dict[str, Any]:
    job = Job(job_id, REQUEST, owner, deadline=time.time() + 60)
    job.created = created or datetime.now(UTC)
    return {**job.record(), **fields}


@pytest.fixture(params=["memory", "file"])
def records(request: pytest.FixtureRequest, tmp_path: Path) -> Records:
    url = f"memory://records-{uuid.uuid4().hex}" if request.param == "memory" else f"file://{tmp_path}"
    return Records(parse_storage(url))


def test_a_claim_is_exclusive_and_a_loser_writes_nothing(records: Records) -> None:
    records.claim(record("x", created=datetime(2026, 1, 1, tzinfo=UTC)))
    before = keys(records.store)
    assert before == [
        "_jobs/active/x",
        "_jobs/index/all/8232774399999-x",
        "_jobs/index/owner/616e6e/8232774399999-x",
        "_jobs/records/x.json",
        "_jobs/usage/616e6e/160000-x",
    ]
    with pytest.raises(Conflict) as raised:
        records.claim(record("x", owner="bob"))
    assert raised.value.code == "job_exists"
    assert keys(records.store) == before
    assert records.read("x")["owner"] == "ann"


def test_a_claim_the_store_fails_part_way_is_undone_or_left_for_the_sweeper(
    records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_empty = records.put_empty

    def store_stops(keys: list[str]) -> None:
        put_empty(keys[:1])  # the store stops after the first entry, before the active mark
        raise OSError("connection refused")

    monkeypatch.setattr(records, "put_empty", store_stops)
    with pytest.raises(StoreUnavailable):
        records.claim(record("x"))
    assert keys(records.store) == []  # its caller was told the store failed: no job exists

    # The store stays down for the undo too: the record and an entry stay, without an active mark.
    monkeypatch.setattr(records, "remove", lambda record: store_stops([]))
    with pytest.raises(StoreUnavailable):
        records.claim(record("y"))
    monkeypatch.undo()
    assert records.read("y") is not None
    store = JobStore(records.backend)
    findings = Audit(records, store, 0).findings()
    assert [(f.kind, f.subject) for f in findings] == [("unfinished_claim", "y")]
    assert Repair(records, store)(findings[0]) == "removed its record and entries"
    assert keys(records.store) == [] and Audit(records, store, 0).findings() == []
    records.claim(record("y", owner="bob"))  # the id is free again
    assert Audit(records, store, 0).findings() == []


def test_of_sixteen_concurrent_claims_exactly_one_wins(records: Records) -> None:
    def claim(i: int) -> bool:
        try:
            records.claim(record("race", owner=f"u{i}"))
            return True
        except Conflict:
            return False

    with ThreadPoolExecutor(16) as pool:
        won = list(pool.map(claim, range(16)))
    assert won.count(True) == 1
    winner = f"u{won.index(True)}"
    assert records.read("race")["owner"] == winner
    assert len([k for k in keys(records.store) if "/index/" in k or "/usage/" in k]) == 3


def test_listing_is_newest_first_per_owner_and_pages_with_a_cursor(records: Records) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for i in range(7):
        records.claim(record(f"j{i}", owner="ann" if i % 2 == 0 else "bob", created=start + timedelta(seconds=i)))
    everyone = records.index_page(None, 100, None)
    assert [n.split("-", 1)[1] for n in everyone] == ["j6", "j5", "j4", "j3", "j2", "j1", "j0"]
    first = records.index_page("ann", 2, None)
    second = records.index_page("ann", 2, first[-1])
    third = records.index_page("ann", 2, second[-1])
    assert [r["id"] for r in records.read_many(first + second)] == ["j6", "j4", "j2", "j0"]
    assert third == []
    older = records.index_older_than(start + timedelta(seconds=3), 100)
    assert [n.split("-", 1)[1] for n in older] == ["j2", "j1", "j0"]


def test_remove_frees_the_id_and_listing_skips_entries_without_a_record(records: Records) -> None:
    first = record("x")
    records.claim(first)
    records.request_delete("x")
    assert records.delete_requested("x")
    records.remove(first)
    assert keys(records.store) == []
    assert records.read("x") is None and not records.delete_requested("x")
    records.claim(record("x", owner="bob"))
    assert records.read("x")["owner"] == "bob"
    # An index entry whose record is gone (a delete half done) is not shown.
    obstore.put(records.store, "_jobs/index/all/0000000000001-ghost", b"")
    assert [r["id"] for r in records.read_many(records.index_page(None, 10, None))] == ["x"]


def test_a_lease_slot_goes_to_one_taker_and_older_slots_are_forgotten(records: Records) -> None:
    with ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(lambda i: records.take_lease("retention", "000000000010", f"r{i}"), range(8)))
    assert taken.count(True) == 1
    assert records.take_lease("retention", "000000000011", "r0")
    assert keys(records.store) == ["_jobs/leases/retention/000000000011"]


@pytest.fixture
def manager(tmp_path: Path) -> Any:
    url = f"file://{tmp_path}/store"
    settings = Settings(store_url=url, cleanup_grace_s=1)
    backend = parse_storage(url)
    jobs = JobManager(settings, None, JobStore(backend), Records(backend))  # type: ignore[arg-type]
    yield jobs
    jobs.close()


def test_a_job_claimed_here_is_not_taken_over_by_this_replica_before_it_starts(manager: JobManager) -> None:
    # What JobManager.submit does before Runner.start: hold the lease, claim (the active mark).
    job = Job("20261202T170000Z-0000aaaa", REQUEST, "ann", deadline=time.time() + 60)
    assert manager.leases.hold(job.id)
    manager.records.claim(job.record())
    assert manager.resumer.run_once() == []
    assert manager.records.read(job.id)["attempts"] == 1  # type: ignore[index]
    manager.leases.release(job.id)  # its replica stopped: now it may be taken over


def _array(tmp_path: Path, job_id: str) -> Path:
    chunk = tmp_path / "store" / f"{job_id}.zarr" / "c" / "0" / "0"
    chunk.parent.mkdir(parents=True, exist_ok=True)
    chunk.write_bytes(b"chunk")
    return chunk


def test_a_runner_whose_job_was_taken_over_writes_no_final_record_and_deletes_nothing(
    manager: JobManager, tmp_path: Path
) -> None:
    job = Job("t", REQUEST, "ann", deadline=time.time() + 60)
    assert manager.leases.hold(job.id)
    manager.records.claim(job.record())
    chunk = _array(tmp_path, "t")
    # The store was out for longer than LEASE_S: this replica's slots lapsed, another took the job.
    manager.leases.release(job.id)
    assert Leases(manager.records, 30, holder="other").hold(job.id)
    taken = {**manager.records.read("t"), "attempts": 2, "attempt": "second"}  # type: ignore[dict-item]
    manager.records.write(taken)
    # Then this attempt's tasks fail (the store was out): it leaves the job to the other replica.
    manager.runner._fail(job, "the object store could not be reached", None)
    assert job.handed_back and manager.records.read("t") == taken and chunk.exists()


def test_a_taken_over_job_whose_earlier_attempt_published_ends_complete_even_failing_or_spent(
    manager: JobManager,
) -> None:
    first = Job("p", REQUEST, "ann", deadline=time.time() + 60)
    manager.records.claim(first.record())
    # The first attempt published the array, and its replica was killed before its record said so.
    published = {**first.document(), "status": "complete", "chunks_written": 4, "bytes_written": 160000}
    del published["progress"]
    manager.store.publish("p", job_array_kwargs(REQUEST, manager.settings), published)
    second = Job("p", REQUEST, "ann", deadline=time.time() + 60, created=first.created, attempts=2)
    assert manager.leases.hold("p")
    # The takeover's own attempt fails (the store was out): failing would delete the whole array.
    manager.runner._fail(second, "the object store could not be reached", None)
    final = manager.records.read("p")
    assert final is not None and (final["status"], final["error"], final["chunks_written"]) == ("complete", None, 4)
    assert manager.store.read("p") is not None

    # The same when its attempts are spent: the resumer ends it complete, not failed.
    manager.records.write({**first.record(), "status": "running", "attempts": 3})
    manager.records.put_empty([f"{ACTIVE_MARKS}/p"])
    assert manager.resumer.run_once() == ["p"]
    final = manager.records.read("p")
    assert final is not None and (final["status"], final["error"], final["chunks_written"]) == ("complete", None, 4)
    assert manager.store.read("p") is not None and not manager.records.marked_active("p")


def test_a_late_clean_up_leaves_a_later_attempt_alone(manager: JobManager, tmp_path: Path) -> None:
    first = Job("named", REQUEST, "ann", deadline=time.time())
    first.status, first.cleanup, first.frees_at = "failed", "pending", time.time() + 0.5
    manager.records.claim(first.record())
    # The failed record is deleted by hand (as after its bound), the id claimed again and written.
    manager.records.remove(first.record())
    second = Job("named", REQUEST, "ann", deadline=time.time() + 60)
    manager.records.claim(second.record())
    chunk = _array(tmp_path, "named")
    cleanups = Cleanups(1, manager.store, manager.records)
    cleanups._last(first)
    assert chunk.exists()
    assert manager.records.read("named")["attempt"] == second.attempt


def test_a_failed_record_stays_until_deleted_and_delete_waits_for_its_clean_up(
    manager: JobManager, tmp_path: Path
) -> None:
    job = Job("f", REQUEST, "ann", deadline=time.time())
    job.status, job.cleanup, job.frees_at = "failed", "pending", time.time() + 30
    manager.records.claim(job.record())
    chunk = _array(tmp_path, "f")
    assert manager.get("f", "bob") is None and manager.get("f", None)["status"] == "failed"
    with pytest.raises(Conflict):
        manager.records.claim(record("f"))
    # Within its bound the clean-up is its runner's: a DELETE is a request it acts on.
    assert manager.delete("f", "ann")["status"] == "failed"
    assert manager.records.delete_requested("f") and chunk.exists()
    # Once clean (or its runner long gone), DELETE removes it all and the id is free.
    manager.records.write({**manager.records.read("f"), "cleanup": "done"})
    assert manager.delete("f", "ann") is None
    assert not chunk.exists() and keys(manager.records.store) == []


def test_a_delete_cut_short_leaves_a_cancelled_record_never_a_complete_one_without_its_array(
    manager: JobManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.records.claim(record("c", status="complete"))
    chunk = _array(tmp_path, "c")

    def store_lost(keys: list[str]) -> None:
        raise StoreUnavailable("the object store could not be reached")

    # The array goes, then the store is lost before the record does (or the replica is killed).
    monkeypatch.setattr(manager.records, "delete_keys", store_lost)
    with pytest.raises(StoreUnavailable):
        manager.delete("c", "ann")
    monkeypatch.undo()
    assert not chunk.exists()
    left = manager.get("c", "ann")
    assert left is not None and left["status"] == "cancelled" and "DELETE" in left["error"]
    assert manager.delete("c", "ann") is None  # asked again, the delete finishes
    assert keys(manager.records.store) == []


def test_retention_deletes_old_finished_jobs_once_per_slot(manager: JobManager, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    for i, age in enumerate((40, 31, 5)):
        manager.records.claim(record(f"r{i}", created=now - timedelta(days=age), status="complete"))
        _array(tmp_path, f"r{i}")
    running = record("busy", created=now - timedelta(days=50), status="running")
    manager.records.claim(running)
    sweepers = [Retention(manager, manager.records, days=30) for _ in range(2)]
    assert sweepers[0].run_once(now) == 2
    assert sweepers[1].run_once(now) is None
    listed = [r["id"] for r in manager.records.read_many(manager.records.index_page(None, 10, None))]
    assert listed == ["r2", "busy"]
    assert sorted(p.name for p in (tmp_path / "store").glob("*.zarr")) == ["r2.zarr"]
    assert index_name(running).endswith("-busy")


def test_the_default_clean_up_bound_is_the_s3_clients_longest_put() -> None:
    assert Settings().cleanup_grace_s == S3_PUT_BOUND_S
    assert Settings.from_env({"CLEANUP_GRACE_S": "3", "RETENTION_DAYS": "30"}).cleanup_grace_s == 3


def test_a_failed_record_request_is_store_unavailable_in_the_backends_words() -> None:
    unreachable = pytest.raises(StoreUnavailable, match=r"could not be reached.*S3_ENDPOINT_URL")
    with unreachable as caught, store_errors(parse_storage("s3://bucket")):
        raise OSError("error sending request for url")
    assert caught.value.retry_after == 10
