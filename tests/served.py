"""`make run` as a user runs it, in a test: on a free port and a given DATA_DIR, with no AWS_* or store settings."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import requests
from helpers import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent


def user_env() -> dict[str, str]:
    """This environment without AWS_* and store settings: a fresh shell's."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STORE_", "S3_"))}


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        # Refused before gunicorn listens; timed out while its worker is still starting the cluster.
        return False


class MakeRun:
    """A running `make run` and what it started."""

    def __init__(self, make: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.make, self.url, self.log = make, url, log
        self.started = psutil.Process(make.pid).children(recursive=True)
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

    def assert_nothing_left(self) -> None:
        """No process, listening port or SeaweedFS socket file of this run is left."""
        _gone, alive = psutil.wait_procs(self.started, timeout=60)
        assert alive == [], [p.cmdline() for p in alive]
        listening = {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
        assert self.ports & listening == set()
        assert [f for f in self.socket_files if f.exists()] == []


def _connections(process: psutil.Process) -> list[Any]:
    try:
        return process.net_connections("tcp")
    except psutil.Error:
        return []


@contextmanager
def make_run(data_dir: Path, log: Path) -> Iterator[MakeRun]:
    """`make run` on a free port and `data_dir`, with no AWS_* or store settings, until ready."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = user_env()
    with log.open("w") as out:
        make = subprocess.Popen(
            ["make", "run", f"PORT={port}", f"DATA_DIR={data_dir}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(lambda: _ready(url) or make.poll() is not None, timeout=240, interval=0.5)
            assert make.poll() is None, log.read_text()
            yield MakeRun(make, url, log)
        finally:
            if make.poll() is None:
                os.killpg(make.pid, signal.SIGKILL)
