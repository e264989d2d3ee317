"""gunicorn settings: one process (it owns the one Dask cluster), gthread threads, clean shutdown."""

import os
import signal
import threading
from typing import Any

from gateway_dask_zarr.logs import json_for_own_handlers
from gateway_dask_zarr.server.parts import PARTS_KEY, parts
from gateway_dask_zarr.settings import ConfigError, ServerSettings, Settings

host = os.environ.get("HOST", "127.0.0.1")
port = os.environ.get("PORT", "8000")
bind = [f"{host}:{port}"]

# One worker process: each process makes its own cluster, so more would multiply clusters.
# No preload: the Dask Client must be made after the fork, in the worker.
workers = 1
worker_class = "gthread"
preload_app = False

try:
    _settings = Settings.from_env()
    _server = ServerSettings.from_env(_settings.cluster_start_timeout_s)
except ConfigError as exc:
    raise SystemExit(f"configuration error: {exc}") from None

threads = _server.threads
# Bounds on what gunicorn reads before the app sees a request (its defaults, stated here so
# docs/limits.md can name them): the request line, query string included (over it: 414), the
# number of header fields and the size of each (over them: 431). gunicorn answers these itself,
# with its own small HTML page and "Connection: close"; the app's body bound is MAX_BODY_BYTES.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
# X-Forwarded-Proto is believed from these peers only; the app applies the same list.
forwarded_allow_ips = ",".join(_settings.forwarded_allow_ips)

# The worker loads the app (and so starts the cluster) before its first heartbeat: the
# timeout must cover the slowest cluster start.
timeout = _server.timeout_s
# After SIGTERM the master kills this worker when graceful_timeout has passed; the pod's
# terminationGracePeriodSeconds is above it. Requests in flight get all but CLOSE_BUDGET_S of
# it, then the service closes (see post_worker_init).
graceful_timeout = _server.graceful_timeout_s
# The embedded default's SeaweedFS takes about 16 s to stop (a 15 s gRPC graceful stop).
CLOSE_BUDGET_S = 40 if _settings.embedded_s3 else 20
# The one line Ctrl-C prints (worker_int): what is stopped, and why it takes that long.
STOPPING = "running jobs are handed back, then the Dask cluster closes" + (
    "; SeaweedFS takes about 16 s to stop (its gRPC servers' 15 s graceful stop)" if _settings.embedded_s3 else ""
)
accesslog = None
errorlog = "-"
# gunicorn's control socket lives in one fixed path per user: two services on one host (or
# tests next to a running service) would fight over it, and a read-only root has no $HOME.
control_socket_disable = True


def on_starting(server: Any) -> None:
    """With LOG_FORMAT=json, gunicorn's own lines (the master's too) are JSON like the app's."""
    if _settings.log_format == "json":
        json_for_own_handlers()


def post_worker_init(worker: Any) -> None:
    """Say where the service is, once the cluster is up and the app loaded."""
    url = f"http://{host}:{port}"
    worker.log.info("gateway-dask-zarr is serving on %s", url)
    worker.log.info("try: curl '%s/run?shape=1000,1000&chunks=100,100&seed=7'", url)
    # A /run may wait up to JOB_TIMEOUT_S, longer than the master waits before its SIGKILL,
    # which would leave the gateway cluster behind. So SIGTERM also starts a timer that
    # closes the service when only CLOSE_BUDGET_S are left: running jobs fail with "the app
    # is shutting down", their requests answer, and the cluster is stopped in time.
    on_term = worker.handle_exit

    def handle_term(sig: int, frame: Any) -> None:
        if worker.alive:
            timer = threading.Timer(max(0, graceful_timeout - CLOSE_BUDGET_S), _close_service, args=(worker,))
            timer.daemon = True
            timer.start()
        on_term(sig, frame)

    signal.signal(signal.SIGTERM, handle_term)

    # gthread's handle_quit shuts its thread pool down (under the pool's lock, not reentrant)
    # before worker_int runs: the master's SIGQUIT that follows a Ctrl-C's SIGINT, handled
    # inside that lock, would deadlock the worker until the master's SIGKILL. So the next
    # ones are ignored first.
    on_quit = worker.handle_quit

    def handle_quit(sig: int, frame: Any) -> None:
        for other in (signal.SIGINT, signal.SIGQUIT):
            signal.signal(other, _ignore)
        on_quit(sig, frame)

    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, handle_quit)


_close_lock = threading.Lock()


def _close_service(worker: Any) -> None:
    """Close the cluster (a gateway cluster is shut down) and the embedded S3 server, once."""
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C reaches the worker from the terminal and again as the master's SIGQUIT: a
        # second signal must not cut the close short (weed would be left, its sockets too).
        for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
            signal.signal(sig, _ignore)
    app = getattr(worker, "wsgi", None)
    if app is not None and PARTS_KEY in getattr(app, "extensions", {}):
        with _close_lock:
            parts(app).service.close()


def worker_int(worker: Any) -> None:
    """Say what a Ctrl-C stops (post_worker_init's handle_quit already ignores the next signals).

    Ctrl-C reaches the worker from the terminal and, at once, as the master's SIGQUIT: a second
    signal while the first unwinds would skip worker_exit, leaving SeaweedFS's socket files.
    """
    worker.log.info("stopping: %s", STOPPING)


def _ignore(sig: int, frame: Any) -> None:
    """A handler that does nothing: SIG_IGN set while the master's SIGQUIT is pending made
    Python print "Signal 3 ignored due to race condition" as a traceback."""


def worker_exit(server: Any, worker: Any) -> None:
    """Close the service when the worker exits (if the SIGTERM timer has not already)."""
    _close_service(worker)
