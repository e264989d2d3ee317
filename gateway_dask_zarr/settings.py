"""Settings read from the environment and validated once, at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from gateway_dask_zarr.env_values import (
    TOKEN_NAME,
    ConfigError,
    read_api_tokens,
    read_bytes,
    read_choice,
    read_cluster_options,
    read_data_dir,
    read_int,
    read_networks,
    read_path,
    read_quota,
    read_store_url,
    read_url,
)

CLUSTER_KINDS = ("local", "gateway", "scheduler")
AUTH_KINDS = ("none", "token", "jupyterhub")
LOG_FORMATS = ("text", "json")
COMPRESSORS = ("none", "zstd", "blosc", "gzip")
LOG_LEVELS = ("info", "debug", "warning", "error")
# Job parameters take a few hundred bytes; the body bound is read into memory, so it stays small.
MAX_BODY_CEILING = 16 * 2**20
# S3's largest single PUT: every chunk or shard is one PUT (worker/blocks.py).
MAX_OBJECT_BYTES = 5 * 2**30

# Every variable the app itself reads; the deployment files may set only these (plus the
# AWS_* and DASK_* families that botocore and dask read on their own).
KNOWN_ENV: frozenset[str] = frozenset(
    {
        "CLUSTER",
        "N_WORKERS",
        "WORKERS_MIN",
        "WORKERS_MAX",
        "SCHEDULER_ADDRESS",
        "DASK_GATEWAY_CLUSTER_OPTIONS",
        "CLUSTER_START_TIMEOUT_S",
        "STORE_URL",
        "DATA_DIR",
        "S3_ENDPOINT_URL",
        "S3_PUBLIC_ENDPOINT_URL",
        "MAX_ARRAY_BYTES",
        "MAX_CHUNK_BYTES",
        "MIN_CHUNK_BYTES",
        "MAX_CHUNKS",
        "MAX_ACTIVE_JOBS",
        "MAX_ACTIVE_JOBS_PER_USER",
        "STORAGE_QUOTA_BYTES",
        "JOB_TIMEOUT_S",
        "CLEANUP_GRACE_S",
        "LEASE_S",
        "RETENTION_DAYS",
        "EMBEDDED_PUBLIC_READ",
        "SHARE_SECRET",
        "SHARE_MAX_TTL_S",
        "ZARR_URL_TTL_S",
        "MAX_BODY_BYTES",
        "FORWARDED_ALLOW_IPS",
        "COMPRESSOR",
        "AUTH",
        "API_TOKENS",
        "JUPYTERHUB_API_URL",
        "JUPYTERHUB_API_TOKEN",
        "JUPYTERHUB_SERVICE_NAME",
        "JUPYTERHUB_SERVICE_PREFIX",
        "JUPYTERHUB_CLIENT_ID",
        "JUPYTERHUB_OAUTH_CALLBACK_URL",
        "JUPYTERHUB_BASE_URL",
        "LOG_FORMAT",
        "LOG_LEVEL",
        "HOST",
        "PORT",
        "GUNICORN_THREADS",
        "GUNICORN_TIMEOUT_S",
        "GUNICORN_GRACEFUL_TIMEOUT_S",
    }
)


def _reading(env: Mapping[str, str]) -> dict[str, Any]:
    """The embedded store's data and public read; reading arrays over HTTP: share links, presigned URLs."""
    return {
        "data_dir": read_data_dir(env),
        "embedded_public_read": read_choice(env, "EMBEDDED_PUBLIC_READ", ("on", "off")) == "on",
        "share_secret": env.get("SHARE_SECRET", "").strip() or None,
        "share_max_ttl_s": read_int(env, "SHARE_MAX_TTL_S", 30 * 86400, 1, 366 * 86400),
        "zarr_url_ttl_s": read_int(env, "ZARR_URL_TTL_S", 300, 1, 7 * 86400),
    }


