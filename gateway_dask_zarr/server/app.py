"""The app factory: `create_app` wires settings, store, cluster, jobs and routes into one `Service`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask

from gateway_dask_zarr.cluster.manager import ClusterManager
from gateway_dask_zarr.jobs import JobManager, Records
from gateway_dask_zarr.jobs.retention import Retention
from gateway_dask_zarr.logs import configure_logging
from gateway_dask_zarr.server.api import bp
from gateway_dask_zarr.server.auth import install_auth
from gateway_dask_zarr.server.edge import register_error_handlers
from gateway_dask_zarr.server.parts import Parts, attach
from gateway_dask_zarr.server.security import init_http_security
from gateway_dask_zarr.server.share import init_share
from gateway_dask_zarr.server.web import init_web
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.storage.arrays import JobStore
from gateway_dask_zarr.storage.backends import parse_storage
from gateway_dask_zarr.storage.embedded import EmbeddedS3

__all__ = ["Service", "create_app"]


@dataclass
class Service:
    """The parts one app owns: settings, embedded S3 (if any), cluster, store and jobs."""

    settings: Settings
    cluster: ClusterManager
    store: JobStore
    jobs: JobManager
    public_endpoint_url: str | None
    owned: list[Any] = field(default_factory=list)
    unsubscribe: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Stop jobs, close what this app started (newest first), then leave the cluster's callbacks.

        Safe to call twice. gunicorn's hooks call it (server/gunicorn_conf.py); tests close what they make.
        """
        self.jobs.close()
        while self.owned:
            self.owned.pop().close()
        # Only now: closing our own cluster tells the running jobs why they fail.
        while self.unsubscribe:
            self.unsubscribe.pop()()


def create_app(settings: Settings | None = None, *, cluster: ClusterManager | None = None) -> Flask:
    """Build the app: validate settings, start S3 (embedded default) and the cluster, wire the routes.

    A `cluster` passed in (tests share one) is used and not closed; otherwise the app makes
    its own, and `parts(app).service.close()` closes it. The process environment is
    left as it is: the embedded default's credentials are set by the entry point (app.py).
    """
    settings = settings or Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    owned: list[Any] = []
    store_url, endpoint, public_endpoint = settings.store_url, settings.s3_endpoint_url, settings.s3_public_endpoint_url
    if settings.embedded_s3:
        s3 = EmbeddedS3(settings.data_dir, public_read=settings.embedded_public_read).start()
        owned.append(s3)
        store_url, endpoint = f"s3://{s3.bucket}", s3.endpoint_url
    assert store_url is not None
    backend = parse_storage(store_url, endpoint)
    if cluster is None:
        cluster = ClusterManager(settings, in_process_workers=backend.in_process_workers)
        try:
            cluster.start()
        except Exception:
            for part in reversed(owned):
                part.close()
            raise
        owned.append(cluster)
    store = JobStore(backend)
    jobs = JobManager(settings, cluster, store, Records(backend))
    if settings.retention_days:
        owned.append(Retention(jobs, jobs.records, settings.retention_days).start())
    service = Service(settings, cluster, store, jobs, public_endpoint or endpoint, owned)
    service.unsubscribe.append(cluster.on_lost(jobs.fail_running))

    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # First, so an oversized body is refused before anything else looks at the request.
    init_http_security(app, settings)
    hub_login = install_auth(app, settings)
    app.register_blueprint(bp)
    init_share(app, settings)
    register_error_handlers(app)
    metrics, previews = init_web(app, service)
    attach(app, Parts(service, metrics, previews, hub_login))
    return app
