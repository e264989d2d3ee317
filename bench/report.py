"""The benchmark's markdown: one table of figures, floors, ratios and targets."""

from __future__ import annotations

import statistics
from typing import Any

COMMAND = "`make bench` (`python -m bench`)"


def _row(measure: str, value: str, reference: str, ratio: str, target: str, met: bool | None) -> str:
    mark = "" if met is None else ("yes" if met else "**no**")
    return f"| {measure} | {value} | {reference} | {ratio} | {target} | {mark} |"


def _rows(r: dict[str, Any]) -> list[str]:
    d, t, large, many = r["default"], r["throughput"], r["large"], r["many"]
    default_ratio = d["p50_s"] / d["floor_s"]
    share = statistics.median(t["ratios"])
    large_share = large["mb_per_s"] / large["floor_mb_per_s"]
    return [
        _row(
            f"default job (1000x1000 float32, 100 chunks), {len(d['jobs_s'])} sequential `GET /run`, each then a floor",
            f"p50 {d['p50_s']:.3f} s",
            f"floor p50 {d['floor_s']:.3f} s (100 PUTs of 40 kB, obstore, 32 at once)",
            f"{default_ratio:.2f}x",
            "<= 1.3x",
            default_ratio <= 1.3,
        ),
        _row(
            f"jobs/s, 4 clients x 12 jobs, {len(t['ratios'])} rounds each followed by the floor's (4 streams x 3)",
            "rounds " + ", ".join(f"{x:.2f}" for x in t["app_jobs_per_s"]),
            "4 floor streams: " + ", ".join(f"{x:.2f}" for x in t["floor_per_s"]) + " floors/s",
            f"median {100 * share:.0f}%",
            ">= 80%",
            share >= 0.8,
        ),
        _row(
            f"large job (8000x8000 float64 = 512 MB, 64 chunks of 8 MB), {len(large['jobs_s'])} rounds",
            f"{statistics.median(large['jobs_s']):.2f} s, {large['mb_per_s']:.0f} MB/s",
            f"floor {statistics.median(large['floors_s']):.2f} s, {large['floor_mb_per_s']:.0f} MB/s "
            "(64 PUTs of 8 MB, the faster of 8 and 32 at once)",
            f"{100 * large_share:.0f}%",
            ">= 85%",
            large_share >= 0.85,
        ),
        _row(
            f"many chunks: 10000x10000 float32 in 32x32 chunks ({many['chunks']} written), once",
            f"{many['job_s']:.1f} s; planned and submitted in {many['plan_submit_s']} s",
            f"floor {many['floor_s']:.1f} s (4x the time of a quarter of the same PUTs of 4 kB, 32 at once)",
            f"{many['job_s'] / many['floor_s']:.2f}x",
            "completes; not seconds per 1000 chunks",
            many["chunks"] == 97969,
        ),
    ]


def _fair_rows(r: dict[str, Any]) -> list[str]:
    """Issue 21: a default job beside the 1.6 GB job against the same job idle."""
    f = r.get("fair")
    if not f:
        return []
    return [
        _row(
            "default job while a large job runs / default job idle (20000x10000 float64, 1.6 GB), "
            f"{len(f['idle_s'])} each",
            f"p50 {statistics.median(f['beside_s']):.3f} s beside it"
            + ("" if f["measured_beside"] else " (the large job had ended)"),
            f"p50 {statistics.median(f['idle_s']):.3f} s idle; the large job {f['large_status']} in {f['large_s']} s",
            f"{f['ratio']:.2f}x",
            "<= 2x (83x before issue 21)",
            f["ratio"] <= 2 and f["measured_beside"],
        )
    ]


def _shares(floors: list[float], jobs: list[float]) -> str:
    """Each round's share of its floor's rate, as percentages."""
    return ", ".join(f"{100 * f / j:.0f}%" for f, j in zip(floors, jobs, strict=True))


