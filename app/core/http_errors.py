"""The one place that turns every error into the contract's body:
``{"status_code": …, "detail": "…", "code": "…"}`` (plus ``extra`` for validation details)."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from app.core.db import DB_UNAVAILABLE_ERRORS
from app.core.errors import DependencyUnavailable, RateLimited, WhagoError
from app.core.redis import REDIS_UNAVAILABLE_ERRORS
from app.core.validation import humanize, summary

logger = logging.getLogger("whago.errors")

_CODES_BY_STATUS = {
    400: "validation_error",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "dependency_unavailable",
}


def error_response(status_code: int, detail: str, code: str, extra: object = None, headers=None) -> Response:
    body: dict[str, object] = {"status_code": status_code, "detail": detail, "code": code}
    if extra:
        body["extra"] = extra
    return Response(content=body, status_code=status_code, media_type=MediaType.JSON, headers=headers)


def _whago_error(_: Request, exc: WhagoError) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return error_response(exc.status_code, exc.detail, exc.code, exc.extra, headers)


def _http_exception(_: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    if status >= 500:
        return _unexpected(_, exc)
    code = _CODES_BY_STATUS.get(status, "error")
    detail = exc.detail
    extra = exc.extra if isinstance(exc, ValidationException) or status == 400 else None
    if status == 400 and isinstance(extra, list) and extra:
        detail, extra = _readable(extra)
    elif status == 400 and detail and "regex" in detail:
        detail = "Validation failed: a value has an invalid format."
    if status == 404 and (not detail or detail == "Not Found"):
        detail = "Not found."
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() in ("retry-after", "allow")}
    return error_response(status, detail, code, extra, headers or None)


def _readable(extra: list) -> tuple[str, list[dict[str, str]]]:
    """Litestar's per-field failures as readable ``{key, message, source}`` items (``key`` is the
    field, as Litestar names it) and one sentence."""
    items: list[dict[str, str]] = []
    for item in extra:
        if not isinstance(item, dict):
            continue
        field, words = humanize(str(item.get("message", "")), item.get("key"))
        entry = {"key": field, "message": words}
        source = item.get("source")
        if source:
            entry["source"] = str(getattr(source, "value", source))
        items.append(entry)
    return summary([(i["key"], i["message"]) for i in items]), items


def _validation(_: Request, exc: msgspec.ValidationError) -> Response:
    field, words = humanize(str(exc))
    return error_response(400, summary([(field, words)]), "validation_error", [{"key": field, "message": words}])


def _too_deep(request: Request, exc: RecursionError) -> Response:
    # msgspec gives up on absurdly nested JSON with a RecursionError while Litestar decodes the body
    logger.warning("request body on %s %s nested too deeply to decode", request.method, request.url.path)
    return error_response(400, "The request body is nested too deeply.", "validation_error")


def _text_not_storable(request: Request, exc: Exception) -> Response:
    # PostgreSQL refuses NUL (and characters outside UTF-8) in text: the caller's input, not our bug
    return error_response(400, "The request contains characters that cannot be stored (e.g. NUL).", "validation_error")


def _unexpected(request: Request, exc: Exception) -> Response:
    # Dependency outages surface as typed errors in services; anything else reaching here from a
    # driver is still an outage, never a 500.
    if isinstance(exc, DB_UNAVAILABLE_ERRORS):
        return error_response(503, "Database unavailable; nothing was changed.", DependencyUnavailable.code)
    if isinstance(exc, REDIS_UNAVAILABLE_ERRORS):
        return error_response(503, "Redis unavailable; nothing was changed.", DependencyUnavailable.code)
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error.", "internal_error")


EXCEPTION_HANDLERS: dict[int | type[Exception], Any] = {
    WhagoError: _whago_error,
    HTTPException: _http_exception,
    msgspec.ValidationError: _validation,
    RecursionError: _too_deep,
    asyncpg.exceptions.CharacterNotInRepertoireError: _text_not_storable,
    asyncpg.exceptions.UntranslatableCharacterError: _text_not_storable,
    Exception: _unexpected,
}
