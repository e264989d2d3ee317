"""Zarr v3 over HTTP with the real JupyterHub: the owner reads with only a hub token, others get 404, share links."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import fsspec
import numpy as np
import pytest
import requests
import tensorstore as ts
import xarray as xr
import zarr
from hub_server import HubServer

from gateway_dask_zarr.grid import all_blocks, block_shape
from gateway_dask_zarr.server import share
from gateway_dask_zarr.server.parts import parts
from gateway_dask_zarr.worker.blocks import block_data
from gateway_dask_zarr.worker.verify import mismatched_blocks

JSON = {"Accept": "application/json"}


def _as(token: str) -> dict[str, str]:
    return {**JSON, "Authorization": f"token {token}"}


def expected(document: dict[str, Any]) -> np.ndarray:
    """The whole array by the deterministic rule."""
    shape, chunks = tuple(document["shape"]), tuple(document["chunks"])
    out = np.empty(shape, dtype=document["dtype"])
    for index in all_blocks(shape, chunks):
        block = block_data(document["seed"], index, block_shape(shape, chunks, index), document["dtype"])
        out[tuple(slice(i * c, i * c + n) for i, c, n in zip(index, chunks, block.shape, strict=True))] = block
    return out


def chunk_keys(document: dict[str, Any]) -> list[str]:
    """Every chunk key of the job's array."""
    return ["c/" + "/".join(map(str, index)) for index in all_blocks(document["shape"], document["chunks"])]


def _run(hub: HubServer, token: str, query: str) -> dict[str, Any]:
    ran = requests.get(f"{hub.app_url}run?{query}", headers=_as(token), timeout=300)
    assert ran.status_code == 200, ran.text
    return dict(ran.json())


def _open_zarr(root: str, headers: dict[str, str] | None = None) -> zarr.Array:
    return zarr.open_array(root, mode="r", storage_options={"headers": headers or {}})


def test_alice_reads_her_array_with_only_her_hub_token(hub: HubServer, hub_app: Any) -> None:
    alice = hub.mint_token("alice")
    document = _run(hub, alice, "shape=300,250&chunks=100,100&seed=21")
    root = hub.url + document["links"]["zarr"]
    auth = {"Authorization": f"token {alice}"}
    truth = expected(document)

    # zarr-python through fsspec's HTTP filesystem (aiohttp): no S3 client, no S3 credentials.
    array = _open_zarr(root, auth)
    assert array.shape == (300, 250) and array.attrs["gateway"]["id"] == document["id"]
    assert mismatched_blocks(array, document["seed"]) == []
    # xarray on the group view (consolidated metadata: no listing over HTTP).
    dataset = xr.open_zarr(root.removesuffix("zarr/") + "dataset/", storage_options={"headers": auth})
    assert dataset["data"].dims == ("y", "x")
    assert np.array_equal(dataset["data"].values, truth)
    # TensorStore's HTTP kvstore, the token in its headers; it cannot follow a redirect (see below),
    # so it asks the app to stream the chunks.
    headers = [f"Authorization: token {alice}", "X-Gateway-Stream: 1"]
    spec = {"driver": "zarr3", "kvstore": {"driver": "http", "base_url": root, "headers": headers}}
    assert np.array_equal(ts.open(spec, read=True).result().read().result(), truth)

    # Each chunk key is a redirect to the store, which answers Range requests itself.
    hop = requests.get(root + "c/1/2", headers=auth, allow_redirects=False, timeout=30)
    assert hop.status_code == 307 and "X-Amz-Signature=" in hop.headers["Location"]
    assert hop.headers["Cache-Control"] == "private, no-store"
    part = requests.get(hop.headers["Location"], headers={"Range": "bytes=0-15"}, timeout=30)
    assert part.status_code == 206 and len(part.content) == 16
    assert part.content == requests.get(hop.headers["Location"], timeout=30).content[:16]
    # Keys that are neither metadata nor chunks are not forwarded to the store.
    assert requests.get(root + "c/1", headers=auth, timeout=30).status_code == 404
    assert requests.get(root + "../../_jobs/x", headers=auth, timeout=30).status_code in (404, 400)


