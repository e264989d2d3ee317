"""The JSON HTTP API: job routes, health, readiness, OpenAPI, and JSON error handlers."""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, jsonify, request, url_for

from gateway_dask_zarr.errors import InvalidParameter, NotFound
from gateway_dask_zarr.jobs import JobManager, check_job_id
from gateway_dask_zarr.server.body import json_body
from gateway_dask_zarr.server.edge import owner, public_document, viewer
from gateway_dask_zarr.server.openapi import openapi_document
from gateway_dask_zarr.server.parts import parts

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__)


def _jobs() -> JobManager:
    return parts().service.jobs


def _query_params() -> dict[str, str]:
    """The query string as a flat dict; a parameter given twice is an error."""
    params: dict[str, str] = {}
    for key, values in request.args.lists():
        if len(values) > 1:
            raise InvalidParameter(f"parameter {key!r} was given {len(values)} times; give it once", field=key)
        params[key] = values[0]
    return params


def _run_and_wait(job_id: str | None) -> tuple[Response, int]:
    service = parts().service
    job_request = service.jobs.parse(_query_params(), viewer())
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
    example = '{"shape": [1000, 1000]}'
    body = json_body(example)
    if not isinstance(body, dict):
        raise InvalidParameter(f"the body must be a JSON object such as {example}", code="invalid_body")
    service = parts().service
    job = service.jobs.submit(service.jobs.parse(body, viewer()), owner())
    document = public_document(job.document())
    return jsonify(document), 202, {"Location": document["links"]["self"]}


@bp.get("/jobs")
def list_jobs() -> tuple[Response, int, dict[str, str]]:
    """The caller's jobs, newest first, a page at a time (`limit`, `before`; Link rel="next")."""
    params = _query_params()
    unknown = sorted(set(params) - {"limit", "before"})
    if unknown:
        raise InvalidParameter(
            f"unknown parameter {unknown[0]!r}; known: limit, before", code="unknown_parameter", field=unknown[0]
        )
    raw = params.get("limit", "50")
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= 1000:
        raise InvalidParameter(f"limit must be an integer from 1 to 1000, got {raw!r}", field="limit")
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
        raise NotFound(f"no job {job_id!r}")
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
    service = parts().service
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
    return jsonify(openapi_document(secured=parts().service.settings.auth != "none"))
