"""The JSON HTTP API: job routes, health, readiness, OpenAPI, and JSON error handlers."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

from gateway_dask_zarr import errors
from gateway_dask_zarr.jobs import JobError, JobManager, JobRequest, check_job_id
from gateway_dask_zarr.openapi import openapi_document

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__)


def _jobs() -> JobManager:
    return current_app.extensions["gateway"].jobs


def owner() -> str:
    """The caller, who owns the jobs it submits."""
    return str(g.get("user", "anonymous"))


def viewer() -> str | None:
    """Whose jobs the caller may see: its own, or everyone's (None) for an admin."""
    return None if g.get("is_admin") else owner()


def public_document(document: dict[str, Any]) -> dict[str, Any]:
    """A job document as the API shows it: with the array's URL, the S3 endpoint and links."""
    service = current_app.extensions["gateway"]
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
    }
    return shown


def _query_params() -> dict[str, str]:
    """The query string as a flat dict; a parameter given twice is an error."""
    params: dict[str, str] = {}
    for key, values in request.args.lists():
        if len(values) > 1:
            raise JobError(
                400, "invalid_parameter", f"parameter {key!r} was given {len(values)} times; give it once", key
            )
        params[key] = values[0]
    return params


def _run_and_wait(job_id: str | None) -> tuple[Response, int]:
    service = current_app.extensions["gateway"]
    job_request = JobRequest.parse(_query_params(), service.settings)
    job = service.jobs.submit(job_request, owner(), job_id)
    job.ended.wait(service.settings.job_timeout_s + 60)
    document = public_document(job.document())
    if document["status"] == "complete":
        return jsonify(document), 200
    body = {
        "error": {"code": "job_failed", "message": document.get("error") or "the job did not finish"},
        "job": document,
    }
    return jsonify(body), 503


@bp.get("/run")
def run() -> tuple[Response, int]:
    """Run one job and answer when it has finished."""
    return _run_and_wait(None)


@bp.get("/submit_job/<job_id>")
def submit_job(job_id: str) -> tuple[Response, int]:
    """The seed's route: run a job with the caller's id; 409 if the id exists."""
    return _run_and_wait(check_job_id(job_id))


@bp.post("/jobs")
def create_job() -> tuple[Response, int, dict[str, str]]:
    """Start a job from a JSON body and answer 202 at once."""
    body = request.get_json(force=True, silent=True) if request.content_length else {}
    if not isinstance(body, dict):
        raise JobError(400, "invalid_body", 'the body must be a JSON object such as {"shape": [1000, 1000]}')
    service = current_app.extensions["gateway"]
    job = service.jobs.submit(JobRequest.parse(body, service.settings), owner())
    document = public_document(job.document())
    return jsonify(document), 202, {"Location": document["links"]["self"]}


@bp.get("/jobs")
def list_jobs() -> tuple[Response, int, dict[str, str]]:
    """The caller's jobs, newest first, a page at a time (`limit`, `before`; Link rel="next")."""
    params = _query_params()
    unknown = sorted(set(params) - {"limit", "before"})
    if unknown:
        raise JobError(400, "unknown_parameter", f"unknown parameter {unknown[0]!r}; known: limit, before", unknown[0])
    raw = params.get("limit", "50")
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= 1000:
        raise JobError(400, "invalid_parameter", f"limit must be an integer from 1 to 1000, got {raw!r}", "limit")
    documents, cursor = _jobs().list(viewer(), int(raw), params.get("before"))
    headers = {}
    if cursor is not None:
        headers["Link"] = f'<{url_for("api.list_jobs", limit=raw, before=cursor)}>; rel="next"'
    return jsonify([public_document(d) for d in documents]), 200, headers


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    """One job document."""
    document = _jobs().get(check_job_id(job_id), viewer())
    if document is None:
        raise JobError(404, "not_found", f"no job {job_id!r}")
    return jsonify(public_document(document))


@bp.delete("/jobs/<job_id>")
def delete_job(job_id: str) -> tuple[Response | str, int]:
    """Delete a job: 204 when it is gone, 202 with its document while it is being cancelled or cleaned up."""
    document = _jobs().delete(check_job_id(job_id), viewer())
    if document is None:
        return "", 204
    return jsonify(public_document(document)), 202


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: the process answers. Touches neither cluster nor store."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Readiness: the cluster has workers and the store is writable."""
    service = current_app.extensions["gateway"]
    problem = service.cluster.problem()
    if problem is None:
        try:
            service.store.check_writable()
        except Exception as exc:
            problem = f"the object store is not writable: {type(exc).__name__}"
    if problem:
        return jsonify({"status": "unavailable", "reason": problem}), 503
    return jsonify({"status": "ready", "cluster": service.cluster.status()}), 200


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3 document of this API."""
    return jsonify(openapi_document(secured=current_app.extensions["gateway"].settings.auth != "none"))


# Each domain error's status; the first class that matches wins.
STATUS: tuple[tuple[type[errors.ServiceError], int], ...] = (
    (errors.InvalidParameter, 400),
    (errors.Unauthorized, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.TooLarge, 413),
    (errors.Busy, 429),
    (errors.Unavailable, 503),
    (errors.ServiceError, 500),
)


def error_body(status: int, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The one error shape: {"error": {"code", "message", "field"?}}."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {"error": error}


def register_error_handlers(app: Flask) -> None:
    """Every error is JSON with the right status; never an HTML page or a traceback."""

    @app.errorhandler(JobError)
    def job_error(exc: JobError) -> tuple[Response, int, dict[str, str]]:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
        return jsonify(error_body(exc.status, exc.code, exc.message, exc.field)), exc.status, headers

    @app.errorhandler(errors.ServiceError)
    def service_error(exc: errors.ServiceError) -> tuple[Response, int, dict[str, str]]:
        status = next(code for kind, code in STATUS if isinstance(exc, kind))
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
        return jsonify(error_body(status, exc.code, exc.message, exc.field)), status, headers

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int, dict[str, str]]:
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_").replace("'", "")
        # A 405 must still say which methods the path allows.
        headers = {k: v for k, v in exc.get_headers() if k == "Allow"}
        return jsonify(error_body(status, code, exc.description or exc.name)), status, headers

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return jsonify(error_body(500, "internal_error", "the server hit an unexpected error; it has been logged")), 500
