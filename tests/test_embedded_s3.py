"""The embedded S3 server (SeaweedFS): anyone reads, only the writer writes; it never outlives the app."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import botocore.exceptions
import psutil
import pytest
from helpers import discard_store, wait_for

from gateway_dask_zarr.storage.embedded import EmbeddedS3

ROOT = Path(__file__).resolve().parent.parent


def test_anyone_reads_and_lists_the_bucket_only_the_writer_writes(s3: EmbeddedS3) -> None:
    s3.client().put_object(Bucket=s3.bucket, Key="a/b", Body=b"written")
    anonymous = s3.client(anonymous=True)
    assert anonymous.get_object(Bucket=s3.bucket, Key="a/b")["Body"].read() == b"written"
    assert [o["Key"] for o in anonymous.list_objects_v2(Bucket=s3.bucket)["Contents"]] == ["a/b"]
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        anonymous.put_object(Bucket=s3.bucket, Key="a/c", Body=b"no")
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        anonymous.delete_object(Bucket=s3.bucket, Key="a/b")
    assert s3.client().get_object(Bucket=s3.bucket, Key="a/b")["Body"].read() == b"written"


def test_the_server_does_not_outlive_an_app_killed_hard(tmp_path: Path) -> None:
    code = (
        "import sys, time; from gateway_dask_zarr.storage.embedded import EmbeddedS3; "
        f"s = EmbeddedS3({str(tmp_path)!r}).start(); print(s.process.pid, flush=True); time.sleep(600)"
    )
    app = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert app.stdout is not None
        weed = psutil.Process(int(app.stdout.readline()))
        assert weed.is_running() and weed.ppid() == app.pid
        app.send_signal(signal.SIGKILL)
        app.wait(30)
        # SIGTERM'd by the kernel when its parent died, it stops in about 16 s.
        wait_for(lambda: not weed.is_running() or weed.status() == psutil.STATUS_ZOMBIE, timeout=90, interval=0.5)
        # The next start on the directory removes the socket files the dead one left in /tmp.
        ports = (tmp_path / "s3" / "grpc-ports.json").read_text()
        again = EmbeddedS3(tmp_path).start()
        try:
            left = [
                Path(f"/tmp/seaweedfs-{n}-grpc-{p}.sock")
                for n in ("master", "volume", "filer", "s3")
                for p in json.loads(ports)
            ]
            assert [f for f in left if f.exists()] == []
        finally:
            discard_store(again)
    finally:
        if app.poll() is None:
            app.kill()
