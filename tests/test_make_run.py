"""`make run` as a user runs it: the embedded default (SeaweedFS on DATA_DIR) serves a verified
array; Ctrl-C leaves nothing running; a second `make run` on the same DATA_DIR still has the
array, and SIGTERM to make leaves nothing of it running either."""

from __future__ import annotations

from pathlib import Path

import requests
from helpers import assert_verified
from serve import make_run


def test_make_run_serves_survives_ctrl_c_with_its_data_and_stops_on_sigterm(tmp_path: Path) -> None:
    # One test, two runs: a graceful stop of SeaweedFS takes about 16 s, so only the first run's
    # store (its directory is served again) is stopped gracefully.
    data_dir = tmp_path / "data"
    with make_run(data_dir, tmp_path / "first.log") as run:
        # gunicorn master, its worker, SeaweedFS, the Dask scheduler's and workers' processes.
        assert len(run.started) >= 6, [p.cmdline() for p in run.started]
        doc = requests.get(f"{run.url}/run", params={"seed": 7}, timeout=120).json()
        assert doc["endpoint_url"].startswith("http://127.0.0.1:")
        assert doc["url"].startswith("s3://gateway/")
        assert_verified(doc, anon=True)
        output = run.log.read_text()
        assert f"serving on {run.url}" in output and f"curl '{run.url}/run" in output
        run.stop("ctrl-c-to-the-group")
    # The write credentials were made on first start, for the owner alone.
    assert (data_dir / "s3" / "identities.json").stat().st_mode & 0o777 == 0o600
    with make_run(data_dir, tmp_path / "second.log") as run:
        listed = requests.get(f"{run.url}/jobs", timeout=30).json()
        assert [j["id"] for j in listed] == [doc["id"]]
        again = requests.get(f"{run.url}/jobs/{doc['id']}", timeout=30).json()
        # Read from the second run's store, chunk by chunk, without credentials as anyone may.
        assert_verified(again, anon=True)
        # Nothing serves the directory again: its store is killed, not stopped (about 16 s);
        # the rest (gunicorn, the Dask processes, SeaweedFS's socket files) SIGTERM to make stops.
        run.weed.kill()
        run.stop("sigterm-to-make")
