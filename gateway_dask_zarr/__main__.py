"""`python -m gateway_dask_zarr`: the same as the `gateway-dask-zarr` command."""

from gateway_dask_zarr.client.cli import entry

entry()
