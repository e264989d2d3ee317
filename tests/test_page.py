"""The web page in a real headless Chromium (Debian's), served by a real HTTP server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import zarr
from helpers import assert_verified, open_job_array
from live import serve
from playwright.sync_api import Browser, Page, expect

from gateway_dask_zarr.kinds.registry import KINDS
from gateway_dask_zarr.worker.verify import mismatched_blocks

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
JOB_TIMEOUT_MS = 180_000
# Generous waits: the machine is shared, and a wait only ends early when the page is right.
expect.set_options(timeout=30_000)


@pytest.fixture
def base_url(app: Any) -> Iterator[str]:
    """The app behind a real HTTP server on a loopback port."""
    with serve(app) as url:
        yield url


# Runs before the page's own script; a violation of the page's Content-Security-Policy becomes
# a console error, so every test here fails on one.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", e =>
  console.error("CSP violation: " + e.effectiveDirective + " blocked " + (e.blockedURI || "inline")));
"""


def open_page(browser: Browser, base_url: str, **context: Any) -> tuple[Page, list[str]]:
    """A new page on / that records every console error, CSP violation and uncaught exception."""
    page = browser.new_context(**context).new_page()
    page.set_default_timeout(60_000)
    page.add_init_script(REPORT_CSP_VIOLATIONS)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    response = page.goto(base_url + "/")
    assert response is not None and "frame-ancestors 'none'" in response.headers["content-security-policy"]
    return page, problems


def run_from_form(page: Page, shape: str, chunks: str, seed: str) -> Any:
    """Fill the form, submit it, and return the new job's row."""
    page.fill("input[name=shape]", shape)
    page.fill("input[name=chunks]", chunks)
    page.fill("input[name=seed]", seed)
    page.click("#run-button")
    expect(page.locator("#form-status")).to_contain_text("Started ")
    job_id = page.locator("#form-status").inner_text().removeprefix("Started ").strip()
    return page.locator(f'li.job[data-id="{job_id}"]'), job_id


def wait_for_preview(page: Page, row: Any) -> None:
    """The row's preview image has loaded a real picture."""
    row.locator("img[data-field=preview]").wait_for(state="visible", timeout=JOB_TIMEOUT_MS)
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0",
        arg=row.locator("img[data-field=preview]").element_handle(),
        timeout=60_000,
    )


def test_page_runs_a_job_and_shows_progress_and_preview(browser: Browser, base_url: str) -> None:
    page, problems = open_page(browser, base_url, viewport={"width": 1280, "height": 900})
    expect(page.locator("h1")).to_have_text("gateway-dask-zarr")
    expect(page.locator('#cluster [data-field="backend"]')).to_have_text("local")
    expect(page.locator('#cluster [data-field="workers"]')).to_have_text("3 of 3")  # now, of those asked for
    expect(page.locator('#cluster [data-field="scaling"]')).to_have_count(0)  # a fixed size: no bounds shown
    expect(page.locator("#cluster a")).to_have_attribute(
        "href", re.compile(r"^http://127\.0\.0\.1:\d+/status$")
    )  # the dashboard
    expect(page.locator("#jobs-empty")).to_be_visible()
    # Record every progress value the bar shows, from the first one on.
    page.evaluate(
        """() => {
          window.seen = [];
          new MutationObserver(records => {
            for (const r of records)
              if (r.target.matches('.progress')) window.seen.push(Number(r.target.getAttribute('aria-valuenow')));
          }).observe(
            document.getElementById('jobs'), {subtree: true, attributes: true, attributeFilter: ['aria-valuenow']}
          );
        }"""
    )
    row, job_id = run_from_form(page, "1500,1200", "100,100", "11")
    expect(row).to_have_attribute("data-status", "complete", timeout=JOB_TIMEOUT_MS)
    bar = row.locator(".progress")
    expect(bar).to_have_attribute("aria-valuenow", "180")
    expect(bar).to_have_attribute("aria-valuemax", "180")
    expect(row.locator("[data-field=progress-text]")).to_have_text("180 / 180 chunks")
    seen = page.evaluate("window.seen")
    assert seen and seen == sorted(seen) and seen[-1] == 180, seen
    wait_for_preview(page, row)
    expect(row.locator("[data-field=status]")).to_have_text("complete")
    expect(row.locator("[data-field=summary]")).to_contain_text("7.2 MB in")
    expect(row.locator("[data-field=url]")).to_have_text(f"s3://test-bucket/{job_id}.zarr")
    expect(row.locator("a[data-field=self]")).to_have_attribute("href", f"/jobs/{job_id}")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-after-job.png"), full_page=True)
    # What the page showed is what the service did: the array is there and every chunk verifies.
    document = requests.get(f"{base_url}/jobs/{job_id}", timeout=30).json()
    assert document["seed"] == 11 and document["shape"] == [1500, 1200]
    assert_verified(document)
    # The share button shows a read-only link that zarr opens with no token.
    row.locator("button.share").click()
    share = row.locator("[data-field=share]")
    expect(share).to_contain_text(f"/shares/{job_id}/")
    shared = zarr.open_array(share.inner_text(), mode="r", storage_options={"headers": {}})
    assert mismatched_blocks(shared, 11, [(0, 0), (14, 11)]) == []
    # A reload renders the job on the server, preview included.
    page.reload()
    wait_for_preview(page, page.locator(f'li.job[data-id="{job_id}"]'))
    assert problems == []


