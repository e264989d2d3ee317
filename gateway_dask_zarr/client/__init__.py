"""The Python client and the command line: HTTP only (no Flask, distributed or gunicorn)."""

from gateway_dask_zarr.client.client import GatewayClient, GatewayError, JobFailed, RemoteJob

__all__ = ["GatewayClient", "GatewayError", "JobFailed", "RemoteJob"]
