"""Prometheus metrics of one app: jobs, chunks and bytes written, active jobs, workers, HTTP requests, refusals."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from gateway_dask_zarr.jobs import Job, JobManager

log = logging.getLogger(__name__)

# Seconds, from a small array on an idle cluster to JOB_TIMEOUT_S's default and beyond.
DURATION_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    """The app's metrics in a registry of its own (tests build many apps in one process)."""

    def __init__(self, jobs: JobManager, cluster: Any) -> None:
        self.registry = CollectorRegistry()
        self._cluster = cluster
        self.jobs = Counter("gateway_jobs", "Jobs that ended, by final status", ["status"], registry=self.registry)
        self.duration = Histogram(
            "gateway_job_duration_seconds",
            "Wall time of jobs that ended, by final status",
            ["status"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.chunks = Counter("gateway_chunks_written", "Chunks written by complete jobs", registry=self.registry)
        self.bytes = Counter(
            "gateway_bytes_written", "Array bytes (uncompressed) written by complete jobs", registry=self.registry
        )
        self.active = Gauge("gateway_active_jobs", "Jobs queued or running now", registry=self.registry)
        self.active.set_function(lambda: jobs.active)
        self.resumed = Gauge(
            "gateway_jobs_resumed", "Jobs this replica took over from a stopped or dead one", registry=self.registry
        )
        self.resumed.set_function(lambda: jobs.resumer.resumed)
        self.swept = Gauge(
            "gateway_swept_objects",
            "Objects and entries no record referenced that this replica's sweeper removed or repaired",
            registry=self.registry,
        )
        self.swept.set_function(lambda: jobs.sweeper.swept)
        self.workers = Gauge("gateway_cluster_workers", "Workers the Dask cluster has now", registry=self.registry)
        self.workers.set_function(lambda: self._workers("workers"))
        self.target = Gauge(
            "gateway_cluster_target_workers",
            "Workers the Dask cluster is asked to have now (adaptive scaling moves it; 0 when unknown)",
            registry=self.registry,
        )
        self.target.set_function(lambda: self._workers("target_workers"))
        self.requests = Counter(
            "gateway_http_requests",
            "HTTP requests by method, route (the URL rule) and status code",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "gateway_refusals",
            "Requests answered with a 4xx error, by the error's code (body_too_large, too_many_jobs, ...)",
            ["reason"],
            registry=self.registry,
        )
        for status in ("complete", "failed"):
            self.jobs.labels(status)
            self.duration.labels(status)

    def _workers(self, key: str) -> float:
        # A scrape must not fail because the cluster is being replaced: it then has 0 workers.
        try:
            return float(self._cluster.status()[key] or 0)
        except Exception as exc:
            log.debug("cluster status unavailable for metrics: %s", type(exc).__name__)
            return 0.0

    def job_ended(self, job: Job) -> None:
        """Count a job that ended (a JobManager listener)."""
        self.jobs.labels(job.status).inc()
        if job.seconds is not None:
            self.duration.labels(job.status).observe(job.seconds)
        if job.status == "complete":
            self.chunks.inc(job.chunks_written)
            self.bytes.inc(job.bytes_written)

    def request_done(self, method: str, route: str, status: int) -> None:
        """Count one HTTP request."""
        self.requests.labels(method, route, str(status)).inc()

    def refused(self, reason: str) -> None:
        """Count one request refused for `reason` (an error code)."""
        self.refusals.labels(reason).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
