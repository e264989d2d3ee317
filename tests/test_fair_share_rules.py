"""Fair shares, fast: the per-user admission rule, the quota's settings, usage entries and the quota check."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import obstore
import pytest

from gateway_dask_zarr.errors import Busy, TooLarge
from gateway_dask_zarr.jobs import Job, JobManager, Records
from gateway_dask_zarr.jobs.admission import Admission
from gateway_dask_zarr.jobs.cleanup import Cleanups
from gateway_dask_zarr.jobs.quota import Quota
from gateway_dask_zarr.params import JobRequest
from gateway_dask_zarr.settings import ConfigError, Settings
from gateway_dask_zarr.storage.arrays import JobStore
from gateway_dask_zarr.storage.backends import MemoryBackend, parse_storage

pytestmark = pytest.mark.fast
SMALL = JobRequest((100, 100), (100, 100), "float32", 1)  # 40,000 bytes
LARGE = JobRequest((1000, 500), (100, 100), "float64", 1)  # 4,000,000 bytes


class ReadyCluster:
    """A cluster that always has its workers: the admission rules alone are under test."""

    def problem(self) -> None:
        return None


def refusal(admission: Admission, owner: str) -> Busy:
    with pytest.raises(Busy) as raised:
        admission.admit(owner)
    return raised.value


def test_a_user_at_their_limit_is_refused_and_others_are_not() -> None:
    admission = Admission(max_active=4, max_per_user=2, cluster=ReadyCluster())  # type: ignore[arg-type]
    admission.admit("ann")
    admission.admit("ann")
    mine = refusal(admission, "ann")
    assert mine.code == "too_many_jobs_per_user" and mine.retry_after == 2
    assert "MAX_ACTIVE_JOBS_PER_USER" in mine.message and "2 per user" in mine.message
    admission.admit("bob")
    admission.admit("bob")
    # The service is full now: a third user hears the service-wide limit, ann still her own.
    full = refusal(admission, "cy")
    assert full.code == "too_many_jobs" and "MAX_ACTIVE_JOBS" in full.message
    assert refusal(admission, "ann").code == "too_many_jobs_per_user"
    assert admission.active == 4 and admission.per_owner == {"ann": 2, "bob": 2}
    admission.release("ann")
    admission.admit("cy")
    admission.release("cy")
    admission.release("bob")
    assert admission.per_owner == {"ann": 1, "bob": 1} and admission.active == 2


def test_without_auth_every_caller_is_anonymous_and_only_the_service_wide_bound_applies(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    backend = parse_storage(url)
    for auth, per_user in (("none", None), ("token", 2)):
        settings = Settings(store_url=url, auth=auth, max_active_jobs=3, max_active_jobs_per_user=2)
        jobs = JobManager(settings, ReadyCluster(), JobStore(backend), Records(backend))  # type: ignore[arg-type]
        assert jobs.admission.max_per_user == per_user
        jobs.close()
    admission = Admission(max_active=3, max_per_user=None, cluster=ReadyCluster())  # type: ignore[arg-type]
    for _ in range(3):
        admission.admit("anonymous")
    assert refusal(admission, "anonymous").code == "too_many_jobs"


def test_the_per_user_limit_and_the_quota_are_validated_settings() -> None:
    defaults = Settings.from_env({})
    assert (defaults.max_active_jobs_per_user, defaults.storage_quota_bytes) == (4, 0)
    # Unset, it follows a smaller MAX_ACTIVE_JOBS; set above it, start-up stops naming it.
    assert Settings.from_env({"MAX_ACTIVE_JOBS": "2"}).max_active_jobs_per_user == 2
    assert Settings.from_env({"MAX_ACTIVE_JOBS_PER_USER": "8"}).max_active_jobs_per_user == 8
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"MAX_ACTIVE_JOBS": "8", "MAX_ACTIVE_JOBS_PER_USER": "9"})
    assert str(raised.value) == "MAX_ACTIVE_JOBS_PER_USER: must not exceed MAX_ACTIVE_JOBS (8), got 9"
    for bad in ("0", "many"):
        with pytest.raises(ConfigError, match=r"^MAX_ACTIVE_JOBS_PER_USER: "):
            Settings.from_env({"MAX_ACTIVE_JOBS_PER_USER": bad})
    assert Settings.from_env({"STORAGE_QUOTA_BYTES": "10GiB"}).storage_quota_bytes == 10 * 2**30
    assert Settings.from_env({"STORAGE_QUOTA_BYTES": "0"}).storage_quota_bytes == 0
    with pytest.raises(ConfigError, match=r"^STORAGE_QUOTA_BYTES: expected a size"):
        Settings.from_env({"STORAGE_QUOTA_BYTES": "lots"})


class NoClient(MemoryBackend):
    """A backend whose client fails every request (it has none)."""

    obstore = None


@pytest.fixture(params=["memory", "file"])
def records(request: pytest.FixtureRequest, tmp_path: Path) -> Records:
    url = f"memory://records-{uuid.uuid4().hex}" if request.param == "memory" else f"file://{tmp_path}"
    return Records(parse_storage(url))


def record(job_id: str, owner: str, request: JobRequest = SMALL, **fields: Any) -> dict[str, Any]:
    return {**Job(job_id, request, owner, deadline=time.time() + 60).record(), **fields}


def keys(store: Any) -> list[str]:
    return sorted(m["path"] for batch in obstore.list(store) for m in batch)


def test_usage_counts_a_users_claimed_jobs_until_they_are_removed(records: Records) -> None:
    records.claim(record("a1", "ann"))
    records.claim(record("a2", "ann", LARGE))
    # "anna" in hex starts with "ann"'s: her jobs are not ann's.
    records.claim(record("x", "anna", LARGE))
    assert "_jobs/usage/616e6e/4000000-a2" in keys(records.store)
    assert records.usage("ann") == 4_040_000 and records.usage("anna") == 4_000_000 and records.usage("bob") == 0
    records.remove(records.read("a2"))  # type: ignore[arg-type]
    assert records.usage("ann") == 40_000
    records.forget_usage(records.read("a1"))  # type: ignore[arg-type]
    assert records.usage("ann") == 0 and records.read("a1") is not None


def test_the_quota_refuses_with_the_figures_and_lets_the_claim_through_below_it(records: Records) -> None:
    quota = Quota(4_050_000, records)
    with quota.room_for("ann", LARGE.nbytes):
        records.claim(record("a1", "ann", LARGE))
    before = keys(records.store)
    with pytest.raises(TooLarge) as raised, quota.room_for("ann", LARGE.nbytes):
        records.claim(record("a2", "ann", LARGE))
    assert raised.value.code == "storage_quota_exceeded"
    for figure in ("you use 4000000 bytes", "needs 4000000 bytes", "allows 4050000 bytes"):
        assert figure in raised.value.message
    assert keys(records.store) == before
    # Up to the quota exactly is room; someone else's usage is theirs.
    with quota.room_for("ann", 50_000), quota.room_for("bob", LARGE.nbytes):
        pass
    # Off: no store request at all (a store that fails every request still admits).
    with Quota(0, Records(NoClient("memory://none"))).room_for("ann", 10**15):
        pass


def test_a_failed_jobs_clean_up_stops_counting_it(tmp_path: Path) -> None:
    backend = parse_storage(f"file://{tmp_path}/store")
    records = Records(backend)
    job = Job("f", LARGE, "ann", deadline=time.time())
    records.claim(job.record())
    assert records.usage("ann") == 4_000_000
    job.status, job.cleanup, job.frees_at = "failed", "pending", time.time() + 30
    cleanups = Cleanups(1, JobStore(backend), records)
    cleanups.start(job)
    cleanups.close()
    assert records.usage("ann") == 0 and records.read("f") is not None
