"""Who may call the API: AUTH=none, a static token list (AUTH=token) or JupyterHub's tokens (AUTH=jupyterhub)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from flask import Flask, current_app, g, request

from gateway_dask_zarr.config import Settings
from gateway_dask_zarr.errors import Unauthorized, Unavailable

log = logging.getLogger(__name__)

# Probes must answer without a token (Kubernetes sends none); every other path, the page,
# /metrics and /openapi.json included, needs one.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
HUB_CACHE_S = 60.0
HUB_CACHE_MAX = 4096
HUB_TIMEOUT_S = 5.0


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <t>` (or JupyterHub's `token <t>`) header."""
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() not in ("bearer", "token") or not token:
        return None
    return token


class Authenticator:
    """Checks a request's token against the configured kind of auth."""

    def __init__(self, settings: Settings) -> None:
        self.kind = settings.auth
        self._tokens = [t.encode() for t in settings.api_tokens]
        self._hub_url = settings.jupyterhub_api_url
        # Positive answers only, keyed by a hash so the cache holds no token.
        self._hub_cache: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def user(self, header: str | None) -> str:
        """The caller's name; raise Unauthorized without a valid token, Unavailable when the hub cannot say."""
        if self.kind == "none":
            return "anonymous"
        token = bearer_token(header)
        if token is None:
            raise Unauthorized("this API needs a token: send the header 'Authorization: Bearer <token>'")
        if self.kind == "token":
            return self._static(token)
        return self._hub(token)

    def _static(self, token: str) -> str:
        # Compare against every token, in constant time each, so timing tells nothing.
        matched = False
        for known in self._tokens:
            matched |= hmac.compare_digest(token.encode(), known)
        if not matched:
            raise Unauthorized("the token is not valid; send one of the service's API tokens")
        return "token"

    def _hub(self, token: str) -> str:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            cached = self._hub_cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        name = self._ask_hub(token)
        with self._lock:
            if len(self._hub_cache) >= HUB_CACHE_MAX:
                self._hub_cache = {k: v for k, v in self._hub_cache.items() if v[0] > now}
            if len(self._hub_cache) < HUB_CACHE_MAX:
                self._hub_cache[key] = (now + HUB_CACHE_S, name)
        return name

    def _ask_hub(self, token: str) -> str:
        """GET {hub}/user with the caller's token, as a JupyterHub service does: the hub answers with its user model."""
        # A configured http(s) URL (Settings checks JUPYTERHUB_API_URL), never the caller's.
        req = urllib.request.Request(  # noqa: S310
            f"{self._hub_url}/user", headers={"Authorization": f"token {token}", "Accept": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=HUB_TIMEOUT_S) as response:  # noqa: S310
                model: Any = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403, 404):
                raise Unauthorized(
                    "JupyterHub does not accept this token; use a current JupyterHub API token"
                ) from None
            log.warning("JupyterHub answered %s to a token check", exc.code)
            raise Unavailable(
                "JupyterHub could not check the token now; try again shortly", code="auth_unavailable", retry_after=5
            ) from None
        except (OSError, ValueError) as exc:
            log.warning("JupyterHub could not be asked about a token: %s", type(exc).__name__)
            raise Unavailable(
                "JupyterHub (JUPYTERHUB_API_URL) cannot be reached to check the token; try again shortly",
                code="auth_unavailable",
                retry_after=5,
            ) from None
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            raise Unauthorized("JupyterHub does not know a user for this token")
        return model["name"]


def install_auth(app: Flask, settings: Settings) -> None:
    """Check every request but the probes before any view runs."""
    app.extensions["gateway_auth"] = Authenticator(settings)

    @app.before_request
    def require_token() -> None:
        # An Unauthorized or Unavailable raised here is answered by the edge's error handlers.
        if request.path not in OPEN_PATHS:
            g.user = current_app.extensions["gateway_auth"].user(request.headers.get("Authorization"))
