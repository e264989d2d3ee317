"""The embedded default's S3 server: moto's S3 backend on 127.0.0.1, in a child process."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from typing import Any

# moto accepts any credentials; these are set only when the environment has none.
EMBEDDED_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "embedded",
    "AWS_SECRET_ACCESS_KEY": "embedded-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def s3_only_app() -> Any:
    """A WSGI app that sends /moto-api to moto's control API and everything else to S3.

    Stock moto guesses the AWS service of every request from its headers and body; an
    S3-only server need not, and that guess costs a large share of each request's CPU.
    """
    from moto.moto_server.werkzeug_app import create_backend_app

    s3 = create_backend_app("s3")
    control = create_backend_app("moto_api")
    # moto checks If-None-Match and then stores, unlocked (moto/s3/responses.py): two
    # conditional creates of one key on two threads could both succeed. S3 makes them
    # atomic, and job ids are claimed with them, so they take turns here.
    conditional = threading.Lock()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        target = control if environ.get("PATH_INFO", "").startswith("/moto-api") else s3
        if environ.get("HTTP_IF_NONE_MATCH") == "*":
            with conditional:
                # Consume the body inside the lock: the store happens while it is produced.
                return list(target(environ, start_response))
        return target(environ, start_response)

    return app


def _exit_with_parent(parent: int) -> None:
    """Stop this server when the process that started it has gone, however it ended."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def serve(host: str, port: int) -> None:
    """Serve S3 on host:port, print the bound port, and serve until killed."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    class QuietHandler(MotoRequestHandler):
        """No access log line per request: at hundreds of PUTs a second it costs real CPU."""

        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    server = make_server(host, port, s3_only_app(), threaded=True, request_handler=QuietHandler)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    print(server.port, flush=True)
    server.serve_forever()


class EmbeddedS3:
    """A loopback S3 server owned by this process: started, one bucket made, stopped."""

    def __init__(self, bucket: str = "gateway", host: str = "127.0.0.1", port: int = 0) -> None:
        self.bucket = bucket
        self.host = host
        self.port = port
        self.process: subprocess.Popen[str] | None = None

    @property
    def endpoint_url(self) -> str:
        """The server's http URL."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60) -> EmbeddedS3:
        """Start the server, wait for its port, and create the bucket."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway_dask_zarr.embedded_s3", "--host", self.host, "--port", str(self.port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.isdigit():
            self.close()
            raise RuntimeError(f"the embedded S3 server did not start (it printed {line!r})")
        self.port = int(line)
        self.create_bucket(timeout)
        return self

    def create_bucket(self, timeout: float = 30) -> None:
        """Create the bucket (again, after a reset), waiting for the server to answer."""
        import botocore.session

        client = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=EMBEDDED_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=EMBEDDED_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.create_bucket(Bucket=self.bucket)
                return
            except client.exceptions.BucketAlreadyOwnedByYou:
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def close(self) -> None:
        """Stop the server and wait for it to exit."""
        if self.process is not None:
            stop_process(self.process, 10)
        self.process = None


def stop_process(process: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM a child process, wait up to `timeout` seconds, then SIGKILL it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    """Command line: python -m gateway_dask_zarr.embedded_s3 [--host H] [--port P]."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
