"""ASGI middleware: every HTTP request runs in a ``WorkContext`` whose request id is the caller's
``X-Request-ID`` (when sane) or a new one, echoed on the response."""

from __future__ import annotations

import re

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.core.context import REQUEST_ID_HEADER, new_request_id, work

# A caller's id is echoed in headers and logs: only short, printable, header-safe ids are kept.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def _incoming(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1").strip()
            return text if _SAFE_ID.match(text) else None
    return None


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        with work(_incoming(scope) or new_request_id()) as ctx:

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    MutableScopeHeaders.from_message(message)[REQUEST_ID_HEADER] = ctx.request_id
                await send(message)

            await app(scope, receive, send_with_id)

    return middleware
