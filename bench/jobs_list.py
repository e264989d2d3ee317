"""`python -m bench.jobs_list`: GET /jobs?limit=50 at 100, 2,000 and 20,000 jobs in the store.

Records are written straight to the store (no job runs); each size gets a freshly started app:
its first call after start, the median of warm calls, and the app's RSS after them.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import obstore
import psutil
import requests

from gateway_dask_zarr.jobs import Job
from gateway_dask_zarr.jobs.records import INDEX, RECORDS, _owner_dir, index_name
from gateway_dask_zarr.params import JobRequest
from gateway_dask_zarr.storage.backends import parse_storage

SIZES = (100, 2_000, 20_000)
BUCKET = "jobs-list"
WARM_CALLS = 10


def seed_jobs(
    store: Any, start: int, stop: int, owner: str = "anonymous", everyone: bool = True, concurrency: int = 64
) -> None:
    """Write complete job records start..stop-1 with their owner's index entries (and the all-jobs ones)."""
    request = JobRequest((100, 100), (50, 50), "float32", 1)
    first = datetime(2026, 1, 1, tzinfo=UTC)

    async def one(i: int, limit: asyncio.Semaphore) -> None:
        job = Job(f"seeded-{i:06d}", request, owner, deadline=0.0, status="complete", done=4, chunks_written=4)
        job.created = first + timedelta(seconds=i)
        record, name = job.record(), index_name(job.record())
        async with limit:
            await obstore.put_async(store, f"{RECORDS}/{job.id}.json", json.dumps(record).encode())
            if everyone:
                await obstore.put_async(store, f"{INDEX}/all/{name}", b"")
            await obstore.put_async(store, f"{_owner_dir(owner)}/{name}", b"")

    async def every() -> None:
        limit = asyncio.Semaphore(concurrency)
        await asyncio.gather(*(one(i, limit) for i in range(start, stop)))

    asyncio.run(every())


def _get(url: str) -> float:
    started = time.perf_counter()
    response = requests.get(url, timeout=300)
    response.raise_for_status()
    assert len(response.json()) == 50
    return time.perf_counter() - started


def measure(sizes: tuple[int, ...] = SIZES) -> list[dict[str, Any]]:
    """One row per size: first call after start (s), warm median (s), app RSS (MB)."""
    from bench.stack import app_processes, bench_env, rss, seaweed
    from tests.serve import gunicorn

    rows = []
    with tempfile.TemporaryDirectory() as tmp, seaweed(Path(tmp) / "weed.log", BUCKET) as s3:
        store = parse_storage(f"s3://{BUCKET}", s3.endpoint_url).obstore
        seeded = 0
        for size in sizes:
            seed_jobs(store, seeded, size)
            seeded = size
            env = bench_env(STORE_URL=f"s3://{BUCKET}", S3_ENDPOINT_URL=s3.endpoint_url, N_WORKERS="1")
            app = gunicorn(env, Path(tmp) / f"app-{size}.log")
            try:
                url = f"{app.url}/jobs?limit=50"
                first = _get(url)
                warm = statistics.median(_get(url) for _ in range(WARM_CALLS))
                process, _ = app_processes(app.process.pid)
                rows.append({"jobs": size, "first_s": first, "warm_s": warm, "app_rss_mb": rss(process) / 1e6})
            finally:
                app.close()
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    lines = [
        "| jobs in the store | first GET /jobs?limit=50 after start | warm median | app RSS |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['jobs']:,} | {r['first_s'] * 1000:.0f} ms | {r['warm_s'] * 1000:.0f} ms | {r['app_rss_mb']:.0f} MB |"
        for r in rows
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(psutil.cpu_count(), "cores", file=sys.stderr)
    print(markdown(measure()))
