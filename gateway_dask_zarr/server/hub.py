"""AUTH=jupyterhub: the app as a JupyterHub service, with JupyterHub's own HubOAuth.

API callers send a hub token (`Authorization: token|Bearer <t>`); browsers log in through the
hub's OAuth flow (state and PKCE) and keep the hub's access token in the app's signed session
cookie. Either way the hub says who the token belongs to and which scopes it carries; the
service's access scope `access:services!service=<name>` is required.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, jsonify, redirect, request, session
from jupyterhub.services.auth import HubOAuth, check_scopes
from tornado.web import HTTPError
from werkzeug.wrappers import Response

from gateway_dask_zarr.errors import Forbidden, Unauthorized, Unavailable
from gateway_dask_zarr.server.parts import parts
from gateway_dask_zarr.settings import Settings

log = logging.getLogger(__name__)

bp = Blueprint("hub", __name__)

# How long the hub's answer about a token is trusted (HubOAuth's cache).
HUB_CACHE_S = 60
# The scope that makes a hub user an admin here: they may list everyone's jobs.
ADMIN_SCOPE = "admin:users"


class HubLogin:
    """Token checks and the browser's OAuth login, through jupyterhub.services.auth.HubOAuth."""

    def __init__(self, settings: Settings) -> None:
        assert settings.jupyterhub_api_url and settings.jupyterhub_api_token and settings.service_name
        self.access_scope = f"access:services!service={settings.service_name}"
        self.oauth = HubOAuth(
            api_url=settings.jupyterhub_api_url,
            api_token=settings.jupyterhub_api_token,
            oauth_client_id=settings.oauth_client_id,
            oauth_redirect_uri=settings.oauth_callback_url,
            base_url=settings.service_prefix,
            hub_prefix=settings.hub_base_url + "hub/",
            access_scopes={self.access_scope},
            cache_max_age=HUB_CACHE_S,
        )

    def user(self, token: str) -> tuple[str, bool]:
        """(name, is_admin) of the token's owner; raise Unauthorized, Forbidden or Unavailable."""
        try:
            model: Any = self.oauth.user_for_token(token)
        except HTTPError as exc:
            log.warning("JupyterHub could not check a token: %s", exc.log_message or exc.status_code)
            raise Unavailable(
                "JupyterHub (JUPYTERHUB_API_URL) could not check the token now; try again shortly",
                code="auth_unavailable",
                retry_after=5,
            ) from None
        if not model or not isinstance(model.get("name"), str):
            if session.get("token") == token:
                del session["token"]  # expired or revoked: the next page view logs in again
            raise Unauthorized("JupyterHub does not accept this token; use a current JupyterHub API token")
        scopes = set(model.get("scopes") or ())
        if not check_scopes(self.access_scope, scopes):
            raise Forbidden(
                f"this token lacks the scope {self.access_scope}; ask the hub's admin for access to this service"
            )
        is_admin = model.get("admin") is True or bool(check_scopes(ADMIN_SCOPE, scopes))
        # A service's token owns jobs as `service:<name>` (dask-gateway's rule): never a user's.
        kind = model.get("kind", "user")
        return (model["name"] if kind == "user" else f"{kind}:{model['name']}"), is_admin

    def login_redirect(self, next_url: str) -> Response:
        """Send a browser to the hub's OAuth authorize page; the state and PKCE verifier wait in the session."""
        if not next_url.startswith("/") or next_url.startswith("//"):
            # Only a path of this site: never a redirect elsewhere after the login.
            next_url = self.oauth.base_url
        verifier, challenge, method = self.oauth.generate_pkce_code_challenge()
        state = secrets.token_urlsafe(16)
        # In the signed session, not in HubOAuth's memory: the callback may reach another replica.
        session["oauth"] = {"state": state, "verifier": verifier, "next": next_url}
        query = urlencode({"state": state, "code_challenge": challenge, "code_challenge_method": method})
        return redirect(f"{self.oauth.login_url}&{query}")

    @property
    def logout_url(self) -> str:
        """The hub's logout page: it ends the browser's hub session too."""
        return f"{self.oauth.hub_host}{self.oauth.hub_prefix}logout"

    def finish_login(self, code: str, state: str) -> str:
        """Trade the hub's code for a token and keep it in the session; return the page the browser asked for."""
        pending = session.pop("oauth", None) or {}
        if not (pending.get("state") and hmac.compare_digest(pending["state"], state)):
            raise Forbidden("the login's state does not match this browser's; open the page again to log in")
        try:
            token = self.oauth.token_for_code(code, code_verifier=pending["verifier"])
        except HTTPError:
            raise Forbidden("JupyterHub refused the login code; open the page again to log in") from None
        session["token"] = token
        session["csrf"] = secrets.token_urlsafe(32)
        return str(pending.get("next") or self.oauth.base_url)


def session_secret(settings: Settings) -> bytes:
    """The key that signs session cookies: derived from the service's hub token, so every replica shares it."""
    assert settings.jupyterhub_api_token
    return hmac.new(
        settings.jupyterhub_api_token.encode(), b"gateway-dask-zarr session cookie", hashlib.sha256
    ).digest()


def _login() -> HubLogin:
    login = parts().hub_login
    assert login is not None, "the hub's routes are registered only with AUTH=jupyterhub"
    return login


@bp.get("/oauth_callback")
def oauth_callback() -> Response:
    """Where the hub sends the browser back after its login: keep the token, go to the page asked for."""
    code, state = request.args.get("code"), request.args.get("state")
    if not code or not state:
        raise Forbidden("the hub's answer lacks its code or state; open the page again to log in")
    login = _login()
    return redirect(login.finish_login(code, state))


@bp.post("/logout")
def logout() -> Response:
    """End this service's session (its copy of the hub's token); the page then opens the hub's logout."""
    session.clear()
    login = _login()
    return jsonify({"next": login.logout_url})


class PrefixMiddleware:
    """Serves the app under the hub's prefix as well as at /: the prefix moves into SCRIPT_NAME.

    The hub's proxy keeps /services/<name>/ in the path; with it in SCRIPT_NAME, Flask's
    url_for makes prefixed links, and a request without it (a probe, a direct client) gets
    unprefixed ones.
    """

    def __init__(self, app: Any, prefix: str) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == self.prefix:
            # Without the slash, the page's relative URLs would resolve outside the prefix.
            query = environ.get("QUERY_STRING")
            location = self.prefix + "/" + (f"?{query}" if query else "")
            start_response("308 Permanent Redirect", [("Location", location), ("Content-Length", "0")])
            return [b""]
        if path.startswith(self.prefix + "/"):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.prefix
            environ["PATH_INFO"] = path[len(self.prefix) :]
        return self.app(environ, start_response)
