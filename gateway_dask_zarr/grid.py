"""The geometry of a chunked array: its chunk grid, block indices and shapes, its write units (shards)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

BlockIndex = tuple[int, ...]


def block_shape(shape: Sequence[int], chunks: Sequence[int], index: BlockIndex) -> tuple[int, ...]:
    """The shape of block `index`: the chunk shape clipped at the array's edge."""
    return tuple(min(c, s - i * c) for s, c, i in zip(shape, chunks, index, strict=True))


def block_selection(shape: Sequence[int], chunks: Sequence[int], index: BlockIndex) -> tuple[slice, ...]:
    """The region of the array a block covers."""
    size = block_shape(shape, chunks, index)
    return tuple(slice(i * c, i * c + n) for i, c, n in zip(index, chunks, size, strict=True))


def grid(shape: Sequence[int], chunks: Sequence[int]) -> tuple[int, ...]:
    """The number of chunks along each dimension."""
    return tuple(math.ceil(s / c) for s, c in zip(shape, chunks, strict=True))


def all_blocks(shape: Sequence[int], chunks: Sequence[int]) -> Iterable[BlockIndex]:
    """Every block index of an array, in C order."""
    return itertools.product(*(range(n) for n in grid(shape, chunks)))


def block_index(number: int, grid_shape: Sequence[int]) -> BlockIndex:
    """The index of the `number`-th block in C order (the order of all_blocks)."""
    index = []
    for n in reversed(grid_shape):
        number, i = divmod(number, n)
        index.append(i)
    return tuple(reversed(index))


def unit_blocks(
    shape: Sequence[int], chunks: Sequence[int], unit_shape: Sequence[int], unit: BlockIndex
) -> Iterable[BlockIndex]:
    """The blocks inside the array of write unit `unit` (a shard's chunks, or the chunk itself), in C order."""
    per_unit = [u // c for u, c in zip(unit_shape, chunks, strict=True)]
    ranges = (range(i * k, min((i + 1) * k, n)) for i, k, n in zip(unit, per_unit, grid(shape, chunks), strict=True))
    return itertools.product(*ranges)


def chunks_in_units(shape: Sequence[int], chunks: Sequence[int], unit_shape: Sequence[int], numbers: range) -> int:
    """How many blocks the write units numbered `numbers` (C order) hold inside the array."""
    if tuple(unit_shape) == tuple(chunks):
        # Unsharded, a unit is a chunk: no loop over 100,000 of them while a job is submitted.
        return len(numbers)
    per_unit = [u // c for u, c in zip(unit_shape, chunks, strict=True)]
    chunk_grid, unit_grid = grid(shape, chunks), grid(shape, unit_shape)
    return sum(
        math.prod(min(k, n - i * k) for i, k, n in zip(block_index(u, unit_grid), per_unit, chunk_grid, strict=True))
        for u in numbers
    )
