"""Share links: POST /jobs/<id>/share gives a Zarr root URL with a signed, expiring read token in its path.

The token is `<expires>.<nonce>.<signature>`: an HMAC (SHA-256, the server's share key) of the
job id, the job's `created` time, the expiry and the nonce of the job's share record
(`_jobs/shares/<id>` in the store). It reads that one array and nothing else, until it expires,
`DELETE /jobs/<id>/share` removes the record (every link of the job stops), or the job is
deleted (a new job of the same id has another `created`, so old links stay dead).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import obstore
import obstore.exceptions
from flask import Blueprint, Flask, Response, current_app, jsonify, url_for

from gateway_dask_zarr.errors import InvalidParameter, NotFound
from gateway_dask_zarr.jobs import check_job_id
from gateway_dask_zarr.param_types import shown
from gateway_dask_zarr.server.body import json_body
from gateway_dask_zarr.server.edge import viewer
from gateway_dask_zarr.server.parts import parts
from gateway_dask_zarr.server.zarr_http import array_key, dataset_key, readable_document
from gateway_dask_zarr.server.zarr_http import bp as zarr_bp
from gateway_dask_zarr.settings import Settings

bp = Blueprint("share", __name__)

PREFIX = "_jobs/shares/"
DEFAULT_TTL_S = 7 * 86400
TOKEN = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{16,64})\.([A-Za-z0-9_-]{43})")
# The endpoints a share link reaches: no caller is needed, the token is the permission.
OPEN_ENDPOINTS = frozenset({"share.shared_array", "share.shared_dataset"})


def share_key(settings: Settings) -> bytes:
    """The key that signs share links: SHARE_SECRET, else derived from the hub's or the API's tokens (every
    replica has those), else random per process (links die with it)."""
    seed = settings.share_secret or settings.jupyterhub_api_token or ",".join(sorted(settings.api_tokens))
    return hmac.new((seed or secrets.token_hex(32)).encode(), b"gateway-dask-zarr share links", hashlib.sha256).digest()


def _signature(key: bytes, document: dict[str, Any], expires: int, nonce: str) -> str:
    message = f"share\n{document['id']}\n{document['created']}\n{expires}\n{nonce}".encode()
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode().rstrip("=")


def _store() -> Any:
    return parts().service.store.backend.obstore


def _record(job_id: str) -> dict[str, Any] | None:
    try:
        return dict(json.loads(bytes(obstore.get(_store(), PREFIX + job_id).bytes())))
    except FileNotFoundError:
        return None


def _nonce(document: dict[str, Any]) -> str:
    """The nonce of the job's share record, made now if it has none (or one of an earlier job of this id)."""
    record = _record(document["id"])
    if record is not None and record.get("created") == document["created"]:
        return str(record["nonce"])
    fresh = {"nonce": secrets.token_urlsafe(24), "created": document["created"]}
    body = json.dumps(fresh).encode()
    try:
        obstore.put(_store(), PREFIX + document["id"], body, mode="overwrite" if record else "create")
    except obstore.exceptions.AlreadyExistsError:
        # Another request made it first: use that one, so both links work.
        return _nonce(document)
    return str(fresh["nonce"])


def _expires_in(settings: Settings) -> int:
    body = json_body('{"expires_in": <seconds>}')
    if not isinstance(body, dict) or set(body) - {"expires_in"}:
        raise InvalidParameter('the body must be empty or {"expires_in": <seconds>}', code="invalid_body")
    value = body.get("expires_in", min(DEFAULT_TTL_S, settings.share_max_ttl_s))
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= settings.share_max_ttl_s:
        raise InvalidParameter(
            f"expires_in must be an integer number of seconds from 1 to {settings.share_max_ttl_s}, got {shown(value)}",
            field="expires_in",
        )
    return value


@bp.post("/jobs/<job_id>/share")
def create_share(job_id: str) -> tuple[Response, int]:
    """A share link of the caller's complete job: {"url", "dataset_url", "expires"}."""
    service = parts().service
    ttl = _expires_in(service.settings)
    document = readable_document(job_id, viewer())
    expires = int(time.time()) + ttl
    nonce = _nonce(document)
    token = f"{expires}.{nonce}.{_signature(current_app.extensions['gateway_share_key'], document, expires, nonce)}"
    zarr_json = url_for("share.shared_array", job_id=document["id"], token=token, key="zarr.json", _external=True)
    root = zarr_json.removesuffix("zarr.json")
    body = {
        "url": root,
        "dataset_url": root.removesuffix("zarr/") + "dataset/",
        "expires": datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z"),
    }
    return jsonify(body), 201


@bp.delete("/jobs/<job_id>/share")
def delete_share(job_id: str) -> tuple[str, int]:
    """Revoke every share link of the caller's job."""
    job_id = check_job_id(job_id)
    if parts().service.jobs.get(job_id, viewer()) is None:
        raise NotFound(f"no job {job_id!r}")
    obstore.delete(_store(), PREFIX + job_id)
    return "", 204


def _shared_document(job_id: str, token: str) -> dict[str, Any]:
    """The job a valid, unexpired, unrevoked token reads; NotFound for any other token."""
    gone = NotFound("this share link is not valid: it expired, was revoked, or its job was deleted")
    match = TOKEN.fullmatch(token)
    if match is None or int(match.group(1)) < time.time():
        raise gone
    try:
        document = readable_document(job_id, None)
    except NotFound:
        raise gone from None
    expires, nonce, signature = int(match.group(1)), match.group(2), match.group(3)
    expected = _signature(current_app.extensions["gateway_share_key"], document, expires, nonce)
    record = _record(document["id"])
    if not (hmac.compare_digest(signature, expected) and record and record.get("nonce") == nonce):
        raise gone
    return document


@bp.get("/shares/<job_id>/<token>/zarr/<path:key>")
def shared_array(job_id: str, token: str, key: str) -> Response:
    """A key of a shared job's array."""
    return array_key(_shared_document(job_id, token), key)


@bp.get("/shares/<job_id>/<token>/dataset/<path:key>")
def shared_dataset(job_id: str, token: str, key: str) -> Response:
    """A key of the group view of a shared job's array."""
    return dataset_key(_shared_document(job_id, token), key)


def init_share(app: Flask, settings: Settings) -> None:
    """Register the Zarr-over-HTTP and share routes, with the share key."""
    app.extensions["gateway_share_key"] = share_key(settings)
    app.register_blueprint(zarr_bp)
    app.register_blueprint(bp)
