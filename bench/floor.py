"""The floor: the same number of objects of the same size PUT from one process, concurrently."""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Callable

import s3fs
from zarr.abc.store import Store
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import FsspecStore, StorePath

from gateway_dask_zarr.storage.backends import S3Backend
from gateway_dask_zarr.worker.blocks import put_object

# CPU seconds used so far, by process group (bench/stack.py's CpuMeter).
Meter = Callable[[], dict[str, float]]


@functools.cache
def s3(endpoint_url: str) -> s3fs.S3FileSystem:
    """A synchronous s3fs filesystem on the endpoint (credentials from the environment), one for the bench's life.

    One, not one per call: s3fs closes a collected filesystem's session on whatever asyncio loop
    is running at the time (a floor's asyncio.run), not on fsspec's own, and aiohttp then prints
    "Task exception was never retrieved ... attached to a different loop".
    """
    return s3fs.S3FileSystem(
        skip_instance_cache=True, use_listings_cache=False, **S3Backend("s3://", endpoint_url).options()
    )


async def _put_all(
    store: Store, prefix: str, count: int, size: int, concurrency: int, meter: Meter
) -> tuple[float, dict[str, float]]:
    payload = default_buffer_prototype().buffer.from_bytes(os.urandom(size))
    limit = asyncio.Semaphore(concurrency)

    async def put(i: int) -> None:
        async with limit:
            await put_object(StorePath(store, prefix), f"c/{i}", payload)  # the chunk writer's own PUT

    # One warm-up PUT, so that the client's connection set-up is not counted.
    await store.set(f"{prefix}/warm", payload)
    cpu = meter()
    started = time.perf_counter()
    await asyncio.gather(*(put(i) for i in range(count)))
    seconds = time.perf_counter() - started
    used = {k: v - cpu[k] for k, v in meter().items()}
    await store.delete_dir(prefix)
    return seconds, used


def put_seconds(
    endpoint_url: str, prefix: str, count: int, size: int, concurrency: int = 32, client: str = "obstore"
) -> float:
    """Seconds to PUT `count` objects of `size` bytes under s3://prefix at `concurrency` (deleted after).

    `client` is "obstore" (the workers' own S3 client, with the app's options) or "s3fs".
    """
    bucket, _, path = prefix.partition("/")
    url = f"s3://{bucket}"
    backend = S3Backend(url, endpoint_url)
    options = backend.options()
    if client == "obstore":
        store: Store = backend.worker_store
    else:
        store = FsspecStore(s3fs.S3FileSystem(asynchronous=True, skip_instance_cache=True, **options), path=bucket)
    return asyncio.run(_put_all(store, path, count, size, concurrency, dict))[0]


def put_cpu(endpoint_url: str, prefix: str, count: int, size: int, meter: Meter) -> tuple[float, dict[str, float]]:
    """put_seconds with obstore at 32 at once, and the CPU seconds `meter` counted during the PUTs alone."""
    bucket, _, path = prefix.partition("/")
    store = S3Backend(f"s3://{bucket}", endpoint_url).worker_store
    return asyncio.run(_put_all(store, path, count, size, 32, meter))