def _auth(env: Mapping[str, str]) -> dict[str, Any]:
    """Who may call: AUTH, its API tokens, and with AUTH=jupyterhub the hub and this service's place in it."""
    auth = read_choice(env, "AUTH", AUTH_KINDS)
    hub_url = read_url(env, "JUPYTERHUB_API_URL")
    hub_token = env.get("JUPYTERHUB_API_TOKEN", "").strip() or None
    service_name = env.get("JUPYTERHUB_SERVICE_NAME", "").strip() or None
    if auth == "jupyterhub" and not (hub_url and hub_token):
        raise ConfigError("JUPYTERHUB_API_URL", "and JUPYTERHUB_API_TOKEN are required when AUTH=jupyterhub")
    if auth == "jupyterhub" and not (service_name and TOKEN_NAME.fullmatch(service_name)):
        raise ConfigError("JUPYTERHUB_SERVICE_NAME", "is required when AUTH=jupyterhub: the service's name in the hub")
    prefix = read_path(env, "JUPYTERHUB_SERVICE_PREFIX", f"/services/{service_name}/" if service_name else "/")
    return {
        "auth": auth,
        "api_tokens": read_api_tokens(env, auth),
        "jupyterhub_api_url": hub_url,
        "jupyterhub_api_token": hub_token,
        "service_name": service_name,
        "service_prefix": prefix,
        "oauth_client_id": env.get("JUPYTERHUB_CLIENT_ID", "").strip() or (service_name and f"service-{service_name}"),
        "oauth_callback_url": env.get("JUPYTERHUB_OAUTH_CALLBACK_URL", "").strip() or prefix + "oauth_callback",
        "hub_base_url": read_path(env, "JUPYTERHUB_BASE_URL", "/"),
    }


