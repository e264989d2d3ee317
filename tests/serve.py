"""Serve the app under gunicorn or `make run` (or any HTTP child process) on a free loopback port, ready.

For tests and bench/.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import psutil
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


def spawn_logged(args: Sequence[str], log_path: Path, **popen: Any) -> subprocess.Popen[bytes]:
    """Start `args` with its output (stdout and stderr) in `log_path`."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, **popen)


def wait_answering(process: subprocess.Popen[Any], url: str, timeout: float, log: Any, stop: Any) -> None:
    """Poll `url` until it answers 200; else `stop()` and RuntimeError with `log()` (it exited, or `timeout` passed)."""
    deadline = time.monotonic() + timeout
    while http_status(url) != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            why = f"exited with {process.returncode}" if process.poll() is not None else f"no answer in {timeout} s"
            stop()
            raise RuntimeError(f"{process.args[0]}: {why}:\n{log()}")
        time.sleep(0.2)


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
        new_session: bool = False,
        cwd: Path = ROOT,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process: subprocess.Popen[Any] = subprocess.Popen(
                [a.format(port=self.port) for a in args],
                cwd=cwd,
                env={**env, "HOST": "127.0.0.1", "PORT": str(self.port)},
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, so that a test can signal the group as a terminal does.
                start_new_session=new_session,
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

    def kill(self) -> None:
        """SIGKILL the process and every process under it at once, as a node loss does."""
        if self.process.poll() is None:
            root = psutil.Process(self.process.pid)
            for process in [root, *root.children(recursive=True)]:
                with suppress(psutil.NoSuchProcess):
                    process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def gunicorn(env: Mapping[str, str], log_path: Path, **kwargs: Any) -> Served:
    """`gunicorn -c gunicorn.conf.py app:app`, as `make run` starts it, ready when /readyz is 200."""
    return Served(GUNICORN, env, log_path, **kwargs)


class Replica:
    """A replica of the app under gunicorn on a shared bucket, with its own LocalCluster; started again by start()."""

    def __init__(self, name: str, store_url: str, endpoint: str, log_dir: Path, **env: str) -> None:
        self.name, self.log_dir, self.starts = name, log_dir, 0
        self.env = {**os.environ, "STORE_URL": store_url, "S3_ENDPOINT_URL": endpoint, **env}
        self.start()

    def start(self) -> None:
        """Start it (again): each start's log is its own file, {name}-{start}.log."""
        self.starts += 1
        self.served = gunicorn(self.env, self.log_dir / f"{self.name}-{self.starts}.log", timeout=240)
        self.url = self.served.url

    def kill(self) -> None:
        """SIGKILL every process of the replica at once, as a node loss does."""
        self.served.kill()

    def job(self, job_id: str) -> dict[str, Any]:
        """A job's document as this replica answers it."""
        return requests.get(f"{self.url}/jobs/{job_id}", timeout=120).json()


R = TypeVar("R", bound="Replica")


@contextmanager
def replica_pair(make_a: Callable[[], R], make_b: Callable[[], R]) -> Iterator[tuple[R, R]]:
    """Replicas A and B, made in turn; both killed at the end, whatever happened (nothing is
    checked of their ends, and a graceful stop takes seconds)."""
    with ExitStack() as stack:
        a = make_a()
        stack.callback(a.kill)
        b = make_b()
        stack.callback(b.kill)
        yield a, b


def user_env() -> dict[str, str]:
    """This environment without AWS_* and store settings: a fresh shell's."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STORE_", "S3_"))}


class MakeRun:
    """A running `make run` and what it started: processes, listening ports, SeaweedFS's socket files."""

    def __init__(self, served: Served) -> None:
        self.make, self.url, self.log = served.process, served.url, served.log_path
        self.started = psutil.Process(self.make.pid).children(recursive=True)
        self.ports = {c.laddr.port for p in self.started for c in _connections(p) if c.status == psutil.CONN_LISTEN}
        (self.weed,) = [p for p in self.started if Path(p.cmdline()[0]).name == "weed"]
        grpc = [int(a.split("=")[1]) for a in self.weed.cmdline() if re.match(r"-\w+\.port\.grpc=", a)]
        self.socket_files = [
            Path(f"/tmp/seaweedfs-{s}-grpc-{p}.sock") for s in ("master", "volume", "filer", "s3") for p in grpc
        ]

    def stop(self, how: str = "ctrl-c-to-the-group") -> None:
        """Stop it as a user would, and check that nothing of it is left."""
        if how == "sigterm-to-make":
            self.make.send_signal(signal.SIGTERM)
        else:
            # What a terminal does on Ctrl-C: SIGINT to every process of the foreground group.
            os.killpg(self.make.pid, signal.SIGINT)
        self.make.wait(timeout=120)
        self.assert_nothing_left()
        if how == "ctrl-c-to-the-group":
            # A quiet stop: no worker's KeyboardInterrupt traceback, one line saying what stops.
            log = Path(self.log).read_text()
            assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
            assert log.count("stopping: running jobs are handed back") == 1, log

    def assert_nothing_left(self) -> None:
        """No process, listening port or SeaweedFS socket file of this run is left."""
        _gone, alive = psutil.wait_procs(self.started, timeout=60)
        assert alive == [], [p.cmdline() for p in alive]
        # Its ports, held by a process of its session: another test's server may since have
        # been given a port number this run had freed.
        held = [
            (c.laddr.port, c.pid)
            for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port in self.ports and _session(c.pid) == self.make.pid
        ]
        assert held == [], held
        left = [f for f in self.socket_files if f.exists()]
        assert left == [], left


def _session(pid: int | None) -> int | None:
    """The session id of a process (None if it is gone or unknown)."""
    try:
        return os.getsid(pid) if pid else None
    except OSError:
        return None


def _connections(process: psutil.Process) -> list[Any]:
    try:
        return process.net_connections("tcp")
    except psutil.Error:
        return []


@contextmanager
def make_run(data_dir: Path, log_path: Path) -> Iterator[MakeRun]:
    """`make run` on a free port and `data_dir`, with no AWS_* or store settings, until /readyz is 200."""
    served = Served(
        ["make", "run", "PORT={port}", f"DATA_DIR={data_dir}"], user_env(), log_path, ready_path=None, new_session=True
    )
    try:
        served.wait_for("/readyz", timeout=240, interval=0.5)
        yield MakeRun(served)
    finally:
        if served.process.poll() is None:
            os.killpg(served.process.pid, signal.SIGKILL)
