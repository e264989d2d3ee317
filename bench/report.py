"""The benchmark's markdown: one table of figures, floors, ratios and targets."""

from __future__ import annotations

from typing import Any


def _row(measure: str, value: str, reference: str, ratio: str, target: str, met: bool | None) -> str:
    mark = "" if met is None else ("yes" if met else "**no**")
    return f"| {measure} | {value} | {reference} | {ratio} | {target} | {mark} |"


def markdown(r: dict[str, Any]) -> str:
    """The results as a markdown document: machine, then one table."""
    m = r["machine"]
    floor, job = r["default_floor"]["median_s"], r["default_job"]
    large = r["large_job"]
    naive = r["naive"]
    t = r["throughput"]
    rss = r["rss"]
    app_growth = rss["app_peak_large_mb"] - rss["app_peak_default_mb"]
    worst_worker = max(w["peak_mb"] - w["idle_mb"] for w in rss["workers"].values())
    four_chunks = 4 * rss["chunk_mb"]
    cpu = r["s3_server_cpu_ms_per_put"]
    lines = [
        "# Benchmarks",
        "",
        f"`make bench`, {m['date']}: {m['cores']} cores (shared with other work: load average "
        f"{m['load_average'][0]:.1f} at the start, {m['load_average_end'][0]:.1f} at the end), Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f". One run of {r['bench_seconds']:.0f} s; medians unless marked.",
        "",
        "The floor is the same number of objects of the same size PUT to the same S3 server from one "
        "process (obstore, the workers' own S3 client, with the app's options; 32 at once), with no data generation, no "
        "scheduling and no metadata. Each figure and its reference are measured in alternation "
        "(the machine is shared and its load drifts); jobs/s is the median of 2 rounds.",
        "",
        "| measure | value | floor / reference | ratio | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
        _row(
            "default job (1000x1000 float32, 100 chunks), 20 sequential `GET /run`, end to end",
            f"p50 {job['p50_s']:.3f} s, p95 {job['p95_s']:.3f} s",
            f"floor {floor:.3f} s (100 PUTs of 40 kB, 7 runs)",
            f"{job['p50_s'] / floor:.2f}x",
            "<= 1.5x",
            job["p50_s"] / floor <= 1.5,
        ),
        _row(
            "the default floor with s3fs instead of obstore (the workers' client)",
            f"{r['s3fs_floor']['median_s']:.3f} s",
            f"obstore {floor:.3f} s",
            f"s3fs / obstore = {r['s3fs_floor']['median_s'] / floor:.2f}",
            "",
            None,
        ),
        _row("jobs/s, 1 client", f"{t['1']['jobs_per_s']:.2f}", f"floor {1 / floor:.2f}/s", "", "", None),
        _row(
            "jobs/s, 4 clients",
            f"{t['4']['jobs_per_s']:.2f}",
            f"naive pattern {naive['4']['jobs_per_s']:.2f}",
            f"{t['4']['jobs_per_s'] / naive['4']['jobs_per_s']:.1f}x",
            ">= 3x naive",
            t["4"]["jobs_per_s"] >= 3 * naive["4"]["jobs_per_s"],
        ),
        _row("jobs/s, 8 clients", f"{t['8']['jobs_per_s']:.2f}", "", "", "", None),
        _row(
            "naive pattern (new Client, `to_zarr(url)`), 5 sequential",
            f"p50 {naive['sequential']['p50_s']:.3f} s",
            f"the app's p50 {job['p50_s']:.3f} s",
            f"{naive['sequential']['p50_s'] / job['p50_s']:.1f}x slower",
            "",
            None,
        ),
        _row(
            "large job (8000x8000 float64 = 512 MB, 64 chunks of 8 MB), 3 runs",
            f"{large['median_s']:.2f} s, {large['mb_per_s']:.0f} MB/s",
            f"floor {r['large_floor']['median_s']:.2f} s, {large['floor_mb_per_s']:.0f} MB/s (best of 8 and 32 at once)",
            f"{large['mb_per_s'] / large['floor_mb_per_s']:.0%}",
            ">= 70%",
            large["mb_per_s"] >= 0.7 * large["floor_mb_per_s"],
        ),
        _row(
            "app RSS peak: default jobs -> large jobs (run back to back)",
            f"{rss['app_peak_default_mb']:.0f} -> {rss['app_peak_large_mb']:.0f} MB",
            f"{r['rss_app_start_mb']:.0f} MB after warm-up, {r['rss_app_after_concurrency_mb']:.0f} MB after 8 clients",
            f"{app_growth:+.0f} MB",
            "within 50 MB",
            abs(app_growth) <= 50,
        ),
        _row(
            f"worker RSS peak during the large job, above idle (worst of {len(rss['workers'])})",
            ", ".join(f"{w['idle_mb']:.0f} -> {w['peak_mb']:.0f} MB" for w in rss["workers"].values()),
            f"4 chunks = {four_chunks:.0f} MB",
            f"+{worst_worker:.0f} MB",
            "<= idle + 4 chunks",
            worst_worker <= four_chunks,
        ),
        _row(
            "S3 server (SeaweedFS) CPU per 40 kB PUT (during the default floors)",
            f"{cpu['embedded']:.2f} ms",
            "",
            "",
            "",
            None,
        ),
        "",
    ]
    return "\n".join(lines)
