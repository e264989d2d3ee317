"""gateway-dask-zarr: a Flask service whose Dask workers write random Zarr arrays to S3."""

from __future__ import annotations

__version__ = "0.1.0"

import atexit
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway_dask_zarr.config import Settings
from gateway_dask_zarr.logs import configure_logging

if TYPE_CHECKING:
    from flask import Flask

    from gateway_dask_zarr.cluster import ClusterManager
    from gateway_dask_zarr.jobs import JobManager
    from gateway_dask_zarr.store import JobStore


@dataclass
class Service:
    """The parts one app owns: settings, embedded S3 (if any), cluster, store and jobs."""

    settings: Settings
    cluster: ClusterManager
    store: JobStore
    jobs: JobManager
    public_endpoint_url: str | None
    owned: list[Any] = field(default_factory=list)

    def close(self) -> None:
        """Stop jobs, then close what this app started, newest first. Safe to call twice."""
        self.jobs.close()
        while self.owned:
            self.owned.pop().close()


def create_app(settings: Settings | None = None, *, cluster: ClusterManager | None = None) -> Flask:
    """Build the app: validate settings, start S3 (embedded default) and the cluster, wire the routes.

    A `cluster` passed in (tests share one) is used and not closed; otherwise the app makes
    its own and closes it at exit.
    """
    # Imported here, not at the top: workers import this package for blocks.py and must
    # not pay for (or need) Flask.
    from flask import Flask

    from gateway_dask_zarr.api import bp, register_error_handlers
    from gateway_dask_zarr.auth import install_auth
    from gateway_dask_zarr.cluster import ClusterManager
    from gateway_dask_zarr.embedded_s3 import EmbeddedS3
    from gateway_dask_zarr.jobs import JobManager
    from gateway_dask_zarr.store import JobStore
    from gateway_dask_zarr.web import init_web

    settings = settings or Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    owned: list[Any] = []
    store_url, endpoint, public_endpoint = settings.store_url, settings.s3_endpoint_url, settings.s3_public_endpoint_url
    if settings.embedded_s3:
        s3 = EmbeddedS3(settings.data_dir).start()
        owned.append(s3)
        # obstore and botocore read credentials from the environment, here and in the
        # LocalCluster's workers, which inherit it: the store accepts only its own.
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
            os.environ.pop(name, None)
        os.environ.update(s3.credentials)
        store_url, endpoint = f"s3://{s3.bucket}", s3.endpoint_url
    assert store_url is not None
    if cluster is None:
        cluster = ClusterManager(settings)
        try:
            cluster.start()
        except Exception:
            for part in reversed(owned):
                part.close()
            raise
        owned.append(cluster)
    store = JobStore(store_url, endpoint)
    jobs = JobManager(settings, cluster, store)
    cluster.on_lost(jobs.fail_running)
    service = Service(settings, cluster, store, jobs, public_endpoint or endpoint, owned)
    atexit.register(service.close)

    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["gateway"] = service
    install_auth(app, settings)
    app.register_blueprint(bp)
    register_error_handlers(app)
    init_web(app)
    return app
