"""The HTTP edge (server/edge.py) beyond test_errors.py's table: who the caller is, framework errors as JSON."""

from __future__ import annotations

import pytest
from flask import Flask, g

from gateway_dask_zarr import errors
from gateway_dask_zarr.server.edge import error_body, owner, register_error_handlers, status_of, viewer

pytestmark = pytest.mark.fast


def test_the_caller_owns_its_jobs_and_an_admin_sees_everyones() -> None:
    app = Flask(__name__)
    with app.test_request_context():
        assert (owner(), viewer()) == ("anonymous", "anonymous")
        g.user = "alice"
        assert (owner(), viewer()) == ("alice", "alice")
        g.is_admin = True
        assert (owner(), viewer()) == ("alice", None)


def test_a_subclass_takes_its_bases_status_and_an_unnamed_error_is_500() -> None:
    assert status_of(errors.StoreUnavailable("down")) == 503
    assert status_of(errors.ServiceError("odd")) == 500


def test_the_error_body_names_the_field_only_when_one_is_at_fault() -> None:
    assert error_body("bad", "a sentence") == {"error": {"code": "bad", "message": "a sentence"}}
    assert error_body("bad", "a sentence", "shape")["error"]["field"] == "shape"


def test_a_wrong_method_is_json_405_that_still_says_which_are_allowed() -> None:
    app = Flask(__name__)
    register_error_handlers(app)
    app.add_url_rule("/only-get", "only_get", lambda: "ok", methods=["GET"])
    response = app.test_client().post("/only-get")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(", ")) >= {"GET"}
