"""What a job kind declares: its parameters, its request, the blocks its tasks compute, the rule that checks them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import zarr

from gateway_dask_zarr.errors import InvalidParameter
from gateway_dask_zarr.grid import BlockIndex
from gateway_dask_zarr.kinds.parameters import JobId
from gateway_dask_zarr.params import JobRequest, Parameter
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.worker.blocks import BlockSource

INPUT = JobId("input", "The id of the input job: complete, and the caller's own (or any, for an admin).")


@dataclass(frozen=True)
class InputArray:
    """A derived job's input: a complete job the caller may read."""

    id: str
    url: str
    document: dict[str, Any]


class Kind:
    """A job kind. Its tasks each own whole output chunks or shards (jobs/runner.py plans them the same for all)."""

    name: ClassVar[str]
    help: ClassVar[str]
    parameters: ClassVar[tuple[Parameter, ...]]
    # How far a stored value may be from expected() (relative); 0: exactly equal.
    rtol: ClassVar[float] = 0.0

    @property
    def derived(self) -> bool:
        """True when the kind reads an input job."""
        return INPUT in self.parameters

    def request(self, params: Mapping[str, Any], settings: Settings, source: InputArray | None) -> JobRequest:
        """Validate the request's parameters (kind aside) into a JobRequest; raise InvalidParameter."""
        names = [p.name for p in self.parameters]
        unknown = sorted(set(params) - {"kind", *names})
        if unknown:
            raise InvalidParameter(
                f"unknown parameter {unknown[0]!r} for kind {self.name}; known: kind, {', '.join(names)}",
                code="unknown_parameter",
                field=unknown[0],
            )
        given = {p.name: p.parse(params[p.name]) for p in self.parameters if params.get(p.name) not in (None, "")}
        return self.build(given, settings, source)

    def build(self, given: dict[str, Any], settings: Settings, source: InputArray | None) -> JobRequest:
        """The request from parsed values; by default a new array of the given shape, chunks, dtype and shards."""
        return self.layout(given, settings)

    def layout(self, given: dict[str, Any], settings: Settings, **fields: Any) -> JobRequest:
        """A JobRequest of this kind with the output layout in `given`, checked against the limits."""
        names = ("shape", "chunks", "dtype", "shards")
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in given.items() if k in names}
        request = JobRequest.parse({**values, "seed": 0}, settings)
        return replace(request, seed=None, kind=self.name, **fields)

    def source(self, request: JobRequest) -> BlockSource:
        """What the job's tasks run on the workers for each output block."""
        raise NotImplementedError

    def expected(
        self, request: JobRequest, input: zarr.Array | None, index: BlockIndex, selection: tuple[slice, ...]
    ) -> np.ndarray:
        """The values an output block must hold (the verification rule), computed here from the input."""
        raise NotImplementedError
