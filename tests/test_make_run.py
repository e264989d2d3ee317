"""`make run` as a user runs it: the embedded default (SeaweedFS on DATA_DIR) serves a verified
array; stopping leaves nothing running; a second `make run` on the same DATA_DIR still has it."""

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
from helpers import assert_verified, free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent


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
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STORE_", "S3_"))}
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


def _stop(run: MakeRun, how: str) -> None:
    if how == "sigterm-to-make":
        run.make.send_signal(signal.SIGTERM)
    else:
        # What a terminal does on Ctrl-C: SIGINT to every process of the foreground group.
        os.killpg(run.make.pid, signal.SIGINT)
    run.make.wait(timeout=120)
    run.assert_nothing_left()


def test_make_run_serves_then_sigterm_leaves_nothing_running(tmp_path: Path) -> None:
    with make_run(tmp_path / "data", tmp_path / "make-run.log") as run:
        # gunicorn master, its worker, SeaweedFS, the Dask scheduler's and workers' processes.
        assert len(run.started) >= 6, [p.cmdline() for p in run.started]
        doc = requests.get(f"{run.url}/run", params={"seed": 7}, timeout=120).json()
        assert doc["endpoint_url"].startswith("http://127.0.0.1:")
        assert doc["url"].startswith("s3://gateway/")
        assert_verified(doc, anon=True)
        output = run.log.read_text()
        assert f"serving on {run.url}" in output and f"curl '{run.url}/run" in output
        _stop(run, "sigterm-to-make")


def test_after_ctrl_c_a_second_make_run_on_the_same_data_dir_still_has_the_array(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with make_run(data_dir, tmp_path / "first.log") as run:
        doc = requests.get(f"{run.url}/run", params={"seed": 8, "shape": "600,500"}, timeout=120).json()
        assert_verified(doc, anon=True)
        _stop(run, "ctrl-c-to-the-group")
    # The write credentials were made on first start, for the owner alone.
    assert (data_dir / "s3" / "identities.json").stat().st_mode & 0o777 == 0o600
    with make_run(data_dir, tmp_path / "second.log") as run:
        listed = requests.get(f"{run.url}/jobs", timeout=30).json()["jobs"]
        assert [j["id"] for j in listed] == [doc["id"]]
        again = requests.get(f"{run.url}/jobs/{doc['id']}", timeout=30).json()
        # Read from the second run's store, chunk by chunk, without credentials as anyone may.
        assert_verified(again, anon=True)
        _stop(run, "ctrl-c-to-the-group")
