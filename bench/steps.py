"""`python -m bench.steps`: where a job's time goes, step by step, and ways of running it side by side.

In-process: a real LocalCluster (3 worker processes) and a real SeaweedFS; no HTTP. Each
variant runs the same job the same way the jobs module does, with timers around each step;
variants and the floor alternate, and every figure is a median.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import dask
import zarr
from distributed import Client, LocalCluster, as_completed
from zarr.core.sync import sync

from bench.floor import put_seconds
from bench.stack import seaweed
from gateway_dask_zarr.cluster.backends import DASK_CONFIG
from gateway_dask_zarr.grid import all_blocks
from gateway_dask_zarr.params import JobRequest
from gateway_dask_zarr.storage.arrays import JobStore, array_kwargs, array_metadata
from gateway_dask_zarr.storage.backends import S3Backend
from gateway_dask_zarr.storage.embedded import BUCKET
from gateway_dask_zarr.worker import blocks
from gateway_dask_zarr.worker.blocks import ArrayTarget, RandomBlocks
from gateway_dask_zarr.worker.progress import TaskProgress

N_WORKERS = 3
# The code before issue 14's changes: its chunk writer is loaded from git for the side-by-side.
BEFORE = "03a10ed"
BEFORE_BLOCKS = Path(__file__).parent / "results" / "before_blocks.py"
LABELS = {
    "old:12:ac": "before: 12 tasks (4 a worker), zarr's codec pipeline, publish by create_array on a new S3 client",
    "new:12:ac": "after, but 12 tasks",
    "new:3:ac": "after: 3 tasks (one a worker), codecs called directly, publish by one conditional PUT",
    "new:3:g": "after, waiting with one gather (no as_completed, no progress callbacks)",
    "silent:3:ac": "after, its tasks sending no progress events (worker/progress.py)",
}


@lru_cache
def before_blocks() -> Any:
    """The chunk writer as it was at BEFORE (written to bench/results by main())."""
    spec = importlib.util.spec_from_file_location("before_blocks", BEFORE_BLOCKS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["before_blocks"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def timed_write(writer: str, target: Any, batch: Any) -> dict[str, Any]:
    """write_blocks with its start and end on the worker's clock (the same machine's)."""
    start = time.time()
    if writer == "old":
        old = before_blocks()
        # The old writer took the seed itself, not a kind's block source.
        fields = {k: v for k, v in vars(target).items() if k != "source"}
        facts = old.write_blocks(old.ArrayTarget(**fields, seed=target.source.seed), batch)
    elif writer == "silent":  # the same writer without its progress events (issue 25's cost)
        progress = TaskProgress(target.job_id)
        progress.worker = None
        facts = sync(blocks._write_blocks(target, batch, progress))
    else:
        facts = blocks.write_blocks(target, batch)
    return {**facts, "t0": start, "t1": time.time()}


def plan(request: JobRequest, n_tasks: int, writer: str) -> list[Any]:
    """n_tasks contiguous batches: lists of block indices (old writer) or ranges of chunk numbers."""
    n = request.n_chunks
    size = math.ceil(n / max(1, min(n_tasks, n)))
    if writer == "old":
        indices = list(all_blocks(request.shape, request.chunks))
        return [indices[i : i + size] for i in range(0, n, size)]
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def _count(done: list[int], n: int, future: Any) -> None:
    """A progress callback, as the jobs module adds one per task."""
    if future.status == "finished":
        done[0] += n


def run_job(
    client: Client, store: JobStore, request: JobRequest, writer: str, n_tasks: int, wait: str, job_id: str
) -> dict[str, float]:
    """One job as jobs.JobManager._run does it, with a timer around each step."""
    t: dict[str, float] = {"start": time.time()}
    metadata = array_metadata(array_kwargs(request.shape, request.chunks, request.dtype, "none"))
    t["metadata"] = time.time()
    concurrency = max(1, min(16, 8 * 2**20 // request.chunk_bytes))
    endpoint = store.backend.endpoint_url
    target = ArrayTarget(
        store.root, endpoint, job_id, metadata, RandomBlocks(request.seed), time.time() + 600, concurrency
    )
    batches = plan(request, n_tasks, writer)
    t["plan"] = time.time()
    futures = client.map(
        partial(timed_write, writer, target), batches, key=[f"w-{job_id}-{i}" for i in range(len(batches))], pure=False
    )
    done = [0]
    if wait == "ac":
        for future, batch in zip(futures, batches, strict=True):
            future.add_done_callback(partial(_count, done, len(batch)))
    t["submit"] = time.time()
    if wait == "ac":
        with client.as_current():
            for future in as_completed(futures):
                if future.status != "finished":
                    raise future.exception()
    facts = client.gather(futures)
    t["gather"] = time.time()
    document = {"id": job_id, "status": "complete"}
    kwargs = array_kwargs(request.shape, request.chunks, request.dtype, "none")
    if writer == "old":  # as before: zarr.create_array on a new obstore client rooted at the array
        attributes = {"gateway": document}
        zarr.create_array(store.backend.array_store(job_id), attributes=attributes, **kwargs)
    else:
        store.publish(job_id, kwargs, document)
    t["publish"] = time.time()
    t["first_task_start"] = min(f["t0"] for f in facts)
    t["last_task_end"] = max(f["t1"] for f in facts)
    t["task_run_sum"] = sum(f["t1"] - f["t0"] for f in facts)
    t["id"] = job_id  # type: ignore[assignment]
    return t


def steps(t: dict[str, float]) -> dict[str, float]:
    """Seconds per step from one job's timestamps."""
    return {
        "metadata": t["metadata"] - t["start"],
        "plan": t["plan"] - t["metadata"],
        "submit (client.map returns)": t["submit"] - t["plan"],
        "submit -> first task starts": t["first_task_start"] - t["submit"],
        "first task start -> last task end": t["last_task_end"] - t["first_task_start"],
        "last task end -> results in app": t["gather"] - t["last_task_end"],
        "publish": t["publish"] - t["gather"],
        "total": t["publish"] - t["start"],
        "task run time, summed": t["task_run_sum"],
    }


