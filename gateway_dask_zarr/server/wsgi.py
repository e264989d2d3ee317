"""The WSGI app: `gunicorn -c python:gateway_dask_zarr.server.gunicorn_conf gateway_dask_zarr.server.wsgi:app`."""

import os
import sys

from gunicorn.arbiter import Arbiter

from gateway_dask_zarr.server import create_app
from gateway_dask_zarr.settings import ConfigError, Settings
from gateway_dask_zarr.storage.embedded import writer_credentials

settings = Settings.from_env()
if settings.embedded_s3:
    # The embedded store accepts only its own writer's credentials (generated on its first
    # start, kept in DATA_DIR): obstore reads them from the environment, in this
    # process and in the Dask worker processes it starts (they inherit it). So they replace
    # any AWS_* already set, and a session token or profile would only get in their way.
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)
    os.environ.update(writer_credentials(settings.data_dir))

try:
    app = create_app(settings)
except ConfigError as exc:
    # A setting the cluster refused (WORKERS_MAX above the gateway's cap): one line, as a bad
    # value gets, and gunicorn's boot-error code, so that its master stops instead of retrying.
    print(f"configuration error: {exc}", file=sys.stderr)
    sys.exit(Arbiter.WORKER_BOOT_ERROR)
