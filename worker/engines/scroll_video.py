"""Scroll videos for the ``chromium`` engine: the page recorded while it scrolls smoothly
from the top to its end (or ``max_height``, or ``scroll_to_selector``), encoded with ffmpeg.

Frames come from Chromium's own screencast (CDP ``Page.startScreencast``): JPEG frames sent
as the compositor draws them, each acknowledged, written to a temporary directory as they
arrive (memory stays flat whatever the length). The scroll itself runs in the page on
``requestAnimationFrame`` with a time-based position, so lazy content loads as it would for
a reader. The recording is then laid out on a constant frame rate: frame *i* of *n* shows the
latest screencast frame at ``start + i / (n - 1)`` of the recorded span, so the first frame
is the top and the last the end whatever the machine's load, and the video lasts exactly
``duration_ms``. ffmpeg (a system binary: hand-written encoding is not an option) reads the
frames on its standard input and writes mp4 (H.264), webm (VP9) or gif (one palette).

Bounds: ``duration_ms`` ≤ 30 s, ``fps`` ≤ 30, frames ≤ 1920 x 1080 device pixels (all
checked on the request, :mod:`shared.scroll`), the capture's own ``timeout_ms`` for the
whole recording and encoding (ffmpeg is killed past it), and the engine's byte limit on the
result.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import structlog
from playwright.async_api import Page

from shared.errors import CaptureError, EngineError, SelectorNotFound
from shared.jobs import ImageFormat
from shared.scroll import END_HOLD_MS, ScrollOptions
from worker.engines.capture_run import CaptureRun
from worker.engines.page_ready import MAX_SCROLL_HEIGHT

log = structlog.get_logger("shotline.engines.scroll_video")

#: JPEG quality of the screencast frames (ffmpeg re-encodes them).
FRAME_QUALITY: Final = 85
#: Longest wait for the screencast's first frame, in seconds.
FIRST_FRAME_TIMEOUT_S: Final = 5.0

#: In the page: where the scroll ends (CSS px from the top): ``selector``'s top when given
#: (null when it matches nothing), else the end of the page, at most ``limit`` tall.
SCROLL_TARGET_JS: Final = """({limit, selector}) => {
  const height = Math.max(document.documentElement.scrollHeight,
                          document.body ? document.body.scrollHeight : 0);
  const bottom = Math.max(0, Math.min(height, limit) - innerHeight);
  if (selector === null) return bottom;
  const element = document.querySelector(selector);
  if (!element) return null;
  const top = element.getBoundingClientRect().top + window.scrollY;
  return Math.max(0, Math.min(top, bottom));
}"""

#: In the page: scroll smoothly to ``target`` within ``duration`` ms (and back to the top
#: with ``back``), eased in and out, the position a function of the time elapsed.
SMOOTH_SCROLL_JS: Final = """async ({target, duration, back}) => {
  const ease = t => t < 0.5 ? 2 * t * t : 1 - Math.pow(-2 * t + 2, 2) / 2;
  const position = t => back ? target * ease(t < 0.5 ? t * 2 : 2 - t * 2) : target * ease(t);
  window.scrollTo(0, 0);
  await new Promise(resolve => {
    const start = performance.now();
    const step = now => {
      const t = Math.min(1, (now - start) / duration);
      window.scrollTo(0, Math.round(position(t)));
      if (t < 1) requestAnimationFrame(step); else resolve();
    };
    requestAnimationFrame(step);
  });
  return window.scrollY;
}"""


class VideoEncoderMissing(CaptureError):
    """Raised when ffmpeg, which scroll videos are encoded with, is not installed."""

    code = "ffmpeg_missing"


@dataclass(slots=True)
class Video:
    """An encoded scroll video and its poster frame (the first frame, JPEG)."""

    data: bytes
    width: int
    height: int
    duration_ms: int
    poster: bytes


def find_ffmpeg(configured: str | None) -> str:
    """The ffmpeg binary: ``configured`` or the one on ``PATH``; :class:`VideoEncoderMissing`
    (``error.code`` ``ffmpeg_missing``, HTTP 503 on a synchronous capture) when absent."""
    path = shutil.which(configured or "ffmpeg")
    if path is None:
        raise VideoEncoderMissing(
            f"ffmpeg is not installed on this worker ({configured or 'ffmpeg'} not found):"
            " scroll videos (format mp4, webm, gif) need it; `make install` or the worker"
            " image installs it", status=503)
    return path


def effective_fps(fmt: ImageFormat, fps: int) -> float:
    """Frames per second as encoded: GIF frame delays are whole hundredths of a second."""
    if fmt is ImageFormat.gif:
        return 100 / max(2, round(100 / fps))
    return float(fps)


def frame_size(width: int, height: int, scale: float, fmt: ImageFormat) -> tuple[int, int]:
    """The video's size in device pixels (even for mp4 and webm, whose 4:2:0 chroma needs it)."""
    w, h = round(width * scale), round(height * scale)
    if fmt is ImageFormat.gif:
        return w, h
    return w - w % 2, h - h % 2


