"""CLUSTER=gateway against a real dask-gateway-server (and CLUSTER=scheduler against a real scheduler)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import dask
import dask_gateway  # noqa: F401 - loads its config defaults before any dask.config.set below
import psutil
import pytest
import requests
import serve
from conftest import BUCKET
from gateway_server import BIN, ROOT, GatewayServer
from helpers import S3_CREDENTIALS, assert_verified, open_job_array, wait_for
from hub_server import GATEWAY, HubServer
from serve import free_port
from stand_ins import FaultProxy
from test_metrics import scrape

from gateway_dask_zarr.cluster.backends import forget_loop
from gateway_dask_zarr.errors import ClusterUnavailable
from gateway_dask_zarr.jobs.leases import JOB_LEASES
from gateway_dask_zarr.server import create_app
from gateway_dask_zarr.server.parts import parts
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.storage.embedded import EmbeddedS3
from gateway_dask_zarr.worker.verify import mismatched_blocks

# The gateway's workers get the store's credentials from ClusterConfig.environment, the
# gunicorn app from its environment. Distinctive, so a leak is findable.
ACCESS_KEY = S3_CREDENTIALS["AWS_ACCESS_KEY_ID"]
SECRET = S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
WORKER_ENV = dict(S3_CREDENTIALS)
# The module's gateway caps a cluster at this many workers (cluster_max_workers): room for
# WORKERS_MAX=6 (issue 21), and a count above it that never comes.
GATEWAY_CAP = 6


@pytest.fixture(scope="module")
def gateway_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    """One dask-gateway-server for the module, on free loopback ports."""
    server = GatewayServer(tmp_path_factory.mktemp("gateway"), WORKER_ENV, max_workers=GATEWAY_CAP).start()
    yield server
    server.stop()


@pytest.fixture
def gateway(gateway_server: GatewayServer) -> Iterator[GatewayServer]:
    """The server with its client configuration set in dask.config; no cluster of the test user left after."""
    with dask.config.set(gateway_server.dask_config()):
        yield gateway_server
    wait_for(lambda: gateway_server.cluster_names() == [], timeout=60, interval=0.5)


@pytest.fixture
def make_gateway_app(s3: EmbeddedS3, gateway: GatewayServer) -> Iterator[Callable[..., Any]]:
    """Build apps with CLUSTER=gateway, each owning its gateway cluster; closed after the test."""
    services: list[Any] = []

    def make(**changes: Any) -> Any:
        settings = Settings(
            cluster="gateway",
            store_url=f"s3://{BUCKET}",
            s3_endpoint_url=s3.endpoint_url,
            cluster_start_timeout_s=180,
        )
        app = create_app(replace(settings, **changes))
        services.append(parts(app).service)
        return app

    yield make
    for service in services:
        service.close()


def test_gateway_job_contract_and_no_cluster_left_after_close(
    make_gateway_app: Callable[..., Any], gateway: GatewayServer
) -> None:
    app = make_gateway_app(gateway_cluster_options={"worker_memory": 1.5})
    service = parts(app).service
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["cluster"]["backend"] == "gateway"
    assert ready.get_json()["cluster"]["workers"] == 3
    assert ready.get_json()["cluster"]["target_workers"] == 3  # the gateway scheduler's count
    assert gateway.cluster_names() == [service.cluster.name]
    dask_client = service.cluster.client
    # DASK_GATEWAY_CLUSTER_OPTIONS reached the gateway: workers have the chosen memory limit.
    limits = {w["memory_limit"] for w in dask_client.scheduler_info(n_workers=-1)["workers"].values()}
    assert limits == {int(1.5 * 2**30)}
    # The workers' credentials are in their own environment (from the gateway's config).
    assert set(dask_client.run(lambda: os.environ.get("AWS_ACCESS_KEY_ID")).values()) == {ACCESS_KEY}

    response = client.get("/run?shape=1000,1000&chunks=100,100&seed=7")
    assert response.status_code == 200, response.get_json()
    assert_verified(response.get_json())

    created = client.post("/jobs", json={"shape": [600, 500], "chunks": [100, 100], "seed": 11})
    assert created.status_code == 202
    job_url = created.headers["Location"]
    document = wait_for(lambda: (d := client.get(job_url).get_json())["status"] in ("complete", "failed") and d)
    assert_verified(document)

    service.close()
    wait_for(lambda: gateway.cluster_names() == [], timeout=60, interval=0.5)
    assert client.get("/readyz").status_code == 503


def test_workers_max_above_the_gateways_cap_stops_start_up_with_one_line(
    s3: EmbeddedS3, gateway: GatewayServer, tmp_path: Path
) -> None:
    above = {"WORKERS_MIN": "3", "WORKERS_MAX": str(GATEWAY_CAP + 1)}
    server = _gunicorn(gateway, s3.endpoint_url, tmp_path, above, ready_path=None)
    try:
        wait_for(lambda: server.process.poll() is not None, timeout=240, interval=0.5)
    finally:
        code = server.close(30)
    log = server.log()
    # The gateway's own answer to the adapt gives its cap; gunicorn's master stops (no retry).
    line = (
        f"configuration error: WORKERS_MAX: is {GATEWAY_CAP + 1}, above the Dask Gateway's cap of {GATEWAY_CAP} "
        "workers for a cluster (cluster_max_workers, cluster_max_cores, cluster_max_memory); lower it or raise "
        "the gateway's"
    )
    assert code != 0 and log.splitlines().count(line) == 1, log
    assert "Traceback" not in log and "Reason: Worker failed to boot." in log, log
    # The cluster made before the gateway answered is stopped.
    wait_for(lambda: gateway.cluster_names() == [], timeout=60, interval=0.5)


def test_a_large_job_grows_the_gateway_cluster_to_at_most_workers_max_and_idle_returns_it_to_min(
    s3: EmbeddedS3, make_gateway_app: Callable[..., Any], gateway: GatewayServer
) -> None:
    # Each chunk PUT takes 0.5 s longer: the job's 64 one-chunk tasks (5 MB each) hold three
    # workers for about 10 s, long enough for the gateway to start more, at little CPU cost.
    slow = FaultProxy(s3.endpoint_url, delay_share=1.0, delay_s=0.5, only="/c/").start()
    try:
        app = make_gateway_app(workers_min=3, workers_max=6, s3_endpoint_url=slow.url)
        service = parts(app).service
        client = app.test_client()

        def counts() -> tuple[int, int]:
            cluster = client.get("/readyz").get_json()["cluster"]
            return cluster["workers"], cluster["target_workers"]

        assert counts() == (3, 3)
        body = {"shape": [6400, 6400], "chunks": [800, 800], "dtype": "float64", "seed": 21}
        job_url = client.post("/jobs", json=body).headers["Location"]
        workers, target = wait_for(lambda: (n := counts())[0] > 3 and n, timeout=120, interval=0.2)
        assert workers <= 6 and 3 <= target <= 6, (workers, target)
        assert len(gateway.processes("worker", service.cluster.name)) > 3
        page = client.get("/").get_data(as_text=True)
        assert "adaptive, 3 to 6 workers" in page
        metrics = scrape(client)
        assert 3 <= metrics[("gateway_cluster_target_workers", ())] <= 6
        document = wait_for(lambda: (d := client.get(job_url).get_json())["status"] not in ("queued", "running") and d)
        assert document["status"] == "complete" and document["chunks_written"] == 64, document
        assert 0 <= document["queued_s"] <= document["seconds"], document
        # The first and last chunks equal the rule (the whole 328 MB is verified elsewhere).
        assert mismatched_blocks(open_job_array(document), 21, [(0, 0), (7, 7)]) == []
        # Idle for three adaptive periods (3 s each), the cluster returns to WORKERS_MIN.
        wait_for(lambda: counts() == (3, 3), timeout=120, interval=0.5)
        assert client.delete(job_url).status_code in (202, 204)
    finally:
        slow.stop()
    service.close()
    wait_for(lambda: gateway.cluster_names() == [], timeout=60, interval=0.5)


def test_lost_scheduler_fails_its_jobs_and_is_replaced(
    make_gateway_app: Callable[..., Any], gateway: GatewayServer
) -> None:
    app = make_gateway_app()
    service = parts(app).service
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    first = service.cluster.name

    # A job big enough (128 MB) to be still writing when its scheduler dies.
    created = client.post("/jobs", json={"shape": [8000, 4000], "chunks": [500, 500], "seed": 3})
    assert created.status_code == 202
    job_url = created.headers["Location"]
    wait_for(lambda: client.get(job_url).get_json()["status"] == "running", interval=0.02)
    (scheduler,) = gateway.processes("scheduler", first)
    scheduler.kill()

    not_ready = wait_for(lambda: (r := client.get("/readyz")).status_code == 503 and r.get_json(), timeout=60)
    assert not_ready["status"] == "unavailable"
    assert "lost" in not_ready["reason"], not_ready
    failed = wait_for(
        lambda: (d := client.get(job_url).get_json())["status"] in ("complete", "failed") and d, timeout=120
    )
    assert failed["status"] == "failed", failed
    assert "cluster was lost" in failed["error"], failed

    wait_for(lambda: client.get("/readyz").status_code == 200, timeout=240, interval=0.5)
    assert service.cluster.generation == 2
    second = service.cluster.name
    assert second != first
    wait_for(lambda: gateway.cluster_names() == [second], timeout=60, interval=0.5)
    response = client.get("/run?shape=500,500&chunks=100,100&seed=5")
    assert response.status_code == 200, response.get_json()
    assert_verified(response.get_json())


def test_cluster_start_has_a_deadline_when_the_gateway_never_answers(s3: EmbeddedS3) -> None:
    # A socket that listens but never accepts: connections hang, as to a wedged gateway.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        config = {
            "gateway.address": address,
            "gateway.auth.type": "basic",
            "gateway.auth.kwargs": {"username": "u", "password": "p"},
        }
        settings = Settings(
            cluster="gateway", store_url=f"s3://{BUCKET}", s3_endpoint_url=s3.endpoint_url, cluster_start_timeout_s=3
        )
        started = time.monotonic()
        with dask.config.set(config), pytest.raises(ClusterUnavailable) as raised:
            create_app(settings)
        elapsed = time.monotonic() - started
    assert "CLUSTER_START_TIMEOUT_S=3 s" in str(raised.value)
    assert "asking the Dask Gateway for a new cluster" in str(raised.value)
    assert elapsed < 3 + 20  # the deadline, plus a generous margin for a loaded machine


def test_cluster_start_fails_clearly_when_nothing_listens_or_auth_is_wrong(
    s3: EmbeddedS3, gateway_server: GatewayServer
) -> None:
    settings = Settings(
        cluster="gateway", store_url=f"s3://{BUCKET}", s3_endpoint_url=s3.endpoint_url, cluster_start_timeout_s=60
    )
    nowhere = {
        "gateway.address": f"http://127.0.0.1:{free_port()}",
        "gateway.auth.type": "basic",
        "gateway.auth.kwargs": {"username": "u", "password": "p"},
    }
    with dask.config.set(nowhere), pytest.raises(ClusterUnavailable) as raised:
        create_app(settings)
    assert "could not be started while asking the Dask Gateway for a new cluster" in str(raised.value)
    assert "Cannot connect" in str(raised.value)

    wrong = {
        **gateway_server.dask_config(),
        "gateway.auth.kwargs": {"username": gateway_server.username, "password": "wrong"},
    }
    with dask.config.set(wrong), pytest.raises(ClusterUnavailable) as raised:
        create_app(settings)
    assert "401" in str(raised.value) or "Unauthorized" in str(raised.value), str(raised.value)


@pytest.mark.filterwarnings(f"ignore:Scale request of {GATEWAY_CAP + 1} workers:UserWarning")
def test_cluster_start_deadline_stops_a_cluster_that_never_gets_its_workers(
    s3: EmbeddedS3, gateway: GatewayServer
) -> None:
    # The gateway caps a cluster at GATEWAY_CAP workers (cluster_max_workers): one more never comes.
    settings = Settings(
        cluster="gateway",
        n_workers=GATEWAY_CAP + 1,
        store_url=f"s3://{BUCKET}",
        s3_endpoint_url=s3.endpoint_url,
        cluster_start_timeout_s=10,
    )
    started = time.monotonic()
    with pytest.raises(ClusterUnavailable) as raised:
        create_app(settings)
    elapsed = time.monotonic() - started
    assert "CLUSTER_START_TIMEOUT_S=10 s" in str(raised.value)
    assert elapsed < 10 + 20 + 30  # deadline, margin, and the bounded close of what was made
    # The half-made cluster was stopped, not left on the gateway.
    wait_for(lambda: gateway.cluster_names() == [], timeout=60, interval=0.5)


def _gunicorn(
    gateway: GatewayServer, s3_endpoint: str, tmp_path: Path, extra: dict[str, str] | None = None, **kwargs: Any
) -> serve.Served:
    """The real `gunicorn -c gunicorn.conf.py app:app` with CLUSTER=gateway, configured by environment only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DASK_"))}
    env.update(gateway.client_env())
    env.update(WORKER_ENV)
    env.update(
        CLUSTER="gateway",
        DASK_GATEWAY_CLUSTER_OPTIONS=json.dumps({"worker_memory": 1}),
        STORE_URL=f"s3://{BUCKET}",
        S3_ENDPOINT_URL=s3_endpoint,
        CLUSTER_START_TIMEOUT_S="180",
        GUNICORN_THREADS="4",
        **(extra or {}),
    )
    return serve.gunicorn(env, tmp_path / "gunicorn.log", **kwargs)


