"""The jobs layer the HTTP layer calls: submit, get, list and delete jobs, for an owner or a viewer."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from gateway_dask_zarr.cluster.manager import ClusterManager
from gateway_dask_zarr.errors import Conflict, InvalidParameter, NotFound
from gateway_dask_zarr.jobs.admission import Admission
from gateway_dask_zarr.jobs.cleanup import delete_job
from gateway_dask_zarr.jobs.ids import check_job_id, new_job_id
from gateway_dask_zarr.jobs.job import ACTIVE, Job, document_of, stale
from gateway_dask_zarr.jobs.quota import Quota
from gateway_dask_zarr.jobs.reasons import STOPPED
from gateway_dask_zarr.jobs.records import CURSOR, Records, store_errors
from gateway_dask_zarr.jobs.resume import Resumer
from gateway_dask_zarr.jobs.runner import Runner
from gateway_dask_zarr.jobs.sweeper import Sweeper
from gateway_dask_zarr.kinds.base import INPUT, InputArray
from gateway_dask_zarr.kinds.registry import kind_of
from gateway_dask_zarr.params import JobRequest
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.storage.arrays import JobStore


class JobManager:
    """Jobs in the store, shared by every replica; the ones this process runs are also in memory."""

    def __init__(self, settings: Settings, cluster: ClusterManager, store: JobStore, records: Records) -> None:
        self.settings = settings
        self.store = store
        self.records = records
        # With AUTH=none every caller is "anonymous": a per-user bound would only lower MAX_ACTIVE_JOBS.
        per_user = settings.max_active_jobs_per_user if settings.auth != "none" else None
        self.admission = Admission(settings.max_active_jobs, per_user, cluster)
        self.quota = Quota(settings.storage_quota_bytes, records)
        self.runner = Runner(settings, cluster, store, records, self.admission)
        self.leases = self.runner.leases
        self.tracker = self.runner.tracker
        # Jobs whose replica stopped or died are finished by whichever live replica takes them.
        self.resumer = Resumer(self.runner).start()
        self.sweeper = Sweeper(records, store, self.leases, settings.cleanup_grace_s).start()

    @property
    def active(self) -> int:
        """Jobs queued or running in this process now."""
        return self.admission.active

    def parse(self, params: Mapping[str, Any], viewer: str | None) -> JobRequest:
        """A request of any kind; a derived kind's input must be complete and visible to `viewer` (else NotFound)."""
        kind = kind_of(params)
        if not kind.derived:
            return kind.request(params, self.settings, None)
        if params.get("input") in (None, ""):
            raise InvalidParameter(f"kind {kind.name} needs input, the id of a complete job", field="input")
        document = self.get(INPUT.parse(params["input"]), viewer)
        return kind.request(params, self.settings, _input(kind.name, params, document, self.store))

    def submit(self, request: JobRequest, owner: str, job_id: str | None = None) -> Job:
        """Claim the id and start the job; else Busy, TooLarge (quota), Conflict, Cluster- or StoreUnavailable."""
        named = job_id is not None
        job_id = check_job_id(job_id) if job_id is not None else new_job_id()
        self.admission.admit(owner)
        held = False
        try:
            job = Job(job_id, request, owner, deadline=time.time() + self.settings.job_timeout_s)
            # The quota first, so a refusal writes nothing; then the lease, before the claim marks the
            # job active, so that no other replica may take it over.
            with self.quota.room_for(owner, request.nbytes):
                if not self.leases.hold(job_id):
                    raise Conflict(f"job {job_id!r} exists; choose another id", code="job_exists", field="job_id")
                held = True
                self.records.claim(job.record())
            if named and self._has_objects(job_id):
                # Objects without a record (written before records existed, or by another tool).
                self.records.remove(job.record())
                raise Conflict(
                    f"job {job_id!r} exists in the store; choose another id", code="job_exists", field="job_id"
                )
        except Exception:
            self.admission.release(owner)
            if held:
                self.leases.release(job_id)
            raise
        self.runner.start(job)
        return job

    def _has_objects(self, job_id: str) -> bool:
        with store_errors(self.store.backend):
            return self.store.exists(job_id)

    def get(self, job_id: str, viewer: str | None) -> dict[str, Any] | None:
        """A job's document, or None when it does not exist or `viewer` may not see it (None: an admin)."""
        running = self.tracker.local(job_id)
        if running is not None:
            return running.document() if viewer in (None, running.owner) else None
        record = self.records.read(job_id)
        if record is None or viewer not in (None, record["owner"]):
            return None
        return shown(record, self.store, self.settings.cleanup_grace_s)

    def list(
        self, viewer: str | None, limit: int, before: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Jobs newest first (the viewer's own, or all for an admin), and the cursor of the next page or None."""
        if before is not None and not CURSOR.fullmatch(before):
            raise InvalidParameter(
                f"before must be a cursor from the Link header of the previous page, got {before!r}", field="before"
            )
        names = self.records.index_page(viewer, limit, before)
        documents = []
        for record in self.records.read_many(names):
            running = self.tracker.local(record["id"])
            documents.append(
                running.document() if running is not None else shown(record, self.store, self.settings.cleanup_grace_s)
            )
        return documents, names[-1] if len(names) == limit else None

    def delete(self, job_id: str, viewer: str | None) -> dict[str, Any] | None:
        """Delete a job (array and record): None when it is gone now; its document when its runner will finish it."""
        record = self.records.read(job_id)
        if record is None or viewer not in (None, record["owner"]):
            raise NotFound(f"no job {job_id!r}")
        running = self.tracker.running_job(job_id)
        if running is not None and not running.final:
            self.records.request_delete(job_id)
            running.cancel_tasks()
            return running.document()
        if owned_by_a_runner(record, self.settings.cleanup_grace_s):
            self.records.request_delete(job_id)
            return document_of(record)
        # Finished and clean, or its runner is gone past every bound: no write of it can land now.
        again = self.records.read(job_id)
        if again is None or again["attempt"] != record["attempt"]:
            return None
        with store_errors(self.store.backend):
            delete_job(again, self.store, self.records)
        return None

    def on_end(self, listener: Callable[[Job], None]) -> Callable[[], None]:
        """Call `listener` with each job that ends in this process; returns its unsubscribe."""
        self.runner.on_end.append(listener)
        return lambda: self.runner.on_end.remove(listener)

    def fail_running(self, reason: str) -> None:
        """Called when the cluster is lost: running jobs will fail with this reason."""
        self.tracker.fail_running(reason)

    def close(self) -> None:
        """Hand the running jobs back (their leases released), stop taking jobs and pending clean-ups."""
        self.resumer.close()
        self.sweeper.close()
        self.runner.close()


def _input(kind: str, params: Mapping[str, Any], document: dict[str, Any] | None, store: JobStore) -> InputArray:
    """The input a derived job names, from its document as the caller sees it (None: not found)."""
    if document is None:
        raise NotFound(f"no job {params['input']!r}", field="input")
    if document["status"] != "complete":
        raise Conflict(
            f"the input job {document['id']!r} is {document['status']}; a {kind} job needs a complete input",
            code="input_not_complete",
            field="input",
        )
    return InputArray(document["id"], store.array_url(document["id"]), document)


def shown(record: dict[str, Any], store: JobStore, grace_s: float) -> dict[str, Any]:
    """A record's job document; for one whose runner stopped, what its array says (published, else failed)."""
    if not stale(record, grace_s):
        return document_of(record)
    with store_errors(store.backend):
        published = store.read(record["id"])
    if published is not None:
        return {**document_of(record), **published, "owner": record["owner"]}
    return {**document_of(record), "status": "failed", "error": STOPPED}


def owned_by_a_runner(record: dict[str, Any], grace_s: float) -> bool:
    """True while a runner (here or on another replica) still acts on the record: running, or cleaning up."""
    if record["status"] in ACTIVE:
        return not stale(record, grace_s)
    if record.get("cleanup") == "pending":
        return time.time() < record["frees_at"] + grace_s
    return False