@dataclass(frozen=True)
class Settings:
    """The app's validated configuration; secrets are kept out of repr."""

    cluster: str = "local"
    n_workers: int = 3
    # Bounded adaptive scaling (issue 21): with workers_max > workers_min the cluster adapts between them.
    workers_min: int = 3
    workers_max: int = 3
    scheduler_address: str | None = None
    gateway_cluster_options: dict[str, Any] = field(default_factory=dict)
    cluster_start_timeout_s: int = 300
    store_url: str | None = None
    # The embedded default's store keeps its data (and its write credentials) here.
    data_dir: str = "data"
    s3_endpoint_url: str | None = None
    s3_public_endpoint_url: str | None = None
    max_array_bytes: int = 16 * 2**30
    max_chunk_bytes: int = 256 * 2**20
    min_chunk_bytes: int = 2**10
    max_chunks: int = 100_000
    max_active_jobs: int = 8
    max_active_jobs_per_user: int = 4  # at most max_active_jobs
    storage_quota_bytes: int = 0  # 0: no quota
    job_timeout_s: int = 600
    # How long after a failed job's deadline a chunk PUT begun before it may still land (the S3
    # client's retry and request timeouts, storage.backends.S3_PUT_BOUND_S); the id stays claimed until then.
    cleanup_grace_s: int = 180
    # A queued or running job's lease slot (jobs/leases.py): a dead replica's job is taken over within 2 of them.
    lease_s: int = 30
    retention_days: int = 0  # 0: keep every job until it is deleted
    # The embedded store lets anyone on this machine read its bucket unsigned (make run's numpy line).
    embedded_public_read: bool = True
    # Signs share links; unset, one is derived from the hub's or the API's tokens (server/share.py).
    share_secret: str | None = field(default=None, repr=False)
    share_max_ttl_s: int = 30 * 86400
    # How long a chunk's presigned store URL (a 307 from /jobs/<id>/zarr/) stays valid.
    zarr_url_ttl_s: int = 300
    max_body_bytes: int = 64 * 2**10
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1", "::1")
    compressor: str = "none"
    auth: str = "none"
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    jupyterhub_api_url: str | None = None
    jupyterhub_api_token: str | None = field(default=None, repr=False)
    # AUTH=jupyterhub: the service as the hub knows it (JupyterHub's own variable names).
    service_name: str | None = None
    service_prefix: str = "/"
    oauth_client_id: str | None = None
    oauth_callback_url: str | None = None
    hub_base_url: str = "/"
    log_format: str = "text"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting; raise ConfigError naming the first bad one."""
        env = os.environ if env is None else env
        cluster = read_choice(env, "CLUSTER", CLUSTER_KINDS)
        scheduler_address = env.get("SCHEDULER_ADDRESS", "").strip() or None
        max_active = read_int(env, "MAX_ACTIVE_JOBS", cls.max_active_jobs, 1, 1000)
        workers_min = read_int(env, "WORKERS_MIN", cls.workers_min, 1, 100)
        settings = cls(
            cluster=cluster,
            n_workers=read_int(env, "N_WORKERS", 3, 1, 100),
            workers_min=workers_min,
            workers_max=read_int(env, "WORKERS_MAX", max(cls.workers_max, workers_min), 1, 1000),
            scheduler_address=scheduler_address,
            gateway_cluster_options=read_cluster_options(env),
            cluster_start_timeout_s=read_int(env, "CLUSTER_START_TIMEOUT_S", 300, 1),
            store_url=read_store_url(env),
            s3_endpoint_url=read_url(env, "S3_ENDPOINT_URL"),
            s3_public_endpoint_url=read_url(env, "S3_PUBLIC_ENDPOINT_URL"),
            max_array_bytes=read_bytes(env, "MAX_ARRAY_BYTES", cls.max_array_bytes),
            max_chunk_bytes=read_bytes(env, "MAX_CHUNK_BYTES", cls.max_chunk_bytes),
            min_chunk_bytes=read_bytes(env, "MIN_CHUNK_BYTES", cls.min_chunk_bytes),
            max_chunks=read_int(env, "MAX_CHUNKS", cls.max_chunks, 1),
            max_active_jobs=max_active,
            # Unset, it follows a smaller MAX_ACTIVE_JOBS; set, check() holds it to that bound.
            max_active_jobs_per_user=read_int(
                env, "MAX_ACTIVE_JOBS_PER_USER", min(cls.max_active_jobs_per_user, max_active), 1, 1000
            ),
            storage_quota_bytes=read_quota(env, "STORAGE_QUOTA_BYTES"),
            job_timeout_s=read_int(env, "JOB_TIMEOUT_S", 600, 1),
            cleanup_grace_s=read_int(env, "CLEANUP_GRACE_S", cls.cleanup_grace_s, 0),
            lease_s=read_int(env, "LEASE_S", cls.lease_s, 1, 3600),
            retention_days=read_int(env, "RETENTION_DAYS", 0, 0, 36500),
            **_reading(env),
            max_body_bytes=read_bytes(env, "MAX_BODY_BYTES", cls.max_body_bytes),
            forwarded_allow_ips=read_networks(env, "FORWARDED_ALLOW_IPS", ",".join(cls.forwarded_allow_ips)),
            compressor=read_choice(env, "COMPRESSOR", COMPRESSORS),
            **_auth(env),
            log_format=read_choice(env, "LOG_FORMAT", LOG_FORMATS),
            log_level=read_choice(env, "LOG_LEVEL", LOG_LEVELS).upper(),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Check the rules that relate two settings to each other."""
        if self.cluster == "scheduler" and not self.scheduler_address:
            raise ConfigError("SCHEDULER_ADDRESS", "is required when CLUSTER=scheduler")
        if self.workers_max < self.workers_min:
            raise ConfigError(
                "WORKERS_MAX", f"must not be below WORKERS_MIN ({self.workers_min}), got {self.workers_max}"
            )
        if self.min_chunk_bytes > self.max_chunk_bytes:
            raise ConfigError("MIN_CHUNK_BYTES", "must not exceed MAX_CHUNK_BYTES")
        if self.max_chunk_bytes > self.max_array_bytes:
            raise ConfigError("MAX_CHUNK_BYTES", "must not exceed MAX_ARRAY_BYTES")
        if self.max_chunk_bytes > MAX_OBJECT_BYTES:
            raise ConfigError("MAX_CHUNK_BYTES", "must not exceed 5GiB, S3's largest single PUT")
        if self.max_active_jobs_per_user > self.max_active_jobs:
            raise ConfigError(
                "MAX_ACTIVE_JOBS_PER_USER",
                f"must not exceed MAX_ACTIVE_JOBS ({self.max_active_jobs}), got {self.max_active_jobs_per_user}",
            )
        if self.max_body_bytes > MAX_BODY_CEILING:
            raise ConfigError("MAX_BODY_BYTES", f"must be at most {MAX_BODY_CEILING} bytes: a body is read into memory")
        if self.cluster != "local" and self.store_url is not None and self.store_url.startswith("memory"):
            raise ConfigError("STORE_URL", "memory:// works only with CLUSTER=local (tests)")

    @property
    def embedded_s3(self) -> bool:
        """True when the app must start its own loopback S3 server (STORE_URL unset)."""
        return self.store_url is None

    def public(self) -> dict[str, Any]:
        """The settings safe to show: every field but the secrets."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.repr}


@dataclass(frozen=True)
class ServerSettings:
    """gunicorn's settings from GUNICORN_* (read by server/gunicorn_conf.py), validated like the others."""

    threads: int = 32
    timeout_s: int = 360
    graceful_timeout_s: int = 60

    @classmethod
    def from_env(cls, cluster_start_timeout_s: int, env: Mapping[str, str] | None = None) -> ServerSettings:
        """Read GUNICORN_*; the worker timeout defaults to the cluster start timeout + 60 s."""
        env = os.environ if env is None else env
        return cls(
            threads=read_int(env, "GUNICORN_THREADS", cls.threads, 1, 1000),
            # The worker loads the app (and so starts the cluster) before its first heartbeat.
            timeout_s=read_int(env, "GUNICORN_TIMEOUT_S", cluster_start_timeout_s + 60, 1),
            graceful_timeout_s=read_int(env, "GUNICORN_GRACEFUL_TIMEOUT_S", cls.graceful_timeout_s, 1),
        )