def test_bob_gets_404_for_every_key_and_no_token_gets_401(hub: HubServer, hub_app: Any) -> None:
    alice, bob = hub.mint_token("alice"), hub.mint_token("bob")
    document = _run(hub, alice, "shape=200,300&chunks=100,100&seed=3")
    root = hub.url + document["links"]["zarr"]
    dataset = root.removesuffix("zarr/") + "dataset/"
    keys = [root + k for k in ("zarr.json", *chunk_keys(document))]
    keys += [dataset + "zarr.json", dataset + "data/zarr.json", dataset + "data/c/0/0"]
    for url in keys:
        answer = requests.get(url, headers=_as(bob), allow_redirects=False, timeout=30)
        assert answer.status_code == 404, (url, answer.status_code)
        assert answer.json()["error"]["code"] == "not_found"
        assert requests.get(url, headers=JSON, allow_redirects=False, timeout=30).status_code == 401
    share_url = hub.url + document["links"]["self"] + "/share"
    assert requests.post(share_url, headers=_as(bob), timeout=30).status_code == 404
    assert requests.delete(share_url, headers=_as(bob), timeout=30).status_code == 404
    # Alice's own read still works; so does the hub's admin's (carol).
    assert requests.get(keys[0], headers=_as(alice), timeout=30).status_code == 200
    assert requests.get(keys[0], headers=_as(hub.mint_token("carol")), timeout=30).status_code == 200


def test_a_share_link_reads_with_no_token_until_it_expires_is_revoked_or_the_job_is_deleted(
    hub: HubServer, hub_app: Any
) -> None:
    alice = hub.mint_token("alice")
    document = _run(hub, alice, "shape=200,200&chunks=100,100&seed=8")
    job_url = hub.url + document["links"]["self"]
    made = requests.post(job_url + "/share", json={"expires_in": 3600}, headers=_as(alice), timeout=30)
    assert made.status_code == 201, made.text
    link = made.json()
    assert link["url"].startswith(f"{hub.app_url}shares/{document['id']}/") and link["url"].endswith("/zarr/")
    assert link["expires"].endswith("Z")
    # Anyone holding it reads the array, with no token at all: zarr, xarray.
    assert mismatched_blocks(_open_zarr(link["url"]), document["seed"]) == []
    assert np.array_equal(xr.open_zarr(link["dataset_url"])["data"].values, expected(document))
    # Read only: a share link takes no write, and opens no other job.
    assert requests.put(link["url"] + "c/0/0", data=b"x", timeout=30).status_code in (401, 405)
    other = _run(hub, alice, "shape=100,100&chunks=100,100&seed=1")
    assert requests.get(link["url"].replace(document["id"], other["id"]) + "zarr.json", timeout=30).status_code == 404
    # The same token with its expiry in the past (signed with the service's own key) is refused.
    token = link["url"].rstrip("/").split("/")[-2]
    _, nonce, _ = token.split(".")
    key = share.share_key(parts(hub_app).service.settings)
    past = int(time.time()) - 1
    expired = f"{past}.{nonce}.{share._signature(key, document, past, nonce)}"
    assert requests.get(link["url"].replace(token, expired) + "zarr.json", timeout=30).status_code == 404
    forged = f"{past + 7200}.{nonce}.{share._signature(b'another key', document, past + 7200, nonce)}"
    assert requests.get(link["url"].replace(token, forged) + "zarr.json", timeout=30).status_code == 404
    assert requests.get(link["url"] + "zarr.json", timeout=30).status_code == 200

    # DELETE on the share revokes every link of the job; a new one works again.
    assert requests.delete(job_url + "/share", headers=_as(alice), timeout=30).status_code == 204
    assert requests.get(link["url"] + "zarr.json", timeout=30).status_code == 404
    again = requests.post(job_url + "/share", headers=_as(alice), timeout=30).json()
    assert requests.get(again["url"] + "c/0/0", allow_redirects=False, timeout=30).status_code == 307
    # Deleting the job ends it, and a new job given the same id does not bring it back.
    assert requests.delete(job_url, headers=_as(alice), timeout=60).status_code == 204
    assert requests.get(again["url"] + "zarr.json", timeout=30).status_code == 404
    requests.get(f"{hub.app_url}submit_job/{document['id']}?shape=200,200&chunks=100,100", headers=_as(alice))
    assert requests.get(job_url, headers=_as(alice), timeout=30).json()["status"] == "complete"
    assert requests.get(again["url"] + "zarr.json", timeout=30).status_code == 404


