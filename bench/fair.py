"""Issue 21's row: a default job while the issue's 1.6 GB job runs, against the same job on the idle cluster.

Alone: `python -m bench.fair` (its own SeaweedFS and app) measures this row and, in the same
run, the large job's bandwidth against its floor (`__main__.large_job`), and prints both as JSON.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import requests

from bench.load import run_jobs
from bench.stack import ROOT, app_on_seaweed, app_processes

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
    done_before = requests.get(link, timeout=30).json()["progress"]["done"]
    beside = run_jobs(url, DEFAULT, 1, REPS).latencies
    meanwhile = requests.get(link, timeout=30).json()
    while (large := requests.get(link, timeout=30).json())["status"] in ("queued", "running"):
        if time.monotonic() > deadline:
            raise TimeoutError("the large job did not end within 600 s")
        time.sleep(0.5)
    requests.delete(link, timeout=30)
    return {
        "idle_s": idle,
        "beside_s": beside,
        "ratio": statistics.median(beside) / statistics.median(idle),
        "measured_beside": meanwhile["status"] == "running",
        # The large job's chunks written while the default jobs ran: its progress kept moving.
        "large_done_meanwhile": meanwhile["progress"]["done"] - done_before,
        "large_status": large["status"],
        "large_s": large["seconds"],
    }


def main() -> None:
    """Its own SeaweedFS and app: the large job against its floor, then this row; print both as JSON."""
    from bench.__main__ import large_job  # here: bench/__main__.py imports this module

    with app_on_seaweed(ROOT / "bench" / "results", "fair") as (weed, app):
        run_jobs(app.url, DEFAULT, 1, 3)
        app_process, workers = app_processes(app.process.pid)
        watched = {"app": app_process, **{f"worker-{i}": w for i, w in enumerate(workers)}}
        large = large_job(app.url, weed.endpoint_url, watched, rounds=3)
        share = large["mb_per_s"] / large["floor_mb_per_s"]
        figures = {"large_share": share, "large": large, "fair": measure(app.url)}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
