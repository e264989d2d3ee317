"""The deterministic block rule and the writer of chunks and shards that runs on Dask workers.

Importable on a worker: no Flask, no app state. Credentials come from the worker's own
environment (obstore reads AWS_*), never from the task's arguments.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import obstore
from zarr.abc.codec import SupportsSyncCodec
from zarr.abc.store import Store
from zarr.codecs import ShardingCodec
from zarr.core.array import AsyncArray
from zarr.core.array_spec import ArraySpec
from zarr.core.buffer import Buffer, default_buffer_prototype
from zarr.core.codec_pipeline import BatchedCodecPipeline
from zarr.core.metadata import ArrayV3Metadata
from zarr.core.sync import sync
from zarr.storage import ObjectStore, StorePath

from gateway_dask_zarr.errors import s3_error
from gateway_dask_zarr.grid import BlockIndex, block_index, block_selection, grid, unit_blocks
from gateway_dask_zarr.storage.backends import cached_backend
from gateway_dask_zarr.worker.progress import TaskProgress

# The input bytes a task's reads keep in flight at once (derived kinds; at least one read):
# enough to hide the store's latency, few enough that a worker holds a handful of input chunks.
READ_BYTES_IN_FLIGHT = 16 * 2**20


def block_data(seed: int, index: BlockIndex, shape: Sequence[int], dtype: str) -> np.ndarray:
    """The values of one block: a pure function of (seed, block index, block shape, dtype)."""
    return np.random.default_rng([seed, *index]).random(tuple(shape), dtype=np.dtype(dtype))


class BlockSource(Protocol):
    """What a job kind's tasks compute: the values of one output block (kinds/ supplies one per kind)."""

    async def block(self, store: Store, index: BlockIndex, selection: tuple[slice, ...], dtype: str) -> np.ndarray:
        """The block at `index` (the array's `selection`), reading inputs, if any, from `store`."""
        ...


@runtime_checkable
class BandSource(Protocol):
    """A kind whose tasks read each band (ArrayTarget.band) of the output once, then cut its blocks from it."""

    async def band(self, store: Store, selection: tuple[slice, ...], dtype: str) -> BlockSource:
        """The source of the blocks inside `selection` (one band of the output), reading inputs from `store`."""
        ...


@dataclass(frozen=True)
class RandomBlocks:
    """The random kind's blocks: block_data of the job's seed."""

    seed: int

    async def block(self, store: Store, index: BlockIndex, selection: tuple[slice, ...], dtype: str) -> np.ndarray:
        """The deterministic random block."""
        return block_data(self.seed, index, tuple(s.stop - s.start for s in selection), dtype)


@dataclass(frozen=True)
class ArrayTarget:
    """Where and what a task writes: the store root, the job's array, its metadata and its blocks' source."""

    root_url: str
    endpoint_url: str | None
    job_id: str
    metadata: dict[str, Any]
    source: BlockSource | BandSource
    deadline: float  # epoch seconds: no write starts after it (the job has timed out)
    concurrency: int = 8
    # What a task's numbers count: bands of this shape, each whole write units (None: one unit).
    band: tuple[int, ...] | None = None


class ChunkEncoder:
    """Encodes one chunk with a chain of codecs: directly when they all can, else through zarr's pipeline.

    zarr's async pipeline costs about 0.8 ms a chunk of 40 kB, most of the job's CPU on a
    worker; the same codecs called directly, about 0.02 ms (bench/steps.py).
    """

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.codecs: list[Any] = list(pipeline) if isinstance(pipeline, BatchedCodecPipeline) else []
        self.direct = bool(self.codecs) and all(isinstance(c, SupportsSyncCodec) for c in self.codecs)

    async def encode(self, chunk: Any, spec: ArraySpec) -> Buffer:
        """The encoded bytes of one chunk."""
        if self.direct:
            for codec in self.codecs:
                chunk = codec._encode_sync(chunk, spec)
                spec = codec.resolve_metadata(spec)
            encoded = chunk
        else:
            (encoded,) = await self.pipeline.encode([(chunk, spec)])
        assert isinstance(encoded, Buffer)
        return encoded


def write_blocks(target: ArrayTarget, numbers: range) -> dict[str, Any]:
    """Generate and write whole bands of write units (shards, or chunks when not sharded; numbered in C order).

    A band is one write unit unless the kind reads its input by bands (ArrayTarget.band).
    Returns only small facts (chunk counts and stats). A task owns a range of band numbers,
    not a list of indices: its arguments stay a few bytes however many it owns (100,000
    chunks in 24 tasks, measured in bench/). Two tasks never write parts of one shard: a
    shard is one object, and the later PUT would replace the earlier one's chunks.
    """
    # Made here, in the task's thread: the worker knows the task by the thread running it.
    return sync(_write_blocks(target, numbers, TaskProgress(target.job_id)))


