"""Monitors end to end on real parts: the API, a Chromium capture worker (with the monitor
scheduler thread), a webhook worker, Redis, a local page whose content the test changes,
and a webhook receiver that verifies signatures with the PyPI package ``standardwebhooks``."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from PIL import Image
from standardwebhooks import Webhook

from shared.apikeys import KeyStore, NewKey
from shared.connections import create_redis
from tests.conftest import ProcessFactory
from tests.servers import PageServer
from tests.webhook_receiver import WebhookReceiver
from worker.monitor_diff import HIGHLIGHT, OUTLINE

ENV = {
    "SHOTLINE_MONITOR_MIN_INTERVAL_SECONDS": "2",
    "SHOTLINE_MONITOR_FAILURES_BEFORE_ALERT": "2",
    "SHOTLINE_MONITOR_MAX_PER_KEY": "6",
    "SHOTLINE_WEBHOOK_RETRY_SCHEDULE": "1,1",
    "SHOTLINE_WEBHOOK_TIMEOUT_SECONDS": "2",
    "SHOTLINE_CAPTURE_MAX_ATTEMPTS": "1",
}
#: Where the page's price box sits, in CSS pixels (device scale 1: image pixels too).
PRICE_BOX = {"x": 100, "y": 150, "width": 200, "height": 60}
CLOCK_BOX = {"x": 500, "y": 40, "width": 260, "height": 50}


class ChangingPage:
    """A page whose price the test sets; its clock shows the time of each request."""

    def __init__(self) -> None:
        self.price = "$10"
        self.colour = "#e8f0ff"
        page = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                body = page.html().encode()
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/pricing"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def html(self) -> str:
        box = "position:absolute;left:{x}px;top:{y}px;width:{width}px;height:{height}px;"
        return (
            "<!doctype html><html><body style='margin:0;background:#fff;font:20px sans-serif'>"
            "<h1 style='position:absolute;left:100px;top:40px;margin:0'>Pricing</h1>"
            f"<div id='price' style='{box.format(**PRICE_BOX)}background:{self.colour}'>"
            f"{self.price} per month</div>"
            f"<div id='clock' style='{box.format(**CLOCK_BOX)}'>{time.time():.6f}</div>"
            "</body></html>")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def page() -> Iterator[ChangingPage]:
    served = ChangingPage()
    yield served
    served.close()


@pytest.fixture(scope="module")
def keys(module_env: dict[str, str]) -> tuple[NewKey, NewKey]:
    async def create() -> tuple[NewKey, NewKey]:
        client = create_redis(module_env["SHOTLINE_REDIS_URL"])
        try:
            store = KeyStore(client)
            return await store.create("alice"), await store.create("bob")
        finally:
            await client.aclose()

    return asyncio.run(create())


@pytest.fixture(scope="module")
def base(module_processes: ProcessFactory, keys: tuple[NewKey, NewKey]) -> str:
    base = module_processes.api(**ENV)
    module_processes.worker(**ENV)
    module_processes.webhook_worker(SHOTLINE_PUBLIC_BASE_URL=base, **ENV)
    return base


@pytest.fixture
def alice(keys: tuple[NewKey, NewKey]) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {keys[0].key}"}) as client:
        yield client


@pytest.fixture
def bob(keys: tuple[NewKey, NewKey]) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {keys[1].key}"}) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as hooks:
        yield hooks


def create(client: httpx.Client, base: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"{base}/v1/monitors", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def runs(client: httpx.Client, base: str, monitor_id: str) -> list[dict[str, Any]]:
    response = client.get(f"{base}/v1/monitors/{monitor_id}/runs", params={"limit": 100})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["runs"]
    return found


def wait_for_run(client: httpx.Client, base: str, monitor_id: str, run_id: str | None = None,
                 *, timeout: float = 90) -> dict[str, Any]:
    """The run ``run_id`` (default: the newest) once it has its outcome."""
    deadline = time.monotonic() + timeout
    while True:
        found = runs(client, base, monitor_id)
        for run in found:
            if (run_id is None or run["id"] == run_id) and run["status"] != "queued":
                return run
        assert time.monotonic() < deadline, f"run {run_id} not finished: {found}"
        time.sleep(0.2)


def run_now(client: httpx.Client, base: str, monitor_id: str) -> dict[str, Any]:
    response = client.post(f"{base}/v1/monitors/{monitor_id}/run")
    assert response.status_code == 202, response.text
    return wait_for_run(client, base, monitor_id, response.json()["id"])


def picture(client: httpx.Client, url: str) -> Image.Image:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content)).convert("RGB")


def test_a_changed_element_is_boxed_and_announced(
    base: str, alice: httpx.Client, page: ChangingPage, receiver: WebhookReceiver,
    keys: tuple[NewKey, NewKey],
) -> None:
    monitor = create(alice, base, capture={"url": page.url, "width": 800, "height": 400},
                     schedule={"interval_seconds": 3600}, mask_selectors=["#clock"],
                     webhook_url=receiver.url())
    first = wait_for_run(alice, base, monitor["id"])  # runs at once: the baseline
    assert first["status"] == "succeeded", first
    assert first["changed"] is None and first["diff_url"] is None

    # The clock ticks inside the masked region: no change, no webhook.
    same = run_now(alice, base, monitor["id"])
    assert same["status"] == "succeeded" and same["changed"] is False, same
    assert same["changed_ratio"] == 0 and same["regions"] == [] and same["diff_url"] is None
    assert same["baseline_run_id"] == first["id"]

    page.price, page.colour = "$12", "#ffe0e0"
    try:
        changed = run_now(alice, base, monitor["id"])
    finally:
        page.price, page.colour = "$10", "#e8f0ff"
    assert changed["status"] == "succeeded" and changed["changed"] is True, changed
    assert changed["regions"] == [PRICE_BOX]
    # The box's background changed; the unchanged letters in it ("$1", "per month") did not.
    assert 0.9 * 200 * 60 / (800 * 400) < changed["changed_ratio"] < 200 * 60 / (800 * 400)
    assert changed["baseline_run_id"] == same["id"]

    # The diff image: the new picture, the box outlined in red just outside the element.
    diff = picture(alice, changed["diff_url"])
    after = picture(alice, changed["picture_url"])
    assert diff.size == after.size == (800, 400)
    x, y, w, h = (PRICE_BOX[k] for k in ("x", "y", "width", "height"))
    for px, py in ((x - 1, y - 1), (x + w, y + h), (x + w // 2, y - OUTLINE), (x - OUTLINE, y + h // 2),
                   (x + w + OUTLINE - 1, y + h // 2), (x + w // 2, y + h + OUTLINE - 1)):
        assert diff.getpixel((px, py)) == HIGHLIGHT, (px, py)
    assert diff.getpixel((x + w // 2, y - OUTLINE - 1)) == after.getpixel((x + w // 2, y - OUTLINE - 1))
    inside = diff.getpixel((x + 2, y + 2))  # inside: tinted toward red
    new = after.getpixel((x + 2, y + 2))
    assert isinstance(inside, tuple) and isinstance(new, tuple)
    ar, ag, ab = new[:3]
    assert inside == ((ar + 255) // 2, ag // 2, ab // 2)
    # Outside the box, nothing is highlighted: the masked clock included.
    cx, cy = CLOCK_BOX["x"] + 10, CLOCK_BOX["y"] + 10
    assert diff.getpixel((cx, cy)) == after.getpixel((cx, cy))

    (request,) = receiver.wait_for(1)
    secret = keys[0].record.webhook_secret
    event = Webhook(secret).verify(request.body, request.headers)
    assert event["type"] == "monitor.changed"
    data = event["data"]
    assert data["monitor_id"] == monitor["id"] and data["run"]["id"] == changed["id"]
    assert data["changed"] is True and data["regions"] == [PRICE_BOX]
    assert data["before_url"] and data["after_url"] and data["diff_url"]
    assert picture(alice, data["before_url"]).getpixel((x + 2, y + 2)) != (ar, ag, ab)
    assert request.headers["webhook-id"] == f"msg_{changed['id']}_monitor_changed"
    time.sleep(1)
    assert len(receiver.received) == 1  # the unchanged run sent nothing

    # Deleting the monitor deletes its diff images; its runs' captures stay ordinary jobs.
    assert alice.delete(f"{base}/v1/monitors/{monitor['id']}").status_code == 204
    assert alice.get(changed["diff_url"]).status_code == 404
    assert alice.get(changed["picture_url"]).status_code == 200


def test_an_unmasked_clock_counts_as_a_change(base: str, alice: httpx.Client,
                                              page: ChangingPage) -> None:
    """The control of the masked case above: the clock really does tick."""
    monitor = create(alice, base, capture={"url": page.url, "width": 800, "height": 400},
                     schedule={"interval_seconds": 3600})
    assert wait_for_run(alice, base, monitor["id"])["status"] == "succeeded"
    second = run_now(alice, base, monitor["id"])
    assert second["changed"] is True, second
    assert second["regions"]
    for region in second["regions"]:  # the digits that changed, all inside the clock
        assert CLOCK_BOX["x"] <= region["x"]
        assert region["x"] + region["width"] <= CLOCK_BOX["x"] + CLOCK_BOX["width"]
        assert CLOCK_BOX["y"] <= region["y"]
        assert region["y"] + region["height"] <= CLOCK_BOX["y"] + CLOCK_BOX["height"]
    alice.delete(f"{base}/v1/monitors/{monitor['id']}")


def test_pause_stops_runs_and_resume_restarts_them(base: str, alice: httpx.Client,
                                                   page: ChangingPage) -> None:
    monitor = create(alice, base, capture={"url": page.url, "width": 400, "height": 300},
                     schedule={"interval_seconds": 2}, mask_selectors=["#clock"])
    deadline = time.monotonic() + 90
    while len([r for r in runs(alice, base, monitor["id"]) if r["status"] != "queued"]) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    paused = alice.post(f"{base}/v1/monitors/{monitor['id']}/pause")
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert paused.json()["next_run_at"] is None
    time.sleep(1)  # a run fired just before the pause may still be starting
    count = len(runs(alice, base, monitor["id"]))
    time.sleep(6)  # three intervals
    assert len(runs(alice, base, monitor["id"])) == count
    resumed = alice.post(f"{base}/v1/monitors/{monitor['id']}/resume")
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    deadline = time.monotonic() + 60
    while len(runs(alice, base, monitor["id"])) < count + 2:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert alice.delete(f"{base}/v1/monitors/{monitor['id']}").status_code == 204
    assert alice.get(f"{base}/v1/monitors/{monitor['id']}").status_code == 404


def test_failures_in_a_row_send_monitor_failed(
    base: str, alice: httpx.Client, receiver: WebhookReceiver, keys: tuple[NewKey, NewKey],
) -> None:
    dead = "http://127.0.0.1:9/gone"  # nothing listens on port 9
    monitor = create(alice, base, capture={"url": dead, "timeout_ms": 3000},
                     schedule={"interval_seconds": 3600}, webhook_url=receiver.url())
    first = wait_for_run(alice, base, monitor["id"])
    assert first["status"] == "failed" and first["error"]["code"], first
    assert not receiver.received  # one failure: under SHOTLINE_MONITOR_FAILURES_BEFORE_ALERT
    second = run_now(alice, base, monitor["id"])
    assert second["status"] == "failed"
    (request,) = receiver.wait_for(1)
    event = Webhook(keys[0].record.webhook_secret).verify(request.body, request.headers)
    assert event["type"] == "monitor.failed"
    assert event["data"]["consecutive_failures"] == 2 and event["data"]["error"]["code"]
    view = alice.get(f"{base}/v1/monitors/{monitor['id']}").json()
    assert view["baseline_run_id"] is None and view["consecutive_failures"] == 2
    alice.delete(f"{base}/v1/monitors/{monitor['id']}")


def field_error(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    return ",".join(d["field"] for d in body["details"])


def test_bad_input_is_422_naming_the_field(base: str, alice: httpx.Client) -> None:
    url = f"{base}/v1/monitors"
    capture = {"url": "http://127.0.0.1:9/"}
    cases = [
        ({"cron": "61 * * * *"}, "schedule.cron"),
        ({"cron": "every day"}, "schedule.cron"),
        ({"cron": "0 * * * *", "timezone": "Mars/Olympus"}, "schedule.timezone"),
        ({"interval_seconds": 1}, "schedule.interval_seconds"),  # the server's minimum is 2
        ({"interval_seconds": 0}, "schedule.interval_seconds"),
        ({}, "schedule"),
    ]
    for schedule, field in cases:
        response = alice.post(url, json={"capture": capture, "schedule": schedule})
        assert field in field_error(response), (schedule, response.text)
    assert "capture.format" in field_error(alice.post(url, json={
        "capture": {**capture, "format": "pdf"}, "schedule": {"interval_seconds": 60}}))
    assert "threshold" in field_error(alice.post(url, json={
        "capture": capture, "schedule": {"interval_seconds": 60}, "threshold": 2}))
    assert "notify_on" in field_error(alice.post(url, json={
        "capture": capture, "schedule": {"interval_seconds": 60}, "notify_on": "sometimes"}))
    blocked = alice.post(url, json={"capture": {"url": "http://10.0.0.1/"},
                                    "schedule": {"interval_seconds": 60}})
    assert blocked.status_code == 422 and blocked.json()["error"] == "url_blocked"
    assert "cursor" in field_error(alice.get(url, params={"cursor": "nope"}))


def test_keys_see_only_their_monitors_and_lists_page(base: str, alice: httpx.Client,
                                                    bob: httpx.Client) -> None:
    body = {"capture": {"url": "http://127.0.0.1:9/"},
            "schedule": {"cron": "0 0 1 1 *", "timezone": "Europe/Berlin"}}
    mine = [create(bob, base, **body, name=f"m{i}") for i in range(3)]
    assert mine[0]["next_run_at"].startswith(f"{time.gmtime().tm_year}-12-31T23:00:00")
    for path in ("", "/runs"):
        assert alice.get(f"{base}/v1/monitors/{mine[0]['id']}{path}").status_code == 404
    for action in ("pause", "resume", "run"):
        assert alice.post(f"{base}/v1/monitors/{mine[0]['id']}/{action}").status_code == 404
    assert alice.patch(f"{base}/v1/monitors/{mine[0]['id']}", json={"threshold": 0.5}
                       ).status_code == 404
    assert alice.delete(f"{base}/v1/monitors/{mine[0]['id']}").status_code == 404
    assert all(m["id"] not in {x["id"] for x in mine}
               for m in alice.get(f"{base}/v1/monitors").json()["monitors"])
    first = bob.get(f"{base}/v1/monitors", params={"limit": 2}).json()
    assert [m["id"] for m in first["monitors"]] == [m["id"] for m in mine[:2]]
    second = bob.get(f"{base}/v1/monitors", params={"limit": 2, "cursor": first["next_cursor"]})
    assert [m["id"] for m in second.json()["monitors"]] == [mine[2]["id"]]
    assert second.json()["next_cursor"] is None

    patched = bob.patch(f"{base}/v1/monitors/{mine[0]['id']}",
                        json={"threshold": 0.25, "schedule": {"interval_seconds": 3600}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["threshold"] == 0.25
    assert patched.json()["schedule"] == {"interval_seconds": 3600, "cron": None, "timezone": "UTC"}
    assert "schedule.interval_seconds" in field_error(bob.patch(
        f"{base}/v1/monitors/{mine[0]['id']}", json={"schedule": {"interval_seconds": 1}}))
    # The per-key limit (6 in this module): bob has 3.
    for i in range(3):
        create(bob, base, **body, name=f"extra{i}")
    assert "monitors" in field_error(bob.post(f"{base}/v1/monitors", json=body))
    for m in bob.get(f"{base}/v1/monitors", params={"limit": 100}).json()["monitors"]:
        assert bob.delete(f"{base}/v1/monitors/{m['id']}").status_code == 204
    assert json.loads(bob.get(f"{base}/v1/monitors").text)["monitors"] == []


@pytest.mark.timeout(300)  # a few CLI processes, slow to start on a busy machine
def test_sdk_and_cli(base: str, keys: tuple[NewKey, NewKey], page: ChangingPage,
                     module_env: dict[str, str]) -> None:
    import subprocess

    from shotline.client import Client
    from tests.servers import REPO_ROOT, child_env, python_command

    with Client(base, api_key=keys[1].key) as client:
        monitor = client.monitors.create(page.url, interval_seconds=3600, paused=True,
                                         mask_selectors=["#clock"], capture={"width": 600},
                                         name="sdk")
        assert monitor.paused and monitor.next_run_at is None and monitor.capture["width"] == 600
        assert [m.id for m in client.monitors.list().monitors] == [monitor.id]
        assert client.monitors.update(monitor.id, threshold=0.5).threshold == 0.5
        assert client.monitors.resume(monitor.id).next_run_at is not None
        assert client.monitors.pause(monitor.id).paused
        accepted = client.monitors.run(monitor.id)
        assert accepted.status == "queued"
        deadline = time.monotonic() + 90
        while (run := client.monitors.runs(monitor.id).runs[0]).status == "queued":
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert run.id == accepted.id and run.status == "succeeded" and run.picture_url

    env = child_env({"SHOTLINE_API_URL": base, "SHOTLINE_API_KEY": keys[1].key})

    def cli(*args: str) -> Any:
        done = subprocess.run(python_command("-m", "shotline.cli", "monitors", *args), env=env,
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    assert cli("get", monitor.id)["name"] == "sdk"
    assert [r["id"] for r in cli("runs", monitor.id)["runs"]] == [run.id]
    created = cli("create", page.url, "--cron", "0 6 * * 1", "--timezone", "Asia/Tokyo",
                  "--mask", "#clock", "--notify-on", "failure")
    assert created["schedule"]["cron"] == "0 6 * * 1" and created["mask_selectors"] == ["#clock"]
    assert cli("pause", created["id"])["paused"] is True
    assert cli("delete", created["id"]) is None
    refused = subprocess.run(python_command("-m", "shotline.cli", "monitors", "create", page.url,
                                            "--every", "1"),
                             env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "interval_seconds" in refused.stderr
    cli("delete", monitor.id)


def test_client_monitor_models_ask_for_nothing_the_api_does_not_send() -> None:
    """The client owns its models (it installs without the server): each field it reads is
    one the API's model has, and what it requires the API's model requires too."""
    from pydantic import BaseModel

    import shotline.monitors as client
    from shared.monitors import models as server

    pairs: list[tuple[type[BaseModel], type[BaseModel]]] = [
        (client.MonitorView, server.MonitorView), (client.MonitorList, server.MonitorList),
        (client.RunView, server.RunView), (client.RunList, server.RunList),
        (client.RunAccepted, server.RunAccepted), (client.Region, server.Region),
        (client.Schedule, server.Schedule)]
    for client_model, server_model in pairs:
        assert set(client_model.model_fields) <= set(server_model.model_fields), client_model
        required = {n for n, f in client_model.model_fields.items() if f.is_required()}
        assert required <= {n for n, f in server_model.model_fields.items() if f.is_required()}


@pytest.mark.timeout(300)
def test_console_monitors_page(base: str, keys: tuple[NewKey, NewKey], page: ChangingPage) -> None:
    """The console's Monitors page in real Chromium: create a monitor with a mask from the
    form, see it listed, its timeline show the first run's picture, then a changed run's diff
    once the page changes; pause from the page."""
    import os

    from playwright.sync_api import expect, sync_playwright

    from worker.engines.browser import find_chromium

    with sync_playwright() as playwright:
        root = os.geteuid() == 0
        browser = playwright.chromium.launch(
            executable_path=find_chromium(None, bundled=playwright.chromium.executable_path),
            args=["--no-sandbox"] if root else [], chromium_sandbox=not root)
        try:
            context = browser.new_context(base_url=base)
            tab = context.new_page()
            errors: list[str] = []
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            tab.goto("/monitors")
            tab.fill("#api-key", keys[1].key)
            tab.fill("#url", page.url)
            tab.fill("#mask", "#clock")
            tab.click("#create")
            row = tab.locator("#monitors li")
            expect(row).to_have_count(1, timeout=30_000)
            expect(row).to_contain_text(page.url)
            first = tab.locator("#timeline li[data-status=succeeded] img[alt=picture]")
            expect(first).to_have_count(1, timeout=90_000)
            page.price, page.colour = "$99", "#ffe0e0"
            try:
                tab.click("#run-now")
                expect(tab.locator("#timeline li.changed img[alt=diff]")).to_have_count(
                    1, timeout=90_000)
            finally:
                page.price, page.colour = "$10", "#e8f0ff"
            diff_src = tab.locator("#timeline li.changed img").get_attribute("src")
            assert diff_src is not None and ".diff.png" in diff_src
            tab.click("#toggle")
            expect(tab.locator("#monitors li .state")).to_have_text("paused", timeout=30_000)
            expect(tab.locator("#toggle")).to_have_text("Resume")
            assert errors == [], errors
            context.close()
        finally:
            browser.close()
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {keys[1].key}"}) as bob:
        for monitor in bob.get(f"{base}/v1/monitors").json()["monitors"]:
            bob.delete(f"{base}/v1/monitors/{monitor['id']}")


def test_a_nearly_blank_capture_never_becomes_the_baseline(
    base: str, alice: httpx.Client, page_server: PageServer,
) -> None:
    """A "Loading…" page is not one colour to the pixel, but the capture flags it blank
    (result.blank): the run fails and the baseline stays unset."""
    monitor = create(alice, base, capture={"url": page_server.url("/quality/blank.html")},
                     schedule={"interval_seconds": 3600})
    first = wait_for_run(alice, base, monitor["id"])
    assert first["status"] == "failed" and first["error"]["code"] == "blank", first
    view = alice.get(f"{base}/v1/monitors/{monitor['id']}").json()
    assert view["baseline_run_id"] is None
    alice.delete(f"{base}/v1/monitors/{monitor['id']}")


def test_runs_dropped_by_retention_take_their_pictures_and_jobs_with_them(
    base: str, alice: httpx.Client, page: ChangingPage,
) -> None:
    """``retention.keep_runs`` 1: each finished run drops the runs before the baseline, and
    with them their capture job (record and picture) and their diff image."""
    monitor = create(alice, base, capture={"url": page.url, "width": 400, "height": 300},
                     schedule={"interval_seconds": 3600}, mask_selectors=["#clock"],
                     retention={"keep_runs": 1})
    first = wait_for_run(alice, base, monitor["id"])
    page.price, page.colour = "$12", "#ffe0e0"
    try:
        changed = run_now(alice, base, monitor["id"])  # a diff image; the new baseline
    finally:
        page.price, page.colour = "$10", "#e8f0ff"
    assert first["status"] == "succeeded" and changed["changed"] is True, changed
    assert changed["diff_url"] and changed["picture_url"]
    for url in (changed["diff_url"], changed["picture_url"]):
        assert alice.get(url).status_code == 200
    third = run_now(alice, base, monitor["id"])  # back to $10: a change; drops the first run
    assert alice.get(f"{base}/v1/jobs/{first['job_id']}").status_code == 404
    assert alice.get(f"{base}/v1/jobs/{changed['job_id']}").status_code == 200

    fourth = run_now(alice, base, monitor["id"])  # drops the changed run and its files
    assert fourth["status"] == "succeeded", fourth
    assert [run["id"] for run in runs(alice, base, monitor["id"])] == [fourth["id"], third["id"]]
    assert alice.get(f"{base}/v1/jobs/{changed['job_id']}").status_code == 404
    for url in (changed["diff_url"], changed["picture_url"]):
        assert alice.get(url).status_code == 404, url
    assert alice.get(third["picture_url"]).status_code == 200  # the baseline stays
    alice.delete(f"{base}/v1/monitors/{monitor['id']}")
