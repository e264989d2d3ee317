"""docs/deploying.md's one-machine walkthrough: its lines are the ones the gateway tests run."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from gateway_server import CONFIG, GatewayServer

ROOT = Path(__file__).resolve().parent.parent


def _walkthrough() -> list[list[str]]:
    """The walkthrough's bash block as commands (continuation lines joined, comments dropped)."""
    text = (ROOT / "docs" / "deploying.md").read_text()
    block = text.split("```bash\nmake install-gateway\n", 1)[1].split("```", 1)[0]
    joined = ("make install-gateway\n" + block).replace("\\\n", " ")
    lines = [line for line in joined.splitlines() if line.strip() and not line.startswith("#")]
    return [shlex.split(line.rstrip("&")) for line in lines]


def _split_env(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """A command's leading NAME=value words, and the rest."""
    env = {}
    while words and re.fullmatch(r"[A-Z][A-Z0-9_]*=.*", words[0]):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    return env, words


@pytest.mark.fast
def test_the_one_machine_walkthrough_runs_what_the_gateway_tests_run(tmp_path: Path) -> None:
    install, export, s3, gateway, service = _walkthrough()
    # make install-gateway installs the dask-gateway-server that the tests pin.
    assert install == ["make", "install-gateway"]
    dry = subprocess.run(["make", "-n", "install-gateway"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "pip install" in dry.stdout and "^dask-gateway-server' requirements-test.txt" in dry.stdout
    assert re.search(r"^dask-gateway-server\[local\]==", (ROOT / "requirements-test.txt").read_text(), re.M)
    # The S3 server's flags are its parser's.
    assert export[0] == "export"
    assert s3[:3] == [".venv/bin/python", "-m", "gateway_dask_zarr.storage.embedded"]
    embedded = [sys.executable, "-m", "gateway_dask_zarr.storage.embedded", "--help"]
    helptext = subprocess.run(embedded, capture_output=True, text=True, check=True).stdout
    assert all(flag in helptext for flag in s3[3:] if flag.startswith("--"))
    # The gateway: the same program and config file as tests/gateway_server.py, its password by name.
    gateway_env, argv = _split_env(gateway)
    assert list(gateway_env) == ["GATEWAY_PASSWORD"]
    assert argv == [".venv/bin/dask-gateway-server", "-f", str(CONFIG.relative_to(ROOT))]
    # The service: the variables the gateway tests give the app, at the config's default addresses.
    env, argv = _split_env(service)
    assert argv == ["make", "run"]
    tested = GatewayServer(tmp_path, {}).client_env()
    assert set(tested) <= set(env)
    assert env["DASK_GATEWAY__AUTH__KWARGS__PASSWORD"] == gateway_env["GATEWAY_PASSWORD"]
    config = CONFIG.read_text()
    assert f'"GATEWAY_ADDRESS", "{env["DASK_GATEWAY__ADDRESS"].removeprefix("http://")}"' in config
    assert f'"GATEWAY_PROXY_ADDRESS", "{env["DASK_GATEWAY__PROXY_ADDRESS"].removeprefix("gateway://")}"' in config
    assert env["CLUSTER"] == "gateway"
    assert env["S3_ENDPOINT_URL"].endswith(":" + s3[s3.index("--port") + 1])
