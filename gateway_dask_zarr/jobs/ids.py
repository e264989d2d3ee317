"""Job ids: drawn ones sort by time; a caller's are checked."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from gateway_dask_zarr.errors import InvalidParameter

JOB_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")


def new_job_id(now: datetime | None = None) -> str:
    """A time-sortable id: YYYYMMDDTHHMMSSZ- and 8 lowercase hex digits."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def check_job_id(job_id: str) -> str:
    """Refuse ids that are not 1-64 of A-Za-z0-9_.- or that start with a dot."""
    if not JOB_ID.fullmatch(job_id) or job_id.startswith("."):
        raise InvalidParameter(
            "a job id must be 1 to 64 of A-Z a-z 0-9 _ . - and must not start with '.'",
            code="invalid_job_id",
            field="job_id",
        )
    return job_id
