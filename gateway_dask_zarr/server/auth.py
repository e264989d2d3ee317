"""Who is calling: AUTH=none, a static token list (AUTH=token) or JupyterHub (AUTH=jupyterhub); CSRF for cookie writes.

Every request but the probes sets `flask.g.user` (the owner its jobs get) and `flask.g.is_admin`
(may see everyone's jobs). AUTH=none: `anonymous`, who sees every job. AUTH=token: the token's
name from API_TOKENS (`name:token`; a plain token's name is `token`), no admin. AUTH=jupyterhub:
the hub user (see hub.py), admin with the hub's admin flag or an `admin:users` scope.
"""

from __future__ import annotations

import hmac

from flask import Flask, g, request, session
from werkzeug.wrappers import Response as WerkzeugResponse

from gateway_dask_zarr.errors import Forbidden, Unauthorized
from gateway_dask_zarr.server.hub import HubLogin, PrefixMiddleware, session_secret
from gateway_dask_zarr.server.hub import bp as hub_bp
from gateway_dask_zarr.server.share import OPEN_ENDPOINTS as SHARE_ENDPOINTS
from gateway_dask_zarr.settings import Settings

# Probes must answer without a token (Kubernetes sends none); the hub's OAuth callback is how a
# browser gets its session; a share link's token is its own permission. Every other path, the
# page, /metrics and /openapi.json included, needs a caller.
OPEN_ENDPOINTS = frozenset({"api.healthz", "api.readyz", "hub.oauth_callback", *SHARE_ENDPOINTS})
PLAIN_TOKEN_NAME = "token"  # noqa: S105 - a name, not a secret
# The header the page's fetch sends on writes; a cross-site form or fetch cannot set it
# without a CORS preflight, which this app never grants.
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <t>` (or JupyterHub's `token <t>`) header."""
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() not in ("bearer", "token") or not token:
        return None
    return token


class Authenticator:
    """Finds the caller of a request under the configured kind of auth."""

    def __init__(self, settings: Settings) -> None:
        self.kind = settings.auth
        self._tokens: list[tuple[str, bytes]] = []
        for entry in settings.api_tokens:
            name, _, token = entry.partition(":") if ":" in entry else (PLAIN_TOKEN_NAME, "", entry)
            self._tokens.append((name, token.encode()))
        self.hub = HubLogin(settings) if self.kind == "jupyterhub" else None

    def caller(self) -> tuple[str, bool, bool]:
        """(name, is_admin, by_cookie) of this request's caller; raise Unauthorized, Forbidden or Unavailable."""
        if self.kind == "none":
            return "anonymous", True, False
        token = bearer_token(request.headers.get("Authorization"))
        if token is not None:
            if self.hub is not None:
                return (*self.hub.user(token), False)
            return self._static(token), False, False
        if self.hub is not None and session.get("token"):
            return (*self.hub.user(session["token"]), True)
        raise Unauthorized("this API needs a token: send the header 'Authorization: Bearer <token>'")

    def _static(self, token: str) -> str:
        # Compare against every token, in constant time each, so timing tells nothing.
        found = None
        for name, known in self._tokens:
            if hmac.compare_digest(token.encode(), known):
                found = name
        if found is None:
            raise Unauthorized("the token is not valid; send one of the service's API tokens")
        return found


def check_csrf() -> None:
    """A cookie-authenticated write must carry the session's CSRF token, which only the page has."""
    expected = session.get("csrf")
    sent = request.headers.get(CSRF_HEADER, "")
    if not (expected and sent and hmac.compare_digest(sent, expected)):
        raise Forbidden(
            f"a write from a browser session needs the page's {CSRF_HEADER} header; reload the page and try again",
            code="csrf_failed",
        )


def _wants_page() -> bool:
    """A browser navigating (a GET asking for HTML, no token), sent to the hub's login rather than answered 401."""
    return (
        request.method == "GET"
        and "text/html" in request.headers.get("Accept", "")
        and "Authorization" not in request.headers
    )


def install_auth(app: Flask, settings: Settings) -> HubLogin | None:
    """Find the caller of every request but the probes before any view runs; serve under the hub's prefix.

    Returns the hub's login (AUTH=jupyterhub), else None.
    """
    authenticator = Authenticator(settings)
    if authenticator.hub is not None:
        app.secret_key = session_secret(settings)
        app.config.update(
            SESSION_COOKIE_NAME=settings.oauth_client_id,
            # Only this service's paths: the hub and users' servers share the domain.
            SESSION_COOKIE_PATH=settings.service_prefix,
        )
        app.register_blueprint(hub_bp)
    if settings.service_prefix != "/":
        app.wsgi_app = PrefixMiddleware(app.wsgi_app, settings.service_prefix)  # type: ignore[method-assign]

    @app.before_request
    def find_caller() -> WerkzeugResponse | None:
        # A refusal raised here is answered by the edge's error handlers (401, 403, 503).
        if request.endpoint in OPEN_ENDPOINTS:
            return None
        try:
            g.user, g.is_admin, by_cookie = authenticator.caller()
        except Unauthorized:
            if authenticator.hub is not None and _wants_page():
                here = request.full_path if request.query_string else request.path
                return authenticator.hub.login_redirect(request.script_root + here)
            raise
        if by_cookie and request.method in UNSAFE_METHODS:
            check_csrf()
        return None

    @app.context_processor
    def page_auth() -> dict[str, str]:
        # The page says who is signed in, and puts the CSRF token in a <meta> for app.js.
        return {
            "signed_in_as": g.get("user", "") if authenticator.kind != "none" else "",
            "csrf_token": session.get("csrf", "") if authenticator.hub is not None else "",
        }

    return authenticator.hub
