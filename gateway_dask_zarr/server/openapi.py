"""The OpenAPI 3 document of the HTTP API."""

from __future__ import annotations

from typing import Any

from gateway_dask_zarr.jobs import document_schema
from gateway_dask_zarr.kinds.registry import request_schemas
from gateway_dask_zarr.params import query_parameters
from gateway_dask_zarr.server.openapi_zarr import zarr_paths
from gateway_dask_zarr.version import __version__


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _job(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}},
    }


_QUERY = query_parameters()

_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$"},
}

_RUN_RESPONSES = {
    "200": _job("the job finished and its array is published"),
    "400": _error("a bad parameter"),
    "401": _error("no or wrong token"),
    "404": _error("no such path: a job id with '/' in it matches no route"),
    "409": _error("the job id exists"),
    "413": _error("over a size limit, or over the caller's storage quota"),
    "429": _error("too many jobs at once, in all or the caller's; see Retry-After"),
    "503": _error("the cluster or store is unavailable, or the job failed"),
}


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
    return {
        "/run": {
            "get": {
                "summary": "Run one job and answer when it has finished",
                "parameters": _QUERY,
                "responses": _RUN_RESPONSES,
            }
        },
        "/submit_job/{job_id}": {
            "get": {
                "summary": "Run one job with the caller's id",
                "parameters": [_JOB_ID, *_QUERY],
                "responses": _RUN_RESPONSES,
            }
        },
    }


def _list_paths() -> dict[str, Any]:
    """Starting and listing jobs."""
    return {
        "/jobs": {
            "post": {
                "summary": "Start a job; answer 202 at once",
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobRequest"}}}
                },
                "responses": {
                    "202": _job("the job was accepted"),
                    "400": _error("a bad parameter"),
                    "401": _error("no or wrong token"),
                    "404": _error("a derived kind's input is no job the caller may read"),
                    "409": _error("a derived kind's input is not complete"),
                    "413": _error("over a size limit, or over the caller's storage quota"),
                    "429": _error("too many jobs at once, in all or the caller's; see Retry-After"),
                    "503": _error("the cluster or store is unavailable"),
                },
            },
            "get": {
                "summary": "The caller's jobs, newest first, a page at a time",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {
                        "name": "before",
                        "in": "query",
                        "description": "the cursor from the previous page's Link header",
                        "schema": {"type": "string", "pattern": "^[0-9]{13}-[A-Za-z0-9_.-]{1,64}$"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "the jobs; a Link header (rel=next) when there may be more",
                        "headers": {"Link": {"schema": {"type": "string"}}},
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}
                            }
                        },
                    },
                    "400": _error("a bad parameter"),
                    "401": _error("no or wrong token"),
                    "503": _error("the store cannot be read now"),
                },
            },
        },
    }


def _one_job_paths() -> dict[str, Any]:
    """One job and its preview."""
    return {
        "/jobs/{job_id}": {
            "get": {
                "summary": "One job document",
                "parameters": [_JOB_ID],
                "responses": {
                    "200": _job("the job"),
                    "400": _error("a bad id"),
                    "401": _error("no or wrong token"),
                    "404": _error("no such job"),
                    "503": _error("the store cannot be read now"),
                },
            },
            "delete": {
                "summary": "Cancel a running job or delete a finished one (array and record)",
                "parameters": [_JOB_ID],
                "responses": {
                    "202": _job("being cancelled or cleaned up; the job is gone (404) when that is over"),
                    "204": {"description": "deleted: the id is free"},
                    "400": _error("a bad id"),
                    "401": _error("no or wrong token"),
                    "403": _error("a browser session's write without the page's X-CSRF-Token"),
                    "404": _error("no such job, or another user's"),
                    "503": _error("the store cannot be used now"),
                },
            },
        },
        "/jobs/{job_id}/preview.png": {
            "get": {
                "summary": "A PNG picture of a complete job's array (a strided read of a bounded number of chunks)",
                "parameters": [
                    _JOB_ID,
                    {
                        "name": "size",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["full", "thumb"], "default": "full"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "the picture",
                        "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "400": _error("a bad id or size"),
                    "401": _error("no or wrong token"),
                    "404": _error("no such job"),
                    "409": _error("the job is not complete"),
                    "503": _error("the array could not be read"),
                },
            }
        },
    }


def _service_paths() -> dict[str, Any]:
    """The page, metrics, probes and this document."""
    return {
        "/": {
            "get": {
                "summary": "The web page: run form, jobs with live progress and previews, cluster state",
                "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {}}}},
            }
        },
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "the process answers"}}}},
        "/readyz": {
            "get": {
                "summary": "Readiness: cluster workers up and store writable",
                "responses": {
                    "200": {"description": "ready"},
                    "503": {"description": "not ready, with the reason"},
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3 JSON"}, "401": _error("no or wrong token")},
            }
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
            "description": "Dask workers write random Zarr arrays to S3.",
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
