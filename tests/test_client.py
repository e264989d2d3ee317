"""The Python client and the command line against the real service: `serve` (gunicorn), real S3, real Dask workers."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.array
import numpy as np
import psutil
import pytest
from helpers import assert_verified, module_file, open_job_array, pip_install_target, wait_for
from live import serve
from serve import Served, free_port

from gateway_dask_zarr.client import GatewayClient, GatewayError, RemoteJob
from gateway_dask_zarr.grid import block_shape
from gateway_dask_zarr.kinds.base import Kind
from gateway_dask_zarr.kinds.registry import KINDS
from gateway_dask_zarr.params import SHAPE, Choice
from gateway_dask_zarr.storage.embedded import EmbeddedS3
from gateway_dask_zarr.worker.blocks import block_data

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "client-bucket"
LIGHT = ("flask", "distributed", "gunicorn")


@pytest.fixture(scope="module")
def service(own_s3: EmbeddedS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m gateway_dask_zarr serve`: gunicorn as `make run` starts it, running one job at a time."""
    env = {
        **os.environ,
        "STORE_URL": f"s3://{BUCKET}",
        "S3_ENDPOINT_URL": own_s3.endpoint_url,
        "N_WORKERS": "2",
        "MAX_ACTIVE_JOBS": "1",
    }
    command = [sys.executable, "-m", "gateway_dask_zarr", "serve", "--host", "127.0.0.1", "--port", "{port}"]
    served = Served(command, env, tmp_path_factory.mktemp("serve") / "serve.log", timeout=240)
    try:
        # `serve` became gunicorn itself (exec): signals reach it as under `make run`.
        assert "gunicorn" in " ".join(psutil.Process(served.process.pid).cmdline())
        yield served.url
    finally:
        # Nothing is checked of its end: killed, not stopped (a graceful stop took 2-15 s).
        served.kill()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway_dask_zarr", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def _expected(seed: int, shape: list[int], chunks: list[int], dtype: str, index: tuple[int, ...]) -> np.ndarray:
    return block_data(seed, index, block_shape(shape, chunks, index), dtype)


def _region(
    dims: tuple[str, ...], chunks: list[int], index: tuple[int, ...], shape: tuple[int, ...]
) -> dict[str, slice]:
    return {d: slice(i * c, i * c + n) for d, c, i, n in zip(dims, chunks, index, shape, strict=True)}


