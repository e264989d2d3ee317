"""A Python client of the gateway's HTTP API: submit jobs, follow them with a progress bar, read their arrays.

Light on purpose: requests, tqdm, zarr (with s3fs for s3:// arrays), and xarray with dask for
`to_xarray()`; never Flask, distributed or gunicorn, so it installs in any notebook.

    from gateway_dask_zarr.client import GatewayClient
    job = GatewayClient().run(shape=[2000, 2000], chunks=[200, 200], seed=7)   # a progress bar
    data = job.to_xarray()                                                 # lazy, dask-backed
"""

from __future__ import annotations

import builtins
import logging
import math
import os
import time
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from gateway_dask_zarr.client.errors import MIN_RETRY_S, GatewayError, JobFailed, error_of

if TYPE_CHECKING:
    import xarray
    import zarr

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000"
ENDED = ("complete", "failed", "cancelled")
# The AWS_* variables (and files) botocore finds credentials in; with none, arrays are read unsigned.
CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


def has_aws_credentials() -> bool:
    """True when the environment names AWS credentials (variables, a profile, or ~/.aws/credentials)."""
    shared = os.environ.get("AWS_SHARED_CREDENTIALS_FILE", os.path.expanduser("~/.aws/credentials"))
    return any(os.environ.get(name) for name in CREDENTIAL_VARIABLES) or os.path.exists(shared)


def _progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """tqdm.auto's bar: a widget in Jupyter, text on a terminal (also in Jupyter without ipywidgets)."""
    options = {"total": total, "desc": desc, "unit": "chunk", "disable": not enabled}
    try:
        from tqdm.auto import tqdm

        return tqdm(**options)
    except ImportError:  # tqdm.notebook needs ipywidgets
        from tqdm import tqdm as text_tqdm

        return text_tqdm(**options)