def test_gunicorn_serves_gateway_jobs_leaks_no_secret_and_leaves_no_cluster(
    s3: EmbeddedS3, gateway: GatewayServer, tmp_path: Path
) -> None:
    # Defined here, not at module level, so that cloudpickle sends them by value to the
    # scheduler, which cannot import this test module.
    def install_graph_recorder(dask_scheduler: Any) -> None:
        """On the scheduler: keep the pickled spec of every task that enters it."""
        from distributed.diagnostics.plugin import SchedulerPlugin
        from distributed.protocol.pickle import dumps

        class GraphRecorder(SchedulerPlugin):
            name = "graph-recorder"

            def __init__(self) -> None:
                self.specs: list[bytes] = []

            def update_graph(self, scheduler: Any, *, tasks: Any = (), **kwargs: Any) -> None:
                for key in tasks:
                    ts = scheduler.tasks.get(key)
                    if ts is not None and ts.run_spec is not None:
                        self.specs.append(str(key).encode() + b"\0" + dumps(ts.run_spec))

        dask_scheduler.add_plugin(GraphRecorder())

    def recorded_specs(dask_scheduler: Any) -> list[bytes]:
        return dask_scheduler.plugins["graph-recorder"].specs

    server = _gunicorn(gateway, s3.endpoint_url, tmp_path, timeout=240, interval=0.5)
    base = server.url
    bodies: list[str] = []
    try:
        (name,) = gateway.cluster_names()
        with gateway.client_of(name) as spy:
            spy.run_on_scheduler(install_graph_recorder)
            response = requests.get(f"{base}/run?shape=1000,1000&chunks=100,100&seed=7", timeout=300)
            assert response.status_code == 200, response.text
            document = response.json()
            assert_verified(document)
            for path in (f"/jobs/{document['id']}", "/jobs", "/readyz", "/openapi.json"):
                reply = requests.get(base + path, timeout=30)
                assert reply.status_code == 200
                bodies.append(reply.text)
            bodies.append(response.text)
            specs = spy.run_on_scheduler(recorded_specs)
    finally:
        code = server.close(120)
    text = server.log()
    assert code == 0, text
    # The gunicorn worker closed its cluster on SIGTERM: the gateway lists none.
    wait_for(lambda: gateway.cluster_names() == [], timeout=60, interval=0.5)

    # The scheduler got the job's chunk tasks, and their specs carry the job's target (so a
    # secret in them would show) but no credential.
    written = [s for s in specs if s.startswith(f"write-{document['id']}".encode())]
    assert len(written) >= 3
    assert all(s3.endpoint_url.encode() in s for s in written)
    assert "Dask cluster ready: gateway" in text  # the log was captured
    for secret in (SECRET, gateway.password):
        assert all(secret.encode() not in s for s in specs)
        assert all(secret not in body for body in bodies)
        assert secret not in text
        assert secret not in json.dumps(document)


