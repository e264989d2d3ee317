"""The job parameters, each declared once, and the validated JobRequest built from them.

Each declaration (in the manner of dask-gateway's options.py) holds the parameter's name,
default, limits and help text; request parsing, the OpenAPI schemas and the page's form
are all produced from PARAMETERS.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gateway_dask_zarr.errors import InvalidParameter, ServiceError, TooLarge
from gateway_dask_zarr.grid import chunks_in_units, grid
from gateway_dask_zarr.param_types import SEED_LIMIT, Choice, Integer, Lengths, Parameter, bad
from gateway_dask_zarr.settings import Settings


def size_text(n: int) -> str:
    """A byte count in KiB, MiB or GiB (and the exact count), e.g. '37.3 GiB (40000000000 bytes)'."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit} ({n} bytes)"
    return f"{n} bytes"


SHAPE = Lengths("shape", "Comma-separated lengths, 1 to 4 dimensions, e.g. 2000,3000.", default=(1000, 1000))
CHUNKS = Lengths(
    "chunks", "The chunk shape: as many lengths as shape; about 10,000 elements a chunk if omitted.", example="100,100"
)
DTYPE = Choice("dtype", "The element type.", default="float32", choices=("float32", "float64"))
SEED = Integer("seed", "The random seed; the server draws one if omitted.", placeholder="random")
SHARDS = Lengths(
    "shards",
    "The shard shape (Zarr v3 sharding): a multiple of chunks in every dimension; one object per shard, "
    "chunks still read one by one. Not sharded if omitted.",
    placeholder="none",
    nullable=True,
)
PARAMETERS: tuple[Parameter, ...] = (SHAPE, CHUNKS, DTYPE, SEED, SHARDS)


def default_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """About 10,000 elements a chunk (100 x 100 in 2-D), clipped to the shape."""
    side = max(1, round(10_000 ** (1 / len(shape))))
    return tuple(min(side, s) for s in shape)


def check_shards(shape: tuple[int, ...], chunks: tuple[int, ...], shards: tuple[int, ...]) -> None:
    """Refuse shards that are not whole chunks along every dimension, or larger than the array's chunks cover."""
    if len(shards) != len(shape):
        raise bad("shards", f"shards must have as many dimensions as shape ({len(shape)}), got {len(shards)}")
    if any(s % c for s, c in zip(shards, chunks, strict=True)):
        raise bad("shards", f"shards {list(shards)} must be a multiple of chunks {list(chunks)} in every dimension")
    covered = [math.ceil(s / c) * c for s, c in zip(shape, chunks, strict=True)]
    if any(s > c for s, c in zip(shards, covered, strict=True)):
        raise bad("shards", f"shards {list(shards)} must be no larger than shape rounded up to whole chunks, {covered}")


class Size:
    """A JobRequest size from one of its block shapes: a full block's bytes, or (count) how many tile the array."""

    def __init__(self, block: str, count: bool = False) -> None:
        self.block = block
        self.count = count

    def __get__(self, request: JobRequest, owner: type | None = None) -> int:
        block = getattr(request, self.block)
        return math.prod(grid(request.shape, block)) if self.count else math.prod(block) * request.itemsize


