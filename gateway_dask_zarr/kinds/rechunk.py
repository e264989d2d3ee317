"""The rechunk kind: an input array copied exactly to new chunks (and shards).

A task owns whole bands of the output (Rechunk.band): the output units that share input
chunks (or shards), at most BAND_MAX_BYTES of them. It reads a band's region of the input
once, one input unit at a time with at most READ_BYTES_IN_FLIGHT of them in flight, then
cuts the band's output blocks from it: from 1000 x 1000 chunks to 20000 x 50, a band is the
20 output chunks of one input-chunk column (20000 x 1000) and each input chunk is read once
(with one task per output chunk, 20 times). A task's peak memory (bound() below; measured
in tests/test_kinds.py and by `make bench`, docs/performance.md):

    band + 2 x (input units read at once, at most the band) + 3 x output unit x units in flight

(the band's region; each read's encoded and decoded input unit; each unit in flight its
contiguous copy, its encoded bytes and the request body). For the bench's 1.6 GB rechunk:
160 MB + 2 x 16 MB + 3 x 8 MB = 216 MB a task, one task a worker thread.
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
from gateway_dask_zarr.params import CHUNKS, SHARDS, JobRequest
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.worker.blocks import READ_BYTES_IN_FLIGHT

# The largest band a task reads and holds at once, unless one output unit is larger: a
# wider band would read fewer input units twice, and hold more of a worker's memory.
BAND_MAX_BYTES = 256 * 2**20


def bound(band_bytes: int, input_unit_bytes: int, output_unit_bytes: int, concurrency: int) -> int:
    """The most bytes a rechunk task holds: the band, its reads in flight and its output units in flight."""
    # The reads in flight are parts of the band: never more bytes than it.
    reads = min(band_bytes, input_unit_bytes * max(1, READ_BYTES_IN_FLIGHT // input_unit_bytes))
    return band_bytes + 2 * reads + 3 * output_unit_bytes * concurrency


def cut(selection: slice, step: int) -> list[slice]:
    """A selection cut at multiples of `step` (the input's unit boundaries along one axis)."""
    starts = range(selection.start - selection.start % step, selection.stop, step)
    return [slice(max(selection.start, s), min(selection.stop, s + step)) for s in starts]


@dataclass(frozen=True)
class Region:
    """The blocks of one band, cut from its region of the input."""

    origin: tuple[int, ...]
    data: np.ndarray

    async def block(self, store: Store, index: BlockIndex, selection: tuple[slice, ...], dtype: str) -> np.ndarray:
        """The block's part of the region (a view)."""
        return self.data[tuple(slice(s.start - o, s.stop - o) for s, o in zip(selection, self.origin, strict=True))]


@dataclass(frozen=True)
class CopyBands:
    """Each band of the output is the same region of the input array, read once."""

    input: str

    async def band(self, store: Store, selection: tuple[slice, ...], dtype: str) -> Region:
        """The input's values in the band's region, read one input unit (shard or chunk) at a time."""
        array = await open_input(store, self.input)
        step = array.shards or array.chunks
        origin = tuple(s.start for s in selection)
        data = np.empty([s.stop - s.start for s in selection], dtype)
        parts = iter(itertools.product(*(cut(s, c) for s, c in zip(selection, step, strict=True))))

        async def reader() -> None:
            for part in parts:
                data[
                    tuple(slice(s.start - o, s.stop - o) for s, o in zip(part, origin, strict=True))
                ] = await array.getitem(part)

        reads = max(1, READ_BYTES_IN_FLIGHT // (math.prod(step) * data.itemsize))
        await asyncio.gather(*(reader() for _ in range(reads)))
        return Region(origin, data)


class Rechunk(Kind):
    """The input's shape and dtype, new chunks and shards; the values equal the input's exactly."""

    name = "rechunk"
    help = "Copy an input job's array to new chunks (and shards)."
    parameters = (
        INPUT,
        replace(CHUNKS, help="The new chunk shape: as many lengths as the input's shape (required)."),
        SHARDS,
    )

    def build(self, given: dict[str, Any], settings: Settings, source: InputArray | None) -> JobRequest:
        """The input's shape and dtype with the given chunks and shards."""
        assert source is not None
        if "chunks" not in given:
            raise InvalidParameter("rechunk needs chunks, the new chunk shape, such as [100, 100]", field="chunks")
        layout = {**given, "shape": source.document["shape"], "dtype": source.document["dtype"]}
        return self.layout(layout, settings, input=source.id, input_url=source.url)

    def band(self, request: JobRequest, input: dict[str, Any] | None) -> tuple[int, ...]:
        """The output units starting inside one input unit, along each axis where they are narrower than it."""
        unit = request.unit_shape
        if input is None:
            return unit
        step = input.get("shards") or input["chunks"]
        # At most the array rounded up to whole units: a band never counts units outside it.
        most = [math.ceil(n / u) for n, u in zip(request.shape, unit, strict=True)]
        factors = [min(m, max(1, s // u)) for s, u, m in zip(step, unit, most, strict=True)]
        while math.prod(factors) * request.unit_bytes > BAND_MAX_BYTES and max(factors) > 1:
            widest = factors.index(max(factors))
            factors[widest] = math.ceil(factors[widest] / 2)
        return tuple(f * u for f, u in zip(factors, unit, strict=True))

    def source(self, request: JobRequest) -> CopyBands:
        """Copy from the input, a band at a time."""
        assert request.input is not None
        return CopyBands(request.input)

    def expected(
        self, request: JobRequest, input: zarr.Array | None, index: BlockIndex, selection: tuple[slice, ...]
    ) -> np.ndarray:
        """The input at the same place."""
        assert input is not None
        return np.asarray(input[selection])


RECHUNK = Rechunk()
