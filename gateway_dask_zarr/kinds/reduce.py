"""The reduce kind: min, max, sum, mean or std of an input array over some axes, as a new array.

The output keeps each reduced axis with length 1 (numpy's keepdims=True), so it has the
input's number of dimensions. Each output block is reduced on a worker from partials of one
input chunk (or shard) at a time, merged pairwise in order (Chan et al. for the variance): a task
holds the input units read at once (READ_BYTES_IN_FLIGHT of them, at least one) and the
partials, never the slab it reduces.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import Store

from gateway_dask_zarr.errors import InvalidParameter
from gateway_dask_zarr.grid import BlockIndex
from gateway_dask_zarr.kinds.base import INPUT, InputArray, Kind, open_input
from gateway_dask_zarr.kinds.parameters import Axes
from gateway_dask_zarr.param_types import Choice
from gateway_dask_zarr.params import CHUNKS, JobRequest
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.worker.blocks import READ_BYTES_IN_FLIGHT

OP = Choice("op", "The reduction.", default="mean", choices=("min", "max", "sum", "mean", "std"))
AXES = Axes("axes", "The axes reduced, e.g. [0]; all of them if omitted.", nullable=True, placeholder="all")


# The ops whose partials combine elementwise, and how.
COMBINE = {"min": np.minimum, "max": np.maximum, "sum": np.add}


@dataclass(frozen=True)
class Partial:
    """The partial result of one op over some of its elements: only what that op needs, so a mean is one pass."""

    op: str
    n: int
    value: np.ndarray  # min, max, sum: the partial result; mean, std: the mean
    m2: np.ndarray | None = None  # std only: the sum of squared deviations from the mean

    @classmethod
    def of(cls, data: np.ndarray, axes: tuple[int, ...], op: str) -> Partial:
        """The partial of one block, in float64."""
        data = data.astype(np.float64, copy=False)
        n = math.prod(data.shape[a] for a in axes)
        if op in COMBINE:
            return cls(op, n, COMBINE[op].reduce(data, axis=axes, keepdims=True))
        mean = data.sum(axis=axes, keepdims=True) / n
        return cls(op, n, mean, ((data - mean) ** 2).sum(axis=axes, keepdims=True) if op == "std" else None)

    def merge(self, other: Partial) -> Partial:
        """The partial of both (Chan et al. for the mean and the squared deviations)."""
        n = self.n + other.n
        if self.op in COMBINE:
            return Partial(self.op, n, COMBINE[self.op](self.value, other.value))
        delta = other.value - self.value
        mean = self.value + delta * (other.n / n)
        if self.m2 is None or other.m2 is None:
            return Partial(self.op, n, mean)
        return Partial(self.op, n, mean, self.m2 + other.m2 + delta**2 * (self.n * other.n / n))

    def result(self) -> np.ndarray:
        """The reduction's value."""
        return np.sqrt(self.m2 / self.n) if self.m2 is not None else self.value


@dataclass(frozen=True)
class ReduceBlocks:
    """Each output block is the reduction of the input's slab across the reduced axes."""

    input: str
    op: str
    axes: tuple[int, ...]

    async def block(self, store: Store, index: BlockIndex, selection: tuple[slice, ...], dtype: str) -> np.ndarray:
        """Reduce the slab one input unit at a time, a few read at once, merged in order (the same bits every run)."""
        array = await open_input(store, self.input)
        step = array.shards or array.chunks
        ranges = [
            [slice(s, min(s + c, n)) for s in range(0, n, c)] if axis in self.axes else [selection[axis]]
            for axis, (n, c) in enumerate(zip(array.shape, step, strict=True))
        ]
        parts = list(itertools.product(*ranges))
        part_bytes = math.prod(r[0].stop - r[0].start for r in ranges) * array.dtype.itemsize

        limit = asyncio.Semaphore(max(1, READ_BYTES_IN_FLIGHT // part_bytes))

        async def partial(part: tuple[slice, ...]) -> Partial:
            # The semaphore spans the read and the partial: at most that many parts in memory.
            async with limit:
                return Partial.of(np.asarray(await array.getitem(part)), self.axes, self.op)

        found: Partial | None = None
        # gather keeps the parts' order: the partials merge the same way whichever read ends first.
        for partial_ in await asyncio.gather(*(partial(p) for p in parts)):
            found = partial_ if found is None else found.merge(partial_)
        assert found is not None
        return found.result().astype(dtype)


class Reduce(Kind):
    """A reduction of the input over axes; equal to numpy's within float tolerance (float64 partials)."""

    name = "reduce"
    help = "Reduce an input job's array (min, max, sum, mean, std) over axes, keeping them with length 1."
    parameters = (
        INPUT,
        OP,
        AXES,
        replace(CHUNKS, help="The result's chunk shape; if omitted, the input's, 1 along the reduced axes."),
    )
    rtol = 1e-4

    def build(self, given: dict[str, Any], settings: Settings, source: InputArray | None) -> JobRequest:
        """The input's shape with the reduced axes of length 1; chunks the input's there, or given."""
        assert source is not None
        shape, ndim = source.document["shape"], len(source.document["shape"])
        axes = given.get("axes") or tuple(range(ndim))
        if max(axes) >= ndim:
            raise InvalidParameter(f"axes {list(axes)} must be below the input's {ndim} dimensions", field="axes")
        out = [1 if a in axes else n for a, n in enumerate(shape)]
        chunks = given.get("chunks") or [1 if a in axes else c for a, c in enumerate(source.document["chunks"])]
        if math.prod(chunks) * np.dtype(source.document["dtype"]).itemsize < settings.min_chunk_bytes:
            chunks = out  # a small result: one chunk
        layout = {"shape": out, "chunks": chunks, "dtype": source.document["dtype"]}
        options = {"op": given.get("op", OP.default), "axes": list(axes)}
        return self.layout(layout, settings, input=source.id, input_url=source.url, options=options)

    def source(self, request: JobRequest) -> ReduceBlocks:
        """Reduce from the input."""
        assert request.input is not None
        return ReduceBlocks(request.input, request.options["op"], tuple(request.options["axes"]))

    def expected(
        self, request: JobRequest, input: zarr.Array | None, index: BlockIndex, selection: tuple[slice, ...]
    ) -> np.ndarray:
        """numpy's reduction of the input's slab."""
        assert input is not None
        axes = tuple(request.options["axes"])
        slab = np.asarray(input[tuple(slice(None) if a in axes else s for a, s in enumerate(selection))])
        result: np.ndarray = getattr(np, request.options["op"])(slab, axis=axes, keepdims=True)
        return result


REDUCE = Reduce()
