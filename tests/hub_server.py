"""A real JupyterHub with configurable-http-proxy on 127.0.0.1, the app registered as its external service."""

from __future__ import annotations

import contextlib
import html
import os
import re
import secrets
import signal
import subprocess
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import requests
from gateway_server import BIN, ROOT
from serve import free_port, spawn_logged, wait_answering
from werkzeug.serving import make_server

from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.storage.embedded import stop_process

# `make install-test` installs configurable-http-proxy here (npm).
NODE_BIN = ROOT / ".node" / "node_modules" / ".bin"
APP = "gdz"
GATEWAY = "dask-gateway"
USERS = ("alice", "bob")
ADMIN_USER = "carol"

CONFIG = """
c = get_config()  # noqa: F821
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = "{workdir}/proxy.pid"
c.JupyterHub.db_url = "sqlite:///{workdir}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{workdir}/cookie_secret"
c.JupyterHub.pid_file = "{workdir}/hub.pid"
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {password!r}
c.Authenticator.allowed_users = {users!r}
c.Authenticator.admin_users = {{{admin!r}}}
c.JupyterHub.services = [
    # The app, as deploy/jupyterhub_config.py registers it: proxied at /services/{app}/, no consent page.
    {{"name": "{app}", "url": {app_url!r}, "api_token": {app_token!r}, "oauth_no_confirm": True}},
    # dask-gateway-server's JupyterHubAuthenticator checks tokens with this one.
    {{"name": "{gateway}", "api_token": {gateway_token!r}}},
    # The tests' own: mints user tokens.
    {{"name": "test-admin", "api_token": {admin_token!r}}},
]
c.JupyterHub.load_roles = [
    {{"name": "user", "scopes": ["self", "access:services!service={app}"]}},
    {{"name": "{app}-uses-gateway", "services": ["{app}"], "scopes": ["access:services!service={gateway}"]}},
    {{"name": "test-admin", "services": ["test-admin"], "scopes": ["admin:users", "tokens"]}},
]
"""


class AppSlot:
    """The WSGI app behind the service's registered URL: the app a test plugs in, or 404."""

    def __init__(self) -> None:
        self.app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.app is None:
            # Not a 5xx: the hub would take that for a service still starting, and wait ~32 s.
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no app plugged in"]
        return self.app(environ, start_response)


class HubServer:
    """One `jupyterhub` process (it starts and stops its configurable-http-proxy) and the app's slot."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port, self.hub_port, self.proxy_api_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"http://127.0.0.1:{self.hub_port}/hub/api"
        self.app_url = f"{self.url}/services/{APP}/"
        self.password = "hub-pass-" + secrets.token_hex(8)
        self.app_token, self.gateway_token, self.admin_token = (secrets.token_hex(32) for _ in range(3))
        self.slot = AppSlot()
        self.log_path = workdir / "hub.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> HubServer:
        """Serve the slot first (the hub waits ~32 s for a service that is not up), then start the hub."""
        self.slot_server = make_server("127.0.0.1", 0, self.slot, threaded=True)
        self.slot_thread = threading.Thread(target=self.slot_server.serve_forever, name="hub-app-slot", daemon=True)
        self.slot_thread.start()
        config = self.workdir / "jupyterhub_config.py"
        config.write_text(
            CONFIG.format(
                port=self.port,
                hub_port=self.hub_port,
                proxy_api_port=self.proxy_api_port,
                workdir=self.workdir,
                password=self.password,
                users={*USERS, ADMIN_USER},
                admin=ADMIN_USER,
                app=APP,
                app_url=f"http://127.0.0.1:{self.slot_server.server_port}",
                app_token=self.app_token,
                gateway=GATEWAY,
                gateway_token=self.gateway_token,
                admin_token=self.admin_token,
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "CONFIGPROXY_"))}
        env["PATH"] = f"{NODE_BIN}{os.pathsep}{env.get('PATH', '')}"
        args = [str(BIN / "jupyterhub"), "-f", str(config)]
        self.process = spawn_logged(args, self.log_path, cwd=self.workdir, env=env, start_new_session=True)
        # Through the proxy: both the hub and its proxy answer.
        wait_answering(self.process, f"{self.url}/hub/api/", timeout, self.log, self.stop)
        return self

    def log(self) -> str:
        """The hub's (and its proxy's) log so far."""
        return self.log_path.read_text(errors="replace")

    def app_settings(self, settings: Settings) -> Settings:
        """`settings` as the app runs as this hub's service (what JUPYTERHUB_* variables give)."""
        prefix = f"/services/{APP}/"
        return replace(
            settings,
            auth="jupyterhub",
            jupyterhub_api_url=self.api_url,
            jupyterhub_api_token=self.app_token,
            service_name=APP,
            service_prefix=prefix,
            oauth_client_id=f"service-{APP}",
            oauth_callback_url=prefix + "oauth_callback",
        )

    def app_env(self) -> dict[str, str]:
        """The same for an app configured by its environment (gunicorn)."""
        return {
            "AUTH": "jupyterhub",
            "JUPYTERHUB_API_URL": self.api_url,
            "JUPYTERHUB_API_TOKEN": self.app_token,
            "JUPYTERHUB_SERVICE_NAME": APP,
        }

    def mint_token(self, user: str, scopes: list[str] | None = None) -> str:
        """A new API token of `user`, as the hub gives one to the user's notebook server; `scopes` narrows it."""
        body: dict[str, Any] = {"note": "test", "expires_in": 3600}
        if scopes is not None:
            body["scopes"] = scopes
        response = requests.post(
            f"{self.api_url}/users/{user}/tokens",
            json=body,
            headers={"Authorization": f"token {self.admin_token}"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    def browser_login(self, user: str) -> requests.Session:
        """A requests session that went through the hub's login form and OAuth to the app's page, as `user`."""
        session = requests.Session()
        session.headers["Accept"] = "text/html"
        form = session.get(self.app_url, timeout=30)
        assert "/hub/login" in form.url, form.url
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', form.text)
        action = re.search(r'<form action="([^"]+)"', form.text)
        assert xsrf and action, form.text
        page = session.post(
            requests.compat.urljoin(form.url, html.unescape(action.group(1))),
            data={"username": user, "password": self.password, "_xsrf": xsrf.group(1)},
            timeout=60,
        )
        assert page.status_code == 200 and page.url == self.app_url, (page.status_code, page.url)
        return session

    def stop(self) -> None:
        """Stop the hub (it stops its proxy), then the slot's server."""
        if self.process is not None:
            stop_process(self.process, 30)
            # The hub stops its proxy on SIGTERM; whatever of its session is left goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process = None
        self.slot_server.shutdown()
        self.slot_server.server_close()
        self.slot_thread.join(10)
