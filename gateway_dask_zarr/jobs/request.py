"""Job requests: parameters validated against the limits, and job ids."""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from gateway_dask_zarr.config import Settings

PARAMETERS = ("shape", "chunks", "dtype", "seed")
DTYPES = ("float32", "float64")
MAX_NDIM = 4
DEFAULT_SHAPE = (1000, 1000)
SEED_LIMIT = 2**63
JOB_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")


class JobError(Exception):
    """A request the service refuses: carries the HTTP status, a short code and the field at fault."""

    def __init__(
        self, status: int, code: str, message: str, field: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after


def _bad(field_name: str, message: str) -> JobError:
    return JobError(400, "invalid_parameter", message, field_name)


def _ints(value: Any, field_name: str) -> tuple[int, ...]:
    """Parse '1000,1000' (query) or [1000, 1000] (JSON) into a tuple of positive ints."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        if not all(re.fullmatch(r"[0-9]{1,12}", p) for p in parts):
            raise _bad(
                field_name, f"{field_name} must be comma-separated positive integers such as 1000,1000, got {value!r}"
            )
        numbers = [int(p) for p in parts]
    elif isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        numbers = list(value)
    else:
        raise _bad(field_name, f"{field_name} must be a list of positive integers such as [1000, 1000]")
    if not 1 <= len(numbers) <= MAX_NDIM:
        raise _bad(field_name, f"{field_name} must have 1 to {MAX_NDIM} dimensions, got {len(numbers)}")
    if any(n < 1 or n > 10**12 for n in numbers):
        raise _bad(field_name, f"every {field_name} length must be between 1 and 10**12")
    return tuple(numbers)


def _seed(value: Any) -> int:
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,19}", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < SEED_LIMIT:
        raise _bad("seed", f"seed must be an integer in [0, 2**63), got {value!r}")
    return value


def default_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """About 10,000 elements a chunk (100 x 100 in 2-D), clipped to the shape."""
    side = max(1, round(10_000 ** (1 / len(shape))))
    return tuple(min(side, s) for s in shape)


@dataclass(frozen=True)
class JobRequest:
    """A validated job request: shape, chunks, dtype and seed."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str
    seed: int

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return np.dtype(self.dtype).itemsize

    @property
    def nbytes(self) -> int:
        """The array's size in bytes."""
        return math.prod(self.shape) * self.itemsize

    @property
    def chunk_bytes(self) -> int:
        """The size of one full chunk in bytes."""
        return math.prod(self.chunks) * self.itemsize

    @property
    def n_chunks(self) -> int:
        """How many chunks the array has."""
        return math.prod(math.ceil(s / c) for s, c in zip(self.shape, self.chunks, strict=True))

    @classmethod
    def parse(cls, params: Mapping[str, Any], settings: Settings) -> JobRequest:
        """Validate parameters (from a query string or a JSON body) against the limits."""
        unknown = sorted(set(params) - set(PARAMETERS))
        if unknown:
            raise JobError(
                400,
                "unknown_parameter",
                f"unknown parameter {unknown[0]!r}; known: {', '.join(PARAMETERS)}",
                unknown[0],
            )
        shape = _ints(params["shape"], "shape") if params.get("shape") not in (None, "") else DEFAULT_SHAPE
        given = params.get("chunks") not in (None, "")
        chunks = _ints(params["chunks"], "chunks") if given else default_chunks(shape)
        if len(chunks) != len(shape):
            raise _bad("chunks", f"chunks must have as many dimensions as shape ({len(shape)}), got {len(chunks)}")
        if any(c > s for c, s in zip(chunks, shape, strict=True)):
            raise _bad("chunks", f"chunks {list(chunks)} must be no larger than shape {list(shape)} in every dimension")
        dtype = params.get("dtype") or "float32"
        if dtype not in DTYPES:
            raise _bad("dtype", f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        seed = _seed(params["seed"]) if params.get("seed") not in (None, "") else secrets.randbelow(SEED_LIMIT)
        request = cls(shape, chunks, dtype, seed)
        request.check_limits(settings)
        return request

    def check_limits(self, settings: Settings) -> None:
        """Refuse arrays, chunks or chunk counts beyond the configured limits."""
        shape, chunks = list(self.shape), list(self.chunks)
        if self.nbytes > settings.max_array_bytes:
            raise JobError(
                413,
                "array_too_large",
                f"shape {shape} makes an array of {self.nbytes} bytes; "
                f"MAX_ARRAY_BYTES is {settings.max_array_bytes}: use a smaller shape",
                "shape",
            )
        if self.chunk_bytes > settings.max_chunk_bytes:
            raise JobError(
                413,
                "chunk_too_large",
                f"chunks {chunks} make chunks of {self.chunk_bytes} bytes; "
                f"MAX_CHUNK_BYTES is {settings.max_chunk_bytes}: use smaller chunks",
                "chunks",
            )
        if self.chunk_bytes < min(settings.min_chunk_bytes, self.nbytes):
            raise _bad(
                "chunks",
                f"chunks {chunks} make chunks of {self.chunk_bytes} bytes; "
                f"MIN_CHUNK_BYTES is {settings.min_chunk_bytes}: use larger chunks",
            )
        if self.n_chunks > settings.max_chunks:
            raise JobError(
                413,
                "too_many_chunks",
                f"chunks {chunks} make {self.n_chunks} chunks; MAX_CHUNKS is {settings.max_chunks}: use larger chunks",
                "chunks",
            )


def new_job_id(now: datetime | None = None) -> str:
    """A time-sortable id: YYYYMMDDTHHMMSSZ- and 8 lowercase hex digits."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def check_job_id(job_id: str) -> str:
    """Refuse ids that are not 1-64 of A-Za-z0-9_.- or that start with a dot."""
    if not JOB_ID.fullmatch(job_id) or job_id.startswith("."):
        raise JobError(
            400, "invalid_job_id", "a job id must be 1 to 64 of A-Z a-z 0-9 _ . - and must not start with '.'", "job_id"
        )
    return job_id
