"""Domain errors: what went wrong, in words a person can act on, with no HTTP in them.

The HTTP layer (server/edge.py) maps each class to a status code and the one JSON error body.
"""

from __future__ import annotations

import re

# An S3 error response's code and message, as obstore (or botocore) quotes it inside a long text.
S3_ERROR = re.compile(r"<Code>(?P<code>[^<]*)</Code>\s*<Message>(?P<message>[^<]*)</Message>")


class ServiceError(Exception):
    """A refusal or failure the caller should hear about: a short code, a message, the field at fault."""

    code = "error"

    def __init_subclass__(cls, code: str | None = None, **kwargs: object) -> None:
        # A subclass is declared by its code and docstring alone (class X(ServiceError, code="x")); none: its base's.
        super().__init_subclass__(**kwargs)
        cls.code = code or cls.code

    def __init__(
        self, message: str, *, code: str | None = None, field: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.field = field
        self.retry_after = retry_after


class InvalidParameter(ServiceError, code="invalid_parameter"):
    """A parameter is malformed, unknown or out of its range."""


class TooLarge(ServiceError, code="too_large"):
    """A request is over a size limit (array, chunk, chunk count, body)."""


class Conflict(ServiceError, code="conflict"):
    """The request clashes with what exists (an id taken, a job not complete yet)."""


class NotFound(ServiceError, code="not_found"):
    """No such job, or not one the caller may see."""


class Busy(ServiceError, code="too_many_jobs"):
    """Too many jobs at once; retry after `retry_after` seconds."""


class Unauthorized(ServiceError, code="unauthorized"):
    """No credentials, or credentials that are not valid."""


class Forbidden(ServiceError, code="forbidden"):
    """Valid credentials without the access the request needs."""


class Unavailable(ServiceError, code="unavailable"):
    """A part the service needs (cluster, store, hub) cannot serve now."""


class StoreUnavailable(Unavailable, code="store_unavailable"):
    """The object store cannot be reached or written now."""


class ClusterUnavailable(Unavailable, code="cluster_unavailable"):
    """The Dask cluster is starting, lost or being replaced; the message says which."""


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
