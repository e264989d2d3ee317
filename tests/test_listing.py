"""GET /jobs costs store requests that depend on `limit`, not on how many jobs the store holds."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from stand_ins import FaultProxy

from bench.jobs_list import seed_jobs
from gateway_dask_zarr.jobs.records import index_name
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.storage.backends import parse_storage
from gateway_dask_zarr.storage.embedded import EmbeddedS3

LISTING = "listing"
TOKEN = "alice-token-0123456789"
ALICE = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def listing_bucket(s3_server: EmbeddedS3) -> str:
    """A bucket of this module's own on the session's server, so that its 40,000 objects are
    never emptied (as the shared bucket is before every test) but left with the server."""
    client = s3_server.client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=LISTING)
    return LISTING


def test_listing_costs_the_same_store_requests_at_100_and_20000_jobs(
    make_app: Any, s3_server: EmbeddedS3, listing_bucket: str
) -> None:
    counting = FaultProxy(s3_server.endpoint_url).start()
    try:
        # A named user reads their own index (with AUTH=none the caller is an admin, who reads all).
        settings = Settings(store_url=f"s3://{listing_bucket}", s3_endpoint_url=counting.url)
        client = make_app(settings, auth="token", api_tokens=(f"alice:{TOKEN}",)).test_client()
        store = parse_storage(settings.store_url, s3_server.endpoint_url).obstore
        requests: dict[int, int] = {}
        seeded = 0
        for total in (100, 20_000):
            # Straight to the store (not through the proxy): the records and the caller's index.
            seed_jobs(store, seeded, total, owner="alice", everyone=False)
            seeded = total
            before = counting.requests
            response = client.get("/jobs?limit=50", headers=ALICE)
            requests[total] = counting.requests - before
            listed = response.get_json()
            assert response.status_code == 200 and len(listed) == 50
            assert [d["id"] for d in listed] == [f"seeded-{i:06d}" for i in range(total - 1, total - 51, -1)]
            assert response.headers["Link"] == f'</jobs?limit=50&before={_cursor(listed[-1])}>; rel="next"'
            following = client.get(f"/jobs?limit=50&before={_cursor(listed[-1])}", headers=ALICE).get_json()
            assert following[0]["id"] == f"seeded-{total - 51:06d}"
    finally:
        counting.stop()
    # One LIST of the caller's index and one GET per record shown, whatever the store holds.
    assert requests == {100: 51, 20_000: 51}


def _cursor(document: dict[str, Any]) -> str:
    return index_name(document)
