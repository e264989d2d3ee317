"""Jobs survive their replica: one SIGTERMed or SIGKILLed mid-job, the other takes its job over and finishes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import s3fs
import serve
from helpers import assert_verified, wait_for
from stand_ins import FaultProxy

from gateway_dask_zarr.storage.embedded import EmbeddedS3

BUCKET = "takeover"
LEASE_S = 2
HELD_S = 8.0  # replica A's chunk PUTs are held this long: its job is mid-way when it goes


class Replica(serve.Replica):
    """A replica with one worker and short leases on the shared bucket."""

    def __init__(self, name: str, endpoint: str, log_dir: Path) -> None:
        super().__init__(name, f"s3://{BUCKET}", endpoint, log_dir, N_WORKERS="1", LEASE_S=str(LEASE_S))

    def running(self) -> Replica:
        """This replica, started again if a test before stopped it (so the last test's stop costs no start)."""
        if self.served.process.poll() is not None:
            self.start()
        return self


@pytest.fixture(scope="module")
def held(own_s3: EmbeddedS3) -> Iterator[FaultProxy]:
    """Replica A's way to the store: its chunk PUTs are held (records pass)."""
    proxy = FaultProxy(own_s3.endpoint_url, delay_share=1.0, delay_s=HELD_S, only="/c/").start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def replicas(own_s3: EmbeddedS3, held: FaultProxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    logs = tmp_path_factory.mktemp("takeover")
    with serve.replica_pair(
        lambda: Replica("a", held.url, logs), lambda: Replica("b", own_s3.endpoint_url, logs)
    ) as both:
        yield both


@pytest.fixture
def both(replicas: Any) -> tuple[Replica, Replica]:
    """The module's replicas A and B, both running."""
    a, b = replicas
    return a.running(), b


def _record(own_s3: EmbeddedS3, job_id: str) -> dict[str, Any]:
    fs = s3fs.S3FileSystem(endpoint_url=own_s3.endpoint_url, skip_instance_cache=True, use_listings_cache=False)
    return json.loads(fs.cat_file(f"{BUCKET}/_jobs/records/{job_id}.json"))


def _mid_job_on_a(a: Replica, held: FaultProxy, seed: int) -> str:
    before = held.counts["delayed"]
    body = {"shape": [200, 200], "chunks": [100, 100], "seed": seed}
    response = requests.post(f"{a.url}/jobs", json=body, timeout=60)
    assert response.status_code == 202, response.text
    wait_for(lambda: held.counts["delayed"] > before, 60, 0.05)
    return str(response.json()["id"])


def _finished_by_b(b: Replica, own_s3: EmbeddedS3, job_id: str) -> None:
    document = wait_for(lambda: (d := b.job(job_id))["status"] not in ("queued", "running") and d, 120, 0.2)
    assert_verified(document)
    record = _record(own_s3, job_id)
    assert record["status"] == "complete" and record["error"] is None
    assert record["attempts"] == 2
    (takeover,) = record["resumed"]
    assert takeover["attempt"] == 2
    assert f"job {job_id} taken over by {takeover['by']}" in b.served.log()


def test_a_sigtermed_replica_hands_its_job_back_and_the_other_finishes_it(
    both: tuple[Replica, Replica], held: FaultProxy, own_s3: EmbeddedS3
) -> None:
    a, b = both
    job_id = _mid_job_on_a(a, held, seed=21)
    a.served.close(90)  # a rolling update's SIGTERM
    assert f"job {job_id} handed back" in a.served.log()
    _finished_by_b(b, own_s3, job_id)


def test_a_sigkilled_replica_s_job_is_taken_over_when_its_lease_lapses(
    both: tuple[Replica, Replica], held: FaultProxy, own_s3: EmbeddedS3
) -> None:
    a, b = both
    job_id = _mid_job_on_a(a, held, seed=22)
    a.kill()
    assert _record(own_s3, job_id)["status"] in ("queued", "running")
    _finished_by_b(b, own_s3, job_id)
