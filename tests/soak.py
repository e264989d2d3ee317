"""A bounded chaos soak: two replicas on one SeaweedFS, clients submitting and deleting, faults at random moments.

`make soak` runs it for a few minutes; tests/test_soak.py runs a short form in `make test`.
Faults: SIGTERM a replica and start it again (a rolling update), SIGKILL a replica (and start
it again), SIGKILL a Dask worker, kill SeaweedFS for a few seconds and start it on the same
directory. At the end, after the leases and the grace, every accepted job that was not
deleted must be complete and verify chunk by chunk, or failed with a reason that is not a
stopped replica; the store must add up (`check` finds nothing after one sweep, as a
replica's sweeper would make at its next slot); usage entries equal the bytes stored.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import suppress
from pathlib import Path
from typing import Any

import obstore
import psutil
from helpers import S3_CREDENTIALS, assert_verified, discard_store, wait_for
from serve import Served, gunicorn

from gateway_dask_zarr.client.client import GatewayClient, GatewayError
from gateway_dask_zarr.jobs.audit import Audit
from gateway_dask_zarr.jobs.leases import JOB_LEASES, Leases
from gateway_dask_zarr.jobs.reasons import STOPPED
from gateway_dask_zarr.jobs.records import Records, concurrently
from gateway_dask_zarr.jobs.resume import EXHAUSTED
from gateway_dask_zarr.jobs.sweeper import Sweeper
from gateway_dask_zarr.storage.arrays import JobStore
from gateway_dask_zarr.storage.backends import parse_storage
from gateway_dask_zarr.storage.embedded import EmbeddedS3

BUCKET = "soak"
LEASE_S, GRACE_S, TIMEOUT_S = 2, 10, 60
# Half small; a quarter of 1600 chunks, about a second of PUTs on one worker, so that stops and kills land mid-job.
SHAPES = (([200, 200], [50, 50]), ([200, 200], [50, 50]), ([1000, 1000], [100, 100]), ([1000, 1000], [25, 25]))
FAULTS = ("rolling_update", "replica_killed", "worker_killed", "s3_stopped")


class Replica:
    """`make run`-style gunicorn with its own LocalCluster, on the shared bucket."""

    def __init__(self, name: str, s3: EmbeddedS3, log_dir: Path) -> None:
        self.name, self.log_dir, self.starts = name, log_dir, 0
        self.env = {
            **os.environ,
            **S3_CREDENTIALS,
            "STORE_URL": f"s3://{BUCKET}",
            "S3_ENDPOINT_URL": s3.endpoint_url,
            "N_WORKERS": "1",
            "LEASE_S": str(LEASE_S),
            "CLEANUP_GRACE_S": str(GRACE_S),
            "JOB_TIMEOUT_S": str(TIMEOUT_S),
        }
        self.served: Served | None = None
        self.start()

    def start(self) -> None:
        self.starts += 1
        self.served = gunicorn(self.env, self.log_dir / f"{self.name}-{self.starts}.log", timeout=240)

    @property
    def url(self) -> str | None:
        return self.served.url if self.served is not None else None

    def stop(self) -> None:
        if self.served is not None:
            self.served.close(90)
            self.served = None

    def kill(self) -> None:
        """SIGKILL every process of the replica, as a node loss does."""
        if self.served is not None:
            self.served.kill()
            self.served = None

    def pids(self) -> set[int]:
        """The gunicorn master's and its workers' process ids (a lease names its holder's pid)."""
        if self.served is None:
            return set()
        with suppress(psutil.NoSuchProcess):
            master = psutil.Process(self.served.process.pid)
            return {master.pid, *(child.pid for child in master.children())}
        return set()

    def kill_worker(self) -> bool:
        """SIGKILL one Dask worker process (a leaf that multiprocessing spawned); its nanny starts another."""
        if self.served is None:
            return False
        for process in psutil.Process(self.served.process.pid).children(recursive=True):
            with suppress(psutil.NoSuchProcess):
                line = " ".join(process.cmdline())
                if "spawn_main" in line and "resource_tracker" not in line and not process.children():
                    process.send_signal(signal.SIGKILL)
                    return True
        return False


class Soak:
    """The run: its replicas, clients, faults and figures."""

    def __init__(self, seconds: float, clients: int, seed: int, workdir: Path) -> None:
        self.seconds, self.n_clients = seconds, clients
        self.rng = random.Random(seed)
        self.s3 = EmbeddedS3(workdir / "seaweedfs", BUCKET, credentials=S3_CREDENTIALS).start()
        self.records = Records(parse_storage(f"s3://{BUCKET}", self.s3.endpoint_url))
        self.replicas = [Replica(name, self.s3, workdir) for name in ("a", "b")]
        self.accepted: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.faults: Counter[str] = Counter()
        self.refused = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.ended = 0.0  # when the clients stopped

    def _client(self, number: int) -> None:
        rng = random.Random(number)
        while not self._stop.is_set():
            urls = [r.url for r in self.replicas if r.url]
            if not urls:
                self._stop.wait(0.5)
                continue
            gateway = GatewayClient(rng.choice(urls), timeout=20, busy_wait=5)
            try:
                with self._lock:
                    mine = [i for i in self.accepted if i not in self.deleted]
                if mine and rng.random() < 0.2:
                    victim = rng.choice(mine)
                    gateway.delete(victim)
                    with self._lock:
                        self.deleted.add(victim)
                else:
                    shape, chunks = rng.choice(SHAPES)
                    job = gateway.submit(shape, chunks, None, rng.randrange(2**32))
                    with self._lock:
                        self.accepted[job.id] = job.document
            except (GatewayError, OSError):
                with self._lock:
                    self.refused += 1
            self._stop.wait(rng.uniform(0.2, 1.0))

    def _running_a_job(self) -> Replica | None:
        """A replica that holds a job's lease (waiting up to 3 s for one): a stop or kill of it lands mid-job."""
        store = self.records.store
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            with suppress(Exception):  # the store just restarted, or a job ended meanwhile: look again
                slots = [m["path"] for batch in obstore.list(store, f"{JOB_LEASES}/") for m in batch]
                holders = concurrently(lambda key: bytes(obstore.get(store, key).bytes()).decode(), slots)
                pids = {int(holder.rsplit("-", 2)[1]) for holder in holders}
                busy = [r for r in self.replicas if r.pids() & pids]
                if busy:
                    return self.rng.choice(busy)
            time.sleep(0.1)
        return None

    def _fault(self) -> None:
        kind = self.rng.choice(FAULTS)
        replica = self.rng.choice(self.replicas)
        if kind in ("rolling_update", "replica_killed"):
            replica = self._running_a_job() or replica
        if kind == "rolling_update":
            replica.stop()
            replica.start()
        elif kind == "replica_killed":
            replica.kill()
            replica.start()
        elif kind == "worker_killed":
            if not replica.kill_worker():
                return
        else:
            assert self.s3.process is not None
            self.s3.process.kill()
            self.s3.close()
            time.sleep(self.rng.uniform(1, 4))  # the outage itself: the fault, not a wait for a result
            self.s3.start()
        self.faults[kind] += 1

    def run(self) -> dict[str, Any]:
        """Chaos for `seconds`, then the checks; the figures."""
        clients = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(self.n_clients)]
        for thread in clients:
            thread.start()
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            self._stop.wait(self.rng.uniform(3, 8))
            if time.monotonic() < end:
                self._fault()
        self._stop.set()
        for thread in clients:
            thread.join(60)
        self.ended = time.time()
        return self._settle()

    def _settle(self) -> dict[str, Any]:
        replica = self.replicas[0]
        assert replica.url is not None
        gateway = GatewayClient(replica.url, timeout=30, busy_wait=30)
        live = [i for i in self.accepted if i not in self.deleted]

        def final(job_id: str) -> dict[str, Any] | None:
            document = gateway.get(job_id).document
            return document if document["status"] not in ("queued", "running") else None

        documents = {i: wait_for(lambda i=i: final(i), 300, 0.5) for i in live}
        statuses = Counter(d["status"] for d in documents.values())
        for document in documents.values():
            if document["status"] == "complete":
                assert_verified(document)
            else:
                assert document["error"] not in (STOPPED, EXHAUSTED.format(n=3)), document
        for job_id in self.deleted:
            with suppress(GatewayError):
                assert gateway.get(job_id).status not in ("complete",), job_id  # a deleted job stays gone
        backend = parse_storage(f"s3://{BUCKET}", self.s3.endpoint_url)
        records, store = Records(backend), JobStore(backend)
        # Once every failed attempt's late writes can have landed (its frees_at), the sweep a replica makes.
        ended = [r for r in (records.read(i) for i in live) if r and r["status"] != "complete"]
        # and once a lease that a refused claim could not release has lapsed (2 x LEASE_S).
        bound = max([self.ended + 2 * LEASE_S, *(r.get("frees_at") or 0 for r in ended)])
        wait_for(lambda: time.time() > bound, 2 * TIMEOUT_S + GRACE_S, 0.5)
        swept = Sweeper(records, store, Leases(records, LEASE_S), 0).sweep()
        findings = Audit(records, store, 0).findings()
        assert findings == [], [f.line() for f in findings]
        complete = [d for d in documents.values() if d["status"] == "complete"]
        assert records.usage("anonymous") == sum(math.prod(d["shape"]) * 4 for d in complete)
        resumed = sum(len(r.get("resumed") or []) for r in (records.read(i) for i in live) if r)
        return {
            "seconds": self.seconds,
            "submitted": len(self.accepted),
            "deleted": len(self.deleted),
            "completed": statuses["complete"],
            "failed": statuses["failed"],
            "resumed": resumed,
            "refused_or_unreachable": self.refused,
            "faults": dict(self.faults),
            "objects_swept": swept,
        }

    def close(self) -> None:
        # The checks are done and the directory is removed next: no graceful stop for the replicas
        # (their stops are among the faults) nor for the store (about 16 s) no one reads again.
        for replica in self.replicas:
            replica.kill()
        discard_store(self.s3)


def soak(seconds: float, clients: int = 2, seed: int = 1) -> dict[str, Any]:
    """Run one soak in a temporary directory; its figures."""
    # The replicas, their workers and this process's checks read the store with these (as conftest sets them).
    os.environ.update(S3_CREDENTIALS)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        run = Soak(seconds, clients, seed, Path(tmp))
        try:
            return run.run()
        except BaseException:
            # The replicas' logs say what happened to the job a check is about; the store goes.
            kept = Path(tempfile.mkdtemp(prefix="soak-logs-"))
            for log in Path(tmp).glob("*.log"):
                shutil.copy(log, kept)
            print(f"soak failed: the replicas' logs are in {kept}", file=sys.stderr)
            raise
        finally:
            run.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    figures = soak(args.seconds, args.clients, args.seed)
    for key, value in figures.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
