"""The block rule (blocks.py) and the planning of chunk tasks (jobs.plan_batches), without a cluster."""

from __future__ import annotations

import numpy as np
import pytest

from gateway_dask_zarr.blocks import all_blocks, block_data, block_shape, grid
from gateway_dask_zarr.jobs import plan_batches
from gateway_dask_zarr.params import JobRequest

pytestmark = pytest.mark.fast


def test_edge_blocks_are_clipped() -> None:
    assert grid((250, 100), (100, 100)) == (3, 1)
    assert block_shape((250, 100), (100, 100), (2, 0)) == (50, 100)
    assert block_shape((250, 100), (100, 100), (0, 0)) == (100, 100)
    assert list(all_blocks((250, 100), (100, 100))) == [(0, 0), (1, 0), (2, 0)]


def test_a_block_depends_only_on_seed_index_shape_and_dtype() -> None:
    block = block_data(7, (1, 2), (10, 20), "float32")
    assert block.dtype == np.float32 and block.shape == (10, 20)
    np.testing.assert_array_equal(block, np.random.default_rng([7, 1, 2]).random((10, 20), dtype=np.float32))
    np.testing.assert_array_equal(block, block_data(7, (1, 2), (10, 20), "float32"))
    assert not np.array_equal(block, block_data(7, (2, 1), (10, 20), "float32"))
    assert not np.array_equal(block, block_data(8, (1, 2), (10, 20), "float32"))
    assert block_data(7, (0,), (5,), "float64").dtype == np.float64


@pytest.mark.parametrize(("n_tasks", "sizes"), [(1, [12]), (3, [4, 4, 4]), (5, [3, 3, 3, 3]), (100, [1] * 12)])
def test_plan_batches_covers_every_chunk_once_in_contiguous_batches(n_tasks: int, sizes: list[int]) -> None:
    request = JobRequest((300, 400), (100, 100), "float32", 1)
    batches = plan_batches(request, n_tasks)
    assert [len(b) for b in batches] == sizes
    assert [index for batch in batches for index in batch] == list(all_blocks((300, 400), (100, 100)))


def test_plan_batches_has_at_least_one_task() -> None:
    assert plan_batches(JobRequest((10,), (10,), "float32", 1), 0) == [[(0,)]]
