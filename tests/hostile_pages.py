"""Pages that try to make the browser reach a canary, served from an allowed address.

Each page is a template with ``%CANARY%`` for the canary's ``host:port`` and ``%PORT%``
for its port. The server speaks HTTP/1.0 (one request per connection), so that every request of
a page opens a connection of its own and passes the egress gate again.
"""

from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.quiet_http import QuietHTTPServer

SUBRESOURCES = """<!doctype html><html><head><title>hostile</title>
<style>
  @font-face { font-family: canary; src: url(http://%CANARY%/font.woff2); }
  body { font-family: canary, sans-serif; background: #fff url(http://%CANARY%/background.png); }
</style>
<link rel="stylesheet" href="http://%CANARY%/style.css">
<link rel="preconnect" href="http://%CANARY%/">
<link rel="prefetch" href="http://%CANARY%/prefetch">
<link rel="icon" href="http://%CANARY%/favicon.ico">
<script src="http://%CANARY%/script.js"></script>
</head><body>
<h1>hostile page</h1>
<img src="http://%CANARY%/image.png">
<img src="http://2130706434:%PORT%/decimal.png">
<img src="http://0x7f.0.0.2:%PORT%/hex.png">
<img src="http://0177.0.0.02:%PORT%/octal.png">
<img src="http://127.2:%PORT%/short.png">
<img src="http://[::ffff:127.0.0.2]:%PORT%/mapped.png">
<img src="http://user@%CANARY%/userinfo.png">
<img srcset="http://%CANARY%/srcset.png 2x">
<iframe src="http://%CANARY%/frame.html"></iframe>
<video src="http://%CANARY%/video.mp4" autoplay muted></video>
<object data="http://%CANARY%/object.svg"></object>
<a ping="http://%CANARY%/ping" href="/allowed" target="sink" id="link">link</a>
<iframe name="sink"></iframe>
<script>
const C = "%CANARY%";  // used as ${C} in the script
const probe = (promise) => promise.then(() => "reached", () => "refused");
const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const probes = {
  fetch: probe(fetch(`http://${C}/fetch`)),
  post: probe(fetch(`http://${C}/post`, {method: "POST", body: "x"})),
  xhr: probe(new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("GET", `http://${C}/xhr`);
    xhr.onload = resolve; xhr.onerror = reject; xhr.send();
  })),
  websocket: probe(new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://${C}/socket`);
    socket.onopen = resolve; socket.onerror = reject;
  })),
  worker: probe(new Promise((resolve, reject) => {
    const code = `fetch("http://${C}/worker").then(() => postMessage(1), () => postMessage(0))`;
    const worker = new Worker(URL.createObjectURL(new Blob([code])));
    worker.onmessage = (event) => event.data ? resolve() : reject();
  })),
  webtransport: probe((async () => { await new WebTransport(`https://${C}/transport`).ready; })()),
  beacon: (async () => {
    navigator.sendBeacon(`http://${C}/beacon`, "x");
    await wait(300);
    return "sent";
  })(),
  webrtc: (async () => {
    const connection = new RTCPeerConnection({iceServers: [
      {urls: `stun:${C}`},
      {urls: `turn:${C}?transport=udp`, username: "u", credential: "p"},
      {urls: `turn:${C}?transport=tcp`, username: "u", credential: "p"},
    ]});
    connection.createDataChannel("x");
    await connection.setLocalDescription(await connection.createOffer());
    await wait(1500);
    connection.close();
    return "gathered";
  })(),
  popup: (async () => { window.open(`http://${C}/popup`); await wait(300); return "opened"; })(),
};
document.getElementById("link").click();
const allowed = fetch("/allowed").then((response) => response.text(), () => "refused");
Promise.all(Object.values(probes)).then(async (outcomes) => {
  const names = Object.keys(probes);
  const reached = names.filter((name, index) => outcomes[index] === "reached");
  document.title = `reached [${reached}] allowed ${await allowed}`;
  const done = document.createElement("div");
  done.id = "done";
  done.textContent = "done";
  document.body.append(done);
});
</script>
</body></html>"""

SCRIPT_LATER = """<!doctype html><html><head><title>first</title></head><body><h1>first</h1>
<script>
addEventListener("load", () => setTimeout(() => { location.href = "http://%CANARY%/later"; }, 200));
</script></body></html>"""

META_REFRESH = """<!doctype html><html><head><title>first</title>
<meta http-equiv="refresh" content="0;url=http://%CANARY%/meta"></head><body><h1>first</h1></body></html>"""

