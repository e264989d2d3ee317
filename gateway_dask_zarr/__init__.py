"""gateway-dask-zarr: a Flask service whose Dask workers write Zarr arrays straight to S3.

The layers, one folder each (docs/architecture.md): `server` (HTTP) -> `jobs` -> `cluster`,
`storage` -> `worker` (what runs on Dask workers) -> the modules here (settings, errors,
params, logs, version); `client` speaks HTTP only.
"""

from gateway_dask_zarr.version import __version__

__all__ = ["__version__"]