def test_client_imports_none_of_flask_distributed_or_gunicorn() -> None:
    code = (
        "import sys, gateway_dask_zarr.client, gateway_dask_zarr.client.cli; print([m for m in %r if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code % (LIGHT,)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_client_works_with_flask_distributed_and_gunicorn_unimportable(service: str) -> None:
    # A None in sys.modules makes every import of that name fail: the client must not need them.
    code = f"""
import sys
for name in {LIGHT!r}:
    sys.modules[name] = None
from gateway_dask_zarr.client import GatewayClient
job = GatewayClient({service!r}).run(shape=[300, 200], chunks=[100, 100], seed=3, progress=False)
print(job.id, float(job.to_xarray().sum().compute()))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    job_id, total = done.stdout.split()
    blocks = [_expected(3, [300, 200], [100, 100], "float32", (i, j)) for i in range(3) for j in range(2)]
    assert float(total) == pytest.approx(sum(float(b.sum(dtype=np.float64)) for b in blocks), rel=1e-6)
    assert GatewayClient(service).get(job_id).status == "complete"


def test_run_shows_a_progress_bar_that_reaches_every_chunk(service: str, capsys: pytest.CaptureFixture[str]) -> None:
    job = GatewayClient(service).run(shape=[1000, 1000], chunks=[100, 100], seed=7)
    err = capsys.readouterr().err
    assert job.status == "complete" and job.progress == (100, 100)
    # tqdm's last frame, on stderr: the job's id, 100% and 100/100 chunks.
    last = err.rstrip().split("\r")[-1]
    assert job.id in last and "100%" in last and "100/100" in last, err
    assert_verified(job.document)


def test_to_xarray_is_lazy_and_equals_the_rule_on_sampled_chunks(service: str) -> None:
    shape, chunks = [1050, 730], [100, 100]
    job = GatewayClient(service).run(shape=shape, chunks=chunks, dtype="float64", seed=11, progress=False)
    data = job.to_xarray()
    assert isinstance(data.data, dask.array.Array)
    assert data.dims == ("y", "x") and data.shape == (1050, 730) and data.dtype == np.float64
    assert data.data.chunksize == (100, 100) and data.data.numblocks == (11, 8)
    assert data.name == job.id and data.attrs["id"] == job.id and data.attrs["seed"] == 11
    assert data.attrs["status"] == "complete" and data.attrs["url"] == job.url
    rng = np.random.default_rng(0)
    sampled = {(0, 0), (10, 7), (0, 7), (10, 0)} | {(int(rng.integers(11)), int(rng.integers(8))) for _ in range(6)}
    for index in sorted(sampled):
        expected = _expected(11, shape, chunks, "float64", index)
        assert np.array_equal(data.isel(_region(data.dims, chunks, index, expected.shape)).values, expected), index
    # By default through the gateway's /jobs/<id>/zarr/; `direct` reads the same from S3 itself.
    assert job.open().store.path == f"{service}/jobs/{job.id}/zarr/"  # type: ignore[attr-defined]
    direct = job.to_xarray(direct=True)
    assert np.array_equal(direct.isel(y=slice(1000, 1050)).values, data.isel(y=slice(1000, 1050)).values)


@pytest.mark.parametrize(
    ("shape", "chunks", "dims"),
    [
        ([5000], [1024], ("x",)),
        ([30, 40, 50], [16, 16, 16], ("z", "y", "x")),
        ([6, 8, 10, 12], [3, 4, 5, 6], ("t", "z", "y", "x")),
    ],
)
def test_arrays_of_1_3_and_4_dimensions_open_in_xarray_with_their_names(
    service: str, shape: list[int], chunks: list[int], dims: tuple[str, ...]
) -> None:
    job = GatewayClient(service).run(shape=shape, chunks=chunks, seed=5, progress=False)
    data = job.to_xarray()
    assert data.dims == dims and list(data.shape) == shape
    assert job.open().metadata.dimension_names == dims
    last = tuple(-(-s // c) - 1 for s, c in zip(shape, chunks, strict=True))
    for index in [(0,) * len(shape), last]:
        expected = _expected(5, shape, chunks, "float32", index)
        assert np.array_equal(data.isel(_region(dims, chunks, index, expected.shape)).values, expected)


def test_busy_gateway_is_waited_out_as_retry_after_says_or_refused_after_the_bound(
    service: str, caplog: pytest.LogCaptureFixture
) -> None:
    # MAX_ACTIVE_JOBS=1: this job (144 MB) holds the one slot while the others ask.
    holder = GatewayClient(service).submit(shape=[6000, 6000], chunks=[600, 600], seed=1)
    with pytest.raises(GatewayError) as refused:
        GatewayClient(service, busy_wait=0).submit(shape=[200, 200], chunks=[100, 100], seed=2)
    assert refused.value.status == 429 and refused.value.code == "too_many_jobs"
    assert refused.value.retry_after == 2 and "MAX_ACTIVE_JOBS" in refused.value.message

    assert holder.refresh().status in ("queued", "running")
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="gateway_dask_zarr.client"):
        job = GatewayClient(service, busy_wait=300).submit(shape=[200, 200], chunks=[100, 100], seed=2)
    waited = time.monotonic() - started
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert retries and all("too_many_jobs): retrying in 2 s" in m for m in retries), retries
    assert waited >= 2 * len(retries)
    # The slot was freed by the holder's end, not by a lost job.
    assert holder.refresh().status == "complete"
    assert_verified(job.wait(progress=False).document)


def test_errors_carry_the_servers_code_and_message(service: str) -> None:
    gateway = GatewayClient(service)
    with pytest.raises(GatewayError) as bad:
        gateway.submit(shape=[0, 100])
    assert (bad.value.status, bad.value.code, bad.value.field) == (400, "invalid_parameter", "shape")
    assert "between 1 and" in bad.value.message
    with pytest.raises(GatewayError) as missing:
        gateway.get("no-such-job")
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    with pytest.raises(GatewayError) as unreachable:
        GatewayClient(f"http://127.0.0.1:{free_port()}").list()
    assert unreachable.value.status is None and unreachable.value.code == "unreachable"


def test_token_from_the_argument_or_the_environment_is_sent(
    make_app: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "client-test-token-" + os.urandom(8).hex()
    for name in ("GATEWAY_TOKEN", "JUPYTERHUB_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with serve(make_app(settings, auth="token", api_tokens=(token,))) as url:
        with pytest.raises(GatewayError) as refused:
            GatewayClient(url).list()
        assert (refused.value.status, refused.value.code) == (401, "unauthorized")
        assert _cli("jobs", "--url", url).returncode == 3
        assert (
            GatewayClient(url, token).run(shape=[200, 200], chunks=[100, 100], seed=1, progress=False).status
            == "complete"
        )
        # In a JupyterHub session the hub's token is in JUPYTERHUB_API_TOKEN; GATEWAY_TOKEN comes first.
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", token)
        assert len(GatewayClient(url).list()) == 1
        assert _cli("jobs", "--url", url, "--json").returncode == 0
        monkeypatch.setenv("GATEWAY_TOKEN", "not-the-token")
        with pytest.raises(GatewayError):
            GatewayClient(url).list()
        assert len(GatewayClient(url, token).list()) == 1
        assert token not in repr(GatewayClient(url, token))


def test_list_shows_jobs_newest_first(service: str) -> None:
    gateway = GatewayClient(service)
    ids = [gateway.run(shape=[100, 100], chunks=[50, 50], seed=s, progress=False).id for s in (21, 22)]
    listed = gateway.list(limit=2)
    assert [j.id for j in listed] == ids[::-1]
    assert all(isinstance(j, RemoteJob) and j.status == "complete" for j in listed)


def test_cli_run_json_and_the_documented_exit_codes(service: str) -> None:
    done = _cli("run", "--url", service, "--shape", "300,200", "--chunks", "100,100", "--seed", "5", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["seed"] == 5 and document["shape"] == [300, 200]
    assert_verified(document)

    shown = _cli("show", document["id"], "--url", service, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == document["id"]
    listed = _cli("jobs", "--url", service, "--json", "--limit", "1")
    assert listed.returncode == 0 and [d["id"] for d in json.loads(listed.stdout)] == [document["id"]]

    # 2: a command line argparse refuses; nothing is sent.
    usage = _cli("run", "--url", service, "--shape", "big")
    assert usage.returncode == 2 and "comma-separated integers" in usage.stderr
    # 3: the gateway refused (400), with its code and message on stderr and in --json.
    refused = _cli("run", "--url", service, "--shape", "0,100", "--json")
    assert refused.returncode == 3
    assert json.loads(refused.stdout)["error"]["code"] == "invalid_parameter"
    assert "error: 400 invalid_parameter: every shape length must be between 1 and" in refused.stderr
    assert _cli("show", "no-such-job", "--url", service).returncode == 3
    # 4: nothing listens there.
    unreachable = _cli("jobs", "--url", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 4 and "cannot be reached" in unreachable.stderr
    # 5: the wait ended before the job; it goes on running, and ends complete.
    late = _cli("run", "--url", service, "--shape", "2000,2000", "--chunks", "200,200", "--timeout", "0", "--quiet")
    assert late.returncode == 5 and "goes on running" in late.stderr
    (latest,) = GatewayClient(service).list(limit=1)
    assert_verified(latest.wait(progress=False).document)


def test_cli_run_flags_are_the_gateways_kinds_parameters(service: str) -> None:
    shown = _cli("run", "--url", service, "--help")
    assert shown.returncode == 0, shown.stderr
    # --help lists each kind with its parameters' flags, and each flag the kinds that take it.
    for kind in KINDS.values():
        flags = " ".join(f"--{p.name}" for p in kind.parameters)
        assert f"  {kind.name}: {kind.help}\n    {flags}\n" in shown.stdout + "\n", kind.name
    text = " ".join(shown.stdout.split())
    assert "--op {min,max,sum,mean,std} The reduction. [reduce]" in text
    assert "[random, rechunk, reduce]" in text and "--kind {random,rechunk,reduce}" in text
    source = GatewayClient(service).run(shape=[100, 80], chunks=[50, 40], seed=2, progress=False)
    done = _cli("run", "--url", service, "--kind", "rechunk", "--input", source.id, "--chunks", "20,20", "--quiet")
    assert done.returncode == 0, done.stderr
    summary, url = done.stdout.strip().splitlines()[0], done.stdout.strip().splitlines()[-1]
    assert summary.endswith(
        "rechunk, shape [100, 80], chunks [20, 20], dtype float32, input " + source.id + ", 20 chunks, 32000 bytes"
    )
    copied = GatewayClient(service).get(url.rsplit("/", 1)[1].removesuffix(".zarr")).document
    assert copied["kind"] == "rechunk" and copied["chunks"] == [20, 20] and copied["input"] == source.id
    np.testing.assert_array_equal(open_job_array(copied)[...], open_job_array(source.document)[...])
    # Another kind's parameter is a usage error (2), nothing sent; a bad value too.
    foreign = _cli("run", "--url", service, "--op", "max")
    assert foreign.returncode == 2 and "--op is not a parameter of kind random; it takes --shape" in foreign.stderr
    assert _cli("run", "--url", service, "--kind", "reduce", "--op", "median").returncode == 2
    # Without the gateway, --help still answers and says why the kinds are missing; a run is unavailable (4).
    nowhere = f"http://127.0.0.1:{free_port()}"
    alone = _cli("run", "--url", nowhere, "--help")
    assert alone.returncode == 0 and "could not be read" in alone.stdout and "--timeout" in alone.stdout
    unreachable = _cli("run", "--url", nowhere, "--shape", "10,10", "--json")
    assert unreachable.returncode == 4 and json.loads(unreachable.stdout)["error"]["code"] == "unreachable"


class Colours(Kind):
    """A kind the command line has never heard of: only its declaration (no job runs)."""

    name = "colours"
    help = "A kind declared in the test."
    parameters = (SHAPE, Choice("colour", "The colour.", default="red", choices=("red", "blue")))


def test_a_kind_registered_on_the_server_gets_its_flags(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KINDS, "colours", Colours())
    with serve(app) as url:
        shown = _cli("run", "--url", url, "--help")
        foreign = _cli("run", "--url", url, "--kind", "colours", "--colour", "red", "--seed", "3")
    assert shown.returncode == 0, shown.stderr
    assert "  colours: A kind declared in the test.\n    --shape --colour" in shown.stdout
    assert "--colour {red,blue}" in shown.stdout
    assert (
        foreign.returncode == 2
        and "--seed is not a parameter of kind colours; it takes --shape, --colour" in foreign.stderr
    )


def test_a_sharded_job_from_the_cli_and_the_client_reads_as_the_rule(service: str) -> None:
    shape, chunks = [1050, 730], [100, 100]
    done = _cli("run", "--url", service, "--shape", "1050,730", "--chunks", "100,100", "--shards", "500,300", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["shards"] == [500, 300]
    assert_verified(document)
    job = GatewayClient(service).run(shape=shape, chunks=chunks, seed=3, shards=[500, 300], progress=False)
    assert job.document["shards"] == [500, 300] and job.progress == (88, 88)
    # xarray through dask reads chunk by chunk, each a range of its shard.
    data = job.to_xarray()
    assert data.data.chunksize == (100, 100) and data.data.numblocks == (11, 8)
    for index in [(0, 0), (10, 7), (5, 3)]:
        expected = _expected(3, shape, chunks, "float32", index)
        assert np.array_equal(data.isel(_region(data.dims, chunks, index, expected.shape)).values, expected), index


def test_cli_run_prints_a_progress_bar_then_the_arrays_url(service: str) -> None:
    env = {**os.environ, "GATEWAY_URL": service}
    done = _cli("run", "--shape", "400,300", "--chunks", "100,100", "--seed", "8", env=env)
    assert done.returncode == 0, done.stderr
    # Captured without a TTY: the bar's final line once (not a last update and then close()'s line).
    segments = [part for part in re.split(r"[\r\n]", done.stderr) if part.strip()]
    assert "12/12" in segments[-1] and sum("12/12" in part for part in segments) == 1, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1].startswith(f"s3://{BUCKET}/") and lines[-1].endswith(".zarr")
    job_id = lines[-1].rsplit("/", 1)[1].removesuffix(".zarr")
    assert lines[0].startswith(f"job {job_id} complete")
    assert_verified(GatewayClient(service).get(job_id).document)


def test_cli_is_quiet_on_a_closed_pipe(service: str) -> None:
    # `jobs --json | head`: the reader has gone before the command writes.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        env = {**os.environ, "GATEWAY_URL": service}
        listed = subprocess.run(
            [sys.executable, "-m", "gateway_dask_zarr", "jobs", "--json"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert listed.returncode == 141 and listed.stderr == "", listed.stderr


def test_cli_exit_code_1_and_the_document_when_the_job_is_cancelled(service: str) -> None:
    # A job deleted while it runs ends "cancelled": the waiting command exits 1 with its document.
    command = [sys.executable, "-m", "gateway_dask_zarr", "run", "--url", service, "--json"]
    with subprocess.Popen(
        [*command, "--shape", "8000,8000", "--chunks", "1000,1000", "--dtype", "float64"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as running:
        gateway = GatewayClient(service)
        job = wait_for(lambda: next((j for j in gateway.list(limit=5) if j.status == "running"), None), 120)
        gateway.delete(job.id)
        stdout, stderr = running.communicate(timeout=300)
    assert running.returncode == 1, stderr
    document = json.loads(stdout)
    assert document["id"] == job.id and document["status"] == "cancelled"


def test_the_readmes_client_snippet_runs_in_the_make_install_venv(service: str, tmp_path: Path) -> None:
    # The README's block that calls to_xarray(), as written, in this venv (make install's, which
    # has xarray from requirements-embedded.txt), then a look at what it made.
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    snippet = next(block for block in blocks if "to_xarray()" in block)
    check = 'print(data.dims, data.shape, data.attrs["status"])\n'
    ran = subprocess.run(
        [sys.executable, "-c", snippet + check],
        capture_output=True,
        text=True,
        env={**os.environ, "GATEWAY_URL": service},
        cwd=tmp_path,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().splitlines()[-1] == "('y', 'x') (2000, 2000) complete"


def test_pip_install_gives_the_client_and_the_command(service: str, tmp_path: Path) -> None:
    target = pip_install_target(tmp_path)
    command = target / "bin" / "gateway-dask-zarr"
    assert command.exists()
    env = {**os.environ, "PYTHONPATH": str(target), "GATEWAY_URL": service}
    listed = subprocess.run(
        [str(command), "jobs", "--json"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)
    where = module_file("gateway_dask_zarr.client", env, tmp_path)
    assert where.startswith(str(target))
    assert (target / "gateway_dask_zarr" / "server" / "templates").is_dir()
