"""Two customers' jobs back to back on one worker: nothing passes from one to the next.

A real API, a real ``shotline worker`` with one capture at a time (so both jobs run in the
same process, in the same browser, one after the other, the second in a context opened
ahead while the first ran) and Chromium. Customer A's page leaves everything a page can
leave behind on its origin: cookies (from a header and from script), localStorage,
sessionStorage, IndexedDB, Cache Storage, the HTTP cache, a service worker, a permission,
HTTP auth credentials. Customer B's job then loads a page of the same origin that looks
for each of them. A's own page runs the same probe after storing (the control: the probe
does see what is there).
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from shared.apikeys import KeyStore, NewKey
from shared.connections import create_redis
from tests.conftest import ProcessFactory
from tests.polling import wait_for_job

USER, PASSWORD = "customer-a", "a-secret-password"

PROBE_JS = """
async function probe() {
  const found = {};
  found.cookie = document.cookie || "-";
  found.local = localStorage.getItem("secret") || "-";
  found.session = sessionStorage.getItem("secret") || "-";
  found.idb = (await indexedDB.databases()).map(db => db.name).join("+") || "-";
  found.caches = (await caches.keys()).join("+") || "-";
  try {
    found.sw = String((await navigator.serviceWorker.getRegistrations()).length);
  } catch (error) { found.sw = "unavailable"; }
  found.geo = (await navigator.permissions.query({name: "geolocation"})).state;
  found.auth = String((await fetch("/protected")).status);
  return Object.entries(found).map(([key, value]) => `${key}=${value}`).join(";");
}
function finish(text) {
  document.title = text;
  const done = document.createElement("div");
  done.id = "done";
  done.textContent = "done";
  document.body.append(done);
}
"""

STORE = f"""<!doctype html><html><head><title>store</title>
<script src="/cached.js"></script></head><body><h1>customer A</h1><script>
{PROBE_JS}
(async () => {{
  document.cookie = "script_secret=A; max-age=3600; path=/";
  localStorage.setItem("secret", "A");
  sessionStorage.setItem("secret", "A");
  await new Promise((resolve, reject) => {{
    const request = indexedDB.open("secret-db", 1);
    request.onupgradeneeded = () => request.result.createObjectStore("s");
    request.onsuccess = () => {{
      const tx = request.result.transaction("s", "readwrite");
      tx.objectStore("s").put("A", "secret");
      tx.oncomplete = resolve;
    }};
    request.onerror = reject;
  }});
  await (await caches.open("secret-cache")).put("/secret", new Response("A"));
  await fetch("/cached.js");  // from the HTTP cache: the server sees one request of A's
  try {{ await navigator.serviceWorker.register("/sw.js"); }} catch (error) {{}}
  try {{ await new Promise((ok, ko) => navigator.geolocation.getCurrentPosition(ok, ko)); }}
  catch (error) {{}}
  finish(await probe());
}})();
</script></body></html>"""

PROBE = f"""<!doctype html><html><head><title>probe</title>
<script src="/cached.js"></script></head><body><h1>customer B</h1>
<script>{PROBE_JS}
probe().then(finish, error => finish(`probe failed: ${{error}}`));
</script></body></html>"""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server: SecretsSite = self.server  # type: ignore[assignment]
        server.requests.append(self.path)
        headers: dict[str, str] = {"Content-Type": "text/html; charset=utf-8"}
        status, body = 200, ""
        if self.path == "/store":
            body = STORE
            headers["Set-Cookie"] = "header_secret=A; Max-Age=3600; Path=/; HttpOnly"
        elif self.path == "/probe":
            body = PROBE
        elif self.path == "/cached.js":
            body, headers["Content-Type"] = "/* cacheable */", "text/javascript"
            headers["Cache-Control"] = "public, max-age=3600"
        elif self.path == "/sw.js":
            body, headers["Content-Type"] = "self.onfetch = () => {};", "text/javascript"
        elif self.path == "/protected":
            expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if self.headers.get("Authorization") == expected:
                body = "the protected data"
            else:
                status, body = 401, "who are you?"
                headers["WWW-Authenticate"] = 'Basic realm="customer A"'
        else:
            status, body = 404, "not found"
        data = body.encode()
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class SecretsSite(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[str] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


@pytest.fixture
def site() -> Iterator[SecretsSite]:
    server = SecretsSite()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def new_key(redis_url: str, name: str) -> NewKey:
    async def create() -> NewKey:
        client = create_redis(redis_url)
        try:
            return await KeyStore(client).create(name)
        finally:
            await client.aclose()

    return asyncio.run(create())


def run_job(base: str, key: NewKey, **body: Any) -> dict[str, Any]:
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key.key}"}) as client:
        response = client.post(f"{base}/v1/screenshots", json=body)
        assert response.status_code == 202, response.text
        record = wait_for_job(client, response.json()["status_url"], timeout=90)
    assert record["status"] == "succeeded", record.get("error")
    return record


def fields(title: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in title.split(";"))


def test_nothing_passes_between_two_customers_jobs_on_one_worker(
    processes: ProcessFactory, shotline_env: dict[str, str], site: SecretsSite
) -> None:
    processes.cli_worker(SHOTLINE_ENGINE="chromium", SHOTLINE_WORKER_CONCURRENCY="1",
                         SHOTLINE_CAPTURE_MAX_ATTEMPTS="1")
    base = processes.api(SHOTLINE_ENGINE="chromium")
    key_a = new_key(shotline_env["SHOTLINE_REDIS_URL"], "customer A")
    key_b = new_key(shotline_env["SHOTLINE_REDIS_URL"], "customer B")

    stored = run_job(base, key_a, url=site.url("/store"), wait_for_selector="#done")
    assert site.requests.count("/cached.js") == 1, site.requests  # the second load: cached
    # HTTP auth in a job of its own (Playwright turns the HTTP cache off for such contexts).
    authed = run_job(base, key_a, url=site.url("/probe"), wait_for_selector="#done",
                     http_auth={"username": USER, "password": PASSWORD})
    probed = run_job(base, key_b, url=site.url("/probe"), wait_for_selector="#done")

    # The controls: in A's own contexts, the probe sees what A left and A's credentials.
    left = fields(stored["result"]["title"])
    assert "script_secret=A" in left["cookie"], left
    assert left["local"] == "A" and left["session"] == "A", left
    assert left["idb"] == "secret-db" and left["caches"] == "secret-cache", left
    assert fields(authed["result"]["title"])["auth"] == "200"
    # B, next on the same worker and browser, same origin: nothing of A's.
    seen = fields(probed["result"]["title"])
    assert seen == {
        "cookie": "-", "local": "-", "session": "-", "idb": "-", "caches": "-",
        "sw": seen["sw"], "geo": seen["geo"], "auth": "401",
    }, seen
    assert seen["sw"] in ("0", "unavailable"), seen
    # Permissions are never granted, to anyone: A's request was denied and B sees no grant.
    assert left["geo"] != "granted" and seen["geo"] != "granted", (left, seen)
    # The HTTP cache: A's job and A's second job each fetched /cached.js once; B's page
    # asked the server again, having no cache of A's.
    assert site.requests.count("/cached.js") == 3, site.requests
    assert "/sw.js" not in site.requests  # service workers are blocked in every context
