"""Jobs: their records in the store, admission, and running them on the cluster."""

from gateway_dask_zarr.jobs.ids import check_job_id, new_job_id
from gateway_dask_zarr.jobs.job import Job, document_schema
from gateway_dask_zarr.jobs.manager import JobManager
from gateway_dask_zarr.jobs.records import Records
from gateway_dask_zarr.jobs.runner import plan_tasks

__all__ = [
    "Job",
    "JobManager",
    "Records",
    "check_job_id",
    "document_schema",
    "new_job_id",
    "plan_tasks",
]