def _kinds_rows(r: dict[str, Any]) -> list[str]:
    """Issue 24: the 1.6 GB rechunk against the copy floor, its reduce against the GET floor, worker memory."""
    k = r.get("kinds")
    if not k:
        return []
    rounds, gb = len(k["rechunk_s"]), k["bytes"] / 1e9
    return [
        _row(
            f"rechunk {gb:.1f} GB (20000x10000 float64, 1000x1000 chunks -> 20000x50), {rounds} rounds "
            "(bench/kinds.py)",
            f"median {statistics.median(k['rechunk_s']):.2f} s (" + ", ".join(f"{x:.2f}" for x in k["rechunk_s"]) + ")",
            f"copy floor {statistics.median(k['copy_floor_s']):.2f} s (GET + PUT of its 200 chunks of 8 MB, "
            "obstore, 32 at once, one process)",
            f"{100 * k['rechunk_share']:.0f}% (rounds {_shares(k['copy_floor_s'], k['rechunk_s'])})",
            ">= 50%",
            k["rechunk_share"] >= 0.5,
        ),
        _row(
            f"reduce: mean over axis 0 of the same array, {rounds} rounds",
            f"median {statistics.median(k['reduce_s']):.2f} s (" + ", ".join(f"{x:.2f}" for x in k["reduce_s"]) + ")",
            f"GET floor {statistics.median(k['get_floor_s']):.2f} s (its 200 chunks, obstore, 32 at once)",
            f"{100 * k['reduce_share']:.0f}% (rounds {_shares(k['get_floor_s'], k['reduce_s'])})",
            "",
            None,
        ),
        _row(
            "worker RSS peak above its RSS before the rechunk, worst worker of 3, each round (psutil every 10 ms)",
            ", ".join(f"+{x:.0f} MB" for x in k["worker_growth_mb"]),
            f"kinds.rechunk.bound: a band 160 MB + reads 2 x 16 MB + writes 3 x 8 MB = {k['bound_mb']:.0f} MB",
            "",
            "<= the bound",
            max(k["worker_growth_mb"]) <= k["bound_mb"],
        ),
        *_beside_rows(k.get("beside")),
    ]


def _beside_rows(b: dict[str, Any] | None) -> list[str]:
    """The cost of the rechunk's bands to a default job beside it (a task is a band of 160 MB)."""
    if not b:
        return []
    return [
        _row(
            f"default job while the rechunk runs / default job idle, {len(b['idle_s'])} each",
            f"p50 {statistics.median(b['beside_s']):.3f} s beside it"
            + ("" if b["measured_beside"] else " (the rechunk had ended)"),
            f"p50 {statistics.median(b['idle_s']):.3f} s idle",
            f"{b['ratio']:.2f}x",
            "",
            None,
        )
    ]


def _cpu_row(d: dict[str, Any]) -> str:
    """Where the default job's CPU goes, by process, against its floor's: both run on the same cores."""
    job, floor = d["job_cpu_ms"], d["floor_cpu_ms"]
    names = {"app": "app + scheduler", "workers": "3 workers", "store": "SeaweedFS", "bench": "bench client"}

    def spent(used: dict[str, float], seconds: float) -> str:
        parts = ", ".join(f"{names[k]} {v:.0f}" for k, v in used.items() if v >= 0.5)
        total = sum(used.values())
        return f"{parts}: {total:.0f} ms, {total / 1000 / seconds:.1f} cores busy over its p50"

    return _row(
        "CPU per default job and per floor, by process (ms, the mean of the runs above)",
        "job: " + spent(job, d["p50_s"]),
        "floor: " + spent(floor, d["floor_s"]),
        f"{sum(job.values()) / sum(floor.values()):.2f}x",
        "",
        None,
    )


def _memory_rows(r: dict[str, Any]) -> list[str]:
    h, large, many = r["healthz"], r["large"], r["many"]
    workers = {k: large["peak_mb"][k] - large["idle_mb"][k] for k in large["idle_mb"] if k.startswith("worker")}
    four_chunks = 4 * 8.0
    app_growth = r["rss_app_end_mb"] - r["rss_app_default_mb"]
    return [
        _row(
            "many chunks: peak RSS (the app's process holds the LocalCluster's scheduler); /healthz p99 meanwhile",
            f"app + scheduler {many['peak_mb']['app']:.0f} MB; /healthz p99 {many['healthz_p99_ms']:.0f} ms",
            f"app before {r['rss_app_default_mb']:.0f} MB",
            "",
            "",
            None,
        ),
        _row(
            "app RSS as arrays grow: default jobs -> after the large and many-chunks jobs",
            f"{r['rss_app_default_mb']:.0f} -> {r['rss_app_end_mb']:.0f} MB",
            f"{r['rss_app_start_mb']:.0f} MB after warm-up",
            f"{app_growth:+.0f} MB",
            "flat (within 50 MB)",
            app_growth <= 50,
        ),
        _row(
            "worker RSS peak above idle during the large job, worst worker",
            ", ".join(f"+{v:.0f} MB" for v in workers.values()),
            f"4 chunks = {four_chunks:.0f} MB",
            "",
            "<= idle + 4 chunks",
            max(workers.values()) <= four_chunks,
        ),
        _row(
            "`/healthz` every 20 ms while 50 clients run default jobs (`MAX_ACTIVE_JOBS`=8 turns the rest away; "
            "they retry after `Retry-After`, as gateway_dask_zarr/client/client.py does)",
            f"p99 {h['p99_ms']:.0f} ms, p50 {h['p50_ms']:.0f} ms ({h['samples']} probes)",
            f"{h['jobs']} jobs at {h['jobs_per_s']:.2f}/s, {h['retries']} refusals retried",
            "",
            "< 50 ms",
            h["p99_ms"] < 50,
        ),
    ]


