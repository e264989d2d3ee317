"""GET /jobs costs store requests that depend on `limit`, not on how many jobs the store holds."""

from __future__ import annotations

from typing import Any

from stand_ins import FaultProxy

from bench.jobs_list import seed_jobs
from gateway_dask_zarr.jobs.records import index_name
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.storage.backends import parse_storage
from gateway_dask_zarr.storage.embedded import EmbeddedS3

TOKEN = "alice-token-0123456789"
ALICE = {"Authorization": f"Bearer {TOKEN}"}


def test_listing_costs_the_same_store_requests_at_100_and_20000_jobs(
    make_app: Any, settings: Settings, s3: EmbeddedS3
) -> None:
    counting = FaultProxy(s3.endpoint_url).start()
    try:
        # A named user reads their own index (with AUTH=none the caller is an admin, who reads all).
        client = make_app(settings, s3_endpoint_url=counting.url, auth="token", api_tokens=(f"alice:{TOKEN}",))
        client = client.test_client()
        store = parse_storage(f"{settings.store_url}", s3.endpoint_url).obstore
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
