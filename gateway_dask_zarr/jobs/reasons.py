"""Why a job failed, in a sentence a person can act on, with no secret and no traceback."""

from __future__ import annotations

from gateway_dask_zarr.cluster import ClusterUnavailable
from gateway_dask_zarr.config import Settings

CANCELLED = "the job's tasks were cancelled: the Dask cluster was lost or restarted; submit the job again"


def reason(exc: BaseException, settings: Settings) -> str:
    """A sentence a person can act on, with no secret and no traceback."""
    if isinstance(exc, ClusterUnavailable):
        return str(exc)
    if isinstance(exc, TimeoutError) or type(exc).__name__ == "TimeoutError":
        return f"the job did not finish within JOB_TIMEOUT_S={settings.job_timeout_s} s"
    name = type(exc).__name__
    if "Cancelled" in name:
        return CANCELLED
    if "ContainsArray" in name:
        return "an array with this id already exists in the store"
    # botocore's names, and obstore's words for a request that never got an answer.
    unreachable = ("error sending request", "operation timed out", "timed out")
    if any(part in name for part in ("EndpointConnection", "ConnectTimeout", "ReadTimeout", "ConnectionClosed")) or any(
        part in str(exc) for part in unreachable
    ):
        return (
            f"the object store could not be reached ({name}); "
            "check that it is up and S3_ENDPOINT_URL is right, then submit the job again"
        )
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{name}: {text}" if text else name