@dataclass(frozen=True)
class JobRequest:
    """A validated job request: its kind, and its output array's shape, chunks, dtype and shards (None: not sharded)."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str
    seed: int | None  # the random kind's; None for the others
    shards: tuple[int, ...] | None = None
    kind: str = "random"
    input: str | None = None  # a derived kind's input job, and its array's URL
    input_url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # a kind's own parameters (op, axes)

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return np.dtype(self.dtype).itemsize

    # The sizes, each one rule (Size) applied to one of the block shapes.
    nbytes = Size("shape")
    chunk_bytes = Size("chunks")
    n_chunks = Size("chunks", count=True)
    unit_bytes = Size("unit_shape")  # what a task holds in memory to encode a unit
    n_units = Size("unit_shape", count=True)  # the objects besides zarr.json

    @property
    def unit_shape(self) -> tuple[int, ...]:
        """The shape of a write unit, what one task writes whole and PUTs as one object: a shard, else a chunk."""
        return self.shards or self.chunks

    def chunks_in(self, units: range) -> int:
        """How many chunks the write units numbered `units` (C order) hold."""
        return chunks_in_units(self.shape, self.chunks, self.unit_shape, units)

    def document(self) -> dict[str, Any]:
        """The parameters as the job document holds them (JSON values)."""
        values = {p.name: getattr(self, p.name) for p in PARAMETERS}
        given = {"kind": self.kind, **values, "input": self.input, **self.options}
        return {name: list(v) if isinstance(v, tuple) else v for name, v in given.items()}

    @classmethod
    def parse(cls, params: Mapping[str, Any], settings: Settings) -> JobRequest:
        """Validate parameters (from a query string or a JSON body) against the limits."""
        names = [p.name for p in PARAMETERS]
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise InvalidParameter(
                f"unknown parameter {unknown[0]!r}; known: {', '.join(names)}",
                code="unknown_parameter",
                field=unknown[0],
            )
        given = {p.name: p.parse(params[p.name]) for p in PARAMETERS if params.get(p.name) not in (None, "")}
        shape = given.get("shape", SHAPE.default)
        chunks = given.get("chunks") or default_chunks(shape)
        if len(chunks) != len(shape):
            raise bad("chunks", f"chunks must have as many dimensions as shape ({len(shape)}), got {len(chunks)}")
        if any(c > s for c, s in zip(chunks, shape, strict=True)):
            raise bad("chunks", f"chunks {list(chunks)} must be no larger than shape {list(shape)} in every dimension")
        shards = given.get("shards")
        if shards is not None:
            check_shards(shape, chunks, shards)
        dtype = given.get("dtype", DTYPE.default)
        seed = given["seed"] if "seed" in given else secrets.randbelow(SEED_LIMIT)
        request = cls(shape, chunks, dtype, seed, shards)
        request.check_limits(settings)
        return request

    def check_limits(self, settings: Settings) -> None:
        """Refuse arrays, chunks or chunk counts beyond the configured limits."""
        shape, chunks, size, chunk_size = list(self.shape), list(self.chunks), self.nbytes, self.chunk_bytes
        # (over the limit, the error, its code, the field at fault, the message)
        limits: tuple[tuple[bool, type[ServiceError], str, str, str], ...] = (
            (
                size > settings.max_array_bytes,
                TooLarge,
                "array_too_large",
                "shape",
                f"shape {shape} makes an array of {size_text(size)}; "
                f"MAX_ARRAY_BYTES is {size_text(settings.max_array_bytes)}: use a smaller shape",
            ),
            (
                chunk_size > settings.max_chunk_bytes,
                TooLarge,
                "chunk_too_large",
                "chunks",
                f"chunks {chunks} make chunks of {size_text(chunk_size)}; "
                f"MAX_CHUNK_BYTES is {size_text(settings.max_chunk_bytes)}: use smaller chunks",
            ),
            (
                # A task holds a whole shard in memory to encode it (each chunk encoded, then joined).
                self.shards is not None and self.unit_bytes > settings.max_chunk_bytes,
                TooLarge,
                "shard_too_large",
                "shards",
                f"shards {list(self.unit_shape)} make shards of {size_text(self.unit_bytes)}; "
                f"MAX_CHUNK_BYTES (which bounds shards too) is {size_text(settings.max_chunk_bytes)}: "
                "use smaller shards",
            ),
            (
                chunk_size < min(settings.min_chunk_bytes, size),
                InvalidParameter,
                "invalid_parameter",
                "chunks",
                f"chunks {chunks} make chunks of {size_text(chunk_size)}; "
                f"MIN_CHUNK_BYTES is {size_text(settings.min_chunk_bytes)}: use larger chunks",
            ),
            (
                self.n_chunks > settings.max_chunks,
                TooLarge,
                "too_many_chunks",
                "chunks",
                f"chunks {chunks} make {self.n_chunks} chunks; MAX_CHUNKS is {settings.max_chunks}: use larger chunks",
            ),
        )
        for over, error, code, at, message in limits:
            if over:
                raise error(message, code=code, field=at)
