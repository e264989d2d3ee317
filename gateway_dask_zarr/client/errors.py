"""What the gateway said went wrong: its error body as a GatewayError, a failed job as JobFailed, Retry-After."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import requests

if TYPE_CHECKING:
    from gateway_dask_zarr.client.client import RemoteJob

# The shortest wait before a retry, whatever Retry-After says (a 0 would spin).
MIN_RETRY_S = 0.5


class GatewayError(Exception):
    """The gateway refused or failed a request, or could not be reached (`status` None).

    `code` and `message` are the server's own (its `{"error": {"code", "message", "field"}}`).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "error",
        field: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f"{self.status} " if self.status else ""
        return f"{where}{self.code}: {self.message}"


class JobFailed(GatewayError):
    """A job ended `failed` or `cancelled`; `job` holds its last document."""

    def __init__(self, job: RemoteJob) -> None:
        reason = job.document.get("error") or "no reason given"
        super().__init__(f"job {job.id} {job.status}: {reason}", code=f"job_{job.status}")
        self.job = job


def retry_after_s(value: str | None) -> float | None:
    """Retry-After in seconds: a number, or an HTTP date (RFC 9110)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def error_of(response: requests.Response) -> GatewayError:
    """The server's error body as a GatewayError; a body that is not ours still gives a message."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"code": response.reason.lower().replace(" ", "_") or "error", "message": response.text[:300]}
    return GatewayError(
        str(error.get("message") or response.reason),
        status=response.status_code,
        code=str(error.get("code") or "error"),
        field=error.get("field"),
        retry_after=retry_after_s(response.headers.get("Retry-After")),
    )
