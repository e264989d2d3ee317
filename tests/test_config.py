"""Settings: defaults, validation naming the variable, and start-up refusing a bad value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway_dask_zarr.settings import ConfigError, Settings

ROOT = Path(__file__).resolve().parent.parent
HUB = {"AUTH": "jupyterhub", "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api", "JUPYTERHUB_API_TOKEN": "t" * 32}


def test_jupyterhub_settings_take_the_hubs_defaults() -> None:
    settings = Settings.from_env({**HUB, "JUPYTERHUB_SERVICE_NAME": "gdz"})
    assert settings.service_prefix == "/services/gdz/"
    assert settings.oauth_client_id == "service-gdz"
    assert settings.oauth_callback_url == "/services/gdz/oauth_callback"
    assert settings.hub_base_url == "/"
    assert "t" * 32 not in repr(settings)
    tokens = Settings.from_env({"AUTH": "token", "API_TOKENS": f"alice:{'a' * 16}, {'p' * 16}"}).api_tokens
    assert tokens == (f"alice:{'a' * 16}", "p" * 16)


def test_defaults_serve_the_embedded_default() -> None:
    settings = Settings.from_env({})
    assert settings.cluster == "local" and settings.n_workers == 3
    assert settings.embedded_s3 and settings.store_url is None
    assert settings.max_array_bytes == 16 * 2**30
    assert settings.max_chunk_bytes == 256 * 2**20
    assert settings.min_chunk_bytes == 1024
    assert settings.max_active_jobs == 8
    assert settings.max_body_bytes == 64 * 2**10
    assert settings.forwarded_allow_ips == ("127.0.0.1", "::1")
    assert settings.compressor == "none" and settings.auth == "none" and settings.log_format == "text"


def test_values_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "CLUSTER": "gateway",
            "N_WORKERS": "5",
            "DASK_GATEWAY_CLUSTER_OPTIONS": '{"worker_cores": 2}',
            "STORE_URL": "s3://bucket/prefix/",
            "S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "MAX_ARRAY_BYTES": "1GiB",
            "MAX_CHUNK_BYTES": "64MiB",
            "COMPRESSOR": "zstd",
            "LOG_FORMAT": "json",
            "MAX_BODY_BYTES": "8KiB",
            "FORWARDED_ALLOW_IPS": "10.0.0.0/8, 192.168.1.7",
        }
    )
    assert settings.cluster == "gateway" and settings.n_workers == 5
    assert settings.gateway_cluster_options == {"worker_cores": 2}
    assert settings.store_url == "s3://bucket/prefix" and not settings.embedded_s3
    assert settings.max_array_bytes == 2**30 and settings.max_chunk_bytes == 64 * 2**20
    assert settings.compressor == "zstd" and settings.log_format == "json"
    assert settings.max_body_bytes == 8192
    assert settings.forwarded_allow_ips == ("10.0.0.0/8", "192.168.1.7")


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"CLUSTER": "kubernetes"}, "CLUSTER"),
        ({"N_WORKERS": "three"}, "N_WORKERS"),
        ({"N_WORKERS": "0"}, "N_WORKERS"),
        ({"CLUSTER": "scheduler"}, "SCHEDULER_ADDRESS"),
        ({"DASK_GATEWAY_CLUSTER_OPTIONS": "{nope"}, "DASK_GATEWAY_CLUSTER_OPTIONS"),
        ({"DASK_GATEWAY_CLUSTER_OPTIONS": "[1]"}, "DASK_GATEWAY_CLUSTER_OPTIONS"),
        ({"STORE_URL": "gs://bucket"}, "STORE_URL"),
        ({"STORE_URL": "s3://"}, "STORE_URL"),
        ({"STORE_URL": "file://relative/path"}, "STORE_URL"),
        ({"S3_ENDPOINT_URL": "localhost:9000"}, "S3_ENDPOINT_URL"),
        ({"MAX_ARRAY_BYTES": "lots"}, "MAX_ARRAY_BYTES"),
        ({"MIN_CHUNK_BYTES": "1GiB"}, "MIN_CHUNK_BYTES"),
        # A chunk is one PUT, and S3 takes at most 5 GiB in one.
        ({"MAX_ARRAY_BYTES": "1TiB", "MAX_CHUNK_BYTES": "6GiB"}, "MAX_CHUNK_BYTES"),
        ({"MAX_ACTIVE_JOBS": "-1"}, "MAX_ACTIVE_JOBS"),
        ({"JOB_TIMEOUT_S": "soon"}, "JOB_TIMEOUT_S"),
        ({"COMPRESSOR": "lz4"}, "COMPRESSOR"),
        ({"AUTH": "token"}, "API_TOKENS"),
        ({"AUTH": "token", "API_TOKENS": "short"}, "API_TOKENS"),
        ({"AUTH": "jupyterhub"}, "JUPYTERHUB_API_URL"),
        ({"AUTH": "token", "API_TOKENS": "alice:short"}, "API_TOKENS"),
        ({"AUTH": "token", "API_TOKENS": "al ice:" + "t" * 16}, "API_TOKENS"),
        ({"AUTH": "token", "API_TOKENS": ":" + "t" * 16}, "API_TOKENS"),
        (HUB, "JUPYTERHUB_SERVICE_NAME"),
        (
            {**HUB, "JUPYTERHUB_SERVICE_NAME": "gdz", "JUPYTERHUB_SERVICE_PREFIX": "services/gdz"},
            "JUPYTERHUB_SERVICE_PREFIX",
        ),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"MAX_BODY_BYTES": "0"}, "MAX_BODY_BYTES"),
        ({"MAX_BODY_BYTES": "1GiB"}, "MAX_BODY_BYTES"),
        ({"FORWARDED_ALLOW_IPS": "proxy.local"}, "FORWARDED_ALLOW_IPS"),
        ({"FORWARDED_ALLOW_IPS": "10.0.0.1/8"}, "FORWARDED_ALLOW_IPS"),
        ({"CLUSTER": "gateway", "STORE_URL": "memory://x"}, "STORE_URL"),
        ({"EMBEDDED_PUBLIC_READ": "yes"}, "EMBEDDED_PUBLIC_READ"),
        ({"ZARR_URL_TTL_S": "0"}, "ZARR_URL_TTL_S"),
        ({"SHARE_MAX_TTL_S": "forever"}, "SHARE_MAX_TTL_S"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert caught.value.name == name
    assert str(caught.value).startswith(f"{name}: ")


def test_secrets_are_not_in_repr() -> None:
    settings = Settings.from_env({"AUTH": "token", "API_TOKENS": "s3cr3t-token-0123456789"})
    assert "s3cr3t" not in repr(settings)
    assert "s3cr3t" not in str(settings.public())
    shared = Settings.from_env({"SHARE_SECRET": "sh4red-secret"})
    assert "sh4red" not in repr(shared) and "sh4red" not in str(shared.public())


def test_reading_settings_default_to_a_public_embedded_store_and_short_presigned_urls() -> None:
    default = Settings.from_env({})
    assert default.embedded_public_read and default.zarr_url_ttl_s == 300 and default.share_secret is None
    closed = Settings.from_env({"EMBEDDED_PUBLIC_READ": "off", "ZARR_URL_TTL_S": "60", "SHARE_MAX_TTL_S": "3600"})
    assert not closed.embedded_public_read and closed.zarr_url_ttl_s == 60 and closed.share_max_ttl_s == 3600


def test_gunicorn_refuses_to_start_with_a_bad_value() -> None:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    result = subprocess.run(
        [str(gunicorn), "-c", "gunicorn.conf.py", "app:app"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "N_WORKERS": "many", "PORT": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["configuration error: N_WORKERS: expected an integer, got 'many'"]


def test_data_dir_defaults_to_data_and_must_not_be_a_file(tmp_path: Path) -> None:
    assert Settings.from_env({}).data_dir == "data"
    assert Settings.from_env({"DATA_DIR": str(tmp_path)}).data_dir == str(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="DATA_DIR"):
        Settings.from_env({"DATA_DIR": str(tmp_path / "file")})
