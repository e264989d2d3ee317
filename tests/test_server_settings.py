"""gunicorn's settings (GUNICORN_*) and JSON logs for gunicorn's and distributed's loggers, without a server."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import serve

from gateway_dask_zarr.logs import JsonFormatter, TextFormatter, configure_logging
from gateway_dask_zarr.settings import ConfigError, ServerSettings

pytestmark = pytest.mark.fast


def test_defaults_follow_the_cluster_start_timeout() -> None:
    assert ServerSettings.from_env(300, {}) == ServerSettings(threads=32, timeout_s=360, graceful_timeout_s=60)
    given = {"GUNICORN_THREADS": "4", "GUNICORN_TIMEOUT_S": "90", "GUNICORN_GRACEFUL_TIMEOUT_S": "22"}
    assert ServerSettings.from_env(300, given) == ServerSettings(threads=4, timeout_s=90, graceful_timeout_s=22)


@pytest.mark.parametrize(
    ("name", "value"), [("GUNICORN_THREADS", "many"), ("GUNICORN_THREADS", "0"), ("GUNICORN_TIMEOUT_S", "-1")]
)
def test_a_bad_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: "):
        ServerSettings.from_env(300, {name: value})


def test_gunicorn_conf_stops_with_one_line_naming_the_variable() -> None:
    run = subprocess.run(
        [sys.executable, "-c", "import runpy; runpy.run_path('gunicorn.conf.py')"],
        cwd=serve.ROOT,
        env={"PATH": "/usr/bin:/bin", "GUNICORN_THREADS": "many", "PYTHONPATH": str(serve.ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert run.stderr.strip() == "configuration error: GUNICORN_THREADS: expected an integer, got 'many'"


def test_json_logs_cover_gunicorns_and_distributeds_loggers() -> None:
    loggers = [logging.getLogger(name) for name in ("gunicorn.error", "distributed")]
    added = [logging.StreamHandler() for _ in loggers]
    for logger, handler in zip(loggers, added, strict=True):
        logger.addHandler(handler)
    try:
        configure_logging("json", "INFO")
        assert all(isinstance(h.formatter, JsonFormatter) for h in added)
        record = logging.makeLogRecord({"name": "distributed.worker", "msg": "hello", "levelname": "INFO"})
        assert json.loads(added[1].format(record))["message"] == "hello"
    finally:
        configure_logging("text", "INFO")
        for logger, handler in zip(loggers, added, strict=True):
            logger.removeHandler(handler)
    root_handlers = logging.getLogger().handlers
    assert any(isinstance(h.formatter, TextFormatter) for h in root_handlers)
