"""gunicorn's entry point in a checkout: `gunicorn -c gunicorn.conf.py app:app` (the app is in the package)."""

from gateway_dask_zarr.server.wsgi import app

__all__ = ["app"]