def ffmpeg_arguments(ffmpeg: str, fmt: ImageFormat, fps: float, size: tuple[int, int],
                     output: Path) -> list[str]:
    """The command encoding JPEG frames from standard input at ``fps`` into ``output``."""
    width, height = size
    scale = f"scale={width}:{height}:flags=bicubic"
    command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
               "-f", "image2pipe", "-framerate", f"{fps:g}", "-c:v", "mjpeg", "-i", "pipe:0",
               "-an"]
    if fmt is ImageFormat.mp4:
        command += ["-vf", f"{scale},format=yuv420p", "-c:v", "libx264", "-preset", "veryfast",
                    "-crf", "23", "-movflags", "+faststart"]
    elif fmt is ImageFormat.webm:
        command += ["-vf", f"{scale},format=yuv420p", "-c:v", "libvpx-vp9", "-deadline",
                    "realtime", "-cpu-used", "8", "-row-mt", "1", "-b:v", "0", "-crf", "36"]
    else:
        # One palette from every frame: stats_mode=diff left colours that appear at once
        # over the whole frame (a solid band scrolling in) out, and they came out wrong.
        command += ["-vf", f"{scale},split[a][b];[a]palettegen[p];"
                    "[b][p]paletteuse=dither=bayer:bayer_scale=4", "-loop", "0"]
    return [*command, str(output)]


@dataclass(slots=True)
class _Recording:
    """Screencast frames as they arrive: their arrival times and files."""

    directory: Path
    times: list[float] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    first: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, at: float, data: bytes) -> None:
        path = self.directory / f"frame-{len(self.paths):05d}.jpg"
        path.write_bytes(data)
        self.times.append(at)
        self.paths.append(path)
        self.first.set()

    def frame_at(self, at: float) -> Path:
        """The latest frame received at or before ``at`` (the first one before it)."""
        return self.paths[max(0, bisect.bisect_right(self.times, at) - 1)]


async def record_scroll_video(page: Page, run: CaptureRun, *, ffmpeg: str | None) -> Video:
    """Record ``page`` scrolling as ``run.options`` ask and encode it (see the module).

    Raises:
        VideoEncoderMissing: no ffmpeg.
        SelectorNotFound: ``scroll.scroll_to_selector`` matches nothing.
        EngineError: the screencast sent no frame, or ffmpeg failed.
    """
    options = run.options
    scroll = options.scroll or ScrollOptions()
    binary = find_ffmpeg(ffmpeg)
    run.stage = "measuring the scroll"
    target = await page.evaluate(SCROLL_TARGET_JS, {
        "limit": options.max_height or MAX_SCROLL_HEIGHT, "selector": scroll.scroll_to_selector})
    if target is None:
        raise SelectorNotFound(
            f"no element matched scroll.scroll_to_selector {scroll.scroll_to_selector!r}")
    size = frame_size(options.width, options.height, options.device_scale_factor, options.format)
    with tempfile.TemporaryDirectory(prefix="shotline-video-") as directory:
        recording = _Recording(Path(directory))
        start, end = await _record(page, run, recording, scroll, float(target), size)
        fps = effective_fps(options.format, scroll.fps)
        count = max(2, round(scroll.duration_ms / 1000 * fps))
        frames = [recording.frame_at(start + (end - start) * i / (count - 1))
                  for i in range(count)]
        run.stage = f"encoding the {options.format.value} video"
        output = Path(directory) / f"video.{options.format.value}"
        await encode(ffmpeg_arguments(binary, options.format, fps, size, output), frames)
        data = output.read_bytes()
        poster = frames[0].read_bytes()
    log.info("scroll video encoded", format=options.format.value, frames=count,
             screencast_frames=len(recording.paths), bytes=len(data),
             recorded_ms=round((end - start) * 1000))
    return Video(data=data, width=size[0], height=size[1],
                 duration_ms=round(count / fps * 1000), poster=poster)


