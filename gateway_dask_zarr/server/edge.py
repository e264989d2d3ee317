"""The HTTP edge shared by api, web and auth: domain errors to status codes, the JSON error body, public documents."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

from gateway_dask_zarr import errors
from gateway_dask_zarr.server.parts import parts

log = logging.getLogger(__name__)

# Most specific first: a subclass (StoreUnavailable) takes its base's status (Unavailable).
STATUS: tuple[tuple[type[errors.ServiceError], int], ...] = (
    (errors.InvalidParameter, 400),
    (errors.Unauthorized, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.TooLarge, 413),
    (errors.Busy, 429),
    (errors.Unavailable, 503),
)
CHALLENGE = 'Bearer realm="gateway-dask-zarr"'


def owner() -> str:
    """The caller, who owns the jobs it submits."""
    return str(g.get("user", "anonymous"))


def viewer() -> str | None:
    """Whose jobs the caller may see: its own, or everyone's (None) for an admin."""
    return None if g.get("is_admin") else owner()


def status_of(exc: errors.ServiceError) -> int:
    """The HTTP status of a domain error (500 for one no class here names)."""
    return next((status for cls, status in STATUS if isinstance(exc, cls)), 500)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The one error shape: {"error": {"code", "message", "field"?}}."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {"error": error}


def error_response(exc: errors.ServiceError) -> tuple[Response, int, dict[str, str]]:
    """A domain error as its status, the JSON body and its headers (Retry-After, WWW-Authenticate)."""
    status = status_of(exc)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
    if status == 401:
        headers["WWW-Authenticate"] = CHALLENGE
    return jsonify(error_body(exc.code, exc.message, exc.field)), status, headers


def public_document(document: dict[str, Any]) -> dict[str, Any]:
    """A job document as the API shows it: with the array's URL, the S3 endpoint and links."""
    service = parts().service
    job_id = document["id"]
    shown = dict(document)
    shown.setdefault(
        "progress", {"done": document.get("chunks_written", 0), "total": document.get("chunks_written", 0)}
    )
    shown["url"] = service.store.array_url(job_id)
    shown["endpoint_url"] = service.public_endpoint_url
    shown["links"] = {
        "self": url_for("api.get_job", job_id=job_id),
        "preview": url_for("api.get_job", job_id=job_id) + "/preview.png",
        "zarr": url_for("api.get_job", job_id=job_id) + "/zarr/",
        # A derived job's inputs, each a job document of its own (the provenance chain).
        "inputs": [url_for("api.get_job", job_id=i) for i in [document.get("input")] if i],
    }
    return shown


def register_error_handlers(app: Flask) -> None:
    """Every error is JSON with the right status; never an HTML page or a traceback."""
    app.register_error_handler(errors.ServiceError, error_response)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int, dict[str, str]]:
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_").replace("'", "")
        # A 405 must still say which methods the path allows.
        headers = {k: v for k, v in exc.get_headers() if k == "Allow"}
        return jsonify(error_body(code, exc.description or exc.name)), status, headers

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return jsonify(error_body("internal_error", "the server hit an unexpected error; it has been logged")), 500