def submit_and_wait(page: Page) -> tuple[Any, str]:
    """Submit the form as it is; the new job's row, once complete, and its id."""
    page.click("#run-button")
    expect(page.locator("#form-status")).to_contain_text("Started ")
    job_id = page.locator("#form-status").inner_text().removeprefix("Started ").strip()
    row = page.locator(f'li.job[data-id="{job_id}"]')
    expect(row).to_have_attribute("data-status", "complete", timeout=JOB_TIMEOUT_MS)
    return row, job_id


def test_page_offers_each_kinds_declared_fields_and_runs_a_rechunk_and_a_reduce(
    browser: Browser, base_url: str
) -> None:
    page, problems = open_page(browser, base_url, viewport={"width": 1280, "height": 1000})
    options = page.locator("#kind-select option")
    expect(options).to_have_count(len(KINDS))
    assert options.all_inner_texts() == list(KINDS)
    # Each kind's fields are its declared parameters, in order; only the chosen kind's show.
    for name, kind in KINDS.items():
        names = page.locator(f'fieldset[data-kind="{name}"] [data-param]').evaluate_all("els => els.map(e => e.name)")
        assert names == [p.name for p in kind.parameters], name
    expect(page.locator('fieldset[data-kind="random"]')).to_be_visible()
    expect(page.locator('fieldset[data-kind="rechunk"]')).to_be_hidden()
    _, source = run_from_form(page, "400,300", "100,100", "4")
    expect(page.locator(f'li.job[data-id="{source}"]')).to_have_attribute(
        "data-status", "complete", timeout=JOB_TIMEOUT_MS
    )

    # A rechunk: its input is offered from the complete jobs and starts as the newest one.
    page.select_option("#kind-select", "rechunk")
    rechunk = page.locator('fieldset[data-kind="rechunk"]')
    expect(rechunk).to_be_visible()
    expect(page.locator('fieldset[data-kind="random"]')).to_be_hidden()
    expect(page.locator(f'#input-jobs option[value="{source}"]')).to_have_count(1)
    expect(rechunk.locator("input[name=input]")).to_have_value(source)
    page.click("#run-button")  # no chunks: the server's refusal names the rechunk's field
    expect(page.locator("#form-error")).to_contain_text("rechunk needs chunks")
    expect(rechunk.locator("input[name=chunks]")).to_have_attribute("aria-invalid", "true")
    rechunk.locator("input[name=chunks]").fill("400,60")
    row, copied = submit_and_wait(page)
    expect(row.locator("[data-field=kind]")).to_have_text("rechunk")
    expect(row.locator("[data-field=inputs] a")).to_have_text(source)

    # A reduce of the rechunk: max over axis 0, its chain back to the random array shown.
    page.select_option("#kind-select", "reduce")
    reduce = page.locator('fieldset[data-kind="reduce"]')
    expect(reduce.locator("input[name=input]")).to_have_value(copied)
    reduce.locator("select[name=op]").select_option("max")
    reduce.locator("input[name=axes]").fill("0")
    row, reduced = submit_and_wait(page)
    expect(row.locator("[data-field=params]")).to_have_text(re.compile(r"op max\s*·\s*axes 0"))
    expect(row.locator("[data-field=inputs]")).to_have_text(f"from {copied} (rechunk) from {source} (random)")
    expect(row.locator(f'[data-field=inputs] a[data-input="{source}"]')).to_have_attribute("href", f"/jobs/{source}")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-kinds.png"), full_page=True)

    # What the page ran is what the service did.
    documents = {i: requests.get(f"{base_url}/jobs/{i}", timeout=30).json() for i in (source, copied, reduced)}
    data = open_job_array(documents[source])[...]
    assert documents[copied]["chunks"] == [400, 60] and documents[copied]["input"] == source
    np.testing.assert_array_equal(open_job_array(documents[copied])[...], data)
    assert documents[reduced]["op"] == "max" and documents[reduced]["axes"] == [0]
    np.testing.assert_array_equal(open_job_array(documents[reduced])[...], data.max(axis=0, keepdims=True))
    # A reload renders the kinds' rows on the server; the script draws the same chain.
    page.reload()
    expect(page.locator(f'li.job[data-id="{reduced}"] [data-field=inputs]')).to_have_text(
        f"from {copied} (rechunk) from {source} (random)"
    )
    assert [p for p in problems if not p.startswith("console error: Failed to load resource")] == []


