"""Fair shares against the app: two token users, a real LocalCluster and the real S3 test server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import obstore
import pytest
from helpers import assert_verified, wait_for
from stand_ins import FaultProxy
from test_metrics import scrape

from gateway_dask_zarr.jobs.records import USAGE
from gateway_dask_zarr.server.parts import parts
from gateway_dask_zarr.storage.backends import parse_storage
from gateway_dask_zarr.storage.embedded import EmbeddedS3

ALICE_TOKEN = "tok-alice-5b1e9c0d2a7f"
BOB_TOKEN = "tok-bob-8c3d1f6e0a4b29"
TOKENS = (f"alice:{ALICE_TOKEN}", f"bob:{BOB_TOKEN}")
ONE_CHUNK = {"shape": [100, 100], "chunks": [100, 100]}  # float32: 40,000 bytes


def as_user(app: Any, token: str) -> Any:
    """A test client that sends the user's token with every request."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def complete(client: Any, document: dict[str, Any]) -> dict[str, Any]:
    """Wait for a job to end, and check that it is complete and its array verifies."""
    ended = wait_for(
        lambda: (d := client.get(document["links"]["self"]).get_json())["status"] not in ("queued", "running") and d
    )
    assert_verified(ended)
    return ended


@pytest.fixture
def proxy(s3: EmbeddedS3, request: pytest.FixtureRequest) -> Iterator[FaultProxy]:
    """The S3 server behind a counting proxy (delaying chunk PUTs by the test's `delay_s` param)."""
    delay_s = getattr(request, "param", 0.0)
    server = FaultProxy(s3.endpoint_url, delay_share=1.0 if delay_s else 0.0, delay_s=delay_s, only="/c/").start()
    yield server
    server.stop()


@pytest.mark.parametrize("proxy", [5.0], indirect=True)
def test_a_user_at_their_limit_does_not_stop_another_users_job(make_app: Any, settings: Any, proxy: FaultProxy) -> None:
    # Every chunk PUT takes 5 s: a one-chunk job stays running at least that long.
    app = make_app(
        settings,
        s3_endpoint_url=proxy.url,
        auth="token",
        api_tokens=TOKENS,
        max_active_jobs=4,
        max_active_jobs_per_user=2,
    )
    alice, bob = as_user(app, ALICE_TOKEN), as_user(app, BOB_TOKEN)
    held = [alice.post("/jobs", json={**ONE_CHUNK, "seed": seed}) for seed in (1, 2)]
    assert [r.status_code for r in held] == [202, 202]
    refused = alice.post("/jobs", json={**ONE_CHUNK, "seed": 3})
    bobs = bob.post("/jobs", json={**ONE_CHUNK, "seed": 4})
    # Alice's two were still active when both answers were made, and the service had room for four.
    admission = parts(app).service.jobs.admission
    assert admission.per_owner == {"alice": 2, "bob": 1}
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    error = refused.get_json()["error"]
    assert error["code"] == "too_many_jobs_per_user"
    assert "MAX_ACTIVE_JOBS_PER_USER" in error["message"] and "2 per user" in error["message"]
    assert bobs.status_code == 202 and bobs.get_json()["owner"] == "bob"
    complete(bob, bobs.get_json())
    for response in held:
        complete(alice, response.get_json())
    assert admission.per_owner == {} and admission.active == 0
    assert scrape(alice)[("gateway_refusals_total", (("reason", "too_many_jobs_per_user"),))] == 1


def seed_usage(endpoint_url: str, owner_hex: str, n: int) -> None:
    """Write n usage entries of 0 bytes for an owner straight to the store: more jobs, the same bytes."""
    store = parse_storage("s3://test-bucket", endpoint_url).obstore

    async def every() -> None:
        limit = asyncio.Semaphore(64)

        async def one(i: int) -> None:
            async with limit:
                await obstore.put_async(store, f"{USAGE}/{owner_hex}/0-seeded-{i:05d}", b"")

        await asyncio.gather(*(one(i) for i in range(n)))

    asyncio.run(every())


def test_the_storage_quota_refuses_with_the_figures_writes_nothing_and_delete_frees_room(
    make_app: Any, settings: Any, s3: EmbeddedS3, s3fs_client: Any, proxy: FaultProxy
) -> None:
    app = make_app(settings, s3_endpoint_url=proxy.url, auth="token", api_tokens=TOKENS, storage_quota_bytes=100_000)
    alice, bob = as_user(app, ALICE_TOKEN), as_user(app, BOB_TOKEN)
    first, second = (alice.get(f"/run?shape=100,100&chunks=100,100&seed={seed}") for seed in (1, 2))
    assert first.status_code == 200 and second.status_code == 200
    stored = s3fs_client.find("test-bucket")
    before = proxy.requests
    refused = alice.post("/jobs", json={**ONE_CHUNK, "seed": 3})
    # The check is one LIST of alice's usage entries: no record is read, nothing is written.
    assert proxy.requests - before == 1
    assert refused.status_code == 413
    error = refused.get_json()["error"]
    assert error["code"] == "storage_quota_exceeded"
    for figure in ("you use 80000 bytes", "needs 40000 bytes", "allows 100000 bytes", "DELETE /jobs/"):
        assert figure in error["message"]
    assert s3fs_client.find("test-bucket") == stored
    # Bob's quota is his own.
    assert_verified(bob.get("/run?shape=100,100&chunks=100,100&seed=4").get_json())
    # A DELETE of an earlier job frees its bytes at once.
    assert alice.delete(first.get_json()["links"]["self"]).status_code == 204
    assert_verified(alice.get("/run?shape=100,100&chunks=100,100&seed=3").get_json())
    # With 1,500 more (empty) entries the check costs two LISTs: one per 1,000 of the user's jobs.
    seed_usage(s3.endpoint_url, b"alice".hex(), 1500)
    before = proxy.requests
    assert alice.post("/jobs", json={**ONE_CHUNK, "seed": 5}).status_code == 413
    assert proxy.requests - before == 2
    assert scrape(alice)[("gateway_refusals_total", (("reason", "storage_quota_exceeded"),))] == 2