FORM_POST = """<!doctype html><html><head><title>first</title></head><body>
<form id="form" method="post" action="http://%CANARY%/form"><input name="a" value="b"></form>
<script>addEventListener("load", () => document.getElementById("form").submit());</script>
</body></html>"""

REBIND = """<!doctype html><html><head><title>rebind</title></head><body><h1>rebind</h1>
<img src="/image-again.png">
<script>
fetch("/data").then((response) => response.text(), () => "refused").then((text) => {
  document.title = `data ${text}`;
  const done = document.createElement("div");
  done.id = "done";
  done.textContent = "done";
  document.body.append(done);
});
</script></body></html>"""

LOCAL_SCHEME = """<!doctype html><html><head><title>first</title></head><body><h1>first</h1>
<script>
addEventListener("load", () => setTimeout(() => { location.href = "{TARGET}"; }, 100));
</script></body></html>"""

PERMISSIONS = """<!doctype html><html><head><title>asking</title></head><body>
<script>
const outcome = (promise) => promise.then((value) => `granted(${value})`, (error) => `denied(${error})`);
Promise.all([
  outcome(Notification.requestPermission().then((value) => {
    if (value !== "granted") throw value; return value;
  })),
  outcome(new Promise((resolve, reject) =>
    navigator.geolocation.getCurrentPosition(resolve, (error) => reject(error.code)))),
  outcome(navigator.mediaDevices.getUserMedia({video: true}).catch((error) => { throw error.name; })),
  outcome(navigator.clipboard.readText().catch((error) => { throw error.name; })),
]).then((outcomes) => {
  document.title = outcomes.join(" ");
  const done = document.createElement("div");
  done.id = "done";
  done.textContent = "done";
  document.body.append(done);
});
</script></body></html>"""

HEAP_HOG = """<!doctype html><html><head><title>hog</title></head><body><h1>hog</h1>
<script>
const kept = [];
(function grow() {
  for (let i = 0; i < 4; i++) kept.push(new Array(1 << 20).fill(kept.length + 0.5));
  setTimeout(grow, 0);
})();
</script></body></html>"""

BUFFER_HOG = """<!doctype html><html><head><title>hog</title></head><body><h1>hog</h1>
<script>
const kept = [];
let total = 0;
try {
  for (let i = 0; i < 64; i++) {
    kept.push(new Uint8Array(64 * 1024 * 1024).fill(1));
    total += 64;
  }
  document.title = `allocated ${total} MB`;
} catch (error) {
  document.title = `refused after ${total} MB: ${error.name}`;
}
</script></body></html>"""

ENDLESS = """<!doctype html><html><head><title>endless</title>
<style>html, body { margin: 0; } #endless { height: 200000px;
background: linear-gradient(rgb(255, 0, 0), rgb(0, 0, 255)); }</style></head>
<body><div id="endless"></div></body></html>"""

PAGES: dict[str, str] = {
    "/subresources": SUBRESOURCES,
    "/script-later": SCRIPT_LATER,
    "/meta-refresh": META_REFRESH,
    "/form-post": FORM_POST,
    "/rebind": REBIND,
    "/permissions": PERMISSIONS,
    "/heap-hog": HEAP_HOG,
    "/buffer-hog": BUFFER_HOG,
    "/endless": ENDLESS,
    "/allowed": "yes",
    "/data": "from the allowed address",
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server: HostilePages = self.server  # type: ignore[assignment]
        server.paths.append(self.path)
        path, _, query = self.path.partition("?")
        if path == "/redirect":
            self.send_response(302)
            self.send_header("Location", f"http://{server.canary}/redirected")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == "/local-scheme":
            body = LOCAL_SCHEME.replace("{TARGET}", query)
        elif path in PAGES:
            body = PAGES[path]
        elif path.endswith(".png"):
            body = ""
        else:
            self.send_error(404)
            return
        port = server.canary.rsplit(":", 1)[1]
        data = body.replace("%CANARY%", server.canary).replace("%PORT%", port)
        encoded = data.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(encoded)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(encoded)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HostilePages(QuietHTTPServer):
    """The hostile pages on ``127.0.0.1`` (an allowed address), aimed at ``canary``."""

    daemon_threads = True

    def __init__(self, canary: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.canary = canary
        self.port = int(self.server_address[1])
        self.paths: list[str] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def url(self, path: str, *, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> HostilePages:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
