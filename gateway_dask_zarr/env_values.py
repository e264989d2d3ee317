"""Readers of environment values: each parses one kind of value and names the variable when it is bad."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from dask.utils import parse_bytes

# A name for an API token (API_TOKENS=name:token): what jobs record as their owner.
TOKEN_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


class ConfigError(ValueError):
    """A setting has a bad value; the message names the variable."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def read_int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"expected an integer, got {raw!r}") from None
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise ConfigError(name, f"must be {bound}, got {value}")
    return value


def read_bytes(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse_bytes(raw)
    except (ValueError, TypeError):
        raise ConfigError(name, f"expected a size such as 16GiB or 1048576, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(name, f"must be positive, got {raw!r}")
    return int(value)


def read_quota(env: Mapping[str, str], name: str) -> int:
    # Off (0) unless set; "0" says off too.
    return 0 if env.get(name, "").strip() in ("", "0") else read_bytes(env, name, 0)


def read_networks(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    # The same syntax gunicorn reads from this variable: "*", or IP addresses and networks.
    raw = env.get(name, "").strip() or default
    entries = tuple(e.strip() for e in raw.split(",") if e.strip())
    for entry in entries:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry)
        except ValueError:
            raise ConfigError(
                name, f"expected '*' or comma-separated IP addresses or networks, got {entry!r}"
            ) from None
    return entries


def read_choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower() or choices[0]
    if raw not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def read_url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(name, f"expected an http(s) URL, got {raw!r}")
    return raw.rstrip("/")


def read_store_url(env: Mapping[str, str]) -> str | None:
    raw = env.get("STORE_URL", "").strip()
    if not raw:
        return None
    # Each storage backend judges its own URLs (storage/backends.py); imported here, when a URL
    # is set, as that module loads zarr and obstore.
    from gateway_dask_zarr.storage.backends import url_problem

    problem = url_problem(raw)
    if problem:
        raise ConfigError("STORE_URL", problem)
    return raw.rstrip("/")


def read_data_dir(env: Mapping[str, str]) -> str:
    raw = env.get("DATA_DIR", "").strip() or "data"
    if os.path.exists(raw) and not os.path.isdir(raw):
        raise ConfigError("DATA_DIR", f"must be a directory, got the file {raw!r}")
    return raw


def read_path(env: Mapping[str, str], name: str, default: str) -> str:
    """A URL path such as /services/gdz/, always with a leading and a trailing slash."""
    raw = env.get(name, "").strip() or default
    if not raw.startswith("/") or "//" in raw or any(c in raw for c in "?#\\ "):
        raise ConfigError(name, f"expected a URL path such as /services/name/, got {raw!r}")
    return raw if raw.endswith("/") else raw + "/"


def read_api_tokens(env: Mapping[str, str], auth: str) -> tuple[str, ...]:
    """API_TOKENS: comma-separated `name:token` pairs or plain tokens (whose owner is `token`)."""
    entries = tuple(t.strip() for t in env.get("API_TOKENS", "").split(",") if t.strip())
    if auth != "token":
        return entries
    if not entries:
        raise ConfigError("API_TOKENS", "is required (comma-separated name:token pairs) when AUTH=token")
    for entry in entries:
        named = ":" in entry
        name, _, token = entry.partition(":") if named else ("", "", entry)
        if named and not TOKEN_NAME.fullmatch(name):
            raise ConfigError("API_TOKENS", "a token's name must be 1 to 64 of A-Z a-z 0-9 _ . @ -")
        if len(token) < 16:
            raise ConfigError("API_TOKENS", "each token must be at least 16 characters")
    return entries


def read_cluster_options(env: Mapping[str, str]) -> dict[str, Any]:
    raw = env.get("DASK_GATEWAY_CLUSTER_OPTIONS", "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError("DASK_GATEWAY_CLUSTER_OPTIONS", f"not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ConfigError("DASK_GATEWAY_CLUSTER_OPTIONS", "must be a JSON object")
    return value
