"""Logging: one handler on the root logger, plain text or one JSON object a line (LOG_FORMAT)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra=` (e.g. job_id).
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the record's extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a JSON line."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """The plain format, with [job <id>] when the record is about a job."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as one text line."""
        line = super().format(record)
        job_id = getattr(record, "job_id", None)
        return f"{line} [job {job_id}]" if job_id and job_id not in record.getMessage() else line


_handler: logging.Handler | None = None
# Loggers with handlers of their own, whose records never reach the root's handler:
# gunicorn's (set up by gunicorn) and distributed's (set up when distributed is imported).
OWN_HANDLERS = ("gunicorn.error", "gunicorn.access", "distributed")


def configure_logging(log_format: str, level: str) -> logging.Handler:
    """Install (once) or reconfigure the root logger's handler; return it.

    With LOG_FORMAT=json the loggers of OWN_HANDLERS write JSON lines too.
    """
    global _handler
    root = logging.getLogger()
    if _handler is None:
        _handler = logging.StreamHandler()
        root.addHandler(_handler)
    _handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.setLevel(level)
    if log_format == "json":
        json_for_own_handlers()
    return _handler


def json_for_own_handlers() -> None:
    """Give the handlers of gunicorn's and distributed's loggers the JSON formatter."""
    for name in OWN_HANDLERS:
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(JsonFormatter())
