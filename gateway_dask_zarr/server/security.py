"""The HTTP layer's guards: a bounded request body, browser security headers, cookie flags, trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway_dask_zarr import errors
from gateway_dask_zarr.server.edge import error_response
from gateway_dask_zarr.server.parts import parts
from gateway_dask_zarr.settings import Settings

# The page loads only its own script, stylesheet and pictures (previews, and the empty
# data: favicon that keeps browsers from asking for /favicon.ico); nothing inline, no
# plugins, no framing by another site, forms post only here.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # frame-ancestors for browsers that predate it.
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, whose cookie is Secure whenever the request came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure when the request is https (directly, or as a trusted proxy says), or when configured so."""
        return request.is_secure or bool(app.config["SESSION_COOKIE_SECURE"])


class TrustedProxyFix:
    """Honour X-Forwarded-Proto only from the proxies in FORWARDED_ALLOW_IPS, as gunicorn does."""

    def __init__(self, app: Any, trusted: Iterable[str]) -> None:
        self.app = app
        self.proxied = ProxyFix(app, x_for=0, x_proto=1)
        self.trust_all = "*" in trusted
        self.networks = [ipaddress.ip_network(t) for t in trusted if t != "*"]

    def trusts(self, remote_addr: str | None) -> bool:
        """True when the peer is a trusted proxy."""
        if self.trust_all:
            return True
        try:
            address = ipaddress.ip_address(remote_addr or "")
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        """The WSGI entry: through ProxyFix for a trusted peer, straight to the app otherwise."""
        app = self.proxied if self.trusts(environ.get("REMOTE_ADDR")) else self.app
        return app(environ, start_response)


def _body_limit() -> int:
    return int(parts().service.settings.max_body_bytes)


def _bound_body() -> None:
    # Every route, so no view can forget. A Content-Length over the bound is refused without
    # reading a byte. A chunked body has no length: werkzeug stops reading the stream (which
    # gunicorn marks as terminated) at MAX_CONTENT_LENGTH, one byte over the bound, so at most
    # that much is read to tell a body over the bound from one just at it.
    limit = _body_limit()
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower() and len(request.get_data()) > limit:
        raise RequestEntityTooLarge()


def _too_large(exc: RequestEntityTooLarge) -> tuple[Response, int, dict[str, str]]:
    limit = _body_limit()
    message = f"the request body is over MAX_BODY_BYTES ({limit} bytes); job parameters take a few hundred bytes"
    return error_response(errors.TooLarge(message, code="body_too_large"))


def _add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def init_http_security(app: Flask, settings: Settings) -> None:
    """Bound request bodies, add the security headers, set the session cookie's flags, trust only known proxies."""
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes + 1,
        MAX_FORM_MEMORY_SIZE=settings.max_body_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.session_interface = SessionInterface()
    app.wsgi_app = TrustedProxyFix(app.wsgi_app, settings.forwarded_allow_ips)  # type: ignore[method-assign]
    app.before_request(_bound_body)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.after_request(_add_security_headers)
