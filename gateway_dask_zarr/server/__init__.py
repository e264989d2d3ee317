"""The HTTP layer: the Flask app factory, routes, auth, the error edge; the only code that knows Flask."""

from gateway_dask_zarr.server.app import Service, create_app

__all__ = ["Service", "create_app"]
