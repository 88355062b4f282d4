"""What the test reads inside containers and in pictures: Chromium's processes and sandbox
state from /proc, and whether emoji and CJK text were drawn as glyphs."""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image, ImageChops

from scripts.docker_test.console import Shell, StepFailed

#: Run with the worker image's python inside a worker container (as its user, 10001): every
#: Chromium process with its type, uids, seccomp mode and namespaces, as JSON.
CHROMIUM_PROCESSES = r"""
import json, os
def ns(pid, kind):
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None
found = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        with open(f"/proc/{pid}/status") as f:
            status = {k: v.split() for k, _, v in (line.partition(":") for line in f)}
    except OSError:
        continue
    program = os.path.basename(command.split(" ", 1)[0]).lower()
    if "chrom" not in program and "headless_shell" not in program:
        continue
    kind = "browser"
    for word in command.split():
        if word.startswith("--type="):
            kind = word.split("=", 1)[1]
            break
    found.append({"pid": int(pid), "program": program, "type": kind, "uid": status.get("Uid"),
                  "seccomp": (status.get("Seccomp") or [None])[0], "nspid": status.get("NSpid"),
                  "user_ns": ns(pid, "user"), "pid_ns": ns(pid, "pid"),
                  "no_sandbox": "--no-sandbox" in command.split()})
print(json.dumps(found))
"""


def chromium_processes(shell: Shell, container: str) -> list[dict[str, Any]]:
    """The Chromium processes running in ``container`` (see CHROMIUM_PROCESSES)."""
    completed = shell.run(["docker", "exec", container, "python", "-c", CHROMIUM_PROCESSES],
                          quiet=True, timeout=60)
    try:
        processes: list[dict[str, Any]] = json.loads(completed.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as error:
        raise StepFailed(f"the process probe printed {completed.stdout!r}") from error
    return processes


def sandbox_problems(processes: list[dict[str, Any]]) -> list[str]:
    """What is wrong with the sandbox of these processes (empty: every renderer is sandboxed).

    A sandboxed renderer runs as the worker's user under Chromium's seccomp-bpf filter
    (Seccomp 2: the container itself runs without Docker's filter), in a user and a PID
    namespace of its own (not the browser's), and the browser was not told --no-sandbox.
    """
    browsers = [p for p in processes if p["type"] == "browser"]
    renderers = [p for p in processes if p["type"] == "renderer"]
    problems = []
    if not browsers or not renderers:
        return [f"no browser with renderers among {processes}"]
    browser = browsers[0]
    for process in processes:
        if process["uid"] and set(process["uid"]) != {"10001"}:
            problems.append(f"{process['type']} {process['pid']} runs as uid {process['uid']}")
        if process["no_sandbox"]:
            problems.append(f"{process['type']} {process['pid']} was started with --no-sandbox")
    for renderer in renderers:
        name = f"renderer {renderer['pid']}"
        if renderer["seccomp"] != "2":
            problems.append(f"{name}: Seccomp {renderer['seccomp']}, not 2 (filter)")
        if len(renderer["nspid"] or []) <= len(browser["nspid"] or []):
            problems.append(f"{name}: NSpid {renderer['nspid']} shows no PID namespace of its own")
        if renderer["pid_ns"] is not None and renderer["pid_ns"] == browser["pid_ns"]:
            problems.append(f"{name}: in the browser's PID namespace {renderer['pid_ns']}")
        if renderer["user_ns"] is None or renderer["user_ns"] == browser["user_ns"]:
            problems.append(f"{name}: user namespace {renderer['user_ns']}, browser's is "
                            f"{browser['user_ns']}")
    return problems


# --- Pictures (the measures of tests/test_fidelity.py's font checks) ----------------------


def colourful_pixels(image: Image.Image) -> int:
    """Pixels with strong colour: emoji are drawn in colour, missing glyphs and text in grey."""
    _hue, saturation, value = image.convert("RGB").convert("HSV").split()
    strong = ImageChops.multiply(saturation.point(lambda s: 255 if s > 100 else 0),
                                 value.point(lambda v: 255 if v > 100 else 0))
    return int(strong.histogram()[255])


def ink_pixels(image: Image.Image) -> int:
    """Dark pixels (text drawn in black on white)."""
    return sum(image.convert("L").histogram()[:128])


def font_problems(png: bytes) -> tuple[dict[str, int], list[str]]:
    """Check a capture of tests/pages/fidelity/fonts.html at 600x200: five 80x80 cells with
    an emoji, 永, 鬱, 한 and an unassigned code point. Returns the measures and the problems."""
    shot = Image.open(io.BytesIO(png))
    names = ("emoji", "cjk1", "cjk2", "hangul", "missing")
    cells = {name: shot.crop((80 * i, 0, 80 * i + 80, 80)) for i, name in enumerate(names)}
    measures = {"emoji_colour_px": colourful_pixels(cells["emoji"]),
                **{f"{name}_ink_px": ink_pixels(cells[name]) for name in ("cjk1", "cjk2", "hangul")}}
    problems = []
    if measures["emoji_colour_px"] <= 500:
        problems.append("the emoji is not drawn in colour (no colour emoji font?)")
    for name in ("cjk1", "cjk2", "hangul"):
        if measures[f"{name}_ink_px"] <= 150:
            problems.append(f"{name} has no ink")
        if ImageChops.difference(cells[name], cells["missing"]).getbbox() is None:
            problems.append(f"{name} is drawn as the missing-glyph box (no CJK font?)")
    if ImageChops.difference(cells["cjk1"], cells["cjk2"]).getbbox() is None:
        problems.append("two different CJK characters look the same (boxes)")
    return measures, problems
