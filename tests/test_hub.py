"""AUTH=jupyterhub against a real JupyterHub: scopes, owners, CSRF, the browser's login, under the hub's prefix."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import requests
from helpers import assert_verified, wait_for
from hub_server import ADMIN_USER, APP, HubServer
from playwright.sync_api import Browser, expect
from serve import free_port

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
JOB_TIMEOUT_MS = 180_000
PREFIX = f"/services/{APP}/"
JSON = {"Accept": "application/json"}
expect.set_options(timeout=30_000)


def _as(token: str) -> dict[str, str]:
    return {**JSON, "Authorization": f"token {token}"}


def _finished(url: str, headers: dict[str, str]) -> dict[str, Any]:
    return wait_for(
        lambda: (d := requests.get(url, headers=headers, timeout=30).json())["status"] in ("complete", "failed") and d,
        timeout=120,
        interval=0.2,
    )


def test_tokens_need_the_services_access_scope(hub: HubServer, hub_app: Any) -> None:
    jobs = hub.app_url + "jobs"
    missing = requests.get(jobs, headers=JSON, timeout=30)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    assert requests.get(jobs, headers=_as("not-a-hub-token"), timeout=30).status_code == 401
    # A real token of alice's, narrowed to a scope that is not the service's access scope.
    narrow = hub.mint_token("alice", scopes=["read:users:name!user=alice"])
    refused = requests.get(jobs, headers=_as(narrow), timeout=30)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "forbidden"
    assert f"access:services!service={APP}" in refused.json()["error"]["message"]
    assert requests.post(jobs, json={"shape": [100, 100]}, headers=_as(narrow), timeout=30).status_code == 403

    # A full token works, through the proxy and with Bearer too; links and Location keep the prefix.
    alice = hub.mint_token("alice")
    assert requests.get(jobs, headers={**JSON, "Authorization": f"Bearer {alice}"}, timeout=30).status_code == 200
    created = requests.post(jobs, json={"shape": [300, 200], "chunks": [100, 100], "seed": 4}, headers=_as(alice))
    assert created.status_code == 202, created.text
    location = created.headers["Location"]
    assert location.startswith(f"{PREFIX}jobs/"), location
    document = _finished(hub.url + location, _as(alice))
    assert document["owner"] == "alice"
    assert document["links"]["preview"].startswith(f"{PREFIX}jobs/")
    assert_verified(document)
    preview = requests.get(hub.url + document["links"]["preview"], headers=_as(alice), timeout=60)
    assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")
    # The prefix without its slash is sent to the slash (the page's relative URLs need it).
    bare = requests.get(hub.url + PREFIX.rstrip("/"), headers=_as(alice), allow_redirects=False, timeout=30)
    assert bare.status_code == 308 and bare.headers["Location"] == PREFIX
    # Probes need no token; directly on the app (no proxy, no prefix) the same token works too.
    direct = f"http://127.0.0.1:{hub.slot_server.server_port}"
    assert requests.get(f"{direct}/healthz", timeout=30).status_code == 200
    mine = requests.get(f"{direct}/jobs", headers=_as(alice), timeout=30).json()
    assert [j["id"] for j in mine] == [document["id"]]
    assert mine[0]["links"]["self"] == f"/jobs/{document['id']}"


def test_users_see_preview_and_delete_only_their_own_jobs(hub: HubServer, hub_app: Any) -> None:
    alice, bob, carol = (hub.mint_token(user) for user in ("alice", "bob", ADMIN_USER))
    ran = requests.get(hub.app_url + "run?shape=200,200&chunks=100,100&seed=9", headers=_as(alice), timeout=300)
    assert ran.status_code == 200, ran.text
    job = ran.json()
    assert job["owner"] == "alice"
    url = hub.url + job["links"]["self"]
    for method, target in (("GET", url), ("GET", url + "/preview.png"), ("DELETE", url)):
        answer = requests.request(method, target, headers=_as(bob), timeout=30)
        assert answer.status_code == 404, (method, target, answer.status_code)
        assert answer.json()["error"]["code"] == "not_found"
    assert requests.get(hub.app_url + "jobs", headers=_as(bob), timeout=30).json() == []
    # Bob's DELETE took nothing away; alice and the hub's admin see the job.
    assert [j["id"] for j in requests.get(hub.app_url + "jobs", headers=_as(alice), timeout=30).json()] == [job["id"]]
    assert job["id"] in [j["id"] for j in requests.get(hub.app_url + "jobs", headers=_as(carol), timeout=30).json()]
    assert_verified(requests.get(url, headers=_as(alice), timeout=30).json())
    # Alice may delete hers.
    assert requests.delete(url, headers=_as(alice), timeout=60).status_code == 204
    assert requests.get(url, headers=_as(alice), timeout=30).status_code == 404


def test_cookie_writes_need_the_pages_csrf_token(hub: HubServer, hub_app: Any) -> None:
    bob = hub.browser_login("bob")
    page = bob.get(hub.app_url, timeout=30)
    assert page.status_code == 200 and "gateway-dask-zarr" in page.text
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert match, page.text[:500]
    (jar,) = [c for c in bob.cookies if c.name == f"service-{APP}"]
    # The session cookie stays on the service's paths, away from the hub and users' servers.
    assert jar.path == PREFIX and jar.has_nonstandard_attr("HttpOnly")
    assert jar.get_nonstandard_attr("SameSite") == "Lax"
    cookie = jar.value
    assert cookie
    # A forged cross-site POST: bob's session cookie, another site's Origin, no CSRF token.
    forged = requests.post(
        hub.app_url + "jobs",
        json={"shape": [100, 100]},
        cookies={f"service-{APP}": cookie},
        headers={**JSON, "Origin": "https://evil.example", "Content-Type": "application/json"},
        timeout=30,
    )
    assert forged.status_code == 403, forged.text
    assert forged.json()["error"]["code"] == "csrf_failed"
    wrong = bob.post(hub.app_url + "jobs", json={"shape": [100, 100]}, headers={**JSON, "X-CSRF-Token": "x"})
    assert wrong.status_code == 403
    # Nothing was started; reads by cookie need no token.
    listed = bob.get(hub.app_url + "jobs", headers=JSON, timeout=30)
    assert listed.status_code == 200 and listed.json() == []
    # The page's own write, with its token, works.
    made = bob.post(
        hub.app_url + "jobs",
        json={"shape": [200, 100], "chunks": [100, 100]},
        headers={**JSON, "X-CSRF-Token": match.group(1)},
        timeout=30,
    )
    assert made.status_code == 202, made.text
    assert made.json()["owner"] == "bob"
    done = _finished(hub.url + made.headers["Location"], JSON | {"Cookie": f"service-{APP}={cookie}"})
    assert_verified(done)
    deleted = requests.delete(hub.url + made.headers["Location"], cookies={f"service-{APP}": cookie}, timeout=30)
    assert deleted.status_code == 403 and deleted.json()["error"]["code"] == "csrf_failed"


def test_browser_logs_in_through_the_hub_and_runs_a_job(hub: HubServer, hub_app: Any, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(hub.app_url + "?from=test")
    # No session: the app sent the browser to the hub, which asks who it is.
    expect(page.locator("input[name=username]")).to_be_visible()
    assert "/hub/login" in page.url
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "hub-login.png"), full_page=True)
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", hub.password)
    page.click("input[type=submit], button[type=submit]")
    # Back on the page it asked for, through the hub's OAuth and the app's callback.
    page.wait_for_url(hub.app_url + "?from=test")
    expect(page.locator("h1")).to_have_text("gateway-dask-zarr")
    expect(page.locator("#signed-in-as")).to_have_text("Signed in as alice")
    page.fill("input[name=shape]", "1000,800")
    page.fill("input[name=chunks]", "100,100")
    page.fill("input[name=seed]", "13")
    page.click("#run-button")
    expect(page.locator("#form-status")).to_contain_text("Started ")
    job_id = page.locator("#form-status").inner_text().removeprefix("Started ").strip()
    row = page.locator(f'li.job[data-id="{job_id}"]')
    expect(row).to_have_attribute("data-status", "complete", timeout=JOB_TIMEOUT_MS)
    expect(row.locator("[data-field=progress-text]")).to_have_text("80 / 80 chunks")
    expect(row.locator("a[data-field=self]")).to_have_attribute("href", f"{PREFIX}jobs/{job_id}")
    preview = row.locator("img[data-field=preview]")
    preview.wait_for(state="visible", timeout=JOB_TIMEOUT_MS)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=preview.element_handle())
    page.screenshot(path=str(ARTIFACTS / "hub-page-after-job.png"), full_page=True)
    # Log out: the service's session ends, then the hub's logout page ends the hub's.
    page.click("#logout-button")
    page.wait_for_url("**/hub/login**")
    page.goto(hub.app_url)
    expect(page.locator("input[name=username]")).to_be_visible()
    # The job is alice's, and what the page showed is in the store.
    alice = hub.mint_token("alice")
    document = requests.get(f"{hub.app_url}jobs/{job_id}", headers=_as(alice), timeout=30).json()
    assert document["owner"] == "alice" and document["seed"] == 13
    assert_verified(document)
    context.close()
    assert problems == []


def test_an_unreachable_hub_answers_503_not_401(hub: HubServer, make_app: Any, settings: Any) -> None:
    # Nothing listens there: the app cannot ask the hub, and says so (a retry may succeed).
    gone = replace(hub.app_settings(settings), jupyterhub_api_url=f"http://127.0.0.1:{free_port()}/hub/api")
    client = make_app(gone).test_client()
    answer = client.get("/jobs", headers=_as(hub.mint_token("alice")))
    assert answer.status_code == 503, answer.get_json()
    assert answer.get_json()["error"]["code"] == "auth_unavailable" and answer.headers["Retry-After"] == "5"
    assert client.get("/healthz").status_code == 200


def test_logout_ends_the_services_session_and_points_to_the_hubs_logout(hub: HubServer, hub_app: Any) -> None:
    bob = hub.browser_login("bob")
    page = bob.get(hub.app_url, timeout=30)
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert match and 'id="logout-button"' in page.text, page.text[:500]
    assert bob.get(hub.app_url + "jobs", headers=JSON, timeout=30).status_code == 200
    # Like any cookie write, a logout needs the page's token: another site cannot log bob out.
    forged = bob.post(hub.app_url + "logout", headers={**JSON, "Origin": "https://evil.example"}, timeout=30)
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "csrf_failed"
    out = bob.post(hub.app_url + "logout", headers={**JSON, "X-CSRF-Token": match.group(1)}, timeout=30)
    assert out.status_code == 200, out.text
    assert out.json() == {"next": "/hub/logout"}
    # The session no longer holds the hub's token: the API refuses the cookie, the page logs in again.
    assert bob.get(hub.app_url + "jobs", headers=JSON, timeout=30).status_code == 401
    again = bob.get(hub.app_url, timeout=30, allow_redirects=False)
    assert again.status_code == 302 and "/hub/api/oauth2/authorize" in again.headers["Location"]
