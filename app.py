"""gunicorn's entry point: `gunicorn -c gunicorn.conf.py app:app`."""

from gateway_dask_zarr import create_app

app = create_app()