def floor(endpoint: str, count: int, size: int, concurrency: int = 32) -> float:
    """The floor: the same PUTs from one process (obstore), then deleted."""
    return put_seconds(endpoint, f"{BUCKET}/floor-{uuid.uuid4().hex[:8]}", count, size, concurrency)


def markdown(out: dict[str, Any]) -> str:
    """The medians as a markdown section: one column per variant, one row per step, in ms."""
    variants = out["variants"]
    names = list(variants)
    steps_ = list(variants[names[0]])
    lines = [
        "## Where a default job's time goes, before and after",
        "",
        f"`python -m bench.steps` (in-process: a LocalCluster of 3 worker processes and a SeaweedFS, no HTTP; "
        f"{out['reps']} repetitions, the variants and the floor in alternation; medians in ms; load average "
        f"{out['load_average'][0]:.1f}). The floor (100 PUTs of 40 kB, 32 at once): {1000 * out['floor_s']:.1f} ms.",
        "",
        *(f"- `{n}`: {LABELS.get(n, n)}" for n in names),
        "",
        "| step | " + " | ".join(f"`{n}`" for n in names) + " |",
        "| --- |" + " --- |" * len(names),
        *(f"| {step} | " + " | ".join(f"{1000 * variants[n][step]:.1f}" for n in names) + " |" for step in steps_),
        "| total / floor | " + " | ".join(f"{variants[n]['total'] / out['floor_s']:.2f}x" for n in names) + " |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Alternate the variants and the floor; print medians of every step."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--shape", default="1000,1000")
    parser.add_argument("--chunks", default="100,100")
    parser.add_argument("--dtype", default="float32")
    # writer:tasks:wait. writer: old (the writer and publish before bench/steps.py: its
    # ArrayTarget took storage options, so since the storage backends run the old variants
    # at commit 7208010), new, or silent (new without its progress events);
    # wait: ac (progress callbacks, as_completed, then gather) or g (one gather).
    parser.add_argument("--variants", default="new:12:ac,new:3:ac,new:3:g")
    args = parser.parse_args()
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    if "old:" in args.variants:
        # At BEFORE the writer was gateway_dask_zarr/blocks.py (the package had no folders yet).
        old = subprocess.run(["git", "show", f"{BEFORE}:gateway_dask_zarr/blocks.py"], capture_output=True, check=True)
        BEFORE_BLOCKS.write_bytes(old.stdout)
    with seaweed(results / "steps-weed.log") as weed:
        endpoint = weed.endpoint_url
        store = JobStore(S3Backend(f"s3://{BUCKET}", endpoint))
        shape = tuple(int(x) for x in args.shape.split(","))
        chunks = tuple(int(x) for x in args.chunks.split(","))
        request = JobRequest(shape, chunks, args.dtype, 7)
        size = request.chunk_bytes + 4
        variants: dict[str, Callable[[str], dict[str, float]]] = {}
        with (
            dask.config.set(DASK_CONFIG),  # the app's cluster settings
            LocalCluster(n_workers=N_WORKERS, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0") as lc,
            Client(lc) as client,
        ):
            for spec in args.variants.split(","):
                writer, n, wait = spec.split(":")
                variants[spec] = partial(run_job, client, store, request, writer, int(n), wait)
            for run in variants.values():  # warm up: imports, connections
                store.delete(run(f"warm-{uuid.uuid4().hex[:6]}")["id"])
            timings: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
            floors: list[float] = []
            for rep in range(args.reps):
                floors.append(floor(endpoint, request.n_chunks, size))
                for spec, run in variants.items():
                    job_id = f"j{rep}-{uuid.uuid4().hex[:6]}"
                    timings[spec].append(steps(run(job_id)))
                    store.delete(job_id)
                print(f"rep {rep} done", file=sys.stderr, flush=True)
        out: dict[str, Any] = {"floor_s": statistics.median(floors), "variants": {}}
        for spec, runs in timings.items():
            out["variants"][spec] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        out["reps"] = args.reps
        out["load_average"] = os.getloadavg()
        print(json.dumps(out, indent=2))
        (results / "steps.md").write_text(markdown(out))


if __name__ == "__main__":
    main()
