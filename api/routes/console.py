"""The web console: one static page with vanilla JavaScript, served at ``/``.

The page talks to the public API only (``POST /v1/screenshots``, ``GET /v1/jobs``), so it
needs no server-side state; an API key pasted into it stays in the browser.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import Response

router = APIRouter(tags=["console"], include_in_schema=False)

#: Files of the console, by URL name: (package file, media type).
ASSETS = {
    "console.js": ("console.js", "text/javascript; charset=utf-8"),
    "console.css": ("console.css", "text/css; charset=utf-8"),
    "monitors.js": ("monitors.js", "text/javascript; charset=utf-8"),
    "monitors.css": ("monitors.css", "text/css; charset=utf-8"),
}
#: Scripts and styles only from this origin; pictures may come from S3 (another origin).
CSP = ("default-src 'self'; img-src 'self' http: https: data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache"}


@cache
def _read(name: str) -> bytes:
    return resources.files("api").joinpath("static", name).read_bytes()


@router.get("/", summary="Web console")
async def console_page() -> Response:
    """The console page."""
    return Response(_read("console.html"), media_type="text/html; charset=utf-8",
                    headers=_HEADERS)


@router.get("/monitors", summary="Web console: monitors")
async def monitors_page() -> Response:
    """The monitors page: create, list, and each monitor's runs (diffs of changed ones)."""
    return Response(_read("monitors.html"), media_type="text/html; charset=utf-8",
                    headers=_HEADERS)


@router.get("/favicon.ico", summary="The console's icon")
async def favicon() -> Response:
    """The icon browsers ask every page of the API for (the console, /docs, /redoc)."""
    return Response(_read("favicon.ico"), media_type="image/x-icon",
                    headers={"Cache-Control": "public, max-age=86400"})


@router.get("/console/{name}", summary="Web console assets")
async def console_asset(name: str) -> Response:
    """The console's script and style sheet."""
    if name not in ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no console file {name!r}")
    filename, media_type = ASSETS[name]
    return Response(_read(filename), media_type=media_type, headers=_HEADERS)
