"""`make run` as a user runs it: the embedded default serves a verified array, SIGTERM stops it all."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
import requests
from helpers import assert_verified, wait_for
from serve import free_port, http_status

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("stop", ["sigterm-to-make", "ctrl-c-to-the-group"])
def test_make_run_serves_then_stopping_leaves_nothing_running(tmp_path: Path, stop: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STORE_", "S3_"))}
    log = (tmp_path / "make-run.log").open("w")
    make = subprocess.Popen(
        ["make", "run", f"PORT={port}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_for(lambda: http_status(f"{url}/readyz") == 200 or make.poll() is not None, timeout=240, interval=0.5)
        assert make.poll() is None, (tmp_path / "make-run.log").read_text()
        started = psutil.Process(make.pid).children(recursive=True)
        # gunicorn master, its worker, the S3 server, the Dask scheduler's and workers' processes.
        assert len(started) >= 6, [p.cmdline() for p in started]

        doc = requests.get(f"{url}/run", params={"seed": 7}, timeout=120).json()
        assert doc["endpoint_url"].startswith("http://127.0.0.1:")
        assert doc["url"].startswith("s3://gateway/")
        assert_verified(doc)
        output = (tmp_path / "make-run.log").read_text()
        assert f"serving on {url}" in output and f"curl '{url}/run" in output

        if stop == "sigterm-to-make":
            make.send_signal(signal.SIGTERM)
        else:
            # What a terminal does on Ctrl-C: SIGINT to every process of the foreground group.
            os.killpg(make.pid, signal.SIGINT)
        make.wait(timeout=120)
        _gone, alive = psutil.wait_procs(started, timeout=60)
        assert alive == [], [p.cmdline() for p in alive]
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
        log.close()