def _listing_rows(r: dict[str, Any]) -> list[str]:
    rows = r.get("jobs_list", [])
    if not rows:
        return []
    small, large = rows[0], rows[-1]
    first, warm = large["first_s"] / small["first_s"], large["warm_s"] / small["warm_s"]
    return [
        _row(
            f"`GET /jobs?limit=50` with {row['jobs']:,} job records (issue 12; an app started for each size)",
            f"first after start {1000 * row['first_s']:.0f} ms, warm median {1000 * row['warm_s']:.0f} ms",
            f"app RSS {row['app_rss_mb']:.0f} MB",
            ""
            if row is small
            else f"first {row['first_s'] / small['first_s']:.2f}x, warm {row['warm_s'] / small['warm_s']:.2f}x",
            "" if row is not large else f"{large['jobs']:,} within 2x of {small['jobs']:,}",
            None if row is not large else max(first, warm) <= 2,
        )
        for row in rows
    ]


def _zarr_http_rows(r: dict[str, Any]) -> list[str]:
    z = r.get("zarr_http")
    if not z:
        return []
    m = z["median"]
    return [
        _row(
            f"reading a {z['array_bytes'] / 2**20:.0f} MiB array through `/jobs/<id>/zarr/` (zarr over fsspec HTTP; "
            f"chunks 307 to presigned SeaweedFS URLs), median of {len(z['rounds'])} (bench/zarr_http.py)",
            f"app sent {m['app_sent_bytes'] / 1e3:.0f} kB ({100 * z['app_sent_share']:.3f}% of the array), "
            f"app RSS +{z['app_rss_growth_mb']:.1f} MB",
            f"the same read straight from S3 (s3fs): {m['s3_s']:.2f} s",
            f"{z['http_over_s3']:.2f}x the time",
            "app sends < 1% of the array, RSS + < 16 MB",
            z["app_sent_share"] < 0.01 and z["app_rss_growth_mb"] < 16,
        )
    ]


def markdown(r: dict[str, Any]) -> str:
    """The results as markdown: the machine, then one table."""
    m = r["machine"]
    lines = [
        "## The last run's figures",
        "",
        f"{COMMAND}, {m['date']}: {m['cores']} cores (shared with other work: load average "
        f"{m['load_average'][0]:.1f} at the start, {m['load_average_end'][0]:.1f} at the end), Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f". One run of {r['bench_seconds']:.0f} s.",
        "",
        "The app runs as `make run` starts it (gunicorn, a LocalCluster of 3 worker processes) on a SeaweedFS "
        "S3 server on 127.0.0.1 that the bench starts (the embedded default's, gateway_dask_zarr/storage/embedded.py, "
        "in a temporary directory). A floor is the same number of objects of "
        "the same size PUT to the same server from one process with obstore (the workers' S3 client, the app's "
        "options), with no data generation, no scheduling and no metadata. Each figure and its floor are measured "
        "in alternation, in the same run (the machine is shared and its load drifts): read the ratios.",
        "",
        "| measure | value | floor / reference | ratio | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
        *_rows(r),
        *_fair_rows(r),
        *_kinds_rows(r),
        *([_cpu_row(r["default"])] if "job_cpu_ms" in r["default"] else []),
        *_memory_rows(r),
        *_listing_rows(r),
        *_zarr_http_rows(r),
        "",
    ]
    return "\n".join(lines)
