"""A SeaweedFS S3 server on 127.0.0.1 for the benchmark, in a temporary directory, stopped after."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.stack import free_port

BUCKET = "gateway"


def _low_port() -> int:
    """A free port whose gRPC twin (+10000) is below 65536 and free too."""
    while True:
        port = free_port()
        if port + 10000 < 65536:
            return port


class SeaweedS3:
    """`weed server` with S3 on loopback, one bucket, credentials generated for this run."""

    def __init__(self, log: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-weed-"))
        self.ports = {name: _low_port() for name in ("master", "volume", "filer", "s3")}
        self.endpoint_url = f"http://127.0.0.1:{self.ports['s3']}"
        self.credentials = {
            "AWS_ACCESS_KEY_ID": "bench" + secrets.token_hex(4),
            "AWS_SECRET_ACCESS_KEY": secrets.token_hex(16),
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        identities = {
            "identities": [
                {
                    "name": "admin",
                    "credentials": [
                        {
                            "accessKey": self.credentials["AWS_ACCESS_KEY_ID"],
                            "secretKey": self.credentials["AWS_SECRET_ACCESS_KEY"],
                        }
                    ],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        # The benchmark's own S3 clients (s3fs, obstore) read these from the environment.
        os.environ.update(self.credentials)
        config = self.dir / "s3.json"
        config.write_text(json.dumps(identities))
        weed = str(Path(sys.executable).with_name("weed"))
        p = self.ports
        args = [
            weed,
            "server",
            f"-dir={self.dir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-volume.port={p['volume']}",
            "-filer",
            f"-filer.port={p['filer']}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=1024",
            "-volume.max=100",
            "-volume.preStopSeconds=0",
            f"-filer.localSocket={self.dir / 'filer.sock'}",
            f"-s3.localSocket={self.dir / 's3.sock'}",
        ]
        (self.dir / "data").mkdir()
        self.log = open(log, "w")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            args, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "TMPDIR": str(self.dir)}
        )
        try:
            self._wait_for_put(90)
        except Exception:
            self.close()
            raise

    @property
    def psutil_process(self) -> psutil.Process:
        """The server process, for CPU and memory figures."""
        return psutil.Process(self.process.pid)

    def _wait_for_put(self, timeout: float) -> None:
        """The first PUT can fail for seconds after start: wait for one that succeeds."""
        from bench.floor import s3

        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}")
            try:
                fs = s3(self.endpoint_url)
                if not fs.exists(BUCKET):
                    fs.mkdir(BUCKET)
                fs.pipe_file(f"{BUCKET}/.ready", b"ok")
                fs.rm_file(f"{BUCKET}/.ready")
                return
            except Exception as exc:
                last = exc
                time.sleep(0.5)
        raise RuntimeError(f"SeaweedFS took no PUT within {timeout} s: {last!r}")

    def close(self) -> None:
        """SIGTERM (it takes about 16 s), kill if it hangs, remove its files and sockets."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        for port in self.ports.values():
            for name in ("master", "volume", "filer", "s3"):
                Path(f"/tmp/seaweedfs-{name}-grpc-{port + 10000}.sock").unlink(missing_ok=True)
                Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock").unlink(missing_ok=True)
        shutil.rmtree(self.dir, ignore_errors=True)