class GatewayClient:
    """One gateway service: `url` (default GATEWAY_URL), `token` (default GATEWAY_TOKEN, then JUPYTERHUB_API_TOKEN).

    `timeout` bounds each HTTP request; `busy_wait` bounds how long one call keeps retrying,
    as the server's Retry-After says, when the service is busy (429) or briefly unavailable (503).
    """

    def __init__(
        self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0, busy_wait: float = 300.0
    ) -> None:
        self.url = (url or os.environ.get("GATEWAY_URL") or DEFAULT_URL).rstrip("/")
        token = token or os.environ.get("GATEWAY_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN")
        self.timeout = timeout
        self.busy_wait = busy_wait
        self.session = requests.Session()
        # A pooled connection the server has closed (gunicorn drops keep-alive ones idle for 2 s)
        # fails the next request on it: retry on a fresh one, except a POST that may have arrived.
        adapter = HTTPAdapter(max_retries=Retry(total=2, backoff_factor=0.1, status=0))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["Accept"] = "application/json"
        if token:
            self.session.headers["Authorization"] = f"token {token}"

    def __repr__(self) -> str:
        return f"GatewayClient({self.url!r})"  # never the token

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One API call; retried while the server answers 429/503 with Retry-After, up to `busy_wait` s in all."""
        waited = 0.0
        while True:
            try:
                response = self.session.request(method, f"{self.url}{path}", timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                raise GatewayError(
                    f"the gateway at {self.url} cannot be reached ({type(exc).__name__}); is it up, is the URL right?",
                    code="unreachable",
                ) from None
            if response.ok:
                return response
            error = error_of(response)
            # At least a moment between tries, so that even "Retry-After: 0" ends within busy_wait.
            delay = None if error.retry_after is None else max(error.retry_after, MIN_RETRY_S)
            if response.status_code in (429, 503) and delay is not None and waited + delay <= self.busy_wait:
                log.info("the gateway is busy (%s): retrying in %g s, as its Retry-After says", error.code, delay)
                time.sleep(delay)
                waited += delay
                # After a wait as long as the server's keep-alive, its connections are stale: drop them.
                self.session.close()
                continue
            if waited:
                error.message += f" (gave up after waiting {waited:g} s)"
            raise error

    def submit(
        self,
        shape: builtins.list[int] | None = None,
        chunks: builtins.list[int] | None = None,
        dtype: str | None = None,
        seed: int | None = None,
        shards: builtins.list[int] | None = None,
        *,
        kind: str | None = None,
        input: str | None = None,
        **options: Any,
    ) -> RemoteJob:
        """Start a job (POST /jobs) and return at once; the server's defaults fill what is None (no shards).

        kind names a job kind (default random); a derived kind its input job's id and its own
        parameters as keywords (rechunk: chunks, shards; reduce: op, axes), as GET /openapi.json lists them.
        """
        given = {"shape": shape, "chunks": chunks, "dtype": dtype, "seed": seed, "shards": shards}
        given |= {"kind": kind, "input": input, **options}
        body = {k: list(v) if isinstance(v, tuple) else v for k, v in given.items() if v is not None}
        return RemoteJob(self, self.request("POST", "/jobs", json=body).json())

    def run(self, *args: Any, progress: bool = True, timeout: float | None = None, **params: Any) -> RemoteJob:
        """Submit a job (the arguments of submit) and wait for it, with a progress bar; raise JobFailed if it fails."""
        return self.submit(*args, **params).wait(progress=progress, timeout=timeout)

    def get(self, job_id: str) -> RemoteJob:
        """One job (GET /jobs/<id>); GatewayError 404 if there is none."""
        return RemoteJob(self, self.request("GET", f"/jobs/{job_id}").json())

    def delete(self, job_id: str) -> None:
        """Cancel a running job, or delete a finished one with its array (DELETE /jobs/<id>)."""
        self.request("DELETE", f"/jobs/{job_id}")

    def list(self, limit: int | None = None, before: str | None = None) -> builtins.list[RemoteJob]:
        """The caller's jobs, newest first: one page of `limit` (the server's default when None)."""
        params = {k: v for k, v in {"limit": limit, "before": before}.items() if v is not None}
        return [RemoteJob(self, d) for d in self.request("GET", "/jobs", params=params).json()]


class RemoteJob:
    """One job: its latest document (`document`), a way to follow it, and its array once complete."""

    def __init__(self, gateway: GatewayClient, document: dict[str, Any]) -> None:
        self.gateway = gateway
        self.document = document

    def __repr__(self) -> str:
        return f"<RemoteJob {self.id} {self.status}>"

    @property
    def id(self) -> str:
        """The job's id."""
        return str(self.document["id"])

    @property
    def status(self) -> str:
        """queued, running, complete, failed or cancelled, as last seen."""
        return str(self.document["status"])

    @property
    def url(self) -> str:
        """The array's URL (s3:// or file://)."""
        return str(self.document["url"])

    @property
    def progress(self) -> tuple[int, int]:
        """(chunks done, chunks in all), as last seen."""
        total = math.prod(
            math.ceil(s / c) for s, c in zip(self.document["shape"], self.document["chunks"], strict=True)
        )
        progress = self.document.get("progress") or {}
        done = total if self.status == "complete" else int(progress.get("done", 0))
        return done, int(progress.get("total", total))

    @property
    def waiting(self) -> bool:
        """True while the job is accepted but none of its tasks runs yet: it waits for workers (queued_s is null)."""
        return self.status not in ENDED and self.document.get("queued_s") is None

    def refresh(self) -> RemoteJob:
        """Fetch the job's document again."""
        self.document = self.gateway.request("GET", f"/jobs/{self.id}").json()
        return self

    def wait(self, progress: bool = True, timeout: float | None = None, interval: float = 0.5) -> RemoteJob:
        """Poll until the job ends, showing a progress bar; raise JobFailed, or TimeoutError after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = _progress_bar(self.progress[1], self.id, progress)
        try:
            while True:
                done, total = self.progress
                if self.status in ENDED:
                    # close() draws the final line: once, not also from an update just before it.
                    bar.n = done
                    break
                bar.set_description(f"{self.id} (waiting for workers)" if self.waiting else self.id, refresh=False)
                if done < total:
                    bar.update(done - bar.n)
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"job {self.id} is still {self.status} after {timeout:g} s; it goes on running")
                time.sleep(interval)
                self.refresh()
        finally:
            bar.close()
        if self.status != "complete":
            raise JobFailed(self)
        return self

    def delete(self) -> None:
        """Cancel the job, or delete it and its array."""
        self.gateway.delete(self.id)

    @property
    def zarr_url(self) -> str:
        """The array's Zarr root on the gateway (`/jobs/<id>/zarr/`): the caller's token reads it, no S3 credentials."""
        return f"{self.gateway.url}/jobs/{self.id}/zarr/"

    def storage_options(self) -> dict[str, Any] | None:
        """fsspec options to read the array from S3 itself: the reported endpoint; unsigned with no AWS credentials."""
        if not self.url.startswith("s3://"):
            return None
        options: dict[str, Any] = {"anon": not has_aws_credentials()}
        if self.document.get("endpoint_url"):
            options["endpoint_url"] = self.document["endpoint_url"]
        return options

    def open(self, storage_options: dict[str, Any] | None = None, *, direct: bool = False) -> zarr.Array:
        """The job's Zarr array, read-only: through the gateway (its chunks redirected to the store), or
        straight from object storage when `direct` or `storage_options` is given (that needs the store's access)."""
        import zarr

        if self.status != "complete":
            raise GatewayError(
                f"job {self.id} is {self.status}; its array is readable once complete", code="not_complete"
            )
        if direct or storage_options is not None:
            options = self.storage_options() if storage_options is None else storage_options
            return zarr.open_array(self.url, mode="r", storage_options=options)
        auth = self.gateway.session.headers.get("Authorization")
        headers = {"Authorization": str(auth)} if auth else {}
        return zarr.open_array(self.zarr_url, mode="r", storage_options={"headers": headers})

    def to_xarray(self, storage_options: dict[str, Any] | None = None, *, direct: bool = False) -> xarray.DataArray:
        """The array as a lazy, dask-backed xarray.DataArray: its dimension names, the job document as attributes."""
        import dask.array
        import xarray

        array = self.open(storage_options, direct=direct)
        dims = array.metadata.dimension_names  # type: ignore[union-attr]
        data = dask.array.from_zarr(array)
        return xarray.DataArray(data, dims=list(dims) if dims else None, name=self.id, attrs=dict(self.document))
