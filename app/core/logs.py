"""Logging: one JSON object per line (or readable text), the request id on every record, and no
secret in any line.

``configure(settings)`` installs one root handler for the process (CLI, API, worker); uvicorn is
started without its own logging config so its records come through here too. Every record gets
``request_id`` from the current unit of work (``app.core.context``), in the API, in SAQ jobs and
in CLI commands. A filter on the handler masks what must never be written: the configured
secrets' values, bearer tokens, ``token=`` query values (the event stream's URL) and passwords in
URLs, whoever logs them (WHAGO, uvicorn's access log, httpx, SAQ).
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import TextIO

import msgspec

from app.core import context
from app.settings import Settings

MASK = "***"

# secret-bearing fields of Settings (each may be a comma-separated list of keys)
_SECRET_SETTINGS = (
    "secret_key",
    "webhook_hmac_key",
    "waha_api_key",
    "encryption_key",
    "nomad_token",
    "consul_token",
    "waha_registry_password",
    "alert_webhook_url",
)
_PATTERNS = (
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + MASK),
    (re.compile(r"(?i)([?&](?:token|access_token|api_key|key|password)=)[^&\s\"']+"), r"\1" + MASK),
    (re.compile(r"(://[^:/@\s]+:)[^@/\s]+@"), r"\1" + MASK + "@"),
    (
        re.compile(r"(?i)(\"?(?:password|x-api-key|x-nomad-token|x-consul-token)\"?\s*[:=]\s*\"?)[^\s\",}]+"),
        r"\1" + MASK,
    ),
)


def secret_values(settings: Settings) -> list[str]:
    values: list[str] = []
    for name in _SECRET_SETTINGS:
        for part in str(getattr(settings, name, "") or "").split(","):
            if len(part.strip()) >= 8:  # short values would mask ordinary words
                values.append(part.strip())
    for url in (settings.database_url, settings.redis_url, settings.waha_sessions_database_url):
        match = re.search(r"://[^:/@\s]+:([^@/\s]+)@", url or "")
        if match and len(match.group(1)) >= 4:
            values.append(match.group(1))
    return sorted(set(values), key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for value in secrets:
        if value in text:
            text = text.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class ContextFilter(logging.Filter):
    """Adds ``request_id`` (or None) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = context.current_request_id()
        return True


class RedactingFormatter(logging.Formatter):
    def __init__(self, fmt: str, secrets: list[str], *, as_json: bool) -> None:
        super().__init__(fmt)
        self.secrets = secrets
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        if not self.as_json:
            return redact(super().format(record), self.secrets)
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage(), self.secrets),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info), self.secrets)
        return msgspec.json.encode(entry).decode()


_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def build_handler(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        RedactingFormatter(_TEXT_FORMAT, secret_values(settings), as_json=settings.effective_log_format == "json")
    )
    return handler


def configure(settings: Settings) -> None:
    """The process's logging: one handler on the root logger, quiet third-party chatter."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(build_handler(settings))
    root.setLevel(settings.log_level.upper())
    # one line per outgoing HTTP call (WAHA, Nomad, Consul) drowns everything else
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's loggers go through the root handler (uvicorn runs with log_config=None)
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
