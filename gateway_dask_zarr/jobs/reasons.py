"""Why a job failed, in a sentence a person can act on, with no secret and no traceback."""

from __future__ import annotations

import asyncio
import concurrent.futures

from zarr.errors import ContainsArrayError

from gateway_dask_zarr.errors import ClusterUnavailable, describe
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.storage.arrays import JobStore

CANCELLED = "the job's tasks were cancelled: the Dask cluster was lost or restarted; submit the job again"
DELETED = "the job was cancelled: DELETE /jobs/{id} asked for it"
STOPPED = "the replica that ran this job stopped before the job ended; submit it again"


def reason(exc: BaseException, settings: Settings, store: JobStore) -> str:
    """A sentence a person can act on, with no secret and no traceback."""
    if isinstance(exc, ClusterUnavailable):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"the job did not finish within JOB_TIMEOUT_S={settings.job_timeout_s} s"
    if isinstance(exc, asyncio.CancelledError | concurrent.futures.CancelledError):
        return CANCELLED
    if isinstance(exc, ContainsArrayError):
        return "an array with this id already exists in the store"
    return store.backend.describe(exc) or describe(exc)