def test_page_shows_api_errors_readably(browser: Browser, base_url: str) -> None:
    page, problems = open_page(browser, base_url, viewport={"width": 1280, "height": 900})
    page.fill("input[name=shape]", "1000,abc")
    page.click("#run-button")
    alert = page.locator("#form-error")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("The job was refused (400, invalid_parameter)")
    expect(alert).to_contain_text("shape must be comma-separated positive integers")
    expect(page.locator("input[name=shape]")).to_have_attribute("aria-invalid", "true")
    page.fill("input[name=shape]", "1000000,1000000")
    page.fill("input[name=chunks]", "1000,1000")
    page.click("#run-button")
    expect(alert).to_contain_text("(413, array_too_large)")
    expect(alert).to_contain_text("MAX_ARRAY_BYTES")
    expect(page.locator("li.job")).to_have_count(0)
    # Fixing the field clears the error.
    page.fill("input[name=shape]", "200,200")
    page.fill("input[name=chunks]", "100,100")
    page.click("#run-button")
    expect(alert).to_be_hidden()
    expect(page.locator("li.job")).to_have_count(1)
    expect(page.locator("li.job").first).to_have_attribute("data-status", "complete", timeout=JOB_TIMEOUT_MS)
    # Console errors for the refused requests are the browser's own network log, not script errors.
    assert [p for p in problems if not p.startswith("console error: Failed to load resource")] == []


def test_page_on_a_phone(browser: Browser, base_url: str) -> None:
    phone = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
    page, problems = open_page(browser, base_url, **phone)
    row, _ = run_from_form(page, "800,800", "100,100", "5")
    expect(row).to_have_attribute("data-status", "complete", timeout=JOB_TIMEOUT_MS)
    wait_for_preview(page, row)
    # Nothing wider than the screen: no sideways scrolling, the form and the job row fit.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for selector in ("#run-form", "li.job", "#cluster"):
        box = page.locator(selector).first.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (selector, box)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-phone.png"), full_page=True)
    assert problems == []


def test_page_deletes_a_job_with_its_array(browser: Browser, base_url: str, s3fs_client: Any) -> None:
    page, problems = open_page(browser, base_url, viewport={"width": 1280, "height": 900})
    row, job_id = run_from_form(page, "300,300", "100,100", "9")
    expect(row).to_have_attribute("data-status", "complete", timeout=JOB_TIMEOUT_MS)
    assert s3fs_client.find(f"test-bucket/{job_id}.zarr")
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button.delete").click()
    expect(row).to_have_count(0)
    expect(page.locator("#jobs-empty")).to_be_visible()
    assert requests.get(f"{base_url}/jobs/{job_id}", timeout=30).status_code == 404
    s3fs_client.invalidate_cache()
    # By key prefix: SeaweedFS shows an emptied folder for a while, S3 never does.
    assert [k for k in s3fs_client.find("test-bucket") if k.startswith(f"test-bucket/{job_id}.zarr/")] == []
    # After a reload the job stays gone.
    page.reload()
    expect(page.locator(f'li.job[data-id="{job_id}"]')).to_have_count(0)
    assert problems == []


def test_the_csp_blocks_inline_code_and_the_page_reports_it(browser: Browser, base_url: str) -> None:
    page, problems = open_page(browser, base_url)
    headers = page.request.get(base_url + "/").headers
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    # What an injected <script> or style attribute would do, the browser refuses, and says so.
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.injected = true";
          document.body.append(script);
          document.body.insertAdjacentHTML("beforeend", '<p id="styled" style="color: rgb(255, 0, 0)">x</p>');
        }"""
    )
    expect(page.locator("#styled")).to_have_count(1)
    assert page.evaluate("window.injected") is None
    assert page.evaluate("getComputedStyle(document.getElementById('styled')).color") != "rgb(255, 0, 0)"
    # The listener of open_page heard both, as it would any violation in the tests above.
    for _ in range(300):
        violations = [p for p in problems if p.startswith("console error: CSP violation")]
        if len(violations) >= 2:
            break
        page.wait_for_timeout(100)
    assert any("script-src-elem blocked inline" in v for v in violations), problems
    assert any("style-src-attr blocked inline" in v for v in violations), problems
