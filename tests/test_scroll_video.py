"""Scroll videos (``format: mp4 | webm | gif``) end to end on real parts: the API under
uvicorn, a Celery worker with Chromium and the real ffmpeg, decoded again with ffprobe and
ffmpeg, their first and last frames checked pixel by pixel."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from shared.engine_capabilities import check_engine_supports
from shared.errors import OptionNotSupported
from shared.jobs import CaptureOptions, ImageFormat
from tests.conftest import ProcessFactory
from tests.polling import assert_error, submit, wait_for_job
from tests.servers import PageServer
from worker.engines.scroll_video import encode, ffmpeg_arguments, find_ffmpeg

RED, GREEN, BLUE = (220, 0, 0), (0, 160, 0), (0, 0, 220)


@pytest.fixture(scope="module")
def base(module_processes: ProcessFactory) -> str:
    module_processes.worker(concurrency=1)
    return module_processes.api()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as client:
        yield client


def probe(path: Path) -> dict[str, Any]:
    """ffprobe's view of a video file: its format and first video stream."""
    completed = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
         "-show_entries", "format=duration,format_name:stream=codec_name,width,height,"
         "nb_read_frames", "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=60)
    data: dict[str, Any] = json.loads(completed.stdout)
    return {**data["format"], **data["streams"][0]}


def frames(path: Path, directory: Path) -> list[Image.Image]:
    """Every frame of the video, decoded by ffmpeg."""
    directory.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), str(directory / "f%04d.png")],
                   check=True, timeout=120)
    return [Image.open(p).convert("RGB") for p in sorted(directory.glob("f*.png"))]


def close_to(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=False))


def share_of(image: Image.Image, colour: tuple[int, int, int]) -> float:
    """Share of the image's pixels (on a 16 px grid) close to ``colour``."""
    points = [(x, y) for x in range(0, image.width, 16) for y in range(0, image.height, 16)]
    return sum(close_to(image.getpixel(p), colour) for p in points) / len(points)  # type: ignore[arg-type]


def record(client: httpx.Client, base: str, page: str, tmp_path: Path, **fields: Any
           ) -> tuple[dict[str, Any], Path]:
    accepted = submit(client, base, url=page, **fields)
    job = wait_for_job(client, accepted["status_url"], timeout=120)
    assert job["status"] == "succeeded", job
    download = client.get(job["result"]["url"])
    assert download.status_code == 200
    path = tmp_path / f"video.{fields['format']}"
    path.write_bytes(download.content)
    return job, path


def test_mp4_scroll_video_of_a_tall_page_top_to_bottom(
    base: str, client: httpx.Client, page_server: PageServer, tmp_path: Path,
) -> None:
    job, path = record(client, base, page_server.url("/scroll.html"), tmp_path, format="mp4",
                       width=640, height=400, thumbnail_width=160,
                       scroll={"duration_ms": 4000, "fps": 10, "start_delay_ms": 500})
    result = job["result"]
    assert (result["content_type"], result["width"], result["height"], result["duration_ms"]) == (
        "video/mp4", 640, 400, 4000)
    info = probe(path)
    assert info["codec_name"] == "h264" and (info["width"], info["height"]) == (640, 400)
    assert abs(float(info["duration"]) - 4.0) <= 0.1
    assert int(info["nb_read_frames"]) == 40

    decoded = frames(path, tmp_path / "frames")
    assert len(decoded) == 40
    first, last = decoded[0], decoded[-1]
    assert share_of(first, RED) > 0.9, "the first frame shows the top of the page"
    assert share_of(last, BLUE) > 0.9, "the last frame shows the bottom of the page"
    # Smooth: the middle of the page passes by on the way down.
    assert any(share_of(frame, GREEN) > 0.5 for frame in decoded[5:35])

    poster = result["poster"]
    assert (poster["content_type"], poster["width"], poster["height"]) == ("image/jpeg", 160, 100)
    poster_path = tmp_path / "poster.jpeg"
    poster_path.write_bytes(client.get(poster["url"]).content)
    with Image.open(poster_path) as image:
        assert image.size == (160, 100) and share_of(image.convert("RGB"), RED) > 0.9

    # Deleting the job deletes the video and its poster.
    assert client.delete(f"{base}/v1/jobs/{job['id']}").status_code == 204
    assert client.get(result["url"]).status_code == 404
    assert client.get(poster["url"]).status_code == 404


@pytest.mark.parametrize(("fmt", "codec"), [("webm", "vp9"), ("gif", "gif")])
def test_webm_and_gif(fmt: str, codec: str, base: str, client: httpx.Client,
                      page_server: PageServer, tmp_path: Path) -> None:
    job, path = record(client, base, page_server.url("/scroll.html"), tmp_path, format=fmt,
                       width=320, height=200, scroll={"duration_ms": 2000, "fps": 10})
    assert job["result"]["content_type"] == ("video/webm" if fmt == "webm" else "image/gif")
    info = probe(path)
    assert info["codec_name"] == codec and (info["width"], info["height"]) == (320, 200)
    assert abs(float(info["duration"]) - 2.0) <= 0.1
    decoded = frames(path, tmp_path / "frames")
    assert share_of(decoded[0], RED) > 0.85 and share_of(decoded[-1], BLUE) > 0.85


