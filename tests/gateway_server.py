"""A real dask-gateway-server on 127.0.0.1, run with the project's deploy/local_gateway_config.py."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
from serve import free_port, spawn_logged, wait_answering

from gateway_dask_zarr.cluster.backends import forget_loop

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "deploy" / "local_gateway_config.py"
BIN = Path(sys.executable).parent


class GatewayServer:
    """One dask-gateway-server subprocess (UnsafeLocalBackend) and its clusters.

    It authenticates with a password (SimpleAuthenticator) or, given `hub_env` (the hub's API
    URL, the gateway's service token and name), with JupyterHub's tokens; then `hub_token` is
    the token whose clusters this object lists.
    """

    def __init__(
        self,
        workdir: Path,
        worker_env: dict[str, str],
        username: str = "gateway-test",
        hub_env: dict[str, str] | None = None,
        hub_token: str | None = None,
        max_workers: int = 3,
    ) -> None:
        self.workdir = workdir
        self.max_workers = max_workers  # its cluster_max_workers
        self.worker_env = worker_env
        self.username = username
        self.hub_env = hub_env or {}
        self.hub_token = hub_token
        self.password = "gw-pass-" + secrets.token_hex(8)
        self.http_port, self.tcp_port, self.private_port = free_port(), free_port(), free_port()
        self.address = f"http://127.0.0.1:{self.http_port}"
        self.proxy_address = f"gateway://127.0.0.1:{self.tcp_port}"
        self.log_path = workdir / "gateway.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> GatewayServer:
        """Start the server and wait until its health check passes."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DASK_GATEWAY", "JUPYTERHUB_"))}
        env.update(self.worker_env)
        env.update(self.hub_env)
        env.update(
            GATEWAY_ADDRESS=f"127.0.0.1:{self.http_port}",
            GATEWAY_PROXY_ADDRESS=f"127.0.0.1:{self.tcp_port}",
            GATEWAY_PRIVATE_ADDRESS=f"127.0.0.1:{self.private_port}",
            GATEWAY_PASSWORD=self.password,
            GATEWAY_CLUSTER_MAX_WORKERS=str(self.max_workers),
            TMPDIR=str(self.workdir),
        )
        args = [str(BIN / "dask-gateway-server"), "-f", str(CONFIG)]
        self.process = spawn_logged(args, self.log_path, cwd=self.workdir, env=env)
        wait_answering(self.process, f"{self.address}/api/health", timeout, self.log, self.stop)
        return self

    def log(self) -> str:
        """The server's log so far."""
        return self.log_path.read_text(errors="replace")

    def client_env(self) -> dict[str, str]:
        """dask-gateway's own client configuration, as environment variables (a hub pod's way)."""
        if self.hub_token is not None:
            # The token itself comes from JUPYTERHUB_API_TOKEN, which the client reads.
            return {
                "DASK_GATEWAY__ADDRESS": self.address,
                "DASK_GATEWAY__PROXY_ADDRESS": self.proxy_address,
                "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
            }
        return {
            "DASK_GATEWAY__ADDRESS": self.address,
            "DASK_GATEWAY__PROXY_ADDRESS": self.proxy_address,
            "DASK_GATEWAY__AUTH__TYPE": "basic",
            "DASK_GATEWAY__AUTH__KWARGS__USERNAME": self.username,
            "DASK_GATEWAY__AUTH__KWARGS__PASSWORD": self.password,
        }

    def dask_config(self) -> dict[str, Any]:
        """The same configuration for dask.config.set (dask reads the variables only at import)."""
        return {
            "gateway.address": self.address,
            "gateway.proxy-address": self.proxy_address,
            "gateway.auth.type": "basic",
            "gateway.auth.kwargs": {"username": self.username, "password": self.password},
        }

    def auth(self) -> Any:
        """dask-gateway's client auth of the test user (or of `hub_token`'s owner)."""
        from dask_gateway import BasicAuth, JupyterHubAuth

        if self.hub_token is not None:
            return JupyterHubAuth(api_token=self.hub_token)
        return BasicAuth(self.username, self.password)

    def gateway(self) -> Any:
        """A dask_gateway.Gateway client of the test user; close it after use."""
        from dask_gateway import Gateway

        return Gateway(self.address, self.proxy_address, auth=self.auth())

    @contextlib.contextmanager
    def client_of(self, name: str) -> Iterator[Any]:
        """A distributed Client of one of the test user's clusters; the cluster is left running."""
        from dask_gateway import GatewayCluster

        cluster = GatewayCluster.from_name(
            name, address=self.address, proxy_address=self.proxy_address, auth=self.auth()
        )
        try:
            with cluster.get_client(set_as_default=False) as client:
                yield client
        finally:
            cluster.close(shutdown=False)
            forget_loop(cluster.gateway)

    def cluster_names(self) -> list[str]:
        """Names of the test user's clusters the gateway lists (pending or running)."""
        with self.gateway() as gateway:
            names = [report.name for report in gateway.list_clusters()]
        forget_loop(gateway)
        return names

    def processes(self, role: str, cluster_name: str | None = None) -> list[psutil.Process]:
        """The server's live scheduler or worker processes, optionally of one cluster."""
        assert self.process is not None
        found = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                cmdline, environ = child.cmdline(), child.environ()
            except psutil.Error:
                continue
            if role in cmdline[2:3] and cluster_name in (None, environ.get("DASK_GATEWAY_CLUSTER_NAME")):
                found.append(child)
        return found

    def stop(self) -> None:
        """Stop the server (it stops its clusters), then kill any process of it left over."""
        if self.process is None:
            return
        children = psutil.Process(self.process.pid).children(recursive=True) if self.process.poll() is None else []
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        self.process = None
