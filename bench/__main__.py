"""`python -m bench`: measure the embedded stack against its floor; write JSON and docs/benchmarks.md."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.floor import put_seconds, s3
from bench.load import Load, run_jobs
from bench.report import markdown
from gateway_dask_zarr.embedded_s3 import EMBEDDED_CREDENTIALS
from bench.stack import ROOT, PeakRSS, Service, app_processes, gunicorn_app, rss, stock_moto

RESULTS = ROOT / "bench" / "results"
DEFAULT = {"shape": "1000,1000", "chunks": "100,100", "dtype": "float32"}
LARGE = {"shape": "8000,8000", "chunks": "1000,1000", "dtype": "float64"}
BUCKET = "gateway"
MB = 2**20
# Zarr's crc32c codec appends 4 bytes to every chunk object.
CRC = 4


def log(message: str) -> None:
    """Progress on stderr, so that stdout is the table alone."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def floor(endpoint: str, name: str, count: int, size: int, repeats: int) -> dict[str, Any]:
    """Median seconds to PUT `count` objects of `size` bytes from one process."""
    runs = [put_seconds(endpoint, f"{BUCKET}/floor-{name}-{i}", count, size) for i in range(repeats)]
    return {"objects": count, "object_bytes": size, "runs_s": runs, "median_s": statistics.median(runs)}


def clear_bucket(endpoint: str) -> None:
    """Delete every job array, so that the S3 server's memory does not grow run after run."""
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
        "server_seconds_median": statistics.median(d.get("seconds") or 0 for d in load.documents) if load.documents else None,
        "retries": load.retries,
        "refusals": load.refusals,
    }


def measure_app(results: dict[str, Any]) -> None:
    """Measurements (a) to (e) on the real app, and the S3 server against stock moto."""
    log("starting the app: gunicorn, embedded S3, LocalCluster")
    app = gunicorn_app(RESULTS / "app.log")
    try:
        warm = run_jobs(app.url, DEFAULT, 1, 3)
        endpoint = warm.documents[0]["endpoint_url"]
        results["endpoint"] = "embedded S3 (moto's S3 backend, S3-only, werkzeug threads)"
        app_process, workers, s3_process = app_processes(app.process.pid)
        results["processes"] = {"app": app_process.pid, "workers": [w.pid for w in workers], "s3": s3_process.pid if s3_process else None}
        clear_bucket(endpoint)

        log("(a) floor of the default job: 100 PUTs of 40 kB")
        results["default_floor"] = floor(endpoint, "default", 100, 100 * 100 * 4 + CRC, 7)
        log("(b) default job, 20 sequential GET /run")
        watched = {"app": app_process, **{f"worker-{i}": w for i, w in enumerate(workers)}}
        with PeakRSS(watched) as default_rss:
            sequential = run_jobs(app.url, DEFAULT, 1, 20)
        results["default_job"] = summary(sequential)
        results["default_job"]["runs_s"] = sequential.latencies
        clear_bucket(endpoint)

        log("(c) jobs/s with 1, 4 and 8 concurrent clients")
        results["throughput"] = {}
        for clients, jobs in ((1, 10), (4, 24), (8, 32)):
            results["throughput"][str(clients)] = summary(run_jobs(app.url, DEFAULT, clients, jobs))
            clear_bucket(endpoint)

        log("(d) floor of the large job: 64 PUTs of 8 MB")
        results["large_floor"] = floor(endpoint, "large", 64, 1000 * 1000 * 8 + CRC, 3)
        log("(d, e) large job 8000x8000 float64 in 1000x1000 chunks, 3 runs, RSS sampled")
        time.sleep(1)
        idle = {name: rss(p) for name, p in watched.items()}
        large_runs = []
        with PeakRSS(watched) as large_rss:
            for _ in range(3):
                large_runs.extend(run_jobs(app.url, LARGE, 1, 1).latencies)
                clear_bucket(endpoint)
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

        log("(f) the naive pattern on the same S3 server and a LocalCluster of the same shape")
        naive = Service(
            [sys.executable, "-m", "bench.naive", "--port", "{port}", "--root", f"s3://{BUCKET}", "--endpoint-url", endpoint],
            RESULTS / "naive.log",
            "/readyz",
        )
        try:
            run_jobs(naive.url, DEFAULT, 1, 1)
            naive_seq = run_jobs(naive.url, DEFAULT, 1, 5)
            clear_bucket(endpoint)
            naive_four = run_jobs(naive.url, DEFAULT, 4, 12)
            clear_bucket(endpoint)
        finally:
            naive.close()
        results["naive"] = {"sequential": summary(naive_seq), "4": summary(naive_four)}
    finally:
        log("stopping the app")
        app.close()

    log("the embedded S3 server against stock moto: the default floor on each")
    moto = stock_moto(RESULTS / "moto.log")
    try:
        s3(moto.url).mkdir(BUCKET)
        results["stock_moto_floor"] = floor(moto.url, "default", 100, 100 * 100 * 4 + CRC, 7)
    finally:
        moto.close()


def machine() -> dict[str, Any]:
    """Core count, load and the versions that matter."""
    packages = ["dask", "distributed", "zarr", "numpy", "s3fs", "aiobotocore", "moto", "werkzeug", "gunicorn", "flask"]
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
    # The benchmark's own S3 clients use the embedded server's credentials, as the app does.
    for name, value in EMBEDDED_CREDENTIALS.items():
        os.environ.setdefault(name, value)
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
