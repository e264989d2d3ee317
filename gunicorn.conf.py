"""gunicorn settings: one process (it owns the one Dask cluster), gthread threads, clean shutdown."""

import os

from gateway_dask_zarr.config import ConfigError, Settings

host = os.environ.get("HOST", "127.0.0.1")
port = os.environ.get("PORT", "8000")
bind = [f"{host}:{port}"]

# One worker process: each process makes its own cluster, so more would multiply clusters.
# No preload: the Dask Client must be made after the fork, in the worker.
workers = 1
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
preload_app = False

try:
    _settings = Settings.from_env()
except ConfigError as exc:
    raise SystemExit(f"configuration error: {exc}") from None

# The worker loads the app (and so starts the cluster) before its first heartbeat: the
# timeout must cover the slowest cluster start.
timeout = int(os.environ.get("GUNICORN_TIMEOUT_S", str(_settings.cluster_start_timeout_s + 60)))
# Long enough to close a gateway cluster; the pod's terminationGracePeriodSeconds is above it.
graceful_timeout = 60
accesslog = None
errorlog = "-"


def post_worker_init(worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """Say where the service is, once the cluster is up and the app loaded."""
    url = f"http://{host}:{port}"
    worker.log.info("gateway-dask-zarr is serving on %s", url)
    worker.log.info("try: curl '%s/run?shape=1000,1000&chunks=100,100&seed=7'", url)


def worker_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """Close the cluster (a gateway cluster is shut down) and the embedded S3 server."""
    app = getattr(worker, "wsgi", None)
    if app is not None and "gateway" in getattr(app, "extensions", {}):
        app.extensions["gateway"].close()
