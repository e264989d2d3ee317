"""Logging (logs.py): plain text with the job's id, or one JSON object a line."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import pytest

from gateway_dask_zarr import logs
from gateway_dask_zarr.logs import JsonFormatter, TextFormatter, configure_logging

pytestmark = pytest.mark.fast


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "gateway_dask_zarr.jobs", "levelname": "INFO", "msg": message})
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_time_level_logger_message_and_extra_fields() -> None:
    entry = json.loads(JsonFormatter().format(_record("job started", job_id="j1", chunks=100)))
    assert entry["level"] == "info" and entry["logger"] == "gateway_dask_zarr.jobs"
    assert entry["message"] == "job started"
    assert entry["job_id"] == "j1" and entry["chunks"] == 100
    assert entry["time"].endswith("Z")
    assert "msg" not in entry and "args" not in entry


def test_json_lines_carry_the_exception() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: bad" in entry["exception"]


def test_text_lines_name_the_job_unless_the_message_does() -> None:
    assert TextFormatter().format(_record("chunks written", job_id="j1")).endswith(": chunks written [job j1]")
    assert TextFormatter().format(_record("job j1 failed", job_id="j1")).endswith(": job j1 failed")
    assert "[job" not in TextFormatter().format(_record("ready"))


@pytest.fixture
def root_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[logging.Logger]:
    """The root logger, left as it was: configure_logging installs one handler on it."""
    root = logging.getLogger()
    monkeypatch.setattr(logs, "_handler", None)
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configure_installs_one_handler_and_switches_its_format(root_logger: logging.Logger) -> None:
    own = logging.StreamHandler()
    logging.getLogger("gunicorn.error").addHandler(own)
    try:
        first = configure_logging("text", "INFO")
        again = configure_logging("json", "WARNING")
        assert first is again and root_logger.handlers.count(first) == 1
        assert isinstance(first.formatter, JsonFormatter) and root_logger.level == logging.WARNING
        # gunicorn's own handler writes JSON lines too.
        assert isinstance(own.formatter, JsonFormatter)
    finally:
        logging.getLogger("gunicorn.error").removeHandler(own)
