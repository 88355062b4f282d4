"""HTML and Markdown inputs, metadata and content outputs end to end over HTTP, on real
parts: API and Celery worker processes, Redis, Chromium, local storage (signed links) and
S3 (moto over HTTP), the SnapAPI stand-in, and the CLI."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from shared.inputs import DEFAULT_MAX_HTML_BYTES, REQUEST_MARGIN_BYTES, request_body_limit
from shared.settings import Settings
from shotline.client import Client
from shotline.webhooks import generate_secret, verify
from tests.conftest import ProcessFactory
from tests.fakes.snapapi_server import SnapApiStandIn
from tests.polling import assert_error, submit, wait_for_job
from tests.servers import REPO_ROOT, PageServer, child_env, python_command
from tests.test_documents import SOCIAL_CARD
from tests.test_e2e_backends import AWS_ENV
from tests.webhook_receiver import WebhookReceiver
from worker.engines.markdown_page import render_markdown

#: The module's API takes html up to this many bytes (its body limit follows).
MAX_HTML = 1_500_000

WEBHOOK_SECRET = generate_secret()

ARTICLE_PARAGRAPH = "so that sailors can tell one tower from another in daylight"


@pytest.fixture(scope="module")
def base(module_processes: ProcessFactory) -> str:
    """A worker and an API with the result cache on (documents are each test's own)."""
    env = {"SHOTLINE_CACHE_TTL_SECONDS": "3600", "SHOTLINE_CAPTURE_MAX_ATTEMPTS": "1",
           "SHOTLINE_WEBHOOK_SECRET": WEBHOOK_SECRET}
    module_processes.worker(**env)
    base = module_processes.api(SHOTLINE_MAX_HTML_BYTES=str(MAX_HTML), **env)
    module_processes.webhook_worker(SHOTLINE_PUBLIC_BASE_URL=base, **env)
    return base


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def _card(marker: str) -> str:
    return SOCIAL_CARD.replace("Launch week", f"Launch week {marker}")


def test_an_html_card_with_metadata_and_content(base: str, client: httpx.Client) -> None:
    html = _card("e2e-card").replace("<html>", '<html lang="fr">')
    accepted = submit(client, base, html=html, width=1200, height=630, metadata=True,
                      content=["html", "text"])
    job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert (result["content_type"], result["width"], result["height"]) == ("image/png", 1200, 630)
    with Image.open(io.BytesIO(client.get(result["url"]).content)) as image:
        assert image.convert("RGB").getpixel((160, 120)) == (0xF5, 0x9E, 0x0B)

    # The job shows the document's digest and size, never the document.
    data = html.encode()
    assert job["document"] == {"kind": "html", "sha256": hashlib.sha256(data).hexdigest(),
                               "bytes": len(data), "base_url": None}
    assert job["options"]["html"] is None and job["options"]["url"] is None
    assert "e2e-card" not in json.dumps(job)

    assert result["metadata"]["lang"] == "fr"
    assert result["metadata"]["scroll_width"] == 1200
    assert set(result["content"]) == {"html", "text"}
    page = client.get(result["content"]["html"]["url"])
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"].startswith("sandbox")  # never runs here
    assert "Launch week e2e-card" in page.text and len(page.content) == \
        result["content"]["html"]["bytes"]
    text = client.get(result["content"]["text"]["url"])
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert text.text == "Launch week e2e-card\n"
    assert result["content"]["text"]["content_type"] == "text/plain; charset=utf-8"


def test_the_webhook_carries_the_document_summary_metadata_and_content(
    base: str, client: httpx.Client
) -> None:
    html = _card("webhook").replace("<head>", "<head><title>Hooked card</title>")
    with WebhookReceiver() as receiver:
        accepted = submit(client, base, html=html, width=400, height=300, metadata=True,
                          content=["text"], webhook_url=receiver.url("/hooks"))
        assert wait_for_job(client, accepted["status_url"])["status"] == "succeeded"
        (request,) = receiver.wait_for(1)
    event = verify(request.body, request.headers, WEBHOOK_SECRET)
    data = event["data"]
    assert event["type"] == "job.succeeded" and data["id"] == accepted["id"]
    assert data["document"]["sha256"] == hashlib.sha256(html.encode()).hexdigest()
    assert b"Launch week webhook" not in request.body        # the document is never sent
    assert data["result"]["metadata"]["title"] == "Hooked card"
    text = client.get(data["result"]["content"]["text"]["url"])
    assert text.status_code == 200 and text.text == "Launch week webhook\n"


def test_the_python_client_submits_documents(base: str) -> None:
    with Client(base) as shotline:
        shot = shotline.capture(markdown="# From the SDK\n\nhello", width=500, height=300,
                                metadata=True, content=["markdown"])
        assert shot.job.document is not None and shot.job.document.kind == "markdown"
        assert shot.job.result is not None and shot.job.result.metadata is not None
        assert shot.job.result.metadata.title == "From the SDK"
        assert shot.job.result.content["markdown"].content_type.startswith(
            "text/markdown")
        with Image.open(io.BytesIO(shot.content)) as image:
            assert image.size == (500, 300)


def test_openapi_shows_an_example_of_each_input_and_output(base: str,
                                                           client: httpx.Client) -> None:
    schema = client.get(f"{base}/openapi.json").json()["components"]["schemas"]
    examples = schema["ScreenshotRequest"]["examples"]
    for field in ("url", "html", "base_url", "markdown", "metadata", "content"):
        assert any(field in example for example in examples), field
    assert any(example.get("format") == "markdown" for example in examples)
    assert {"document"} <= set(schema["JobView"]["properties"])
    assert {"metadata", "content"} <= set(schema["ResultView"]["properties"])


def test_a_document_with_a_base_url_shows_in_the_job_and_the_list(
    base: str, client: httpx.Client, page_server: PageServer
) -> None:
    html = '<body style="margin:0"><img src="color.png?rgb=0000ff&w=200&h=100"></body>'
    accepted = submit(client, base, html=html, base_url=page_server.url("/"), width=300,
                      height=200, cache_ttl=0)
    job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "succeeded", job
    assert job["document"]["base_url"] == page_server.url("/")
    assert job["options"]["base_url"] is None and job["options"]["html"] is None
    with Image.open(io.BytesIO(client.get(job["result"]["url"]).content)) as image:
        assert image.convert("RGB").getpixel((100, 50)) == (0, 0, 255)
    listed = client.get(f"{base}/v1/jobs", params={"limit": 100})
    assert listed.status_code == 200, listed.text
    assert job["id"] in {item["id"] for item in listed.json()["jobs"]}


def test_markdown_as_pdf(base: str, client: httpx.Client) -> None:
    accepted = submit(client, base, markdown="# Invoice 4711\n\n| item | eur |\n|---|---|\n| a | 1 |",
                      format="pdf")
    job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "succeeded", job
    assert job["document"]["kind"] == "markdown"
    assert client.get(job["result"]["url"]).content.startswith(b"%PDF-")


def test_format_markdown_returns_the_article_without_chrome(
    base: str, client: httpx.Client, page_server: PageServer
) -> None:
    accepted = submit(client, base, url=page_server.url("/article.html"), format="markdown",
                      content=["text"], cache_ttl=0)
    job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["content_type"] == "text/markdown; charset=utf-8"
    assert result["width"] is None and result["height"] is None
    markdown = client.get(result["url"])
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert hashlib.sha256(markdown.content).hexdigest() == result["sha256"]
    assert markdown.text.startswith("# Why lighthouses are painted in stripes")
    assert ARTICLE_PARAGRAPH in markdown.text and "chrome" not in markdown.text
    assert set(result["content"]) == {"text"}  # the format's own output is the result
    text = client.get(result["content"]["text"]["url"]).text
    assert ARTICLE_PARAGRAPH in text and "chrome" not in text


def test_the_cache_key_covers_the_documents_digest(base: str, client: httpx.Client) -> None:
    first = submit(client, base, html=_card("cache-a"), width=300, height=200)
    assert wait_for_job(client, first["status_url"])["status"] == "succeeded"
    again = client.post(f"{base}/v1/screenshots", json={"html": _card("cache-a"),
                                                        "width": 300, "height": 200})
    assert again.status_code == 200 and again.json()["cached"] is True
    other = client.post(f"{base}/v1/screenshots", json={"html": _card("cache-b"),
                                                        "width": 300, "height": 200})
    assert other.status_code == 202 and other.json()["cached"] is False
    assert wait_for_job(client, other.json()["status_url"])["status"] == "succeeded"


def test_a_document_navigating_to_a_refused_address_fails_url_blocked(
    base: str, client: httpx.Client
) -> None:
    accepted = submit(client, base, delay_ms=2000,
                      html='<script>location.href = "http://169.254.169.254/latest/"</script>')
    job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "url_blocked"
    assert "169.254.169.254" in job["error"]["message"]


def test_html_of_more_than_a_megabyte_end_to_end(base: str, client: httpx.Client) -> None:
    paragraph = "<p>" + "big document " * 80 + "</p>\n"
    html = "<title>big</title>" + paragraph * (1_200_000 // len(paragraph))
    assert 1_100_000 < len(html) < MAX_HTML
    accepted = submit(client, base, html=html, format="text", cache_ttl=0)
    job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "succeeded", job
    assert job["document"]["bytes"] == len(html)


@pytest.mark.parametrize(("body", "status", "code", "words"), [
    ({}, 422, "validation_error", ["url", "html", "markdown", "got none"]),
    ({"url": "https://example.com", "html": "<p>x</p>"}, 422, "validation_error",
     ["url", "html", "got url and html"]),
    ({"html": "<p>x</p>", "markdown": "x"}, 422, "validation_error", ["got html and markdown"]),
    ({"html": "x" * (MAX_HTML + 1)}, 413, "payload_too_large",
     [f"{MAX_HTML} bytes", "SHOTLINE_MAX_HTML_BYTES"]),
    ({"markdown": "x" * 1_000_001}, 422, "validation_error", ["markdown", "1000000 bytes"]),
    ({"html": "<p>\ud800</p>"}, 422, "validation_error", ["html", "UTF-8"]),
    ({"url": "https://example.com", "base_url": "https://example.com/"}, 422,
     "validation_error", ["base_url applies to html and markdown only"]),
    ({"html": "<p>x</p>", "base_url": "http://169.254.169.254/"}, 422, "url_blocked",
     ["base_url", "link-local"]),
    ({"html": "<p>x</p>", "content": ["text", "text"]}, 422, "validation_error", ["twice"]),
    ({"html": "<p>x</p>", "cookies": [{"name": "a", "value": "b"}]}, 422, "validation_error",
     ["base_url"]),
], ids=["neither", "url-and-html", "html-and-markdown", "html-too-large", "markdown-too-large",
        "lone-surrogate", "base-url-with-url", "base-url-blocked", "content-twice",
        "cookie-without-address"])
def test_bad_input(base: str, client: httpx.Client, body: dict[str, Any], status: int,
                   code: str, words: list[str]) -> None:
    response = client.post(f"{base}/v1/screenshots",
                           content=json.dumps(body).encode(),  # \ud800 kept escaped
                           headers={"Content-Type": "application/json"})
    error = assert_error(response, status, code)
    for word in words:
        assert word in error["message"], error
    if code == "url_blocked" or status == 413:
        assert error["details"][0]["field"] in ("base_url", "html")


def test_invalid_utf8_bytes_are_refused(base: str, client: httpx.Client) -> None:
    response = client.post(f"{base}/v1/screenshots", content=b'{"html": "<p>\xff\xfe</p>"}',
                           headers={"Content-Type": "application/json"})
    assert_error(response, 422, "validation_error")


def test_the_default_limits() -> None:
    settings = Settings(_env_file=None)
    assert settings.max_html_bytes == DEFAULT_MAX_HTML_BYTES == 5_000_000
    assert request_body_limit(settings) == 5_000_000 + REQUEST_MARGIN_BYTES


def test_content_outputs_on_s3(
    processes: ProcessFactory, client: httpx.Client, page_server: PageServer,
    moto_endpoint: str, s3_admin: Any,
) -> None:
    s3_admin.create_bucket(Bucket="shotline-content")
    env = {"SHOTLINE_STORAGE": "s3", "SHOTLINE_S3_BUCKET": "shotline-content",
           "SHOTLINE_S3_ENDPOINT_URL": moto_endpoint, "SHOTLINE_S3_REGION": "us-east-1",
           **AWS_ENV}
    processes.worker(**env)
    base = processes.api(**env)
    accepted = submit(client, base, url=page_server.url("/article.html"), width=640, height=480,
                      content=["markdown", "html"], metadata=True)
    job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "succeeded", job
    content = job["result"]["content"]
    for kind, content_type in (("markdown", "text/markdown; charset=utf-8"),
                               ("html", "text/html; charset=utf-8")):
        url = content[kind]["url"]
        assert url.startswith(moto_endpoint) and "X-Amz-Signature=" in url
        key = f"results/{job['id']}.content.{'md' if kind == 'markdown' else 'html'}"
        stored = s3_admin.get_object(Bucket="shotline-content", Key=key)
        assert stored["ContentType"] == content_type
        assert client.get(url).content == stored["Body"].read()
    markdown = client.get(content["markdown"]["url"]).text
    assert ARTICLE_PARAGRAPH in markdown and "chrome" not in markdown
    assert job["result"]["metadata"]["title"] == "Why lighthouses are painted in stripes"
    assert job["result"]["metadata"]["http_status"] == 200


@pytest.fixture
def snapapi() -> Iterator[SnapApiStandIn]:
    with SnapApiStandIn(api_key="sk_test_shotline") as snap:
        yield snap


def test_snapapi_renders_documents_and_refuses_what_it_cannot(
    processes: ProcessFactory, client: httpx.Client, snapapi: SnapApiStandIn
) -> None:
    env = {"SHOTLINE_ENGINE": "snapapi", "SHOTLINE_SNAPAPI_KEY": "sk_test_shotline",
           "SHOTLINE_SNAPAPI_BASE_URL": snapapi.base_url}
    processes.worker(**env)
    base = processes.api(**env)
    markdown = "# Hello\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    for body in ({"html": "<h1>snap</h1>", "width": 500, "height": 300},
                 {"markdown": markdown, "width": 500, "height": 300}):
        job = wait_for_job(client, submit(client, base, **body)["status_url"])
        assert job["status"] == "succeeded", job
    html_call, markdown_call = snapapi.requests
    assert html_call.json["html"] == "<h1>snap</h1>" and "url" not in html_call.json
    # Markdown travels as Shotline's own page, so both engines draw it alike.
    assert markdown_call.json["html"] == render_markdown(markdown)
    assert "markdown" not in markdown_call.json

    refused: list[tuple[dict[str, Any], list[str]]] = [
        ({"html": "<p>x</p>", "metadata": True}, ["metadata"]),
        ({"html": "<p>x</p>", "base_url": "http://127.0.0.1:9/"}, ["base_url"]),
        ({"url": "http://127.0.0.1:9/", "content": ["text"]}, ["content"]),
        ({"url": "http://127.0.0.1:9/", "format": "markdown"}, ["format"]),
    ]
    for body, fields in refused:
        error = assert_error(client.post(f"{base}/v1/screenshots", json=body), 422,
                             "option_not_supported")
        assert [detail["field"] for detail in error["details"]] == fields


def test_cli_capture_html_file(tmp_path: Path) -> None:
    source = tmp_path / "card.html"
    source.write_text(SOCIAL_CARD, encoding="utf-8")
    output = tmp_path / "card.png"
    completed = subprocess.run(
        python_command("-m", "shotline.cli", "capture", "--html", str(source), "-o", str(output),
                       "--width", "1200", "--height", "630"),
        env=child_env({}), cwd=REPO_ROOT, capture_output=True, timeout=90,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    with Image.open(output) as image:
        assert image.size == (1200, 630)
        assert image.convert("RGB").getpixel((160, 120)) == (0xF5, 0x9E, 0x0B)
    both = subprocess.run(
        python_command("-m", "shotline.cli", "capture", "https://example.com", "--html",
                       str(source), "-o", str(output)),
        env=child_env({}), cwd=REPO_ROOT, capture_output=True, timeout=60,
    )
    assert both.returncode == 2 and b"exactly one of URL, --html FILE" in both.stderr


def test_cli_submit_html_file(base: str, tmp_path: Path) -> None:
    source = tmp_path / "doc.md"
    source.write_text("# From the CLI\n\nsubmitted as a file", encoding="utf-8")
    output = tmp_path / "doc.png"
    completed = subprocess.run(
        python_command("-m", "shotline.cli", "submit", "--markdown", str(source), "--api", base,
                       "--json",
                       "-o", str(output), "--width", "600", "--height", "400"),
        env=child_env({}), cwd=REPO_ROOT, capture_output=True, timeout=90,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    job = json.loads(completed.stdout)
    assert job["document"]["kind"] == "markdown" and job["status"] == "succeeded"
    with Image.open(output) as image:
        assert image.size == (600, 400)


@pytest.mark.parametrize("body", [
    {"html": "<p>x</p>", "base_url": "https://example.com/",
     "http_auth": {"username": "u", "password": "p"}, "cookies": [{"name": "a", "value": "b"}]},
    {"markdown": "# x", "base_url": "https://example.com/docs/"},
    {"html": "<p>x</p>", "metadata": True, "content": ["text"]},
])
def test_job_views_of_documents_validate_again(tmp_path: Path, body: dict[str, Any]) -> None:
    """What FastAPI's response model and the Python client do with every view: validate it."""
    from shared.job_view import JobView, render_job
    from shared.jobs import Job, JobStatus, ScreenshotRequest, utcnow
    from shared.storage.local import LocalStorage
    from shotline import models as client_models

    options = ScreenshotRequest.model_validate(body).capture_options()
    job = Job(id="j1", status=JobStatus.queued, created_at=utcnow(), options=options)
    view = render_job(job, LocalStorage(tmp_path, "http://x", b"k"), url_ttl_seconds=60)
    served = view.model_dump(mode="json")
    assert JobView.model_validate(served).model_dump(mode="json") == served
    assert client_models.JobView.model_validate(served).document is not None
    assert served["document"]["base_url"] == body.get("base_url")
    assert "<p>x</p>" not in json.dumps(served)
