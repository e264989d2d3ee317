"""Bounded adaptive scaling (issue 21): adapt between WORKERS_MIN and WORKERS_MAX, within the gateway's cap."""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any

from distributed import Client

from gateway_dask_zarr.settings import ConfigError, Settings

log = logging.getLogger(__name__)

# How dask-gateway-server words its answer to an adapt above its cap (routes.py, adapt_cluster).
CAP = re.compile(r"resource limit of (\d+) workers")


def adapt(cluster: Any, settings: Settings) -> None:
    """Adapt between WORKERS_MIN and WORKERS_MAX when max > min (a fixed size otherwise); ConfigError over a cap."""
    if settings.workers_max <= settings.workers_min:
        return
    log.info("the cluster adapts between %d and %d workers", settings.workers_min, settings.workers_max)
    # A gateway caps each cluster (cluster_max_workers, lowered by cluster_max_cores and
    # cluster_max_memory) and answers an adapt above it with a warning, then adapts to the cap:
    # that answer is the only place its client learns the cap. The warning is raised in the
    # gateway client's loop thread, which the process-wide record below still sees.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cluster.adapt(minimum=settings.workers_min, maximum=settings.workers_max)
    capped = [str(w.message) for w in caught if w.category.__name__ == "GatewayWarning"]
    for other in caught:
        if other.category.__name__ != "GatewayWarning":
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    if capped:
        found = CAP.search(capped[0])
        cap = f"cap of {found.group(1)} workers" if found else f"cap ({capped[0]})"
        raise ConfigError(
            "WORKERS_MAX",
            f"is {settings.workers_max}, above the Dask Gateway's {cap} for a cluster "
            "(cluster_max_workers, cluster_max_cores, cluster_max_memory); lower it or raise the gateway's",
        )


def gateway_target(client: Client) -> int | None:
    """The workers a gateway cluster is asked for: its scheduler's gateway service holds the count."""

    def requested(dask_scheduler: Any) -> int | None:
        # Nested, so that it is sent by value: the scheduler need not import this package.
        return getattr(dask_scheduler.services.get("gateway"), "count", None)

    try:
        return client.run_on_scheduler(requested)
    except Exception as exc:
        # A status must not fail while the scheduler is going away: the target is then unknown.
        log.debug("the gateway cluster's target is unavailable: %s", type(exc).__name__)
        return None
