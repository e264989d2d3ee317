"""Start and watch the processes the benchmark measures: SeaweedFS, the real app under gunicorn and its workers."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from gateway_dask_zarr.storage.embedded import BUCKET, EmbeddedS3
from tests.serve import ROOT, Served, gunicorn

__all__ = ["ROOT", "CpuMeter", "PeakRSS", "app_processes", "gunicorn_app", "rss", "seaweed"]


@contextmanager
def seaweed(log: Path, bucket: str = BUCKET) -> Iterator[EmbeddedS3]:
    """The embedded default's SeaweedFS in a temporary directory, removed after; its log copied to `log`.

    The writer's credentials go into this process's environment: the bench's own S3 clients
    (s3fs, obstore) read them from there.
    """
    directory = Path(tempfile.mkdtemp(prefix="bench-weed-"))
    server = EmbeddedS3(directory, bucket)
    try:
        server.start()
        os.environ.update(server.credentials)
        yield server
    finally:
        server.close()
        if server.log_path.exists():
            shutil.copyfile(server.log_path, log)
        shutil.rmtree(directory, ignore_errors=True)


def bench_env(**extra: str) -> dict[str, str]:
    """This environment without any store settings, then `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("STORE_URL", "S3_ENDPOINT_URL", "S3_PUBLIC_ENDPOINT_URL")}
    env.update(extra)
    return env


def gunicorn_app(log: Path, **env: str) -> Served:
    """The real service, as `make run` starts it (gunicorn, LocalCluster), with `env` (its store)."""
    return gunicorn(bench_env(LOG_LEVEL="INFO", **env), log)


@contextmanager
def app_on_seaweed(log_dir: Path, name: str = "") -> Iterator[tuple[EmbeddedS3, Served]]:
    """A SeaweedFS and the app on its bucket, as `make bench` starts them; logs weed{-name}.log, app{-name}.log."""
    log_dir.mkdir(parents=True, exist_ok=True)
    suffix = f"-{name}" if name else ""
    with seaweed(log_dir / f"weed{suffix}.log") as weed:
        store = {"STORE_URL": f"s3://{BUCKET}", "S3_ENDPOINT_URL": weed.endpoint_url, **weed.credentials}
        app = gunicorn_app(log_dir / f"app{suffix}.log", **store)
        try:
            yield weed, app
        finally:
            app.close()


def app_processes(master: int) -> tuple[psutil.Process, list[psutil.Process]]:
    """The gunicorn worker (the app, with the LocalCluster's scheduler in it) and its Dask worker processes."""
    app = psutil.Process(master).children()[0]
    workers = []
    for child in app.children():
        cmdline = " ".join(child.cmdline())
        if ("spawn_main" in cmdline or "forkserver" in cmdline) and "resource_tracker" not in cmdline:
            workers.append(child)
    return app, workers


def rss(process: psutil.Process) -> int:
    """Resident set size in bytes (0 once the process has gone)."""
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


class PeakRSS:
    """Sample the RSS of some processes in a thread; keep each one's peak."""

    def __init__(self, processes: dict[str, psutil.Process], interval: float = 0.02) -> None:
        self.processes = processes
        self.interval = interval
        self.peak = {name: rss(p) for name, p in processes.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for name, process in self.processes.items():
                self.peak[name] = max(self.peak[name], rss(process))

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(process: psutil.Process) -> float:
    """User and system CPU seconds of a process so far (0 once it has gone)."""
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


class CpuMeter:
    """CPU seconds used so far by each group of processes (Linux counts them in 10 ms ticks: sum many runs)."""

    def __init__(self, groups: dict[str, list[psutil.Process]]) -> None:
        self.groups = groups

    def __call__(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(p) for p in processes) for name, processes in self.groups.items()}