async def _record(page: Page, run: CaptureRun, recording: _Recording, scroll: ScrollOptions,
                  target: float, size: tuple[int, int]) -> tuple[float, float]:
    """Screencast ``page`` while it shows its top, scrolls, then holds its end; returns the
    loop times the recording starts and ends at."""
    loop = asyncio.get_running_loop()
    cdp = await page.context.new_cdp_session(page)
    acks: set[asyncio.Future[Any]] = set()

    def on_frame(params: dict[str, Any]) -> None:
        recording.add(loop.time(), base64.b64decode(params["data"]))
        ack = asyncio.ensure_future(
            cdp.send("Page.screencastFrameAck", {"sessionId": params["sessionId"]}))
        acks.add(ack)
        ack.add_done_callback(_forget(acks))

    cdp.on("Page.screencastFrame", on_frame)
    try:
        run.stage = "starting the screencast"
        await cdp.send("Page.startScreencast", {
            "format": "jpeg", "quality": FRAME_QUALITY, "maxWidth": size[0],
            "maxHeight": size[1], "everyNthFrame": 1})
        try:
            await asyncio.wait_for(recording.first.wait(), FIRST_FRAME_TIMEOUT_S)
        except TimeoutError:
            raise EngineError("Chromium's screencast sent no frame") from None
        start = recording.times[0]
        run.stage = "recording the scroll video"
        await asyncio.sleep(scroll.start_delay_ms / 1000)
        scroll_ms = scroll.duration_ms - scroll.start_delay_ms - END_HOLD_MS
        await page.evaluate(SMOOTH_SCROLL_JS, {"target": target, "duration": scroll_ms,
                                               "back": scroll.scroll_back})
        # The end holds until the planned length (at least a few frames' worth).
        planned_end = start + scroll.duration_ms / 1000
        await asyncio.sleep(max(planned_end - loop.time(), 0.2))
        end = loop.time()
        await cdp.send("Page.stopScreencast")
    finally:
        with contextlib.suppress(Exception):
            await cdp.detach()
        for ack in list(acks):
            ack.cancel()
    return start, end


def _forget(pending: set[asyncio.Future[Any]]) -> Any:
    def done(future: asyncio.Future[Any]) -> None:
        pending.discard(future)
        if not future.cancelled():
            future.exception()  # an ack after the session ended: nothing to do

    return done


async def encode(command: list[str], frames: list[Path]) -> None:
    """Run ffmpeg on ``frames`` (fed on its standard input); killed when cancelled (the
    capture's deadline)."""
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    assert process.stdin is not None and process.stderr is not None
    errors = asyncio.ensure_future(process.stderr.read())
    try:
        previous: Path | None = None
        data = b""
        for frame in frames:
            if frame != previous:
                data, previous = frame.read_bytes(), frame
            process.stdin.write(data)
            await process.stdin.drain()
        process.stdin.close()
        returncode = await process.wait()
    except (BrokenPipeError, ConnectionResetError):
        returncode = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    stderr = (await errors).decode(errors="replace").strip()
    if returncode != 0:
        last = stderr.splitlines()[-1] if stderr else "no message"
        raise EngineError(f"ffmpeg failed to encode the video (exit {returncode}): {last}")
