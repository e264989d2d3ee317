"""`python -m bench.healthz`: /healthz latency idle, under the 50-client load from this process, and from a child."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.__main__ import DEFAULT, HealthProbe, clear_bucket, percentile, run_jobs
from bench.stack import app_on_seaweed

# The same load as `healthz_under_load`, from a process of its own (no GIL shared with the probe).
CHILD = (
    "import sys; from bench.load import run_jobs; from bench.__main__ import DEFAULT; "
    "run_jobs(sys.argv[1], DEFAULT, 50, 100)"
)


def summary(name: str, latencies: list[float]) -> str:
    """p50, p99, the count over 50 ms and the worst probes, in ms."""
    ms = [1000 * x for x in latencies]
    worst = [round(m) for m in sorted(ms)[-12:]]
    over = sum(m > 50 for m in ms)
    p50, p99 = statistics.median(ms), percentile(ms, 99)
    return f"{name}: {len(ms)} probes, p50 {p50:.1f} ms, p99 {p99:.1f} ms, {over} over 50 ms, worst {worst}"


def main() -> None:
    """Start SeaweedFS and the app as the bench does; probe /healthz idle, then under each load."""
    with tempfile.TemporaryDirectory() as tmp, app_on_seaweed(Path(tmp)) as (weed, app):
        run_jobs(app.url, DEFAULT, 1, 3)
        with HealthProbe(app.url) as idle:
            time.sleep(10)
        print(summary("idle", idle.latencies), flush=True)
        with HealthProbe(app.url) as here:
            run_jobs(app.url, DEFAULT, 50, 100)
        print(summary("50 clients in this process", here.latencies), flush=True)
        clear_bucket(weed.endpoint_url)
        with HealthProbe(app.url) as child:
            subprocess.run([sys.executable, "-c", CHILD, app.url], check=True)
        print(summary("50 clients in a child process", child.latencies), flush=True)
        clear_bucket(weed.endpoint_url)


if __name__ == "__main__":
    main()
