"""The block rule (blocks.py) and the planning of write tasks (jobs.plan_tasks), without a cluster."""

from __future__ import annotations

import numpy as np
import pytest

from gateway_dask_zarr.grid import all_blocks, block_index, block_shape, chunks_in_units, grid, unit_blocks
from gateway_dask_zarr.jobs import plan_tasks
from gateway_dask_zarr.params import JobRequest
from gateway_dask_zarr.worker.blocks import block_data

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


@pytest.mark.parametrize(
    ("shape", "chunks", "n_workers", "sizes"),
    [
        ((300, 400), (100, 100), 3, [4, 4, 4]),
        ((300, 400), (100, 100), 5, [3, 3, 3, 3]),
        ((300, 400), (100, 100), 100, [1] * 12),
        # Above 1000 chunks a worker, more tasks a worker (at most 8): 97,969 chunks in 24 tasks,
        # each cut in two to stay within jobs.feeder.TASK_MAX_BYTES (2048 chunks of 4 KiB).
        ((10000, 10000), (32, 32), 3, [2048, 2035] * 23 + [2048, 97969 - 23 * 4083 - 2048]),
    ],
)
def test_plan_tasks_covers_every_chunk_once_in_contiguous_ranges(
    shape: tuple[int, int], chunks: tuple[int, int], n_workers: int, sizes: list[int]
) -> None:
    request = JobRequest(shape, chunks, "float32", 1)
    tasks = plan_tasks(request, n_workers)
    assert [len(t) for t in tasks] == sizes
    assert [n for task in tasks for n in task] == list(range(request.n_chunks))


def test_block_numbers_map_to_indices_in_c_order() -> None:
    shape, chunks = (1000, 700, 30), (100, 100, 7)
    assert [block_index(n, grid(shape, chunks)) for n in range(350)] == list(all_blocks(shape, chunks))


def test_plan_tasks_has_at_least_one_task() -> None:
    assert plan_tasks(JobRequest((10,), (10,), "float32", 1), 0) == [range(0, 1)]


def test_a_shard_holds_the_chunks_of_its_part_of_the_grid_clipped_at_the_edge() -> None:
    shape, chunks, shards = (250, 330), (100, 100), (200, 200)
    assert list(unit_blocks(shape, chunks, shards, (0, 0))) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    # The edge shard (1, 1) covers chunks (2..3, 2..3) of which only (2, 2) and (2, 3) are in the array.
    assert list(unit_blocks(shape, chunks, shards, (1, 1))) == [(2, 2), (2, 3)]
    # Unsharded, a write unit is one chunk.
    assert list(unit_blocks(shape, chunks, chunks, (2, 3))) == [(2, 3)]


@pytest.mark.parametrize(
    ("shape", "chunks", "shards", "n_workers", "sizes"),
    [
        # 4000 x 4000 in 100 x 100 chunks, 1000 x 1000 shards: 16 shards, not 1600 chunks, to share
        # (6, 6 and 4 a task, cut to 2 shards of 4 MB a task by jobs.feeder.TASK_MAX_BYTES).
        ((4000, 4000), (100, 100), (1000, 1000), 3, [2] * 8),
        ((250, 330), (100, 100), (200, 200), 3, [2, 2]),
        ((250, 330), (100, 100), (200, 200), 8, [1, 1, 1, 1]),
        ((1000,), (10,), (1000,), 3, [1]),
    ],
)
def test_plan_tasks_gives_each_task_whole_shards(
    shape: tuple[int, ...], chunks: tuple[int, ...], shards: tuple[int, ...], n_workers: int, sizes: list[int]
) -> None:
    request = JobRequest(shape, chunks, "float32", 1, shards)
    tasks = plan_tasks(request, n_workers)
    assert [len(t) for t in tasks] == sizes
    assert [n for task in tasks for n in task] == list(range(request.n_units))
    # Every chunk is in exactly one shard, so in exactly one task.
    owned = [
        b
        for task in tasks
        for n in task
        for b in unit_blocks(shape, chunks, shards, block_index(n, grid(shape, shards)))
    ]
    assert sorted(owned) == list(all_blocks(shape, chunks))
    assert sum(request.chunks_in(task) for task in tasks) == request.n_chunks


@pytest.mark.parametrize(
    ("shape", "chunks", "unit_shape"),
    [((1000, 1000), (100, 100), (100, 100)), ((250, 130), (100, 50), (100, 50)), ((1000, 950), (100, 100), (300, 400))],
)
def test_chunks_in_units_counts_the_chunks_inside_the_array(
    shape: tuple[int, ...], chunks: tuple[int, ...], unit_shape: tuple[int, ...]
) -> None:
    units = list(all_blocks(shape, unit_shape))
    for start, stop in ((0, len(units)), (1, len(units) - 1), (2, 3)):
        expected = sum(len(list(unit_blocks(shape, chunks, unit_shape, units[u]))) for u in range(start, stop))
        assert chunks_in_units(shape, chunks, unit_shape, range(start, stop)) == expected
