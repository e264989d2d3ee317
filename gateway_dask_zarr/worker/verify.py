"""Check a published array against the deterministic block rule, chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import zarr

from gateway_dask_zarr.grid import BlockIndex, all_blocks, block_shape
from gateway_dask_zarr.worker.blocks import block_data


def mismatched_blocks(array: zarr.Array, seed: int, blocks: Iterable[BlockIndex] | None = None) -> list[BlockIndex]:
    """The block indices whose stored values differ from the rule (all of them by default)."""
    shape, chunks = array.shape, array.chunks
    dtype = str(array.dtype)
    wrong = []
    for index in blocks if blocks is not None else all_blocks(shape, chunks):
        expected = block_data(seed, index, block_shape(shape, chunks, index), dtype)
        selection = tuple(slice(i * c, i * c + n) for i, c, n in zip(index, chunks, expected.shape, strict=True))
        if not np.array_equal(array[selection], expected):
            wrong.append(tuple(index))
    return wrong
