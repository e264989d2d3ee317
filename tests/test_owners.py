"""Owners: users see, list and delete only their own jobs (named API tokens; test_hub.py: a real hub)."""

from __future__ import annotations

from typing import Any

from helpers import assert_verified

ALICE_TOKEN, BOB_TOKEN = "alice-token-0123456789", "bob-token-0123456789ab"
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
BOB = {"Authorization": f"Bearer {BOB_TOKEN}"}


def test_a_users_job_is_theirs_alone_and_delete_frees_its_id(make_app: Any, settings: Any, s3fs_client: Any) -> None:
    app = make_app(settings, auth="token", api_tokens=(f"alice:{ALICE_TOKEN}", f"bob:{BOB_TOKEN}"))
    client = app.test_client()
    document = client.get("/submit_job/mine?seed=3&shape=200,200&chunks=100,100", headers=ALICE).get_json()
    assert document["owner"] == "alice"
    assert_verified(document)
    assert [d["id"] for d in client.get("/jobs", headers=ALICE).get_json()] == ["mine"]
    # Bob cannot see it, list it or delete it, and his attempt changes nothing.
    assert client.get("/jobs/mine", headers=BOB).status_code == 404
    assert client.get("/jobs", headers=BOB).get_json() == []
    refused = client.delete("/jobs/mine", headers=BOB)
    assert refused.status_code == 404 and refused.get_json()["error"]["code"] == "not_found"
    assert client.get("/submit_job/mine?seed=4&shape=200,200&chunks=100,100", headers=BOB).status_code == 409
    assert_verified(client.get("/jobs/mine", headers=ALICE).get_json())
    # Alice deletes it: array and record go, and the id is free again (for anyone).
    assert client.delete("/jobs/mine", headers=ALICE).status_code == 204
    assert client.get("/jobs/mine", headers=ALICE).status_code == 404
    assert s3fs_client.find("test-bucket") == []
    again = client.get("/submit_job/mine?seed=5&shape=200,200&chunks=100,100", headers=BOB).get_json()
    assert again["owner"] == "bob" and again["seed"] == 5
    assert_verified(again)
