"""GET /jobs costs store requests that depend on `limit`, not on how many jobs the store holds."""

from __future__ import annotations

from typing import Any

from stand_ins import FaultProxy

from bench.jobs_list import seed_jobs
from gateway_dask_zarr.jobs.records import index_name
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.storage.backends import parse_storage
from gateway_dask_zarr.storage.embedded import EmbeddedS3

# A bucket of its own (conftest.own_s3), never emptied: its 6,000 objects stay with the server.
BUCKET = "listing"
TOKEN = "alice-token-0123456789"
ALICE = {"Authorization": f"Bearer {TOKEN}"}


def test_listing_costs_the_same_store_requests_at_100_and_3000_jobs(make_app: Any, own_s3: EmbeddedS3) -> None:
    counting = FaultProxy(own_s3.endpoint_url).start()
    try:
        # A named user reads their own index (with AUTH=none the caller is an admin, who reads all).
        settings = Settings(store_url=f"s3://{BUCKET}", s3_endpoint_url=counting.url)
        # LEASE_S at its maximum: the resumer's LIST of leases (every LEASE_S / 2) lands in no count.
        client = make_app(settings, auth="token", api_tokens=(f"alice:{TOKEN}",), lease_s=3600).test_client()
        store = parse_storage(settings.store_url, own_s3.endpoint_url).obstore
        requests: dict[int, int] = {}
        seeded = 0
        # 3,000 jobs fill three LIST pages of the index (S3 lists up to 1,000 keys a page).
        for total in (100, 3_000):
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
    assert requests == {100: 51, 3_000: 51}


def _cursor(document: dict[str, Any]) -> str:
    return index_name(document)
