"""Issue 24's rows: the 1.6 GB rechunk and reduce against their floors, worker memory, a default job beside them.

Alone: `python -m bench.kinds` (its own SeaweedFS and app); `make bench` runs the same rows.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from typing import Any

import psutil
import requests
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import StorePath

from bench.load import run_jobs
from bench.stack import ROOT, PeakRSS, app_on_seaweed, app_processes, rss
from gateway_dask_zarr.jobs.runner import MAX_TASK_CONCURRENCY, TASK_BYTES_IN_FLIGHT
from gateway_dask_zarr.kinds.rechunk import bound
from gateway_dask_zarr.storage.backends import S3Backend
from gateway_dask_zarr.storage.embedded import BUCKET
from gateway_dask_zarr.worker.blocks import put_object

# The array: 20000 x 10000 float64 in 1000 x 1000 chunks (1.6 GB, 200 chunks of 8 MB).
INPUT = {"shape": [20000, 10000], "chunks": [1000, 1000], "dtype": "float64", "seed": 24}
RECHUNK = {"kind": "rechunk", "chunks": [20000, 50]}
REDUCE = {"kind": "reduce", "op": "mean", "axes": [0]}
DEFAULT = {"shape": "1000,1000", "chunks": "100,100", "dtype": "float32"}
CHUNK_BYTES = 1000 * 1000 * 8
# One band of the rechunk: the 20 output chunks (20000 x 50) of one input-chunk column.
BAND_BYTES = 20000 * 1000 * 8
ROUNDS = 3
FLOOR_CONCURRENCY = 32
MB = 1e6


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(url: str, body: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    """POST /jobs and poll until the job ends; its document (complete, else raise)."""
    accepted = requests.post(f"{url}/jobs", json=body, timeout=30)
    accepted.raise_for_status()
    link = f"{url}{accepted.json()['links']['self']}"
    deadline = time.monotonic() + timeout
    while (document := requests.get(link, timeout=30).json())["status"] in ("queued", "running"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {document['id']} did not end within {timeout} s")
        time.sleep(0.1)
    if document["status"] != "complete":
        raise RuntimeError(f"job {document['id']} {document['status']}: {document['error']}")
    return document


async def _floor(endpoint: str, job_id: str, copy: bool) -> float:
    """Seconds to GET every chunk of the job's array (and PUT each again, when `copy`) from this process."""
    store = S3Backend(f"s3://{BUCKET}", endpoint).worker_store
    rows, columns = (n // c for n, c in zip(INPUT["shape"], INPUT["chunks"], strict=True))
    keys = [f"{job_id}.zarr/c/{i}/{j}" for i in range(rows) for j in range(columns)]
    prefix = f"floor-{uuid.uuid4().hex[:8]}"
    limit = asyncio.Semaphore(FLOOR_CONCURRENCY)
    prototype = default_buffer_prototype()

    async def one(key: str) -> None:
        async with limit:
            value = await store.get(key, prototype)
            assert value is not None, key
            if copy:
                await put_object(StorePath(store, prefix), key, value)  # the chunk writer's own PUT

    started = time.perf_counter()
    await asyncio.gather(*(one(key) for key in keys))
    seconds = time.perf_counter() - started
    await store.delete_dir(prefix)
    return seconds


def floor(endpoint: str, job_id: str, copy: bool) -> float:
    """The copy floor (GET + PUT of the same bytes) or the GET floor, in seconds."""
    return asyncio.run(_floor(endpoint, job_id, copy))


def beside(url: str, input_id: str, reps: int = 5) -> dict[str, Any]:
    """Default jobs on the idle cluster, then beside the rechunk (its tasks are bands of 160 MB, not 8 MB chunks)."""
    idle = run_jobs(url, DEFAULT, 1, reps).latencies
    accepted = requests.post(f"{url}/jobs", json={**RECHUNK, "input": input_id}, timeout=30)
    accepted.raise_for_status()
    link = f"{url}{accepted.json()['links']['self']}"
    while requests.get(link, timeout=30).json()["status"] == "queued":
        time.sleep(0.1)
    near = run_jobs(url, DEFAULT, 1, reps).latencies
    still_running = requests.get(link, timeout=30).json()["status"] == "running"
    while requests.get(link, timeout=30).json()["status"] in ("queued", "running"):
        time.sleep(0.5)
    requests.delete(link, timeout=120)
    ratio = statistics.median(near) / statistics.median(idle)
    return {"idle_s": idle, "beside_s": near, "ratio": ratio, "measured_beside": still_running}


def task_bound() -> int:
    """rechunk.bound() for this rechunk: one band, 8 MB input chunks, 8 MB output chunks at the runner's concurrency."""
    concurrency = max(1, min(MAX_TASK_CONCURRENCY, TASK_BYTES_IN_FLIGHT // CHUNK_BYTES))
    return bound(BAND_BYTES, CHUNK_BYTES, CHUNK_BYTES, concurrency)


def measure(url: str, endpoint: str, workers: list[psutil.Process]) -> dict[str, Any]:
    """The input once; then ROUNDS of (copy floor, rechunk, workers' RSS sampled) and of (GET floor, reduce)."""
    log("the 1.6 GB input: 20000x10000 float64 in 1000x1000 chunks")
    source = run(url, INPUT)
    nbytes = source["bytes_written"]
    rechunks, copies, reduces, gets, growth = [], [], [], [], []
    for n in range(ROUNDS):
        log(f"round {n + 1}/{ROUNDS}: copy floor, rechunk to 20000x50 (workers' RSS sampled), GET floor, reduce")
        copies.append(floor(endpoint, source["id"], copy=True))
        time.sleep(1)  # the workers' RSS settles after the floor's load on the machine
        idle = [rss(w) for w in workers]
        with PeakRSS({str(i): w for i, w in enumerate(workers)}, interval=0.01) as peak:
            done = run(url, {**RECHUNK, "input": source["id"]})
        growth.append(max(peak.peak[str(i)] - idle[i] for i in range(len(workers))))
        rechunks.append(done["seconds"])
        requests.delete(f"{url}/jobs/{done['id']}", timeout=120)
        gets.append(floor(endpoint, source["id"], copy=False))
        reduced = run(url, {**REDUCE, "input": source["id"]})
        reduces.append(reduced["seconds"])
        requests.delete(f"{url}/jobs/{reduced['id']}", timeout=120)
    log("default jobs idle, then beside the rechunk, 5 each")
    fairness = beside(url, source["id"])
    requests.delete(f"{url}/jobs/{source['id']}", timeout=120)
    return {
        "beside": fairness,
        "bytes": nbytes,
        "rechunk_s": rechunks,
        "copy_floor_s": copies,
        "reduce_s": reduces,
        "get_floor_s": gets,
        "rechunk_share": statistics.median(copies) / statistics.median(rechunks),
        "reduce_share": statistics.median(gets) / statistics.median(reduces),
        "worker_growth_mb": [g / MB for g in growth],
        "bound_mb": task_bound() / MB,
    }


def main() -> None:
    """This module's rows alone: a SeaweedFS and the app, as `make bench` starts them; the JSON on stdout."""
    with app_on_seaweed(ROOT / "bench" / "results", "kinds") as (weed, app):
        _, workers = app_processes(app.process.pid)
        figures = measure(app.url, weed.endpoint_url, workers)
    print(json.dumps(figures, indent=2))
    check(figures)


def check(figures: dict[str, Any]) -> None:
    """Exit non-zero if a worker's RSS grew beyond the rechunk task's stated bound (the bench's assertion)."""
    if max(figures["worker_growth_mb"]) > figures["bound_mb"]:
        raise SystemExit(f"a worker's RSS grew beyond the rechunk's bound of {figures['bound_mb']:.0f} MB: {figures}")


if __name__ == "__main__":
    main()
