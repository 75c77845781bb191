"""Serves the console: ``/`` and every non-API GET path that is not a file answer index.html (deep
links and reloads work); ``/assets/…`` are the console's files. Unknown API paths keep their JSON 404."""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

from litestar import MediaType, Request, Response, get

from app.core.errors import NotFound

WEB_ROOT = Path(__file__).resolve().parent
ASSETS = WEB_ROOT / "assets"

# Only WHAGO's own origin. data: images: the QR code arrives as a data URL from GET /chips/{id}/qr.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # the console's files change with the code, not on a schedule: revalidate instead of guessing
    "Cache-Control": "no-cache",
}
# Paths that never fall back to the app: the API and the operational endpoints keep JSON errors.
NOT_CONSOLE = ("/api/", "/health/", "/metrics", "/schema", "/swagger", "/assets/")
TYPES = {".js": "text/javascript", ".css": "text/css", ".json": "application/json", ".png": "image/png"}


def index_response() -> Response[bytes]:
    return Response(
        (WEB_ROOT / "index.html").read_bytes(),
        media_type=MediaType.HTML,
        headers=SECURITY_HEADERS,
    )


def is_console_path(method: str, path: str) -> bool:
    if method not in ("GET", "HEAD"):
        return False
    return not any(path == prefix.rstrip("/") or path.startswith(prefix) for prefix in NOT_CONSOLE)


@get("/", include_in_schema=False, sync_to_thread=False)
def console_index() -> Response[bytes]:
    return index_response()


@get("/assets/{path:path}", include_in_schema=False, sync_to_thread=False)
def console_asset(path: str) -> Response[bytes]:
    # resolve() then a containment check: "..", symlinks or absolute parts never leave assets/
    target = (ASSETS / path.lstrip("/")).resolve()
    if not target.is_relative_to(ASSETS) or not target.is_file():
        raise NotFound("No such file.")
    media_type = TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return Response(target.read_bytes(), media_type=media_type, headers=SECURITY_HEADERS)


def console_fallback(default_handler: Callable[[Request, Any], Response]) -> Callable[[Request, Any], Response]:
    """A 404 handler: the app for console paths (deep links), the contract's JSON error elsewhere."""

    def handler(request: Request, exc: Any) -> Response:
        if is_console_path(request.method, request.url.path):
            return index_response()
        return default_handler(request, exc)

    return handler
