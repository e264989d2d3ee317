"""dask-gateway-server config for trying CLUSTER=gateway on one machine; the tests run it too.

Start it from the project's venv, then point the app at it (README: "Pointing the service at
a Dask Gateway"):

    GATEWAY_PASSWORD=change-me .venv/bin/dask-gateway-server -f deploy/local_gateway_config.py

or, to authenticate with a JupyterHub (the gateway registered there as a service with this token):

    JUPYTERHUB_API_URL=http://127.0.0.1:8081/hub/api JUPYTERHUB_API_TOKEN=... \
    JUPYTERHUB_SERVICE_NAME=dask-gateway .venv/bin/dask-gateway-server -f deploy/local_gateway_config.py

Its schedulers and workers are processes of this venv, run as the gateway's own user
(UnsafeLocalBackend: LocalBackend would switch to each authenticated user's Unix account,
which needs root and real accounts). Listens on 127.0.0.1 only.
"""

import os
import sys

from dask_gateway_server.options import Float, Options

# `c` is the traitlets config object that dask-gateway-server injects into this file.
c = get_config()

# GATEWAY_ADDRESS is what clients use as DASK_GATEWAY__ADDRESS (http://...), and
# GATEWAY_PROXY_ADDRESS what they use as DASK_GATEWAY__PROXY_ADDRESS (gateway://...); the
# private API address is for the gateway's own parts.
c.Proxy.address = os.environ.get("GATEWAY_ADDRESS", "127.0.0.1:8011")
c.Proxy.tcp_address = os.environ.get("GATEWAY_PROXY_ADDRESS", "127.0.0.1:8012")
c.DaskGateway.address = os.environ.get("GATEWAY_PRIVATE_ADDRESS", "127.0.0.1:8010")
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
if os.environ.get("JUPYTERHUB_API_URL"):
    # As on Kubernetes: users (and the app) authenticate with their JupyterHub tokens; the
    # gateway is the hub's service JUPYTERHUB_SERVICE_NAME, checks tokens with its own
    # JUPYTERHUB_API_TOKEN and requires the scope access:services!service=<that name>.
    c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"
else:
    c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
    c.SimpleAuthenticator.password = os.environ["GATEWAY_PASSWORD"]

# distributed >= 2026.6 no longer ships the dask-scheduler / dask-worker commands that
# dask-gateway-server 2026.3.0 runs by default (dask/dask-gateway#945). A list, not a
# string: a string is taken as one program name.
_dask = os.path.join(os.path.dirname(sys.executable), "dask")
c.ClusterConfig.scheduler_cmd = [_dask, "scheduler"]
c.ClusterConfig.worker_cmd = [_dask, "worker"]

# Workers get the S3 credentials from their own environment, as the Secret `awsconfig` gives
# them on Kubernetes; the app never sends them. PYTHONPATH makes the project's task code
# (gateway_dask_zarr.worker.blocks) importable, as the shared image does on Kubernetes.
_project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
c.ClusterConfig.environment = {
    "PYTHONPATH": _project,
    **{k: v for k, v in os.environ.items() if k.startswith("AWS_")},
}
c.ClusterConfig.worker_cores = 1
c.ClusterConfig.worker_memory = "1 G"
# The most workers a cluster may have (3, the app's default WORKERS_MAX); an app whose WORKERS_MAX
# is above it refuses to start. GATEWAY_CLUSTER_MAX_WORKERS raises it (the tests use 6).
c.ClusterConfig.cluster_max_workers = int(os.environ.get("GATEWAY_CLUSTER_MAX_WORKERS", "3"))
# A cluster left behind (its app killed with SIGKILL) stops itself after an idle hour.
c.ClusterConfig.idle_timeout = 3600

# What DASK_GATEWAY_CLUSTER_OPTIONS may choose, e.g. {"worker_memory": 2}.
c.Backend.cluster_options = Options(
    Float("worker_memory", default=1, min=0.5, max=4, label="Worker memory (GiB)"),
    handler=lambda options: {"worker_memory": int(options.worker_memory * 2**30)},
)
