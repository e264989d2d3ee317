"""Start and watch the processes the benchmark measures: the real app under gunicorn, moto."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import psutil

from gateway_dask_zarr.embedded_s3 import EMBEDDED_CREDENTIALS
from tests.serve import Served, gunicorn


def bench_env(**extra: str) -> dict[str, str]:
    """This environment with the embedded credentials, without any store settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("STORE_URL", "S3_ENDPOINT_URL", "S3_PUBLIC_ENDPOINT_URL")}
    env.update(EMBEDDED_CREDENTIALS)
    env.update(extra)
    return env


def gunicorn_app(log: Path) -> Served:
    """The real service, as `make run` starts it: gunicorn, embedded S3, LocalCluster."""
    return gunicorn(bench_env(LOG_LEVEL="INFO"), log)


def stock_moto(log: Path) -> Served:
    """moto's stock server (service detection, access log): the reference for the embedded one."""
    moto = str(Path(sys.executable).with_name("moto_server"))
    return Served(
        [moto, "-H", "127.0.0.1", "-p", "{port}"], bench_env(), log, ready_path="/moto-api/data.json", timeout=60
    )


def app_processes(master: int) -> tuple[psutil.Process, list[psutil.Process], psutil.Process | None]:
    """The gunicorn worker (the app), its Dask worker processes, and its embedded S3 server."""
    app = psutil.Process(master).children()[0]
    workers, s3 = [], None
    for child in app.children():
        cmdline = " ".join(child.cmdline())
        if "embedded_s3" in cmdline:
            s3 = child
        elif ("spawn_main" in cmdline or "forkserver" in cmdline) and "resource_tracker" not in cmdline:
            workers.append(child)
    return app, workers, s3


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
