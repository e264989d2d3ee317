"""The notebook and the README's reading snippet, run as a user runs them: against `make run`,
in an environment with no AWS_* variables; and the notebook behind a hub."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests
from helpers import assert_verified
from hub_server import HubServer
from nbclient import NotebookClient
from serve import ROOT, MakeRun, make_run, user_env

from gateway_dask_zarr.client import GatewayClient

NOTEBOOK = ROOT / "notebooks" / "gateway_demo.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeRun]:
    """`make run` on a fresh DATA_DIR, for this module."""
    tmp = tmp_path_factory.mktemp("make-run")
    with make_run(tmp / "data", tmp / "make-run.log") as run:
        yield run
        # Nothing serves this DATA_DIR again: its store is killed, not stopped (about 16 s);
        # test_make_run.py stops one gracefully.
        run.weed.kill()
        run.stop()


@pytest.fixture
def gateway_url(served: MakeRun, monkeypatch: pytest.MonkeyPatch) -> str:
    """The kernel finds the service through GATEWAY_URL, and has no AWS_* variables."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GATEWAY_URL", served.url)
    monkeypatch.delenv("GATEWAY_TOKEN", raising=False)
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    # The kernel imports the client from this checkout, as after `pip install .`.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return served.url


def test_the_readme_reading_snippet_runs_in_a_fresh_shell(served: MakeRun) -> None:
    readme = (ROOT / "README.md").read_text()
    (snippet,) = re.findall(r"## Reading an array back.*?```python\n(.*?)```", readme, re.S)
    code = snippet.replace("http://127.0.0.1:8000", served.url)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=user_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1000, 1000) complete"


def test_notebook_is_committed_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)


def _execute(tmp_path: Path) -> tuple[Any, list[Any], str]:
    """Run the notebook top to bottom; any failing cell, a failed assert included, raises CellExecutionError."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "verified: 5 chunks and the job's summary statistics" in text
    assert any("image/png" in o.get("data", {}) for o in outputs if o.output_type == "display_data")
    return notebook, outputs, text


def test_notebook_runs_top_to_bottom(gateway_url: str, tmp_path: Path) -> None:
    notebook, outputs, text = _execute(tmp_path)
    assert f"gateway: {gateway_url} (no token)" in text
    # The progress bar was tqdm's notebook widget, and it reached every chunk: 120 of 120.
    assert any(WIDGET in o.get("data", {}) for o in outputs if o.output_type == "display_data")
    states = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"].values()
    bars = [m["state"] for m in states if m["model_name"] == "FloatProgressModel"]
    assert [(b["value"], b["max"]) for b in bars] == [(120, 120)]
    assert "same array from plain HTTP" in text
    # The two jobs the notebook ran (the client's and the plain HTTP one) are in the service, complete,
    # and every chunk verifies, read without credentials as the notebook read them.
    jobs = [j.document for j in GatewayClient(gateway_url).list() if j.document["shape"] == [1200, 1000]]
    assert [j["seed"] for j in jobs] == [7, 7]
    for job in jobs:
        assert_verified(job, anon=True)


def test_notebook_runs_through_the_hubs_proxy_with_a_users_token(
    hub: HubServer, hub_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in a user's notebook server: the hub's token in JUPYTERHUB_API_TOKEN, the service's URL.
    token = hub.mint_token("bob")
    monkeypatch.setenv("GATEWAY_URL", hub.app_url)
    monkeypatch.delenv("GATEWAY_TOKEN", raising=False)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", token)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    _, _, text = _execute(tmp_path)
    assert "(with a token)" in text
    jobs = requests.get(hub.app_url + "jobs", headers={"Authorization": f"token {token}"}, timeout=30).json()
    assert len(jobs) == 2 and {j["owner"] for j in jobs} == {"bob"} and {j["seed"] for j in jobs} == {7}
    for job in jobs:
        assert_verified(job)
