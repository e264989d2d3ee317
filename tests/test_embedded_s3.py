"""Embedded S3 (SeaweedFS): anyone reads unless EMBEDDED_PUBLIC_READ=off, only its writer writes; dies with its app."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from unittest import mock

import botocore.exceptions
import psutil
import pytest
import requests
from helpers import discard_store, wait_for

from gateway_dask_zarr.storage.backends import S3Backend
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


def _assert_private(server: EmbeddedS3) -> None:
    """With public read off, an unsigned GET or LIST of a chunk is refused; signed and presigned GETs work."""
    server.client().put_object(Bucket=server.bucket, Key="job.zarr/c/0/0", Body=b"chunk")
    anonymous = server.client(anonymous=True)
    for call in (
        lambda: anonymous.get_object(Bucket=server.bucket, Key="job.zarr/c/0/0"),
        lambda: anonymous.list_objects_v2(Bucket=server.bucket),
    ):
        with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
            call()
    assert requests.get(f"{server.endpoint_url}/{server.bucket}/job.zarr/c/0/0", timeout=30).status_code == 403
    assert server.client().get_object(Bucket=server.bucket, Key="job.zarr/c/0/0")["Body"].read() == b"chunk"
    backend = S3Backend(f"s3://{server.bucket}", server.endpoint_url)
    with mock.patch.dict(os.environ, server.credentials):
        url = backend.presigned_get("job.zarr/c/0/0", 60)
    assert requests.get(url, timeout=30).content == b"chunk"


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
        # Started again with EMBEDDED_PUBLIC_READ=off (this restart doubles as that test, one weed fewer).
        again = EmbeddedS3(tmp_path, public_read=False).start()
        try:
            left = [
                Path(f"/tmp/seaweedfs-{n}-grpc-{p}.sock")
                for n in ("master", "volume", "filer", "s3")
                for p in json.loads(ports)
            ]
            assert [f for f in left if f.exists()] == []
            _assert_private(again)
        finally:
            discard_store(again)
    finally:
        if app.poll() is None:
            app.kill()
