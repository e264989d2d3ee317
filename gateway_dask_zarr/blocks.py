"""The deterministic block rule and the chunk writer that runs on Dask workers.

Importable on a worker: no Flask, no app state. Credentials come from the worker's own
environment (obstore and botocore read AWS_*), never from the task's arguments.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from zarr.abc.codec import SupportsSyncCodec
from zarr.core.array import AsyncArray
from zarr.core.array_spec import ArraySpec
from zarr.core.buffer import Buffer, default_buffer_prototype
from zarr.core.codec_pipeline import BatchedCodecPipeline
from zarr.core.metadata import ArrayV3Metadata
from zarr.core.sync import sync
from zarr.storage import StorePath

from gateway_dask_zarr.storage import cached_backend

BlockIndex = tuple[int, ...]
S3_ERROR = re.compile(r"<Code>(?P<code>[^<]*)</Code>\s*<Message>(?P<message>[^<]*)</Message>")


def block_shape(shape: Sequence[int], chunks: Sequence[int], index: BlockIndex) -> tuple[int, ...]:
    """The shape of block `index`: the chunk shape clipped at the array's edge."""
    return tuple(min(c, s - i * c) for s, c, i in zip(shape, chunks, index, strict=True))


def block_data(seed: int, index: BlockIndex, shape: Sequence[int], dtype: str) -> np.ndarray:
    """The values of one block: a pure function of (seed, block index, block shape, dtype)."""
    return np.random.default_rng([seed, *index]).random(tuple(shape), dtype=np.dtype(dtype))


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


@dataclass(frozen=True)
class ArrayTarget:
    """Where and what a task writes: the store root, the job's array and its metadata."""

    root_url: str
    endpoint_url: str | None
    job_id: str
    metadata: dict[str, Any]
    seed: int
    deadline: float  # epoch seconds: no chunk write starts after it (the job has timed out)
    concurrency: int = 8


def write_blocks(target: ArrayTarget, numbers: range) -> dict[str, Any]:
    """Generate and write whole chunks (numbered in C order); return only small facts (counts and stats).

    A task owns a range of chunk numbers, not a list of indices: its arguments stay a few
    bytes however many chunks it owns (100,000 chunks in 24 tasks, measured in bench/).
    """
    return sync(_write_blocks(target, numbers))


async def _write_blocks(target: ArrayTarget, numbers: range) -> dict[str, Any]:
    store = cached_backend(target.root_url, target.endpoint_url).worker_store
    array = AsyncArray(
        metadata=ArrayV3Metadata.from_dict(target.metadata),
        store_path=StorePath(store, f"{target.job_id}.zarr"),
        config={"write_empty_chunks": True},
    )
    metadata = array.metadata
    shape, chunks = metadata.shape, metadata.chunks
    grid_shape = grid(shape, chunks)
    dtype = str(metadata.dtype.to_native_dtype())
    prototype = default_buffer_prototype()
    pipeline = array.codec_pipeline
    codecs = list(pipeline) if isinstance(pipeline, BatchedCodecPipeline) else []
    # zarr's async pipeline costs about 0.8 ms a chunk of 40 kB, most of the job's CPU on a
    # worker; the same codecs called directly, about 0.02 ms (bench/steps.py).
    encode_now = bool(codecs) and all(isinstance(c, SupportsSyncCodec) for c in codecs)
    facts = {"chunks": 0, "bytes": 0, "min": math.inf, "max": -math.inf, "sum": 0.0, "count": 0}
    # A few writers share one iterator of chunk numbers: at most `concurrency` chunks are in
    # memory or in flight, and only that many coroutines exist, however many chunks.
    pending = iter(numbers)

    async def writer() -> None:
        for number in pending:
            index = block_index(number, grid_shape)
            # Past the deadline the job has failed and its chunks are being deleted: a task
            # that runs on must not write more of them.
            if time.time() > target.deadline:
                raise TimeoutError(f"job {target.job_id} passed its deadline; chunk {list(index)} not written")
            data = block_data(target.seed, index, block_shape(shape, chunks, index), dtype)
            facts["chunks"] += 1
            facts["bytes"] += data.nbytes
            facts["min"] = min(facts["min"], float(data.min()))
            facts["max"] = max(facts["max"], float(data.max()))
            facts["sum"] += float(data.sum(dtype=np.float64))
            facts["count"] += data.size
            # Encode the whole chunk with the array's codecs and PUT it under its key: what
            # zarr's setitem does, without its indexing, and the block is freed before the
            # PUT, so a worker holds fewer copies of a chunk at once.
            spec = metadata.get_chunk_spec(index, array.config, prototype)
            chunk = prototype.nd_buffer.from_numpy_array(_padded(data, chunks, spec.fill_value))
            del data
            if encode_now:
                encoded = _encode(codecs, chunk, spec)
            else:
                (encoded,) = await pipeline.encode([(chunk, spec)])
            del chunk
            assert isinstance(encoded, Buffer)
            await _put(array.store_path, metadata.encode_chunk_key(index), encoded)

    await asyncio.gather(*(writer() for _ in range(max(1, min(target.concurrency, len(numbers))))))
    return facts


def _encode(codecs: Sequence[Any], chunk: Any, spec: ArraySpec) -> Any:
    """Run the array's codecs in order on one chunk, each with the spec its input has."""
    for codec in codecs:
        chunk = codec._encode_sync(chunk, spec)
        spec = codec.resolve_metadata(spec)
    return chunk


async def _put(store_path: StorePath, key: str, value: Buffer) -> None:
    """PUT one chunk; an S3 error is raised with its code and message first."""
    try:
        await (store_path / key).set(value)
    except Exception as exc:
        # obstore's message puts the S3 error code at the end of a long text.
        found = S3_ERROR.search(str(exc))
        if found is None:
            raise
        raise OSError(f"S3 {found['code']}: {found['message']} (writing {key})") from None


def _padded(data: np.ndarray, chunks: Sequence[int], fill_value: Any) -> np.ndarray:
    """A block as its chunk stores it: an edge block is padded with the fill value."""
    if data.shape == tuple(chunks):
        return data
    chunk = np.full(tuple(chunks), fill_value, dtype=data.dtype)
    chunk[tuple(slice(0, n) for n in data.shape)] = data
    return chunk
