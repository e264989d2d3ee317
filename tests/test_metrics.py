"""GET /metrics: Prometheus text, parsed, and its counters rising with real jobs."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from stand_ins import FaultProxy

from gateway_dask_zarr.storage.embedded import EmbeddedS3


def scrape(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_count_jobs_chunks_bytes_and_requests(client: Any) -> None:
    before = scrape(client)
    assert before[("gateway_cluster_workers", ())] == 3
    assert before[("gateway_cluster_target_workers", ())] == 3
    assert before[("gateway_active_jobs", ())] == 0
    complete = ("gateway_jobs_total", (("status", "complete"),))
    duration_count = ("gateway_job_duration_seconds_count", (("status", "complete"),))
    run_ok = ("gateway_http_requests_total", (("method", "GET"), ("route", "/run"), ("status", "200")))
    assert before[complete] == 0 and before[duration_count] == 0 and run_ok not in before

    for seed in (1, 2):
        assert client.get(f"/run?seed={seed}&shape=300,200&chunks=100,100").status_code == 200
    after = scrape(client)
    assert after[complete] == 2
    assert after[("gateway_jobs_total", (("status", "failed"),))] == 0
    assert after[duration_count] == 2
    assert after[("gateway_job_duration_seconds_sum", (("status", "complete"),))] > 0
    assert after[("gateway_chunks_written_total", ())] == before[("gateway_chunks_written_total", ())] + 12
    assert after[("gateway_bytes_written_total", ())] == before[("gateway_bytes_written_total", ())] + 2 * 300 * 200 * 4
    assert after[("gateway_active_jobs", ())] == 0
    assert after[run_ok] == 2
    scrapes = ("gateway_http_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "200")))
    assert after[scrapes] == before.get(scrapes, 0) + 1


def test_request_labels_use_the_route_not_the_path(client: Any) -> None:
    for name in ("a", "b", "c"):
        assert client.get(f"/jobs/{name}").status_code == 404
    assert client.get("/no/such/page").status_code == 404
    samples = scrape(client)
    routes = {dict(labels)["route"] for name, labels in samples if name == "gateway_http_requests_total"}
    assert not any(r.startswith("/jobs/a") for r in routes)
    assert (
        samples[("gateway_http_requests_total", (("method", "GET"), ("route", "/jobs/<job_id>"), ("status", "404")))]
        == 3
    )
    assert samples[("gateway_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1


def test_failed_jobs_are_counted_and_apps_keep_their_own_registry(
    make_app: Any, settings: Any, client: Any, s3: EmbeddedS3
) -> None:
    # Chunk PUTs that take 3 s each: the job fails at its 1 s deadline.
    slow = FaultProxy(s3.endpoint_url, delay_share=1.0, delay_s=3.0, only="/c/").start()
    try:
        broken = make_app(settings, s3_endpoint_url=slow.url, job_timeout_s=1, cleanup_grace_s=3).test_client()
        response = broken.get("/run?shape=200,200&chunks=100,100")
    finally:
        slow.stop()
    assert response.status_code == 503
    failed = ("gateway_jobs_total", (("status", "failed"),))
    assert scrape(broken)[failed] == 1
    assert scrape(broken)[("gateway_chunks_written_total", ())] == 0
    # The other app of this test counted nothing of it.
    assert scrape(client)[failed] == 0


def test_refusals_are_counted_by_reason(client: Any) -> None:
    too_large = ("gateway_refusals_total", (("reason", "body_too_large"),))
    invalid = ("gateway_refusals_total", (("reason", "invalid_parameter"),))
    before = scrape(client)
    assert too_large not in before and invalid not in before
    assert client.post("/jobs", data=b"x" * 100_000).status_code == 413
    assert client.get("/run?shape=0").status_code == 400
    assert client.get("/run?shape=-1").status_code == 400
    after = scrape(client)
    assert after[too_large] == 1
    assert after[invalid] == 2