def test_scheduler_mode_runs_jobs_and_leaves_the_users_scheduler_running(s3: EmbeddedS3, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    scheduler_file = tmp_path / "scheduler.json"
    dask_cli = str(BIN / "dask")
    with open(tmp_path / "dask.log", "wb") as log:
        scheduler = subprocess.Popen(
            [
                dask_cli,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                "127.0.0.1:0",
                "--scheduler-file",
                str(scheduler_file),
            ],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(scheduler_file.exists, timeout=60)
        workers = subprocess.Popen(
            [
                dask_cli,
                "worker",
                "--scheduler-file",
                str(scheduler_file),
                "--nworkers",
                "3",
                "--nthreads",
                "1",
                "--host",
                "127.0.0.1",
                "--no-dashboard",
            ],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        address = json.loads(scheduler_file.read_text())["address"]
        settings = Settings(
            cluster="scheduler",
            scheduler_address=address,
            store_url=f"s3://{BUCKET}",
            s3_endpoint_url=s3.endpoint_url,
            cluster_start_timeout_s=120,
        )
        app = create_app(settings)
        service = parts(app).service
        client = app.test_client()
        try:
            assert client.get("/readyz").status_code == 200
            response = client.get("/run?shape=700,900&chunks=100,100&seed=21")
            assert response.status_code == 200, response.get_json()
            assert_verified(response.get_json())
        finally:
            service.close()
        # Closing the app closed its client only: the user's scheduler and workers live on.
        from distributed import Client

        with Client(address, timeout=30) as other:
            assert len(other.scheduler_info(n_workers=-1)["workers"]) == 3
        assert scheduler.poll() is None
    finally:
        for process in (workers, scheduler):
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
            process.kill()
            process.wait()


def test_sigterm_stops_the_gateway_cluster_even_while_a_request_hangs(
    s3: EmbeddedS3, gateway: GatewayServer, tmp_path: Path
) -> None:
    # Chunk PUTs that do not answer for a minute (job records pass): the job's chunk writes
    # hang, so its /run would outlast gunicorn's graceful_timeout and the master's SIGKILL.
    silent = FaultProxy(s3.endpoint_url, delay_share=1.0, delay_s=60.0, only="/c/").start()
    try:
        server = _gunicorn(gateway, silent.url, tmp_path, {"GUNICORN_GRACEFUL_TIMEOUT_S": "22"}, ready_path=None)
        base = server.url
        try:
            wait_for(
                lambda: server.process.poll() is None and "gateway-dask-zarr is serving" in server.log(),
                timeout=240,
                interval=0.5,
            )
            created = requests.post(f"{base}/jobs", json={"shape": [1000, 1000], "seed": 1}, timeout=30)
            assert created.status_code == 202, created.text
            job_url = base + created.headers["Location"]
            with ThreadPoolExecutor(1) as pool:
                pool.submit(requests.get, f"{base}/run?seed=2", timeout=120)  # in flight at SIGTERM
                wait_for(lambda: requests.get(job_url, timeout=30).json()["status"] == "running")
                server.close(120)
        finally:
            server.close(0)
    finally:
        silent.stop()
    # The SIGTERM timer closed the service while the worker was still draining (before the
    # master's deadline and SIGKILL): the gateway lists no cluster of the app's, and the job was
    # handed back: its record stays running, with no lease, for another replica to take over.
    assert "Worker exiting" in server.log()
    wait_for(lambda: gateway.cluster_names() == [], timeout=60, interval=0.5)
    key = f"_jobs/records/{created.json()['id']}.json"
    record = json.loads(s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert (record["status"], record["error"]) == ("running", None)
    leases = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{JOB_LEASES}/{record['id']}/")
    assert [o for o in leases.get("Contents", []) if o["Size"]] == []  # a slot holds its holder's name


def test_production_topology_behind_a_real_jupyterhub(s3: EmbeddedS3, hub: HubServer, tmp_path: Path) -> None:
    # The seed's topology on loopback: dask-gateway-server authenticating with JupyterHub (it is
    # the hub's service GATEWAY), the app (gunicorn, AUTH=jupyterhub) using its own service
    # token both to check its callers and to own its gateway cluster.
    hub_env = {"JUPYTERHUB_API_URL": hub.api_url, "JUPYTERHUB_API_TOKEN": hub.gateway_token}
    (tmp_path / "gateway").mkdir()
    gateway = GatewayServer(
        tmp_path / "gateway",
        WORKER_ENV,
        hub_env={**hub_env, "JUPYTERHUB_SERVICE_NAME": GATEWAY},
        hub_token=hub.app_token,
    ).start()
    try:
        # A user's token lacks the gateway's access scope: the gateway refuses it (dask-gateway#829).
        from aiohttp import ClientResponseError
        from dask_gateway import Gateway, JupyterHubAuth

        user_gateway = Gateway(gateway.address, auth=JupyterHubAuth(api_token=hub.mint_token("alice")))
        with user_gateway, pytest.raises(ClientResponseError) as refused:
            user_gateway.list_clusters()
        forget_loop(user_gateway)
        assert refused.value.status == 401
        server = _gunicorn(gateway, s3.endpoint_url, tmp_path, extra=hub.app_env(), timeout=240, interval=0.5)
        try:
            assert len(gateway.cluster_names()) == 1  # the app's, as the hub's service
            alice = {"Authorization": f"token {hub.mint_token('alice')}"}
            assert requests.get(f"{server.url}/jobs", timeout=30).status_code == 401
            response = requests.get(
                f"{server.url}/run?shape=1000,1000&chunks=100,100&seed=7", headers=alice, timeout=300
            )
            assert response.status_code == 200, response.text
            assert response.json()["owner"] == "alice"
            assert_verified(response.json())
        finally:
            code = server.close(120)
        assert code == 0, server.log()
        # The app closed its cluster on SIGTERM: the gateway lists none of the app's.
        wait_for(lambda: gateway.cluster_names() == [], timeout=60, interval=0.5)
        assert hub.app_token not in server.log()
    finally:
        gateway.stop()
