"""Start and watch the processes the benchmark measures: the real app under gunicorn, its SeaweedFS."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
import requests

from gateway_dask_zarr.embedded_s3 import stop_process

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float, process: subprocess.Popen[Any] | None = None) -> None:
    """Poll url until it answers 200; fail if the process dies or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s")


def bench_env(**extra: str) -> dict[str, str]:
    """This environment without any store settings (the embedded store sets its own credentials)."""
    env = {k: v for k, v in os.environ.items() if k not in ("STORE_URL", "S3_ENDPOINT_URL", "S3_PUBLIC_ENDPOINT_URL")}
    env.update(extra)
    return env


class Service:
    """A child process serving HTTP on 127.0.0.1, stopped with SIGTERM."""

    def __init__(self, args: Sequence[str], log: Path, ready_path: str, timeout: float = 300, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "w")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [a.format(port=self.port) for a in args],
            cwd=ROOT,
            env=bench_env(PORT=str(self.port), HOST="127.0.0.1", **env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(self.url + ready_path, timeout, self.process)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        """SIGTERM, wait, then kill if it hangs."""
        stop_process(self.process, 60)
        self.log.close()


def gunicorn_app(log: Path, data_dir: Path) -> Service:
    """The real service, as `make run` starts it: gunicorn, embedded SeaweedFS on `data_dir`, LocalCluster."""
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    return Service(
        [gunicorn, "-c", "gunicorn.conf.py", "app:app"], log, "/readyz", LOG_LEVEL="INFO", DATA_DIR=str(data_dir)
    )


def app_processes(master: int) -> tuple[psutil.Process, list[psutil.Process], psutil.Process | None]:
    """The gunicorn worker (the app), its Dask worker processes, and its embedded S3 server."""
    app = psutil.Process(master).children()[0]
    workers, s3 = [], None
    for child in app.children():
        cmdline = " ".join(child.cmdline())
        if Path(child.cmdline()[0]).name == "weed":
            s3 = child
        elif "spawn_main" in cmdline or "forkserver" in cmdline:
            if "resource_tracker" not in cmdline:
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
