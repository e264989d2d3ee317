"""The floor: the same number of objects of the same size PUT from one process, concurrently."""

from __future__ import annotations

import asyncio
import os
import time

import s3fs

from gateway_dask_zarr.store import storage_options


def s3(endpoint_url: str) -> s3fs.S3FileSystem:
    """A synchronous s3fs filesystem on the endpoint (credentials from the environment)."""
    return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False, **storage_options("s3://", endpoint_url))


async def _put_all(endpoint_url: str, prefix: str, count: int, size: int, concurrency: int) -> float:
    # The app's own client options, so that the floor pays what a job pays per PUT.
    options = storage_options(f"s3://{prefix}", endpoint_url)
    fs = s3fs.S3FileSystem(asynchronous=True, skip_instance_cache=True, **options)
    session = await fs.set_session()
    payload = os.urandom(size)
    limit = asyncio.Semaphore(concurrency)

    async def put(i: int) -> None:
        async with limit:
            await fs._pipe_file(f"{prefix}/c/{i}", payload)

    # One warm-up PUT, so that the session's connection set-up is not counted.
    await fs._pipe_file(f"{prefix}/warm", payload[:1])
    started = time.perf_counter()
    await asyncio.gather(*(put(i) for i in range(count)))
    seconds = time.perf_counter() - started
    await session.close()
    return seconds


def put_seconds(endpoint_url: str, prefix: str, count: int, size: int, concurrency: int = 32) -> float:
    """Seconds to PUT `count` objects of `size` bytes under s3://prefix at `concurrency` (the caller deletes them)."""
    return asyncio.run(_put_all(endpoint_url, prefix, count, size, concurrency))
