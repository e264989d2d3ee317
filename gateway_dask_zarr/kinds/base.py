"""What a job kind declares: its parameters, its request, the blocks its tasks compute, the rule that checks them."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import zarr
from zarr.abc.store import Store
from zarr.core.array import AsyncArray
from zarr.errors import ArrayNotFoundError
from zarr.storage import StorePath

from gateway_dask_zarr.errors import InvalidParameter
from gateway_dask_zarr.grid import BlockIndex
from gateway_dask_zarr.kinds.parameters import JobId
from gateway_dask_zarr.param_types import Parameter
from gateway_dask_zarr.params import JobRequest
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.worker.blocks import BandSource, BlockSource

# Why a derived job fails when its input goes while the job reads it (on a worker, or at its end).
INPUT_DELETED = "the input job {id} was deleted while this job read it"

INPUT = JobId("input", "The id of the input job: complete, and the caller's own (or any, for an admin).")


async def open_input(store: Store, job_id: str) -> AsyncArray[Any]:
    """A derived job's input array, opened on a worker; one deleted meanwhile raises FileNotFoundError saying so."""
    with contextlib.suppress(ArrayNotFoundError):
        return await AsyncArray.open(StorePath(store, f"{job_id}.zarr"))
    # Raised outside the except: zarr's error, which names the store and which distributed
    # cannot rebuild in the app, would go with it as its context.
    raise FileNotFoundError(INPUT_DELETED.format(id=job_id))


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

    def band(self, request: JobRequest, input: dict[str, Any] | None) -> tuple[int, ...]:
        """The shape of what a task owns whole, given the input's document (if any): by default one write unit."""
        return request.unit_shape

    def source(self, request: JobRequest) -> BlockSource | BandSource:
        """What the job's tasks run on the workers for each output block (or band, worker/blocks.py's BandSource)."""
        raise NotImplementedError

    def expected(
        self, request: JobRequest, input: zarr.Array | None, index: BlockIndex, selection: tuple[slice, ...]
    ) -> np.ndarray:
        """The values an output block must hold (the verification rule), computed here from the input."""
        raise NotImplementedError
