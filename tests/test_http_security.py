"""The HTTP layer's guards, through Flask's test client: the body bound, security headers, cookie flags, proxies."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from conftest import BUCKET
from flask import session

SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"}


def padded_job(size: int) -> bytes:
    """A valid job body of exactly `size` bytes (JSON allows the spaces)."""
    head, tail = b'{"shape": [200, 200]', b"}"
    return head + b" " * (size - len(head) - len(tail)) + tail


def test_a_body_over_max_body_bytes_is_413_and_starts_nothing(client: Any, s3fs_client: Any) -> None:
    response = client.post("/jobs", data=padded_job(64 * 2**10 + 1), content_type="application/json")
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert error["code"] == "body_too_large"
    assert "MAX_BODY_BYTES (65536 bytes)" in error["message"]
    # Any route: a body nobody would read is bounded too.
    assert client.get("/healthz", data=b"x" * 100_000).status_code == 413
    assert s3fs_client.find(BUCKET) == []
    # A body just at the bound is read and runs.
    assert client.post("/jobs", data=padded_job(64 * 2**10), content_type="application/json").status_code == 202


def test_max_body_bytes_is_the_bound(make_app: Any, settings: Any) -> None:
    client = make_app(settings, max_body_bytes=100).test_client()
    assert client.post("/jobs", data=padded_job(101)).status_code == 413
    assert client.post("/jobs", data=padded_job(100)).status_code == 202


def test_every_answer_carries_the_security_headers(client: Any) -> None:
    for path in ("/", "/healthz", "/jobs/no-such-job", "/static/app.js", "/metrics"):
        response = client.get(path)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, (path, name)
        policy = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
        assert policy["default-src"] == policy["script-src"] == policy["style-src"] == "'self'", path
        assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
        assert "unsafe" not in response.headers["Content-Security-Policy"]


class InlineFinder(HTMLParser):
    """What a CSP without 'unsafe-inline' blocks: inline scripts, style elements and attributes, on* handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "style" or (tag == "script" and "src" not in names):
            self.found.append(f"<{tag}>")
        self.found += [f"{tag} {name}=" for name in names if name == "style" or name.startswith("on")]


def test_the_page_has_nothing_inline(client: Any) -> None:
    # With a job row on it, so the row's markup (the progress bar) is checked too.
    assert client.get("/run?shape=200,200&chunks=100,100").status_code == 200
    page = client.get("/").get_data(as_text=True)
    assert 'class="job"' in page
    finder = InlineFinder()
    finder.feed(page)
    assert finder.found == []


def test_session_cookie_is_httponly_lax_and_secure_behind_a_trusted_https_proxy(make_app: Any, settings: Any) -> None:
    def cookie(app: Any, remote_addr: str, proto: str | None) -> str:
        headers = {"X-Forwarded-Proto": proto} if proto else {}
        response = app.test_client().get("/test-session", headers=headers, environ_base={"REMOTE_ADDR": remote_addr})
        assert response.status_code == 200
        return response.headers["Set-Cookie"]

    def set_session() -> str:
        session["user"] = "someone"
        return "ok"

    apps = []
    for allowed in (settings.forwarded_allow_ips, ("10.0.0.0/8",)):
        app = make_app(settings, forwarded_allow_ips=allowed)
        app.secret_key = "only-for-this-test"
        app.add_url_rule("/test-session", view_func=set_session)
        apps.append(app)
    default, private_net = apps
    plain = cookie(default, "127.0.0.1", None)
    assert "HttpOnly" in plain and "SameSite=Lax" in plain and "Secure" not in plain
    assert "Secure" in cookie(default, "127.0.0.1", "https")
    # Anyone else's X-Forwarded-Proto is not believed.
    assert "Secure" not in cookie(default, "10.1.2.3", "https")
    assert "Secure" in cookie(private_net, "10.1.2.3", "https")
    assert "Secure" not in cookie(private_net, "127.0.0.1", "https")
