"""The notebook, executed top to bottom in a real kernel against a real running service (alone and behind a hub)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests
from helpers import assert_verified
from hub_server import HubServer
from live import serve
from nbclient import NotebookClient

from gateway_dask_zarr.client import Gateway

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "gateway_demo.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def gateway_url(app: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app behind a real HTTP server; the kernel finds it through GATEWAY_URL."""
    with serve(app) as url:
        monkeypatch.setenv("GATEWAY_URL", url)
        monkeypatch.delenv("GATEWAY_TOKEN", raising=False)
        monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
        # The kernel imports the client from this checkout, as after `pip install .`.
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        yield url


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
    # The two jobs the notebook ran (the client's and the plain HTTP one) are complete, and every chunk verifies.
    jobs = [j.document for j in Gateway(gateway_url).list()]
    assert [(j["seed"], j["shape"]) for j in jobs] == [(7, [1200, 1000])] * 2
    for job in jobs:
        assert_verified(job)


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
