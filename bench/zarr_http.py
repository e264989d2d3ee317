"""Reading a 512 MiB array through /jobs/<id>/zarr/: the app's RSS and the bytes it sends stay flat.

The reader (zarr over fsspec's HTTP filesystem, as a notebook would) reaches the app through a
counting TCP relay, so every byte the app sends to the reader is counted; the 307s send it to
SeaweedFS directly. The same array read straight from S3 (s3fs) is the floor. Standalone:
`python -m bench.zarr_http` (its own SeaweedFS and app); `make bench` runs `measure` in its stack.
"""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import threading
import time
from typing import Any

import numpy as np
import psutil
import requests
import zarr

from bench.stack import ROOT, PeakRSS, app_on_seaweed, app_processes, rss

# 8192 x 16384 float32 = 512 MiB in 128 chunks of 4 MiB.
JOB = {"shape": [8192, 16384], "chunks": [1024, 1024], "dtype": "float32", "seed": 3}
ARRAY_BYTES = 8192 * 16384 * 4
ROUNDS = 3
MB = 1e6


class CountingRelay:
    """A TCP relay on 127.0.0.1 to `target_port` that counts the bytes the target sends back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.sent_by_target = 0
        self._lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        try:
            while data := source.recv(1 << 16):
                if counted:
                    with self._lock:
                        self.sent_by_target += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop accepting."""
        self.listener.close()


def _read_sum(array: zarr.Array) -> float:
    """Read the whole array a band of chunk rows at a time (the bench holds 64 MiB, not 512)."""
    total = 0.0
    band = array.chunks[0]
    for start in range(0, array.shape[0], band):
        total += float(np.asarray(array[start : start + band]).sum(dtype=np.float64))
    return total


def measure(app_url: str, endpoint: str, app: psutil.Process) -> dict[str, Any]:
    """Make the 512 MiB job, then read it ROUNDS times through the app and ROUNDS times from S3, in alternation."""
    made = requests.post(f"{app_url}/jobs", json=JOB, timeout=60)
    made.raise_for_status()
    job_url = f"{app_url}{made.json()['links']['self']}"
    deadline = time.monotonic() + 600
    while (document := requests.get(job_url, timeout=30).json())["status"] not in ("complete", "failed"):
        if time.monotonic() > deadline:
            raise RuntimeError("the 512 MiB job did not finish in 10 minutes")
        time.sleep(0.5)
    assert document["status"] == "complete", document
    port = int(app_url.rsplit(":", 1)[1])
    relay = CountingRelay(port)
    through = f"http://127.0.0.1:{relay.port}/jobs/{document['id']}/zarr/"
    s3_options = {"endpoint_url": endpoint}
    rows: list[dict[str, float]] = []
    try:
        for _ in range(ROUNDS):
            before_rss, before_sent = rss(app), relay.sent_by_target
            with PeakRSS({"app": app}) as peak:
                started = time.perf_counter()
                via_app = _read_sum(zarr.open_array(through, mode="r", storage_options={"headers": {}}))
                http_s = time.perf_counter() - started
            started = time.perf_counter()
            direct = _read_sum(zarr.open_array(document["url"], mode="r", storage_options=s3_options))
            s3_s = time.perf_counter() - started
            assert via_app == direct, (via_app, direct)
            rows.append(
                {
                    "http_s": http_s,
                    "s3_s": s3_s,
                    "app_sent_bytes": relay.sent_by_target - before_sent,
                    "app_rss_before_mb": before_rss / MB,
                    "app_rss_peak_mb": peak.peak["app"] / MB,
                }
            )
    finally:
        relay.close()
        requests.delete(job_url, timeout=120)
    median = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
    return {
        "array_bytes": ARRAY_BYTES,
        "rounds": rows,
        "median": median,
        "app_sent_share": median["app_sent_bytes"] / ARRAY_BYTES,
        "app_rss_growth_mb": median["app_rss_peak_mb"] - median["app_rss_before_mb"],
        "http_over_s3": median["http_s"] / median["s3_s"],
    }


def main() -> None:
    """Its own SeaweedFS and app; print the figures as JSON."""
    with app_on_seaweed(ROOT / "bench" / "results", "zarr-http") as (weed, app):
        figures = measure(app.url, weed.endpoint_url, app_processes(app.process.pid)[0])
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