def test_share_refuses_a_bad_expiry_and_a_job_not_complete(hub: HubServer, hub_app: Any) -> None:
    alice = hub.mint_token("alice")
    document = _run(hub, alice, "shape=100,100&chunks=100,100&seed=2")
    job_url = hub.url + document["links"]["self"]
    for bad in ({"expires_in": 0}, {"expires_in": "1h"}, {"expires_in": 10**12}, {"other": 1}):
        refused = requests.post(job_url + "/share", json=bad, headers=_as(alice), timeout=30)
        assert refused.status_code == 400, (bad, refused.text)
        assert refused.json()["error"]["code"] in ("invalid_parameter", "invalid_body")
    missing = requests.post(f"{hub.app_url}jobs/no-such-job/share", headers=_as(alice), timeout=30)
    assert missing.status_code == 404


def test_the_app_sends_only_metadata_and_redirects_while_an_array_is_read(hub: HubServer, hub_app: Any) -> None:
    alice = hub.mint_token("alice")
    document = _run(hub, alice, "shape=1024,2048&chunks=256,512&seed=5")
    # Count the body bytes the app answers with (the 512 MiB figure, with RSS: bench/zarr_http.py).
    sent = [0]
    inner = hub.slot.app

    def counting(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        for piece in inner(environ, start_response):
            sent[0] += len(piece)
            yield piece

    hub.slot.app = counting
    try:
        array = _open_zarr(hub.url + document["links"]["zarr"], {"Authorization": f"token {alice}"})
        assert np.array_equal(array[:], expected(document))
    finally:
        hub.slot.app = inner
    array_bytes = 1024 * 2048 * 4
    assert 0 < sent[0] < array_bytes / 500, sent[0]


class _Recorder(BaseHTTPRequestHandler):
    """Port A answers 307 to port B (another origin); B records the Authorization header it got."""

    seen: ClassVar[list[str | None]] = []
    target: ClassVar[str] = ""

    def do_GET(self) -> None:
        if self.path.startswith("/start/"):
            self.send_response(307)
            self.send_header("Location", self.target + self.path.removeprefix("/start/"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.seen.append(self.headers.get("Authorization"))
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"bytes")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.fast
def test_readers_on_a_cross_origin_redirect_drop_the_authorization_header_and_tensorstore_stops() -> None:
    # S3 refuses a presigned URL that also carries an Authorization header (two auth mechanisms).
    store = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.target = f"http://127.0.0.1:{store.server_port}/"
    origin = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    servers, seen = (origin, store), _Recorder.seen
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        base = f"http://127.0.0.1:{origin.server_port}/start/"
        header = {"Authorization": "token secret-of-alice"}
        # aiohttp, as fsspec's HTTPFileSystem (zarr, xarray) uses it.
        assert fsspec.filesystem("http", headers=header).cat_file(base + "k1") == b"bytes"
        assert requests.get(base + "k2", headers=header, timeout=30).content == b"bytes"
        assert seen == [None, None], seen
        # TensorStore 0.1.86's HTTP kvstore does not follow a redirect at all (hence X-Gateway-Stream).
        kvstore = ts.KvStore.open({"driver": "http", "base_url": base, "headers": ["Authorization: token t"]}).result()
        with pytest.raises(ValueError, match="307"):
            kvstore.read("k3").result()
        assert seen == [None, None]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
