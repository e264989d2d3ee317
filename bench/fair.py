"""Issue 21's row: a default job while the issue's 1.6 GB job runs, against the same job on the idle cluster."""

from __future__ import annotations

import statistics
import time
from typing import Any

import requests

from bench.load import run_jobs

DEFAULT = {"shape": "1000,1000", "chunks": "100,100", "dtype": "float32"}
# The large job: 20000 x 10000 float64 in 1000 x 1000 chunks (1.6 GB, 200 chunks of 8 MB).
LARGE = {"shape": [20000, 10000], "chunks": [1000, 1000], "dtype": "float64"}
REPS = 5


def measure(url: str) -> dict[str, Any]:
    """REPS default jobs idle, then REPS beside the large job (submitted once, polled until it ends)."""
    idle = run_jobs(url, DEFAULT, 1, REPS).latencies
    accepted = requests.post(f"{url}/jobs", json=LARGE, timeout=30)
    accepted.raise_for_status()
    link = f"{url}{accepted.json()['links']['self']}"
    deadline = time.monotonic() + 600
    while requests.get(link, timeout=30).json()["progress"]["done"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    beside = run_jobs(url, DEFAULT, 1, REPS).latencies
    still_running = requests.get(link, timeout=30).json()["status"] == "running"
    while (large := requests.get(link, timeout=30).json())["status"] in ("queued", "running"):
        if time.monotonic() > deadline:
            raise TimeoutError("the large job did not end within 600 s")
        time.sleep(0.5)
    requests.delete(link, timeout=30)
    return {
        "idle_s": idle,
        "beside_s": beside,
        "ratio": statistics.median(beside) / statistics.median(idle),
        "measured_beside": still_running,
        "large_status": large["status"],
        "large_s": large["seconds"],
    }
