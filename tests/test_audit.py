"""`gateway-dask-zarr check`: planted inconsistencies in a real store are found, repaired, and then all adds up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import obstore
import zarr
from conftest import BUCKET

from gateway_dask_zarr.jobs.records import INDEX, Records, index_name, usage_key
from gateway_dask_zarr.server.parts import parts
from gateway_dask_zarr.storage.embedded import EmbeddedS3
from gateway_dask_zarr.worker.verify import mismatched_blocks


def check(s3: EmbeddedS3, *args: str) -> tuple[int, dict[str, Any]]:
    """Run the check as an operator does, with the service's settings in the environment."""
    env = {**os.environ, "STORE_URL": f"s3://{BUCKET}", "S3_ENDPOINT_URL": s3.endpoint_url}
    done = subprocess.run(
        [sys.executable, "-m", "gateway_dask_zarr", "check", "--json", "--grace", "0", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def kinds(report: dict[str, Any]) -> dict[str, set[str]]:
    """Each finding kind with the subjects it is about."""
    found: dict[str, set[str]] = {}
    for row in report["findings"]:
        found.setdefault(row["kind"], set()).add(row["subject"])
    return found


def test_check_finds_planted_inconsistencies_repair_fixes_them_and_a_second_check_passes(
    client: Any, app: Any, s3: EmbeddedS3
) -> None:
    for job_id in ("kept", "failing"):
        response = client.get(f"/submit_job/{job_id}?shape=200,200&chunks=100,100&seed=5")
        assert response.status_code == 200, response.get_json()
    records = Records(parts(app).service.store.backend)
    store = records.store
    code, report = check(s3)
    assert (code, report["findings"]) == (0, [])

    # A chunk outside the kept array's grid, a wrong chunk inside it (a valid crc32c, the wrong
    # block's values: only --verify sees it), an array with no record, a failed attempt's
    # chunk, a wrong usage entry and an index entry with no record.
    right = bytes(obstore.get(store, "kept.zarr/c/0/0").bytes())
    obstore.put(store, "kept.zarr/c/7/7", right)
    obstore.put(store, "kept.zarr/c/1/1", right)
    obstore.put(store, "ghost.zarr/zarr.json", b"{}")
    obstore.put(store, "ghost.zarr/c/0/0", right)
    failed = records.read("failing")
    assert failed is not None
    records.write({**failed, "status": "failed", "error": "planted", "frees_at": time.time() - 1})
    records.forget_usage(failed)
    kept = records.read("kept")
    assert kept is not None
    obstore.delete(store, usage_key(kept))
    wrong_usage = usage_key({**kept, "shape": [1, 1]})
    obstore.put(store, wrong_usage, b"")
    obstore.put(store, f"{INDEX}/all/0000000000000-nobody", b"")
    # A claim the store failed part-way (its client got a 503): a queued record, one index entry, no active mark.
    halfway = {**kept, "id": "halfway", "status": "queued"}
    obstore.put(store, "_jobs/records/halfway.json", json.dumps(halfway).encode())
    obstore.put(store, f"{INDEX}/all/{index_name(halfway)}", b"")

    code, report = check(s3)
    assert code == 1
    assert kinds(report) == {
        "orphaned_chunks": {"kept"},
        "array_without_record": {"ghost"},
        "failed_attempt_chunks": {"failing"},
        "usage_mismatch": {"kept"},
        "usage_missing": {"kept"},
        "index_without_record": {"nobody"},
        "unfinished_claim": {"halfway"},
    }
    assert report["documents_read"] == 4  # three records and one zarr.json: no chunk was read

    code, report = check(s3, "--repair", "--verify")
    assert code == 0
    assert "chunk_mismatch" in kinds(report)
    assert all(row["repaired"] for row in report["findings"])

    code, report = check(s3, "--verify")
    assert (code, report["findings"]) == (0, [])
    assert records.usage("anonymous") == 200 * 200 * 4
    array = zarr.open_array(parts(app).service.store.backend.worker_store, path="kept.zarr", mode="r")
    assert mismatched_blocks(array, 5) == []
    assert client.get("/jobs/kept").get_json()["status"] == "complete"
    assert client.get("/jobs/halfway").status_code == 404
    listed = {m["path"] for batch in obstore.list(store, None) for m in batch}
    assert not any(k.startswith(("ghost.zarr/", "failing.zarr/")) for k in listed)


def test_the_sweeper_removes_what_no_record_references_and_leaves_live_jobs_alone(
    client: Any, app: Any, s3: EmbeddedS3
) -> None:
    response = client.get("/submit_job/kept?shape=200,200&chunks=100,100&seed=6")
    assert response.status_code == 200, response.get_json()
    service = parts(app).service
    store, records, sweeper = service.store.backend.obstore, service.jobs.records, service.jobs.sweeper
    chunk = bytes(obstore.get(store, "kept.zarr/c/0/0").bytes())
    kept = records.read("kept")
    assert kept is not None
    # A running job of another replica (its record new, its deadline ahead) with one chunk in:
    # resumable, so nothing of it may go. Then a deleted job's late chunk and a wrong usage entry.
    records.claim({**kept, "id": "live", "status": "running", "deadline": time.time() + 600})
    obstore.put(store, "live.zarr/c/0/0", chunk)
    obstore.put(store, "gone.zarr/c/1/1", chunk)
    obstore.put(store, usage_key({**kept, "shape": [3, 3]}), b"")

    sweeper.grace_s = 0
    assert sweeper.run_once() == 2
    assert sweeper.run_once() is None  # one sweep per slot, by whichever replica takes its lease
    listed = {m["path"] for batch in obstore.list(store, None) for m in batch}
    assert "live.zarr/c/0/0" in listed and "kept.zarr/zarr.json" in listed
    assert not any(k.startswith("gone.zarr/") for k in listed)
    assert records.usage("anonymous") == 2 * 200 * 200 * 4  # kept and live
    assert "gateway_swept_objects 2.0" in client.get("/metrics").get_data(as_text=True)
