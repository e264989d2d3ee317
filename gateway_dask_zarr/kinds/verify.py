"""Check a published array against its kind's rule, block by block."""

from __future__ import annotations

import numpy as np
import zarr

from gateway_dask_zarr.grid import BlockIndex, all_blocks, block_selection
from gateway_dask_zarr.kinds.registry import KINDS
from gateway_dask_zarr.params import JobRequest


def mismatched(request: JobRequest, output: zarr.Array, input: zarr.Array | None = None) -> list[BlockIndex]:
    """The output's block indices whose values differ from what the kind says they must be."""
    kind = KINDS[request.kind]
    shape, chunks = output.shape, output.chunks
    wrong = []
    for index in all_blocks(shape, chunks):
        selection = block_selection(shape, chunks, index)
        expected = kind.expected(request, input, index, selection)
        if not np.allclose(output[selection], expected, rtol=kind.rtol, atol=0, equal_nan=True):
            wrong.append(tuple(index))
    return wrong
