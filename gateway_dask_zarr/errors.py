"""Domain errors: what went wrong, in words a person can act on, with no HTTP in them.

The HTTP layer (server/edge.py) maps each class to a status code and the one JSON error body.
"""

from __future__ import annotations

import re

# An S3 error response's code and message, as obstore and botocore quote it inside a long text.
S3_ERROR = re.compile(r"<Code>(?P<code>[^<]*)</Code>\s*<Message>(?P<message>[^<]*)</Message>")


class ServiceError(Exception):
    """A refusal or failure the caller should hear about: a short code, a message, the field at fault."""

    code = "error"

    def __init__(
        self, message: str, *, code: str | None = None, field: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.field = field
        self.retry_after = retry_after


class InvalidParameter(ServiceError):
    """A parameter is malformed, unknown or out of its range."""

    code = "invalid_parameter"


class TooLarge(ServiceError):
    """A request is over a size limit (array, chunk, chunk count, body)."""

    code = "too_large"


class Conflict(ServiceError):
    """The request clashes with what exists (an id taken, a job not complete yet)."""

    code = "conflict"


class NotFound(ServiceError):
    """No such job, or not one the caller may see."""

    code = "not_found"


class Busy(ServiceError):
    """Too many jobs at once; retry after `retry_after` seconds."""

    code = "too_many_jobs"


class Unauthorized(ServiceError):
    """No credentials, or credentials that are not valid."""

    code = "unauthorized"


class Forbidden(ServiceError):
    """Valid credentials without the access the request needs."""

    code = "forbidden"


class Unavailable(ServiceError):
    """A part the service needs (cluster, store, hub) cannot serve now."""

    code = "unavailable"


class StoreUnavailable(Unavailable):
    """The object store cannot be reached or written now."""

    code = "store_unavailable"


class ClusterUnavailable(Unavailable):
    """The Dask cluster is starting, lost or being replaced; the message says which."""

    code = "cluster_unavailable"


def s3_error(exc: BaseException) -> str | None:
    """An S3 error response quoted in the exception, as "S3 {code}: {message}", or None."""
    found = S3_ERROR.search(str(exc))
    return f"S3 {found['code']}: {found['message']}" if found else None


def describe(exc: BaseException) -> str:
    """An exception as one short line a person reads: an S3 error's code and message, else its type and first line."""
    said = s3_error(exc)
    if said:
        return said
    text = str(exc).strip()
    first = text.splitlines()[0][:300] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
