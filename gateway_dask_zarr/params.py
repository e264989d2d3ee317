"""The job parameters, each declared once, and the validated JobRequest built from them.

Each declaration (in the manner of dask-gateway's options.py) holds the parameter's name,
default, limits and help text; request parsing, the OpenAPI schemas and the page's form
are all produced from PARAMETERS.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from gateway_dask_zarr.errors import InvalidParameter, ServiceError, TooLarge
from gateway_dask_zarr.grid import chunks_in_units, grid
from gateway_dask_zarr.settings import Settings

MAX_NDIM = 4
MAX_LENGTH = 10**12
SEED_LIMIT = 2**63


def shown(value: Any) -> str:
    """A value as a person reads it in a message: a query's text as given, anything else in JSON (true, not True)."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def size_text(n: int) -> str:
    """A byte count in KiB, MiB or GiB (and the exact count), e.g. '37.3 GiB (40000000000 bytes)'."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit} ({n} bytes)"
    return f"{n} bytes"


def bad(name: str, message: str) -> InvalidParameter:
    return InvalidParameter(message, field=name)


@dataclass(frozen=True)
class Parameter:
    """One job parameter: its name, default (None: the server chooses) and help text."""

    name: str
    help: str
    default: Any = None
    # What the page's field starts with when there is no default, and the OpenAPI example.
    example: str = ""
    # What the page's empty field says (e.g. "random").
    placeholder: str = ""
    # Absent is a value of its own (e.g. not sharded): null in a JSON body and in the job document.
    nullable: bool = False

    def parse(self, value: Any) -> Any:
        """The value from a query string (a str) or a JSON body; raise InvalidParameter."""
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of the value in a JSON body and in the job document."""
        raise NotImplementedError

    def query_schema(self) -> dict[str, Any]:
        """The JSON schema of the value in a query string."""
        return self.json_schema()

    def form_field(self) -> dict[str, Any]:
        """What the page's template needs to draw this parameter's input."""
        return {
            "name": self.name,
            "label": self.name.capitalize(),
            "kind": "input",
            "value": self.example if self.default is None else _join(self.default),
            "placeholder": self.placeholder,
            "help": self.help,
        }


def _join(value: Any) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, tuple | list) else str(value)


@dataclass(frozen=True)
class Lengths(Parameter):
    """A tuple of 1 to MAX_NDIM positive lengths: '1000,1000' in a query, [1000, 1000] in JSON."""

    QUERY_PATTERN: ClassVar[str] = rf"^[0-9]{{1,12}}(,[0-9]{{1,12}}){{0,{MAX_NDIM - 1}}}$"

    def parse(self, value: Any) -> tuple[int, ...]:
        """Parse '1000,1000' (query) or [1000, 1000] (JSON) into a tuple of positive ints."""
        name = self.name
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",")]
            if not all(re.fullmatch(r"[0-9]{1,12}", p) for p in parts):
                raise bad(
                    name, f"{name} must be comma-separated positive integers such as 1000,1000, got {shown(value)}"
                )
            numbers = [int(p) for p in parts]
        elif isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            numbers = list(value)
        else:
            raise bad(name, f"{name} must be a list of positive integers such as [1000, 1000], got {shown(value)}")
        if not 1 <= len(numbers) <= MAX_NDIM:
            raise bad(name, f"{name} must have 1 to {MAX_NDIM} dimensions, got {shown(value)}")
        if any(n < 1 or n > MAX_LENGTH for n in numbers):
            raise bad(name, f"every {name} length must be between 1 and 10**12, got {name}={shown(value)}")
        return tuple(numbers)

    def json_schema(self) -> dict[str, Any]:
        """A list of 1 to MAX_NDIM positive integers."""
        items = {"type": "integer", "minimum": 1, "maximum": MAX_LENGTH}
        schema = {"type": "array", "items": items, "minItems": 1, "maxItems": MAX_NDIM, "description": self.help}
        return {**schema, "nullable": True} if self.nullable else schema

    def query_schema(self) -> dict[str, Any]:
        """Comma-separated lengths."""
        example = self.example or ("" if self.default is None else _join(self.default))
        return {"type": "string", "pattern": self.QUERY_PATTERN, **({"example": example} if example else {})}


@dataclass(frozen=True)
class Choice(Parameter):
    """One of a fixed set of strings."""

    choices: tuple[str, ...] = ()

    def parse(self, value: Any) -> str:
        """The value if it is one of the choices."""
        if value not in self.choices:
            raise bad(self.name, f"{self.name} must be one of {', '.join(self.choices)}, got {shown(value)}")
        return str(value)

    def json_schema(self) -> dict[str, Any]:
        """An enum of the choices."""
        return {"type": "string", "enum": list(self.choices), "description": self.help}

    def form_field(self) -> dict[str, Any]:
        """A select of the choices."""
        return {**super().form_field(), "kind": "select", "choices": list(self.choices)}


@dataclass(frozen=True)
class Integer(Parameter):
    """An integer in [minimum, limit): a decimal string in a query, a number in JSON."""

    minimum: int = 0
    limit: int = SEED_LIMIT
    limit_text: str = "2**63"

    def parse(self, value: Any) -> int:
        """The integer if it is in range."""
        if isinstance(value, str) and re.fullmatch(r"[0-9]{1,19}", value.strip()):
            value = int(value.strip())
        if not isinstance(value, int) or isinstance(value, bool) or not self.minimum <= value < self.limit:
            raise bad(
                self.name, f"{self.name} must be an integer in [{self.minimum}, {self.limit_text}), got {shown(value)}"
            )
        return value

    def json_schema(self) -> dict[str, Any]:
        """An integer in range."""
        return {"type": "integer", "minimum": self.minimum, "maximum": self.limit - 1, "description": self.help}


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