async def _write_blocks(target: ArrayTarget, numbers: range, progress: TaskProgress) -> dict[str, Any]:
    store = cached_backend(target.root_url, target.endpoint_url).worker_store
    array = AsyncArray(
        metadata=ArrayV3Metadata.from_dict(target.metadata),
        store_path=StorePath(store, f"{target.job_id}.zarr"),
        config={"write_empty_chunks": True},
    )
    metadata = array.metadata
    unit_shape = metadata.shards or metadata.chunks
    band_shape = target.band or unit_shape
    band_grid = grid(metadata.shape, band_shape)
    # Sharded: each chunk with the shard's inner codecs, then zarr's ShardingCodec lays out
    # the shard (its _get_chunk_spec and _encode_shard_dict are private: zarr is pinned, and
    # tests/test_shards.py reads the result with zarr-python and TensorStore).
    sharding = next((c for c in metadata.codecs if isinstance(c, ShardingCodec)), None)
    encoder = ChunkEncoder(array.codec_pipeline if sharding is None else sharding.codec_pipeline)
    facts = {"chunks": 0, "bytes": 0, "min": math.inf, "max": -math.inf, "sum": 0.0, "count": 0}

    async def write(units: Iterable[BlockIndex], source: BlockSource) -> None:
        # A few writers share one iterator of units: at most `concurrency` units are in
        # memory or in flight, and only that many coroutines exist, however many units.
        pending = iter(units)

        async def writer() -> None:
            for unit in pending:
                # Past the deadline the job has failed and its objects are being deleted: a task
                # that runs on must not write more of them.
                if time.time() > target.deadline:
                    raise TimeoutError(f"job {target.job_id} passed its deadline; {list(unit)} not written")
                value, n_encoded = await _encode_unit(source, store, array, sharding, encoder, unit, facts)
                await put_object(array.store_path, metadata.encode_chunk_key(unit), value)
                progress.add(n_encoded)

        await asyncio.gather(*(writer() for _ in range(max(1, target.concurrency))))

    bands = [block_index(number, band_grid) for number in numbers]
    if not isinstance(target.source, BandSource):
        await write((u for b in bands for u in unit_blocks(metadata.shape, unit_shape, band_shape, b)), target.source)
        return facts
    for band in bands:
        # One band at a time: a task holds one band's input and its units in flight.
        selection = block_selection(metadata.shape, band_shape, band)
        source = await target.source.band(store, selection, str(metadata.dtype.to_native_dtype()))
        await write(unit_blocks(metadata.shape, unit_shape, band_shape, band), source)
        del source  # before the next band's read, not after it: one band in memory
    return facts


async def _encode_unit(
    source: BlockSource,
    store: Store,
    array: AsyncArray[Any],
    sharding: ShardingCodec | None,
    encoder: ChunkEncoder,
    unit: BlockIndex,
    facts: dict[str, Any],
) -> tuple[Buffer, int]:
    """One write unit's object (a chunk, or a shard of its chunks) and how many chunks it holds."""
    metadata = array.metadata
    shape, chunks = metadata.shape, metadata.chunks
    unit_shape = metadata.shards or chunks
    dtype = str(metadata.dtype.to_native_dtype())
    prototype = default_buffer_prototype()
    spec = metadata.get_chunk_spec(unit, array.config, prototype)
    chunk_spec = spec if sharding is None else sharding._get_chunk_spec(spec)
    # Each block encoded with the array's (or the shard's inner) codecs as soon as it is
    # made, and freed: a unit in memory is its encoded chunks. The same work as zarr's
    # setitem, without its indexing.
    encoded: dict[BlockIndex, Buffer] = {}
    for index in unit_blocks(shape, chunks, unit_shape, unit):
        data = await source.block(store, index, block_selection(shape, chunks, index), dtype)
        _count(facts, data)
        chunk = prototype.nd_buffer.from_numpy_array(_padded(data, chunks, chunk_spec.fill_value))
        local = tuple(i - u * (s // c) for i, u, s, c in zip(index, unit, unit_shape, chunks, strict=True))
        del data
        encoded[local] = await encoder.encode(chunk, chunk_spec)
        del chunk
    if sharding is None:
        return encoded[(0,) * len(shape)], 1
    # zarr's own shard layout: the chunks in Morton order, then the index (offsets and
    # lengths, crc32c). Chunks wholly outside the array are absent from it.
    per_shard = tuple(s // c for s, c in zip(unit_shape, chunks, strict=True))
    shard = await sharding._encode_shard_dict(encoded, per_shard, prototype)
    assert shard is not None
    return shard, len(encoded)


def _count(facts: dict[str, Any], data: np.ndarray) -> None:
    """Add one block to a task's facts: counts, bytes and the sums of the job's statistics."""
    facts["chunks"] += 1
    facts["bytes"] += data.nbytes
    facts["min"] = min(facts["min"], float(data.min()))
    facts["max"] = max(facts["max"], float(data.max()))
    facts["sum"] += float(data.sum(dtype=np.float64))
    facts["count"] += data.size


async def put_object(store_path: StorePath, key: str, value: Buffer) -> None:
    """PUT one object (a chunk or a shard) in one request; an S3 error is raised with its code and message first."""
    try:
        if isinstance(store_path.store, ObjectStore):
            # One request whatever the size: obstore makes an object over 5 MiB a multipart
            # upload (create, parts, complete), which wrote 8 MB chunks about 7% slower
            # (bench/floor.py); the job's own tasks already keep many PUTs in flight.
            path = f"{store_path.path}/{key}"
            await obstore.put_async(store_path.store.store, path, value.as_buffer_like(), use_multipart=False)
        else:
            await (store_path / key).set(value)
    except Exception as exc:
        # obstore's message puts the S3 error code at the end of a long text.
        said = s3_error(exc)
        if said is None:
            raise
        raise OSError(f"{said} (writing {key})") from None


def _padded(data: np.ndarray, chunks: Sequence[int], fill_value: Any) -> np.ndarray:
    """A block as its chunk stores it: an edge block is padded with the fill value."""
    if data.shape == tuple(chunks):
        return data
    chunk = np.full(tuple(chunks), fill_value, dtype=data.dtype)
    chunk[tuple(slice(0, n) for n in data.shape)] = data
    return chunk
