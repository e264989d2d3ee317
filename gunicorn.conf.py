"""gunicorn settings in a checkout: those shipped with the package (gateway_dask_zarr/server/gunicorn_conf.py)."""

from gateway_dask_zarr.server.gunicorn_conf import *  # noqa: F403
