"""Issue 21: a default job of another user is not stuck behind a 1.6 GB job (real LocalCluster and S3)."""

from __future__ import annotations

import statistics
import time
from typing import Any

from helpers import open_job_array, wait_for
from test_fair_shares import ALICE_TOKEN, BOB_TOKEN, TOKENS, as_user

from gateway_dask_zarr.worker.verify import mismatched_blocks

# The large job: 20000 x 10000 float64 in 1000 x 1000 chunks (1.6 GB, 200 chunks of 8 MB).
LARGE = {"shape": [20000, 10000], "chunks": [1000, 1000], "dtype": "float64", "seed": 21}
# Before issue 21 the default job took 83x its idle latency beside it; all tasks at once with
# priorities, 4.9x here; the feeder (one task per thread, owners sharing), 4.7x on 2 shared cores;
# short jobs first (the large job's tasks drain, then the default job has the workers), 2.0-2.3x.
MAX_RATIO = 5.0


def default_job_s(client: Any) -> float:
    """One default job (GET /run, no parameters) from request to complete answer, in seconds."""
    started = time.monotonic()
    response = client.get("/run")
    seconds = time.monotonic() - started
    document = response.get_json()
    assert response.status_code == 200 and document["status"] == "complete", document
    assert document["queued_s"] is not None and document["queued_s"] >= 0
    return seconds


def test_a_default_job_completes_while_a_large_job_of_another_user_runs(make_app: Any, settings: Any) -> None:
    app = make_app(settings, auth="token", api_tokens=TOKENS)
    alice, bob = as_user(app, ALICE_TOKEN), as_user(app, BOB_TOKEN)
    idle = statistics.median(default_job_s(bob) for _ in range(3))
    accepted = alice.post("/jobs", json=LARGE)
    assert accepted.status_code == 202, accepted.get_json()
    link = accepted.get_json()["links"]["self"]
    done = wait_for(lambda: alice.get(link).get_json()["progress"]["done"], timeout=120)
    busy = statistics.median(default_job_s(bob) for _ in range(3))
    # Measured beside the large job: it was still running when the last default job ended, and moving.
    meanwhile = alice.get(link).get_json()
    assert meanwhile["status"] == "running" and meanwhile["progress"]["done"] > done
    assert busy / idle <= MAX_RATIO, f"default job {busy:.3f} s beside the large job, {idle:.3f} s idle"
    ended = lambda: (d := alice.get(link).get_json())["status"] not in ("queued", "running") and d  # noqa: E731
    large = wait_for(ended, timeout=300)
    assert large["status"] == "complete", large
    assert large["queued_s"] is not None and 0 <= large["queued_s"] <= large["seconds"] + 5
    assert large["chunks_written"] == 200 and large["bytes_written"] >= 1_600_000_000
    array = open_job_array(large)
    # Corners, edges and a diagonal of the 20 x 10 grid: the rule holds where the tasks met.
    sample = [(i, j) for i in range(20) for j in range(10) if i in (0, 19) or j in (0, 9) or i == 2 * j]
    assert mismatched_blocks(array, LARGE["seed"], sample) == []
