"""HTTP load: sequential and concurrent clients running jobs with GET /run."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from gateway_dask_zarr.client.errors import MIN_RETRY_S, retry_after_s


@dataclass
class Load:
    """What a run of jobs took: wall time, each job's latency (from its first try), refusals and failures."""

    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    retries: int = 0
    refusals: dict[int, int] = field(default_factory=dict)

    @property
    def jobs_per_s(self) -> float:
        """Completed jobs per second of wall time."""
        return len(self.latencies) / self.seconds

    def percentile(self, q: float) -> float:
        """The q-th percentile of the latencies (nearest rank)."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]

    @property
    def median(self) -> float:
        """The median latency."""
        return statistics.median(self.latencies)


def run_jobs(base_url: str, params: dict[str, str], clients: int, jobs: int, timeout: float = 600) -> Load:
    """Run `jobs` jobs from `clients` concurrent clients, each waiting for its job to finish."""
    load = Load(clients)
    lock = threading.Lock()
    left = [jobs]

    def one_job(session: requests.Session) -> requests.Session:
        # As gateway_dask_zarr.client does: a refusal is retried after its Retry-After (at least
        # MIN_RETRY_S), on a fresh connection (gunicorn may close one left idle that long).
        started = time.perf_counter()
        while True:
            response = session.get(f"{base_url}/run", params=params, timeout=timeout)
            # 429: the service is full; 503 cluster_unavailable: a worker is (re)joining.
            if response.status_code not in (429, 503) or "job_failed" in response.text:
                break
            with lock:
                load.retries += 1
                load.refusals[response.status_code] = load.refusals.get(response.status_code, 0) + 1
            session.close()
            time.sleep(max(retry_after_s(response.headers.get("Retry-After")) or 0.0, MIN_RETRY_S))
            session = requests.Session()
        if response.status_code != 200:
            raise RuntimeError(f"GET /run answered {response.status_code}: {response.text[:300]}")
        with lock:
            load.latencies.append(time.perf_counter() - started)
            load.documents.append(response.json())
        return session

    def client() -> None:
        session = requests.Session()
        try:
            while True:
                with lock:
                    if left[0] == 0:
                        return
                    left[0] -= 1
                session = one_job(session)
        finally:
            session.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    load.seconds = time.perf_counter() - started
    return load
