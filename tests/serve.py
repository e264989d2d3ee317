"""Serve the app under gunicorn (or any HTTP child process) on a free loopback port, ready: for tests and bench/."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = [str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py", "app:app"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_status(url: str) -> int | None:
    """The status of a GET, or None when nothing answers in 5 s."""
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        # Refused before the server listens; timed out while it is still starting.
        return None


class Served:
    """A child process serving HTTP on 127.0.0.1:{port}, waited on until `ready_path` answers 200."""

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        *,
        ready_path: str | None = "/readyz",
        timeout: float = 300,
        interval: float = 0.2,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process: subprocess.Popen[Any] = subprocess.Popen(
                [a.format(port=self.port) for a in args],
                cwd=ROOT,
                env={**env, "HOST": "127.0.0.1", "PORT": str(self.port)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if ready_path is not None:
            try:
                self.wait_for(ready_path, timeout, interval)
            except Exception:
                self.close()
                raise

    def wait_for(self, path: str, timeout: float, interval: float = 0.2) -> None:
        """Poll a path until it answers 200; fail with the log if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.process.args} exited with {self.process.returncode}:\n{self.log()}")
            if http_status(self.url + path) == 200:
                return
            time.sleep(interval)
        raise RuntimeError(f"{self.url}{path} did not answer 200 within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        """What the process has written so far."""
        return self.log_path.read_text(errors="replace")

    def close(self, timeout: float = 60) -> int:
        """SIGTERM, wait up to `timeout` seconds, then SIGKILL; return the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def gunicorn(env: Mapping[str, str], log_path: Path, **kwargs: Any) -> Served:
    """`gunicorn -c gunicorn.conf.py app:app`, as `make run` starts it, ready when /readyz is 200."""
    return Served(GUNICORN, env, log_path, **kwargs)
