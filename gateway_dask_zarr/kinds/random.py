"""The random kind: the seed's job, a deterministic random array (unchanged data and object layout)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr

from gateway_dask_zarr.grid import BlockIndex
from gateway_dask_zarr.kinds.base import InputArray, Kind
from gateway_dask_zarr.params import PARAMETERS, JobRequest
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.worker.blocks import RandomBlocks, block_data


class Random(Kind):
    """Each block is block_data(seed, block index): any chunk can be checked alone."""

    name = "random"
    help = "A deterministic random array of the given shape, chunks, dtype, seed and shards."
    parameters = PARAMETERS

    def request(self, params: Mapping[str, Any], settings: Settings, source: InputArray | None) -> JobRequest:
        """Today's parsing, unchanged (its messages name the random parameters)."""
        return JobRequest.parse({k: v for k, v in params.items() if k != "kind"}, settings)

    def source(self, request: JobRequest) -> RandomBlocks:
        """The seed's blocks."""
        return RandomBlocks(_seed(request))

    def expected(
        self, request: JobRequest, input: zarr.Array | None, index: BlockIndex, selection: tuple[slice, ...]
    ) -> np.ndarray:
        """The block rule, the workers' own."""
        return block_data(_seed(request), index, tuple(s.stop - s.start for s in selection), request.dtype)


def _seed(request: JobRequest) -> int:
    """The request's seed: parsing a random request always sets one (only derived kinds' are None)."""
    assert request.seed is not None
    return request.seed


RANDOM = Random()
