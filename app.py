"""gunicorn's entry point: `gunicorn -c gunicorn.conf.py app:app`."""

import os

from gateway_dask_zarr import create_app
from gateway_dask_zarr.config import Settings
from gateway_dask_zarr.embedded_s3 import EMBEDDED_CREDENTIALS

settings = Settings.from_env()
if settings.embedded_s3:
    # The embedded default's S3 credentials, for this process and the Dask worker processes
    # it starts (they inherit its environment); real credentials are never overridden.
    for name, value in EMBEDDED_CREDENTIALS.items():
        os.environ.setdefault(name, value)

app = create_app(settings)
