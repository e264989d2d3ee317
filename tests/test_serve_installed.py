"""`gateway-dask-zarr serve` from an installed package, in a folder that is not the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import requests
from conftest import BUCKET
from helpers import module_file, pip_install_target
from serve import Served

from gateway_dask_zarr.storage.embedded import EmbeddedS3


def test_serve_from_an_installed_package_answers_readyz(s3: EmbeddedS3, tmp_path: Path) -> None:
    target = pip_install_target(tmp_path)
    env = {
        **os.environ,
        "PYTHONPATH": str(target),
        "STORE_URL": f"s3://{BUCKET}",
        "S3_ENDPOINT_URL": s3.endpoint_url,
        "DATA_DIR": str(tmp_path / "data"),
    }
    # The gunicorn settings and the app come from the installed package, not from a checkout.
    shipped = module_file("gateway_dask_zarr.server.gunicorn_conf", env, tmp_path)
    assert shipped.startswith(str(target))
    command = [str(target / "bin" / "gateway-dask-zarr"), "serve", "--port", "{port}"]
    with Served(command, env, tmp_path / "serve.log", cwd=tmp_path) as served:
        assert requests.get(served.url + "/readyz", timeout=10).status_code == 200
        page = requests.get(served.url + "/", timeout=10)
        assert page.status_code == 200 and "<form" in page.text  # the templates shipped too
        job = requests.get(served.url + "/run?shape=200,200&chunks=100,100&seed=1", timeout=120).json()
        assert job["status"] == "complete"
        assert served.close() == 0
