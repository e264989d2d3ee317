"""What people see: the web page, array previews and the Prometheus metrics."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, render_template, request
from prometheus_client import CONTENT_TYPE_LATEST

from gateway_dask_zarr.errors import Conflict, InvalidParameter, NotFound, Unavailable
from gateway_dask_zarr.jobs import check_job_id
from gateway_dask_zarr.kinds.base import Kind
from gateway_dask_zarr.kinds.registry import KINDS, kind_parameter
from gateway_dask_zarr.param_types import Parameter
from gateway_dask_zarr.server.edge import public_document, viewer
from gateway_dask_zarr.server.metrics import Metrics
from gateway_dask_zarr.server.parts import parts
from gateway_dask_zarr.server.preview import SIZES, preview_png
from gateway_dask_zarr.version import __version__

if TYPE_CHECKING:
    from gateway_dask_zarr.server.app import Service

log = logging.getLogger(__name__)

bp = Blueprint("web", __name__)

PAGE_JOBS = 20
PREVIEWS_CACHED = 128
# What a job row shows of every job; the rest of a kind's parameters it lists after them.
ROW_FIELDS = ("shape", "chunks", "dtype", "input")


class PreviewCache:
    """PNG previews of complete jobs, newest used kept: a complete array never changes."""

    def __init__(self, size: int = PREVIEWS_CACHED) -> None:
        self._size = size
        self._pngs: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> bytes | None:
        """The cached PNG of (job id, size), or None."""
        with self._lock:
            png = self._pngs.get(key)
            if png is not None:
                self._pngs.move_to_end(key)
            return png

    def put(self, key: tuple[str, str], png: bytes) -> None:
        """Keep a PNG, forgetting the least recently used beyond the size."""
        with self._lock:
            self._pngs[key] = png
            while len(self._pngs) > self._size:
                self._pngs.popitem(last=False)


def human_bytes(n: float | None) -> str:
    """1234567 -> '1.2 MB' (decimal units, as S3 bills them)."""
    if n is None:
        return ""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _form_field(kind: Kind, parameter: Parameter) -> dict[str, Any]:
    """A parameter's input in one kind's fields; a derived kind's start empty (its layout follows the input)."""
    field = parameter.form_field()
    if kind.derived and parameter.default is None:
        example = f"e.g. {parameter.example}" if parameter.example else ""
        field = {**field, "value": "", "placeholder": field["placeholder"] or example}
    return field


def kind_forms() -> list[dict[str, Any]]:
    """The run form's fields of each kind, from its declared parameters, and each kind's own (beyond the layout)."""
    return [
        {
            "name": kind.name,
            "help": kind.help,
            "fields": [_form_field(kind, p) for p in kind.parameters],
            "shown": [p.name for p in kind.parameters if p.name not in ROW_FIELDS],
        }
        for kind in KINDS.values()
    ]


def _service() -> Service:
    return parts().service


@bp.get("/")
def index() -> str:
    """The page: run form, recent jobs with progress and previews, cluster state."""
    service = _service()
    try:
        cluster = service.cluster.status()
    except Exception as exc:
        cluster = {
            "backend": service.settings.cluster,
            "workers": 0,
            "expected_workers": service.settings.n_workers,
            "dashboard": None,
            "problem": f"the cluster state cannot be read: {type(exc).__name__}",
        }
    jobs_error = None
    try:
        jobs = [public_document(d) for d in service.jobs.list(viewer(), PAGE_JOBS)[0]]
    except Exception as exc:
        log.warning("the page could not list jobs: %s", type(exc).__name__)
        jobs, jobs_error = (
            [],
            f"The job list could not be read from the store ({type(exc).__name__}); new jobs still show here.",
        )
    return render_template(
        "index.html",
        cluster=cluster,
        jobs=jobs,
        jobs_error=jobs_error,
        store_root=service.store.root,
        endpoint_url=service.public_endpoint_url,
        page_jobs=PAGE_JOBS,
        kind_field=kind_parameter().form_field(),
        kinds=kind_forms(),
        version=__version__,
    )


@bp.get("/jobs/<job_id>/preview.png")
def preview(job_id: str) -> Response:
    """A PNG picture of a complete job's array (`size=thumb` for a bare thumbnail), from a bounded strided read."""
    service = _service()
    document = service.jobs.get(check_job_id(job_id), viewer())
    if document is None:
        raise NotFound(f"no job {job_id!r}")
    if document["status"] != "complete":
        raise Conflict(
            f"job {job_id!r} is {document['status']}; a preview exists once it is complete", code="job_not_complete"
        )
    size = request.args.get("size", "full")
    if size not in SIZES:
        raise InvalidParameter(f"size must be one of {', '.join(SIZES)}, got {size!r}", field="size")
    cache = parts().previews
    png = cache.get((job_id, size))
    if png is None:
        try:
            png = preview_png(service.store.open_array(job_id), document, size)
        except Exception as exc:
            log.warning("preview of job %s failed: %s: %s", job_id, type(exc).__name__, exc)
            raise Unavailable(
                f"the array of job {job_id!r} could not be read for a preview ({type(exc).__name__}); "
                "try again shortly",
                code="preview_unavailable",
            ) from None
        cache.put((job_id, size), png)
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, max-age=86400"})


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format."""
    return Response(parts().metrics.render(), content_type=CONTENT_TYPE_LATEST)


def _count_request(response: Response) -> Response:
    # The URL rule, not the raw path, so job ids do not make one time series each.
    rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
    metrics_ = parts().metrics
    metrics_.request_done(request.method, rule, response.status_code)
    # Counted from the answer, whichever handler made it (the error mapping, auth, the body bound).
    if 400 <= response.status_code < 500:
        error = response.get_json(silent=True) if response.is_json else None
        code = error.get("error", {}).get("code") if isinstance(error, dict) else None
        metrics_.refused(code if isinstance(code, str) else "other")
    return response


def init_web(app: Flask, service: Service) -> tuple[Metrics, PreviewCache]:
    """Add the page, previews and metrics to an app made by create_app; returns its metrics and preview cache."""
    metrics_ = Metrics(service.jobs, service.cluster)
    service.unsubscribe.append(service.jobs.on_end(metrics_.job_ended))
    app.jinja_env.filters["human_bytes"] = human_bytes
    app.register_blueprint(bp)
    app.after_request(_count_request)
    return metrics_, PreviewCache()
