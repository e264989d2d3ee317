"""The HTTP edge (edge.py): every domain error maps to its status, the one JSON body and its headers."""

from __future__ import annotations

import pytest
from flask import Flask

from gateway_dask_zarr import errors
from gateway_dask_zarr.server.edge import CHALLENGE, register_error_handlers

pytestmark = pytest.mark.fast

CASES = [
    (errors.InvalidParameter("shape is bad", field="shape"), 400, "invalid_parameter"),
    (errors.Unauthorized("no token"), 401, "unauthorized"),
    (errors.Forbidden("no scope"), 403, "forbidden"),
    (errors.NotFound("no job 'x'"), 404, "not_found"),
    (errors.Conflict("exists", code="job_exists"), 409, "job_exists"),
    (errors.TooLarge("too big", code="array_too_large"), 413, "array_too_large"),
    (errors.Busy("full", retry_after=2), 429, "too_many_jobs"),
    (errors.Unavailable("hub down", code="auth_unavailable", retry_after=5), 503, "auth_unavailable"),
    (errors.StoreUnavailable("store down"), 503, "store_unavailable"),
    (errors.ClusterUnavailable("starting", retry_after=10), 503, "cluster_unavailable"),
]


def _app(exc: Exception) -> Flask:
    app = Flask(__name__)
    register_error_handlers(app)

    @app.get("/")
    def fail() -> str:
        raise exc

    return app


@pytest.mark.parametrize(("exc", "status", "code"), CASES)
def test_each_error_has_its_status_body_and_headers(exc: errors.ServiceError, status: int, code: str) -> None:
    response = _app(exc).test_client().get("/")
    assert response.status_code == status
    body = {"code": code, "message": exc.message, **({"field": exc.field} if exc.field else {})}
    assert response.get_json() == {"error": body}
    assert response.headers.get("Retry-After") == (str(exc.retry_after) if exc.retry_after else None)
    assert response.headers.get("WWW-Authenticate") == (CHALLENGE if status == 401 else None)


def test_an_unexpected_error_is_a_json_500_without_its_text() -> None:
    response = _app(RuntimeError("secret detail")).test_client().get("/")
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert b"secret detail" not in response.data


def test_an_unknown_route_is_json() -> None:
    response = _app(RuntimeError()).test_client().get("/nowhere")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
