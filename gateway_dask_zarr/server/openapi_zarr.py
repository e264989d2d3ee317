"""The OpenAPI paths of Zarr over HTTP (server/zarr_http.py) and share links (server/share.py)."""

from __future__ import annotations

from typing import Any

from gateway_dask_zarr.server.openapi_parts import NO_CSRF, UNAUTHENTICATED, operation


def _path(name: str, pattern: str, description: str) -> dict[str, Any]:
    schema = {"type": "string", "pattern": pattern}
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


_JOB_ID = _path("job_id", r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$", "the job's id")
_KEY = _path("key", r"^(zarr\.json|c(/[0-9]{1,9})+)$", "zarr.json, or a chunk or shard key such as c/0/1")
_TOKEN = _path("token", r"^[0-9]{1,12}\.[A-Za-z0-9_-]{16,64}\.[A-Za-z0-9_-]{43}$", "a share link's signed token")


_KEY_ANSWERS = {
    "200": {
        "description": "zarr.json; or the chunk's bytes when streamed (X-Gateway-Stream: 1, or a store "
        "with no presigned URLs)",
        "content": {"application/json": {"schema": {"type": "object"}}, "application/octet-stream": {}},
    },
    "206": {"description": "a Range of the chunk's bytes, when streamed"},
    "307": {"description": "the chunk or shard: Location is a short-lived presigned store URL"},
}
_KEY_ERRORS = {
    404: "no such key, no complete job, or another user's job",
    416: "a Range beyond the chunk",
    503: "the store cannot be read now",
}


def _key_get(summary: str, parameters: list[dict[str, Any]], refusals: dict[int, str]) -> dict[str, Any]:
    """A GET of one Zarr key: metadata (JSON), a redirect to the store, or streamed bytes."""
    return {"get": operation(summary, _KEY_ANSWERS, {**_KEY_ERRORS, **refusals}, parameters)}


_SHARE_MADE = {
    "description": "the link: url (the array's Zarr root), dataset_url (a group holding it, for xarray), expires",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["url", "dataset_url", "expires"],
                "properties": {
                    "url": {"type": "string"},
                    "dataset_url": {"type": "string"},
                    "expires": {"type": "string", "format": "date-time"},
                },
            }
        }
    },
}
_SHARE_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"expires_in": {"type": "integer", "minimum": 1, "default": 604800}},
            }
        }
    },
}


def zarr_paths() -> dict[str, Any]:
    """The Zarr keys of a job (its owner's), of a share link (anyone holding it), and the share routes."""
    own = {400: "a bad id", 401: UNAUTHENTICATED, 403: "no access scope"}
    shared = [_JOB_ID, _TOKEN, _KEY]
    bad_id = {400: "a bad id"}
    share = "A share link: a Zarr root URL with a signed, expiring read token in its path"
    refused = {401: UNAUTHENTICATED, 403: NO_CSRF, 503: "the store cannot be used now"}
    return {
        "/jobs/{job_id}/zarr/{key}": _key_get("A key of the job's array as Zarr v3", [_JOB_ID, _KEY], own),
        "/jobs/{job_id}/dataset/{key}": _key_get(
            "A key of a Zarr group holding the job's array as `data` (consolidated, for xarray)", [_JOB_ID, _KEY], own
        ),
        "/shares/{job_id}/{token}/zarr/{key}": _key_get("A key of a shared array, no token needed", shared, bad_id),
        "/shares/{job_id}/{token}/dataset/{key}": _key_get("A key of a shared array's group view", shared, bad_id),
        "/jobs/{job_id}/share": {
            "post": operation(
                share,
                {"201": _SHARE_MADE},
                {400: "a bad id or expires_in", 404: "no complete job, or another user's", **refused},
                [_JOB_ID],
                requestBody=_SHARE_BODY,
            ),
            "delete": operation(
                "Revoke every share link of the job",
                {"204": {"description": "revoked"}},
                {400: "a bad id", 404: "no such job, or another user's", **refused},
                [_JOB_ID],
            ),
        },
    }
