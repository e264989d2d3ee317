"""Small helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import zarr

from gateway_dask_zarr.storage.embedded import EmbeddedS3
from gateway_dask_zarr.worker.verify import mismatched_blocks

ROOT = Path(__file__).resolve().parent.parent

# The writer's credentials of the tests' SeaweedFS servers: distinctive, so a leak is findable.
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "GDZTESTACCESSKEY",
    "AWS_SECRET_ACCESS_KEY": "gdz-secret-" + os.urandom(8).hex(),
    "AWS_DEFAULT_REGION": "us-east-1",
}


def open_job_array(document: dict[str, Any], anon: bool = False) -> zarr.Array:
    """Open a job's array as a user would: from the reported url and endpoint_url (unsigned if `anon`)."""
    options = {"endpoint_url": document["endpoint_url"], "anon": anon} if document["url"].startswith("s3://") else None
    return zarr.open_array(document["url"], mode="r", storage_options=options)


def assert_verified(document: dict[str, Any], anon: bool = False) -> zarr.Array:
    """The job is complete and every chunk of its array equals the deterministic rule."""
    assert document["status"] == "complete", document
    array = open_job_array(document, anon)
    assert list(array.shape) == document["shape"]
    assert list(array.chunks) == document["chunks"]
    assert str(array.dtype) == document["dtype"]
    assert array.attrs["gateway"]["status"] == "complete"
    assert mismatched_blocks(array, document["seed"]) == []
    return array


def wait_for(predicate: Any, timeout: float = 60, interval: float = 0.1) -> Any:
    """Poll until predicate() is truthy and return it; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def pip_install_target(tmp_path: Path) -> Path:
    """`pip install --no-deps --target` of the package built from a copy of its sources; the target."""
    # A copy of what the package is built from, so that building writes nothing into the repository.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT / "gateway_dask_zarr", source / "gateway_dask_zarr", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target"]
    subprocess.run([*pip, str(target), str(source)], check=True, timeout=300)
    return target


def discard_store(server: EmbeddedS3) -> None:
    """Stop a throwaway SeaweedFS at once (SIGKILL) and remove its socket files.

    For a store whose directory is never served again: a graceful stop takes about 16 s (a
    15 s gRPC graceful stop), which tests that restart on the same directory keep.
    """
    if server.process is not None:
        server.process.kill()
        server.process.wait()
    server.close()


def module_file(module: str, env: dict[str, str], cwd: Path) -> str:
    """The file `module` is imported from by this Python with `env`, run in `cwd`."""
    code = f"import {module} as m; print(m.__file__)"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, check=True
    ).stdout
