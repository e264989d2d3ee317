"""The one Dask cluster a process owns: its manager, watchdog and backends (local, gateway, scheduler)."""

from gateway_dask_zarr.cluster.manager import ClusterManager

__all__ = ["ClusterManager"]
