"""Fixtures: a real loopback S3 server, a real LocalCluster, a real JupyterHub, and apps wired to them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

# The tests' helper modules assert too: rewritten, a failing assert there says what it compared.
pytest.register_assert_rewrite("helpers", "serve", "live", "hub_server", "gateway_server", "stand_ins")

import s3fs
from helpers import S3_CREDENTIALS, discard_store
from hub_server import HubServer
from playwright.sync_api import Browser, sync_playwright

from gateway_dask_zarr.cluster.manager import ClusterManager
from gateway_dask_zarr.server import create_app
from gateway_dask_zarr.server.parts import parts
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.storage.embedded import EmbeddedS3

# Set before any cluster starts, so worker processes inherit them: the workers' own
# environment is where credentials come from. The session's store is made with them.
os.environ.update(S3_CREDENTIALS)

BUCKET = "test-bucket"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedS3]:
    """One SeaweedFS server on 127.0.0.1 for the whole session, on a temporary directory."""
    server = EmbeddedS3(tmp_path_factory.mktemp("seaweedfs"), BUCKET, credentials=S3_CREDENTIALS).start()
    yield server
    discard_store(server)


@pytest.fixture(scope="module")
def own_s3(request: pytest.FixtureRequest, s3_server: EmbeddedS3) -> EmbeddedS3:
    """The session's S3 server with a bucket of the module's own (its BUCKET), never emptied: for
    apps that outlive one test (the shared bucket is emptied before every test)."""
    client = s3_server.client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=request.module.BUCKET)
    return s3_server


@pytest.fixture
def s3(s3_server: EmbeddedS3) -> EmbeddedS3:
    """The session's S3 server, its bucket emptied before the test.

    Emptied rather than made anew: a new bucket reserves about 7 volumes of the server's 100.
    """
    client = s3_server.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})
    return s3_server


@pytest.fixture
def s3fs_client(s3: EmbeddedS3) -> s3fs.S3FileSystem:
    """An s3fs filesystem on the test server, with no listing cache."""
    return s3fs.S3FileSystem(endpoint_url=s3.endpoint_url, skip_instance_cache=True, use_listings_cache=False)


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterManager]:
    """One real LocalCluster of 3 worker processes, shared by the session's apps."""
    manager = ClusterManager(Settings(n_workers=3)).start()
    yield manager
    manager.close()


@pytest.fixture
def settings(s3: EmbeddedS3) -> Settings:
    """Settings for an app on the test bucket."""
    return Settings(store_url=f"s3://{BUCKET}", s3_endpoint_url=s3.endpoint_url)


@pytest.fixture
def make_app(cluster: ClusterManager) -> Iterator[Callable[..., Any]]:
    """Build apps on the shared cluster; each is closed after the test."""
    services: list[Any] = []

    def make(settings: Settings, **changes: Any) -> Any:
        app = create_app(replace(settings, **changes), cluster=cluster)
        services.append(parts(app).service)
        return app

    yield make
    for service in services:
        service.close()


@pytest.fixture
def app(make_app: Callable[..., Any], settings: Settings) -> Any:
    """An app on the shared cluster and the test bucket."""
    return make_app(settings)


@pytest.fixture
def client(app: Any) -> Any:
    """Flask's test client for `app`."""
    return app.test_client()


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """One real JupyterHub (with configurable-http-proxy) on 127.0.0.1 for the session's hub tests."""
    server = HubServer(tmp_path_factory.mktemp("hub")).start()
    yield server
    server.stop()


@pytest.fixture
def hub_app(hub: HubServer, make_app: Callable[..., Any], settings: Settings) -> Iterator[Any]:
    """An app as the hub's service, behind the hub's proxy at hub.app_url."""
    app = make_app(hub.app_settings(settings))
    hub.slot.app = app
    yield app
    hub.slot.app = None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium (Debian's) for a module's tests."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
