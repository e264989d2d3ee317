"""Jobs: requests, their records in the store, admission, and running them on the cluster."""

from gateway_dask_zarr.jobs.job import Job
from gateway_dask_zarr.jobs.manager import JobManager
from gateway_dask_zarr.jobs.reasons import reason
from gateway_dask_zarr.jobs.records import Records
from gateway_dask_zarr.jobs.request import JobError, JobRequest, check_job_id, default_chunks, new_job_id
from gateway_dask_zarr.jobs.runner import plan_batches

__all__ = [
    "Job",
    "JobError",
    "JobManager",
    "JobRequest",
    "Records",
    "check_job_id",
    "default_chunks",
    "new_job_id",
    "plan_batches",
    "reason",
]