def test_scroll_back_and_scroll_to_selector(base: str, client: httpx.Client,
                                            page_server: PageServer, tmp_path: Path) -> None:
    _job, path = record(client, base, page_server.url("/scroll.html"), tmp_path, format="mp4",
                        width=320, height=200,
                        scroll={"duration_ms": 3000, "fps": 10, "scroll_back": True})
    decoded = frames(path, tmp_path / "back")
    assert share_of(decoded[0], RED) > 0.9 and share_of(decoded[-1], RED) > 0.9
    assert any(share_of(frame, BLUE) > 0.9 for frame in decoded)

    _job, path = record(client, base, page_server.url("/scroll.html"), tmp_path, format="mp4",
                        width=320, height=200,
                        scroll={"duration_ms": 2000, "fps": 10, "scroll_to_selector": "#middle"})
    decoded = frames(path, tmp_path / "selector")
    # The element's top at the top of the frame (its white "MIDDLE" label covers a little).
    last = decoded[-1]
    assert share_of(last, GREEN) > 0.8 and share_of(last, RED) == share_of(last, BLUE) == 0


@pytest.mark.parametrize("fmt", [ImageFormat.mp4, ImageFormat.webm, ImageFormat.gif])
def test_the_encoder_keeps_every_frames_colours(fmt: ImageFormat, tmp_path: Path) -> None:
    """Frames of solid colours in, the same colours out at the same places (the GIF palette
    once lost a colour that filled whole frames)."""
    paths = []
    for index, colour in enumerate((RED, GREEN, BLUE)):
        path = tmp_path / f"{index}.jpg"
        Image.new("RGB", (320, 200), colour).save(path, "JPEG", quality=90)
        paths.append(path)
    sequence = [paths[0]] * 7 + [paths[1]] * 2 + [paths[2]] * 11
    output = tmp_path / f"out.{fmt.value}"
    asyncio.run(encode(ffmpeg_arguments(find_ffmpeg(None), fmt, 10.0, (320, 200), output),
                       sequence))
    assert abs(float(probe(output)["duration"]) - 2.0) <= 0.1
    decoded = frames(output, tmp_path / "frames")
    assert len(decoded) == 20
    expected = [RED] * 7 + [GREEN] * 2 + [BLUE] * 11
    for index, (frame, colour) in enumerate(zip(decoded, expected, strict=True)):
        assert share_of(frame, colour) > 0.95, (index, frame.getpixel((100, 100)))


def test_bad_video_requests_are_422_naming_the_field(base: str, client: httpx.Client) -> None:
    url = "http://127.0.0.1:9/page"
    for body, needle in (
        ({"format": "png", "scroll": {"fps": 10}}, "scroll applies to format mp4, webm or gif"),
        ({"format": "mp4", "full_page": True}, "full_page cannot be combined"),
        ({"format": "mp4", "width": 3840, "height": 2160}, "at most 2073600 device pixels"),
        ({"format": "gif", "scroll": {"fps": 60}}, "scroll.fps"),
        ({"format": "webm", "scroll": {"duration_ms": 31000}}, "scroll.duration_ms"),
        ({"format": "mp4", "scroll": {"duration_ms": 30000}}, "timeout_ms must be at least"),
        ({"format": "mp4", "scroll": {"speed": 3}}, "scroll.speed"),
    ):
        body = assert_error(client.post(f"{base}/v1/screenshots", json={"url": url, **body}),
                            422, "validation_error")
        assert needle in json.dumps(body), body


def test_snapapi_refuses_scroll_videos_with_option_not_supported(
    processes: ProcessFactory, client: httpx.Client,
) -> None:
    options = CaptureOptions(url="http://127.0.0.1:9/page", format="mp4")
    with pytest.raises(OptionNotSupported) as refused:
        check_engine_supports("snapapi", options)
    assert refused.value.fields == ["format", "scroll"]
    base = processes.api(SHOTLINE_ENGINE="snapapi", SHOTLINE_SNAPAPI_KEY="sk_test_unused")
    body = assert_error(client.post(f"{base}/v1/screenshots", json={
        "url": "http://127.0.0.1:9/page", "format": "webm"}), 422, "option_not_supported")
    assert {"format", "scroll"} <= {detail["field"] for detail in body["details"]}


def test_without_ffmpeg_the_job_fails_naming_it_and_sync_is_503(
    processes: ProcessFactory, client: httpx.Client, page_server: PageServer,
) -> None:
    env = {"SHOTLINE_FFMPEG_PATH": "/nonexistent/ffmpeg", "SHOTLINE_CAPTURE_MAX_ATTEMPTS": "1"}
    processes.worker(concurrency=1, **env)
    base = processes.api(**env)
    accepted = submit(client, base, url=page_server.url("/scroll.html"), format="mp4",
                      width=320, height=200)
    job = wait_for_job(client, accepted["status_url"], timeout=60)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "ffmpeg_missing" and "ffmpeg" in job["error"]["message"]
    sync = client.post(f"{base}/v1/screenshots/sync", json={
        "url": page_server.url("/scroll.html"), "format": "gif", "width": 320, "height": 200})
    body = assert_error(sync, 503, "ffmpeg_missing")
    assert "make install" in body["message"]
