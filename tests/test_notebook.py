"""The notebook, executed top to bottom in a real kernel against a real running service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests
from helpers import assert_verified
from live import serve
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "gateway_demo.ipynb"


@pytest.fixture
def gateway_url(app: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app behind a real HTTP server; the kernel finds it through GATEWAY_URL."""
    with serve(app) as url:
        monkeypatch.setenv("GATEWAY_URL", url)
        monkeypatch.delenv("GATEWAY_TOKEN", raising=False)
        yield url


def test_notebook_is_committed_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)


def test_notebook_runs_top_to_bottom(gateway_url: str, tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # Any failing cell, a failed assert included, raises CellExecutionError here.
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"gateway: {gateway_url} (no token)" in text
    assert "verified: 5 chunks and the job's summary statistics" in text
    assert any("image/png" in o.get("data", {}) for o in outputs if o.output_type == "display_data")
    # The job the notebook ran is in the service, complete, and every chunk verifies.
    jobs = requests.get(f"{gateway_url}/jobs", timeout=30).json()
    assert len(jobs) == 1 and jobs[0]["seed"] == 7 and jobs[0]["shape"] == [1200, 1000]
    assert_verified(jobs[0])
