"""The app's parts in one typed object (Parts), reached by parts(app) instead of string keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:
    from gateway_dask_zarr.server.app import Service
    from gateway_dask_zarr.server.hub import HubLogin
    from gateway_dask_zarr.server.metrics import Metrics
    from gateway_dask_zarr.server.web import PreviewCache


@dataclass(frozen=True)
class Parts:
    """What create_app made for one app: the service, its metrics and previews, the hub's login (AUTH=jupyterhub)."""

    service: Service
    metrics: Metrics
    previews: PreviewCache
    hub_login: HubLogin | None


PARTS_KEY = __name__


def attach(app: Flask, made: Parts) -> None:
    """Give `app` its parts (create_app does, once)."""
    app.extensions[PARTS_KEY] = made


def parts(app: Flask | None = None) -> Parts:
    """The parts of `app`, by default of the app serving the current request."""
    found = (app if app is not None else current_app).extensions[PARTS_KEY]
    assert isinstance(found, Parts)
    return found
