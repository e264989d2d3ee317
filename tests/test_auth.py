"""Auth: static tokens and their owners; secrets never leak; ids cannot leave the store (JupyterHub: test_hub.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import S3_CREDENTIALS, assert_verified, wait_for
from stand_ins import TaskRecorder

from gateway_dask_zarr.server.parts import parts

TOKEN = "tok-3f9c1e0b7a5d4c2e8f6a"
OTHER = "tok-0000000000000000bad"
PLAIN = "tok-plain-7e1d2c3b4a59"
SECRET = S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
PROTECTED = ["/run?shape=10,10", "/jobs", "/jobs/x", "/submit_job/x", "/openapi.json", "/", "/metrics", "/no/such/path"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_401(response: Any) -> None:
    assert response.status_code == 401, response.data
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["error"]["code"] == "unauthorized"


@pytest.fixture
def recorder(cluster: Any) -> Iterator[TaskRecorder]:
    """Records every task the session cluster's (in-process) scheduler receives."""
    scheduler = cluster._cluster.scheduler
    plugin = TaskRecorder()
    plugin.scheduler = scheduler
    scheduler.add_plugin(plugin, name="secret-recorder")
    yield plugin
    scheduler.remove_plugin(name="secret-recorder")


def test_token_auth_guards_everything_but_the_probes(make_app: Any, settings: Any, s3fs_client: Any) -> None:
    client = make_app(settings, auth="token", api_tokens=(TOKEN,)).test_client()
    for path in PROTECTED:
        _assert_401(client.get(path))
        _assert_401(client.get(path, headers=_bearer(OTHER)))
        _assert_401(client.get(path, headers={"Authorization": TOKEN}))
        _assert_401(client.get(path, headers={"Authorization": f"Basic {TOKEN}"}))
        _assert_401(client.get(path, headers=_bearer(TOKEN[:-1])))
    assert client.post("/jobs", json={"shape": [10, 10]}).status_code == 401
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    # Refused requests wrote nothing.
    assert s3fs_client.find("test-bucket") == []
    assert client.get("/jobs", headers=_bearer(TOKEN)).status_code == 200
    spec = client.get("/openapi.json", headers={"Authorization": f"token {TOKEN}"}).get_json()
    assert spec["security"] == [{"bearer": []}] and spec["paths"]["/healthz"]["get"]["security"] == []
    assert_verified(client.get("/run?shape=200,200&chunks=100,100&seed=3", headers=_bearer(TOKEN)).get_json())


def test_named_tokens_own_their_jobs(make_app: Any, settings: Any) -> None:
    # API_TOKENS=name:token pairs; a plain token's owner is "token".
    client = make_app(settings, auth="token", api_tokens=(f"alice:{TOKEN}", f"bob:{OTHER}", PLAIN)).test_client()
    ran = client.get("/run?shape=200,100&chunks=100,100&seed=2", headers=_bearer(TOKEN))
    assert ran.status_code == 200 and ran.get_json()["owner"] == "alice"
    job = f"/jobs/{ran.get_json()['id']}"
    assert client.get(job, headers=_bearer(TOKEN)).status_code == 200
    for token in (OTHER, PLAIN):
        assert client.get(job, headers=_bearer(token)).status_code == 404
        assert client.get(job + "/preview.png", headers=_bearer(token)).status_code == 404
        assert client.delete(job, headers=_bearer(token)).status_code == 404
        assert client.get("/jobs", headers=_bearer(token)).get_json() == []
    posted = client.post("/jobs", json={"shape": [100, 100]}, headers=_bearer(PLAIN))
    assert posted.status_code == 202 and posted.get_json()["owner"] == "token"
    # A token-authenticated write needs no CSRF token; the owner deletes hers.
    assert client.delete(job, headers=_bearer(TOKEN)).status_code == 204
    assert client.get(job, headers=_bearer(TOKEN)).status_code == 404


def test_no_secret_in_logs_responses_documents_or_tasks(
    make_app: Any, settings: Any, s3fs_client: Any, recorder: TaskRecorder, caplog: Any, capfd: Any
) -> None:
    caplog.set_level(logging.INFO)
    app = make_app(settings, auth="token", api_tokens=(TOKEN, OTHER))
    client = app.test_client()
    bodies = [
        client.get("/run?shape=300,300&chunks=100,100&seed=5", headers=_bearer(TOKEN)),
        client.post("/jobs", json={"shape": [200, 100], "chunks": [100, 100]}, headers=_bearer(OTHER)),
        client.get("/jobs", headers=_bearer(TOKEN)),
        client.get("/openapi.json", headers=_bearer(TOKEN)),
        client.get("/readyz"),
        client.get("/jobs", headers=_bearer(TOKEN + "x")),
        client.get("/run?shape=1,1,1,1,1", headers=_bearer(TOKEN)),
        client.get("/submit_job/..", headers=_bearer(TOKEN)),
    ]
    done = bodies[0].get_json()
    assert_verified(done)
    posted = f"/jobs/{bodies[1].get_json()['id']}"
    wait_for(lambda: client.get(posted, headers=_bearer(OTHER)).get_json()["status"] == "complete", 60)
    bodies.append(client.get(posted, headers=_bearer(OTHER)))
    stored = [s3fs_client.cat_file(path) for path in s3fs_client.find("test-bucket") if path.endswith("zarr.json")]
    assert stored
    captured = capfd.readouterr()
    haystacks = {
        "responses": b"".join(r.data for r in bodies),
        "zarr.json": b"".join(stored),
        "logs": (caplog.text + captured.out + captured.err).encode(),
        "tasks": b"".join(recorder.specs),
        "settings": json.dumps(parts(app).service.settings.public(), default=str).encode(),
    }
    assert recorder.specs, "the recorder saw no task"
    for secret in (TOKEN, OTHER, SECRET):
        for where, haystack in haystacks.items():
            assert secret.encode() not in haystack, f"{secret[:4]}... found in {where}"


ESCAPING_PATHS = [
    "/submit_job/..",
    "/submit_job/.",
    "/submit_job/%2e%2e",
    "/submit_job/%2E%2E",
    "/submit_job/..%2F..%2Fescape",
    "/submit_job/a%2Fb",
    "/submit_job/a%00b",
    "/submit_job/%00",
    "/submit_job/%252e%252e",
    "/submit_job/..%5C..%5Cescape",
    "/submit_job/.hidden",
    "/submit_job/" + "a" * 65,
    "/jobs/..",
    "/jobs/%2e%2e",
    "/jobs/..%2Fzarr.json",
    "/jobs/a%00b",
    "/jobs/%2e%2e%2f%2e%2e",
]


def test_ids_that_try_to_leave_the_store_are_refused(client: Any, s3fs_client: Any) -> None:
    for path in ESCAPING_PATHS:
        response = client.get(path)
        assert response.status_code in (400, 404), (path, response.status_code)
        assert "error" in response.get_json() and "Traceback" not in response.get_data(as_text=True)
    assert s3fs_client.find("test-bucket") == []
