"""Small real servers the reliability tests run on loopback: a fault-injecting S3 proxy."""

from __future__ import annotations

import http.client
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

from distributed.diagnostics.plugin import SchedulerPlugin
from distributed.protocol.pickle import dumps

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


class _Server:
    """A threaded HTTP server on 127.0.0.1 in a daemon thread; stop() shuts it and frees the port."""

    handler: type[BaseHTTPRequestHandler]

    def start(self) -> Any:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self.handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


XML_HEADER = b'<?xml version="1.0" encoding="UTF-8"?>\n'
SLOWDOWN = XML_HEADER + b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
INTERNAL = (
    XML_HEADER
    + b"<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>"
)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        proxy: FaultProxy = self.server.owner  # type: ignore[attr-defined]
        with proxy.lock:
            proxy.in_flight += 1
        try:
            self._answer(proxy)
        finally:
            with proxy.lock:
                proxy.in_flight -= 1

    def _answer(self, proxy: FaultProxy) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = proxy.decide(self.command, self.path)
        if fault is not None:
            status, payload = fault
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "expect"}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            self.send_response(response.status, response.reason)
            head = self.command == "HEAD"
            for key, value in response.getheaders():
                # A HEAD answer keeps the object's length; other answers carry their payload's.
                if key.lower() not in HOP_BY_HOP and (head or key.lower() != "content-length"):
                    self.send_header(key, value)
            if not head:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if not head:
                self.wfile.write(payload)
        finally:
            upstream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward


class FaultProxy(_Server):
    """Forwards to an S3 server and counts requests; answers 503 SlowDown or 500 to a share of PUTs and delays others.

    With `only`, faults and delays apply just to PUTs whose path contains it (e.g. "/c/" for chunks).
    """

    handler = _ProxyHandler

    def __init__(
        self,
        upstream: str,
        *,
        fail_share: float = 0.0,
        delay_share: float = 0.0,
        delay_s: float = 0.0,
        seed: int = 0,
        only: str | None = None,
    ) -> None:
        self.upstream = urlparse(upstream)
        self.only = only
        self.requests = 0
        # Requests received and not yet answered (a delayed PUT counts until it has landed).
        self.in_flight = 0
        self.fail_share, self.delay_share, self.delay_s = fail_share, delay_share, delay_s
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = {"put": 0, "slowdown": 0, "internal": 0, "delayed": 0}

    def decide(self, method: str, path: str = "") -> tuple[int, bytes] | None:
        """A fault to answer with instead of forwarding, or None (maybe after a delay)."""
        with self.lock:
            self.requests += 1
        if method != "PUT" or (self.only is not None and self.only not in path):
            return None
        with self.lock:
            self.counts["put"] += 1
            draw = self.random.random()
            if draw < self.fail_share:
                kind = "slowdown" if draw < self.fail_share / 2 else "internal"
                self.counts[kind] += 1
                return (503, SLOWDOWN) if kind == "slowdown" else (500, INTERNAL)
            delayed = draw < self.fail_share + self.delay_share
            if delayed:
                self.counts["delayed"] += 1
        if delayed:
            time.sleep(self.delay_s)
        return None


class TaskRecorder(SchedulerPlugin):
    """Keeps the pickled run_spec of every task the scheduler receives, to search for secrets."""

    def __init__(self) -> None:
        self.specs: list[bytes] = []
        self.scheduler: Any = None

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if start == "released" and finish == "waiting":
            task = self.scheduler.tasks.get(key)
            if task is not None and task.run_spec is not None:
                self.specs.append(dumps(task.run_spec))
