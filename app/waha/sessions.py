"""WAHA session naming and the session config WHAGO gives every chip."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

import msgspec

from app.waha.schemas import (
    DEFAULT_EVENTS,
    HmacConfig,
    ProxyConfig,
    RetriesConfig,
    RetryPolicy,
    SessionConfig,
    WebhookConfig,
    WebjsConfig,
)

SESSION_PREFIX = "chip_"
_SESSION_RE = re.compile(r"chip_([0-9a-f]{32})")


def session_name(chip_id: UUID) -> str:
    """``chip_<32 hex>``: 37 chars, within WAHA's 54-char limit and ``[a-z0-9_]``."""
    return SESSION_PREFIX + chip_id.hex


def chip_id_from_session(name: str) -> UUID | None:
    """The chip id encoded in a session name, or None for sessions WHAGO did not create."""
    match = _SESSION_RE.fullmatch(name)
    return UUID(hex=match.group(1)) if match else None


def build_session_config(
    *,
    metadata: Mapping[str, str],
    webhook_url: str,
    hmac_key: str | None,
    proxy: ProxyConfig | None = None,
    events: Iterable[str] = DEFAULT_EVENTS,
    retry_attempts: int = 8,
    retry_delay_seconds: float = 2,
    retry_policy: RetryPolicy = "exponential",
    engine: str | None = None,
) -> dict[str, Any]:
    """WAHA ``SessionConfig`` as a JSON-ready dict (camelCase, unset fields left out).

    It is always the *full* config: WAHA's PUT replaces the config rather than merging it. On the
    WEBJS engine ``message.ack`` is only emitted with ``webjs.tagsEventsOn`` (waha.md §1.3).
    """
    events = list(events)
    webhook = WebhookConfig(
        url=webhook_url,
        events=events,
        hmac=HmacConfig(key=hmac_key) if hmac_key else None,
        retries=RetriesConfig(policy=retry_policy, delay_seconds=retry_delay_seconds, attempts=retry_attempts),
    )
    webjs = WebjsConfig(tags_events_on=True) if (engine or "").upper() == "WEBJS" and "message.ack" in events else None
    config = SessionConfig(
        metadata={str(k): str(v) for k, v in metadata.items()}, proxy=proxy, webhooks=[webhook], webjs=webjs
    )
    return msgspec.to_builtins(config)


def chip_metadata(user_id: UUID | str, chip_id: UUID | str) -> dict[str, str]:
    """The metadata every chip session carries; WAHA echoes it in each webhook."""
    return {"user_id": str(user_id), "chip_id": str(chip_id)}
