"""The rechunk kind: an input array copied exactly to new chunks (and shards).

Each output block is read from the input with one selection: zarr fetches only the input
chunks (or shards) it intersects. A task holds at most its concurrency of output units
(worker/blocks.py) plus the input chunks one output chunk intersects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import Store
from zarr.core.array import AsyncArray
from zarr.storage import StorePath

from gateway_dask_zarr.errors import InvalidParameter
from gateway_dask_zarr.grid import BlockIndex
from gateway_dask_zarr.kinds.base import INPUT, InputArray, Kind
from gateway_dask_zarr.params import CHUNKS, SHARDS, JobRequest
from gateway_dask_zarr.settings import Settings


@dataclass(frozen=True)
class CopyBlocks:
    """Each output block is the same region of the input array."""

    input: str

    async def block(self, store: Store, index: BlockIndex, selection: tuple[slice, ...], dtype: str) -> np.ndarray:
        """The input's values at the block's selection."""
        array = await AsyncArray.open(StorePath(store, f"{self.input}.zarr"))
        return np.asarray(await array.getitem(selection))


class Rechunk(Kind):
    """The input's shape and dtype, new chunks and shards; the values equal the input's exactly."""

    name = "rechunk"
    help = "Copy an input job's array to new chunks (and shards)."
    parameters = (INPUT, CHUNKS, SHARDS)

    def build(self, given: dict[str, Any], settings: Settings, source: InputArray | None) -> JobRequest:
        """The input's shape and dtype with the given chunks and shards."""
        assert source is not None
        if "chunks" not in given:
            raise InvalidParameter("rechunk needs chunks, the new chunk shape, such as [100, 100]", field="chunks")
        layout = {**given, "shape": source.document["shape"], "dtype": source.document["dtype"]}
        return self.layout(layout, settings, input=source.id, input_url=source.url)

    def source(self, request: JobRequest) -> CopyBlocks:
        """Copy from the input."""
        assert request.input is not None
        return CopyBlocks(request.input)

    def expected(
        self, request: JobRequest, input: zarr.Array | None, index: BlockIndex, selection: tuple[slice, ...]
    ) -> np.ndarray:
        """The input at the same place."""
        assert input is not None
        return np.asarray(input[selection])


RECHUNK = Rechunk()
