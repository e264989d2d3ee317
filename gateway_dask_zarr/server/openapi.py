"""The OpenAPI 3 document of the HTTP API."""

from __future__ import annotations

from typing import Any

from gateway_dask_zarr.jobs import document_schema
from gateway_dask_zarr.kinds.registry import request_schemas
from gateway_dask_zarr.server.openapi_kinds import query_parameters, run_description
from gateway_dask_zarr.server.openapi_parts import NO_CSRF, UNAUTHENTICATED, body, operation
from gateway_dask_zarr.server.openapi_zarr import zarr_paths
from gateway_dask_zarr.version import __version__

_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$"},
}

_RUN_ANSWERS = {"200": body("Job", "the job finished and its array is published")}
_RUN_ERRORS = {
    400: "a bad parameter",
    401: UNAUTHENTICATED,
    404: "no such path (a job id with '/' matches no route), or a derived kind's input is no job the caller may read",
    409: "the job id exists, or a derived kind's input is not complete",
    413: "over a size limit, or over the caller's storage quota",
    429: "too many jobs at once, in all or the caller's; see Retry-After",
    503: "the cluster or store is unavailable, or the job failed",
}
_LIST_ANSWER = {
    "description": "the jobs; a Link header (rel=next) when there may be more",
    "headers": {"Link": {"schema": {"type": "string"}}},
    "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}}},
}
_LIST_PARAMETERS = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
    {
        "name": "before",
        "in": "query",
        "description": "the cursor from the previous page's Link header",
        "schema": {"type": "string", "pattern": "^[0-9]{13}-[A-Za-z0-9_.-]{1,64}$"},
    },
]
_PREVIEW_SIZE = {
    "name": "size",
    "in": "query",
    "schema": {"type": "string", "enum": ["full", "thumb"], "default": "full"},
}
_PICTURE = {"description": "the picture", "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}


def job_schema() -> dict[str, Any]:
    """The job document as the API shows it: the jobs layer's document plus the edge's url, endpoint and links."""
    schema = document_schema()
    schema["properties"] = {
        **schema["properties"],
        "url": {"type": "string"},
        "endpoint_url": {"type": "string", "nullable": True},
        "links": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "self": {"type": "string"},
                "preview": {"type": "string"},
                "zarr": {"type": "string", "description": "the array as Zarr v3 over HTTP (GET <zarr>zarr.json)"},
                "inputs": {"type": "array", "items": {"type": "string"}, "description": "the input jobs' documents"},
            },
        },
    }
    schema["required"] = ["id", "status", "url", "shape", "chunks", "dtype", "seed", "links"]
    return schema


def _run_paths() -> dict[str, Any]:
    """The routes that run a job and answer when it has finished."""
    query, kinds = query_parameters(), run_description()  # per call: a kind registered after import is listed too
    return {
        "/run": {
            "get": operation(
                "Run one job and answer when it has finished", _RUN_ANSWERS, _RUN_ERRORS, query, description=kinds
            )
        },
        "/submit_job/{job_id}": {
            "get": operation(
                "Run one job with the caller's id", _RUN_ANSWERS, _RUN_ERRORS, [_JOB_ID, *query], description=kinds
            )
        },
    }


def _list_paths() -> dict[str, Any]:
    """Starting and listing jobs."""
    request = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobRequest"}}}}
    refused = {
        400: "a bad parameter",
        401: UNAUTHENTICATED,
        404: "a derived kind's input is no job the caller may read",
        409: "a derived kind's input is not complete",
        413: "over a size limit, or over the caller's storage quota",
        429: "too many jobs at once, in all or the caller's; see Retry-After",
        503: "the cluster or store is unavailable",
    }
    listed = {400: "a bad parameter", 401: UNAUTHENTICATED, 503: "the store cannot be read now"}
    return {
        "/jobs": {
            "post": operation(
                "Start a job; answer 202 at once",
                {"202": body("Job", "the job was accepted")},
                refused,
                description=run_description(),
                requestBody=request,
            ),
            "get": operation(
                "The caller's jobs, newest first, a page at a time", {"200": _LIST_ANSWER}, listed, _LIST_PARAMETERS
            ),
        },
    }


def _one_job_paths() -> dict[str, Any]:
    """One job and its preview."""
    gone = body("Job", "being cancelled or cleaned up; the job is gone (404) when that is over")
    deleted = {"202": gone, "204": {"description": "deleted: the id is free"}}
    delete_errors = {
        400: "a bad id",
        401: UNAUTHENTICATED,
        403: NO_CSRF,
        404: "no such job, or another user's",
        503: "the store cannot be used now",
    }
    preview_errors = {
        400: "a bad id or size",
        401: UNAUTHENTICATED,
        404: "no such job",
        409: "the job is not complete",
        503: "the array could not be read",
    }
    read_errors = {400: "a bad id", 401: UNAUTHENTICATED, 404: "no such job", 503: "the store cannot be read now"}
    picture = "A PNG picture of a complete job's array (a strided read of a bounded number of chunks)"
    return {
        "/jobs/{job_id}": {
            "get": operation("One job document", {"200": body("Job", "the job")}, read_errors, [_JOB_ID]),
            "delete": operation(
                "Cancel a running job or delete a finished one (array and record)", deleted, delete_errors, [_JOB_ID]
            ),
        },
        "/jobs/{job_id}/preview.png": {
            "get": operation(picture, {"200": _PICTURE}, preview_errors, [_JOB_ID, _PREVIEW_SIZE])
        },
    }


def _service_paths() -> dict[str, Any]:
    """The page, metrics, probes and this document."""
    page = {"200": {"description": "HTML", "content": {"text/html": {}}}}
    metrics = {"200": {"description": "Prometheus text format", "content": {"text/plain": {}}}}
    ready = {"200": {"description": "ready"}, "503": {"description": "not ready, with the reason"}}
    return {
        "/": {
            "get": operation("The web page: run form, jobs with live progress and previews, cluster state", page, {})
        },
        "/metrics": {"get": operation("Prometheus metrics", metrics, {})},
        "/healthz": {"get": operation("Liveness", {"200": {"description": "the process answers"}}, {})},
        "/readyz": {"get": operation("Readiness: cluster workers up and store writable", ready, {})},
        "/openapi.json": {
            "get": operation("This document", {"200": {"description": "OpenAPI 3 JSON"}}, {401: UNAUTHENTICATED})
        },
    }


def _components() -> dict[str, Any]:
    """The components: the schemas of the error body, the job request and the job document."""
    return {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "field": {"type": "string"},
                        },
                    }
                },
            },
            **request_schemas(),
            "Job": job_schema(),
        }
    }


def openapi_document(secured: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.0 description of every route; `secured` when AUTH needs a bearer token."""
    document: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "gateway-dask-zarr",
            "version": __version__,
            "description": "Dask workers write Zarr arrays to S3: random arrays (the default kind) "
            "and arrays derived from them (rechunk, reduce).",
        },
        "paths": {**_run_paths(), **_list_paths(), **_one_job_paths(), **zarr_paths(), **_service_paths()},
        "components": _components(),
    }
    if secured:
        # Every operation needs the bearer token except the probes, which stay open.
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
        # Share links carry their own permission in the path.
        for path in (
            "/healthz",
            "/readyz",
            "/shares/{job_id}/{token}/zarr/{key}",
            "/shares/{job_id}/{token}/dataset/{key}",
        ):
            document["paths"][path]["get"]["security"] = []
    return document
