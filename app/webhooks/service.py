"""WAHA webhook ingestion: verify the signature over the raw bytes, dedup by envelope id,
apply status changes in order, keep history, publish live events.

Each event is applied with ONE SQL statement (an implicit transaction): the envelope id is
inserted (the unique key makes redelivery a no-op, across restarts), the chip row is locked,
and the decision (apply / same / stale / deleting) is made on the locked, latest row. That keeps
concurrent deliveries of one event, and concurrent events for one chip, race-free. Times written
use clock_timestamp() (taken after the row lock), not now() (the statement's start, possibly
before waiting on the lock), so history order is apply order.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime, timedelta, timezone
from uuid import UUID

import msgspec

from app.core import db
from app.core.errors import NotAuthenticated, ValidationFailed
from app.container import Container
from app.events.bus import format_time
from app.webhooks.schemas import Envelope, StatusPayload

logger = logging.getLogger("whago.webhooks")

# The one mapping from WAHA session status to chip status. Anything else WAHA may report
# (PASSKEY_* on GOWS) is recorded in history but does not move the chip.
WAHA_TO_CHIP_STATUS: dict[str, str] = {
    "STARTING": "starting",
    "SCAN_QR_CODE": "waiting_qr",
    "WORKING": "connected",
    "STOPPED": "disconnected",
    "FAILED": "failed",
}

HANDLED_EVENTS = ("session.status", "message")

_APPLY_STATUS_SQL = """
WITH ev AS (
    INSERT INTO webhook_events (event_id, event, session_name, outcome)
    VALUES ($1, 'session.status', $2, $3)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1
), prev AS (
    SELECT c.id, c.user_id, c.status, c.last_status_event_at
    FROM chips c
    WHERE c.session_name = $2
      AND ($4::uuid IS NULL OR c.id = $4)
      AND ($5::uuid IS NULL OR c.user_id = $5)
      AND EXISTS (SELECT 1 FROM ev)
    FOR UPDATE
), decision AS (
    SELECT p.*,
        CASE
            WHEN p.status = 'deleting' THEN 'deleting'
            WHEN $6::varchar IS NULL THEN 'unmapped'
            WHEN p.last_status_event_at IS NOT NULL AND $7 < p.last_status_event_at THEN 'stale'
            WHEN p.status = $6 THEN 'same'
            ELSE 'apply'
        END AS action
    FROM prev p
), changed AS (
    UPDATE chips c SET
        status = $6,
        status_changed_at = CASE WHEN d.action = 'apply' THEN clock_timestamp() ELSE c.status_changed_at END,
        last_status_event_at = $7,
        phone_number = coalesce($8, c.phone_number),
        error = CASE WHEN d.action = 'apply' THEN $9 ELSE c.error END,
        updated_at = clock_timestamp()
    FROM decision d
    WHERE c.id = d.id AND d.action IN ('apply', 'same')
    RETURNING c.id
), history AS (
    INSERT INTO chip_events (chip_id, at, from_status, to_status, source, detail)
    SELECT d.id, clock_timestamp(), d.status, coalesce($6, d.status), 'webhook',
        CASE d.action
            WHEN 'apply' THEN $10
            WHEN 'stale' THEN 'ignored: older than the last applied status event (' || $10 || ')'
            WHEN 'deleting' THEN 'ignored: chip is being deleted (' || $10 || ')'
            ELSE 'ignored: unhandled WAHA status (' || $10 || ')'
        END
    FROM decision d
    WHERE d.action IN ('apply', 'stale', 'deleting', 'unmapped')
)
SELECT (SELECT count(*) FROM ev) AS fresh, d.id, d.user_id, d.status AS previous, d.action
FROM (SELECT 1) AS one LEFT JOIN decision d ON true
"""

_APPLY_MESSAGE_SQL = """
WITH ev AS (
    INSERT INTO webhook_events (event_id, event, session_name, outcome)
    VALUES ($1, 'message', $2, 'activity')
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1
), touched AS (
    UPDATE chips c SET last_activity_at = greatest(coalesce(c.last_activity_at, $5), $5)
    WHERE c.session_name = $2
      AND ($3::uuid IS NULL OR c.id = $3)
      AND ($4::uuid IS NULL OR c.user_id = $4)
      AND c.status <> 'deleting'
      AND EXISTS (SELECT 1 FROM ev)
    RETURNING c.id
)
SELECT (SELECT count(*) FROM ev) AS fresh, (SELECT count(*) FROM touched) AS touched
"""

_NO_METADATA = object()
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def verify_signature(body: bytes, signature: str | None, keys: list[str]) -> None:
    """Constant-time HMAC-SHA512 check over the exact bytes received, before any parsing.

    Any of ``keys`` may have signed it (key rotation: the new key first, the old one until every
    session carries the new one)."""
    if not signature:
        raise NotAuthenticated("Missing X-Webhook-Hmac signature.", code="invalid_signature")
    # bytes, not str: compare_digest refuses non-ASCII str (a forged header would be a 500)
    provided = signature.strip().lower().encode("utf-8", "surrogateescape")
    matches = False
    for key in keys:  # every key is tried, so timing does not tell which one matched
        expected = hmac.new(key.encode(), body, hashlib.sha512).hexdigest().encode()
        matches |= hmac.compare_digest(expected, provided)
    if not matches:
        raise NotAuthenticated("Webhook signature does not match.", code="invalid_signature")


def _metadata_uuid(metadata: dict | None, name: str) -> UUID | None | object:
    """The UUID WAHA echoed back, None when absent, or a sentinel when present but malformed."""
    value = (metadata or {}).get(name)
    if value is None:
        return None
    try:
        return UUID(str(value))
    except ValueError:
        return _NO_METADATA


def _phone_number(jid: str) -> str | None:
    """Digits of ``<digits>@c.us`` (or a device jid ``<digits>:<device>@s.whatsapp.net``); None for
    anything else (a hidden ``@lid`` id is not a phone number)."""
    user, _, server = jid.partition("@")
    user = user.split(":", 1)[0]
    return user[:32] if server in ("c.us", "s.whatsapp.net") and user.isdigit() else None


def _event_time(envelope: Envelope) -> datetime:
    if envelope.timestamp is None:
        return datetime.now(timezone.utc)
    return _EPOCH + timedelta(milliseconds=envelope.timestamp)  # exact, unlike a float division


def _event_id(envelope: Envelope, body: bytes) -> str:
    # WAHA before 2025.3 sent no id: the same delivery repeated has the same bytes.
    return envelope.id or "sha256:" + hashlib.sha256(body).hexdigest()[:57]


class WebhookService:
    def __init__(self, services: Container) -> None:
        self.s = services

    async def _apply(self, sql: str, args: tuple, order: tuple):
        committer = self.s.webhook_commits
        if committer is None:
            return await db.fetchrow(sql, *args)
        return await committer.fetchrow(sql, args, order)

    async def receive(self, body: bytes, signature: str | None) -> str:
        verify_signature(body, signature, self.s.settings.webhook_hmac_keys)
        try:
            envelope = msgspec.json.decode(body, type=Envelope)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec raises the latter for bad UTF-8
            raise ValidationFailed(f"Not a WAHA event envelope: {exc}") from None
        if envelope.event not in HANDLED_EVENTS:
            return "ignored"
        chip_id = _metadata_uuid(envelope.metadata, "chip_id")
        user_id = _metadata_uuid(envelope.metadata, "user_id")
        if chip_id is _NO_METADATA or user_id is _NO_METADATA:
            logger.warning("webhook for %s ignored: malformed metadata", envelope.session)
            return "ignored"
        if envelope.event == "message":
            return await self._message(envelope, body, chip_id, user_id)
        return await self._status(envelope, body, chip_id, user_id)

    async def _status(self, envelope: Envelope, body: bytes, chip_id, user_id) -> str:
        try:
            payload = msgspec.convert(envelope.payload, StatusPayload)
        except msgspec.ValidationError as exc:
            raise ValidationFailed(f"session.status payload: {exc}") from None
        waha_status = payload.status
        new_status = WAHA_TO_CHIP_STATUS.get(waha_status)
        at = _event_time(envelope)
        phone = _phone_number(envelope.me.id) if waha_status == "WORKING" and envelope.me is not None else None
        error = "WAHA reported the session FAILED (QR expired or device unlinked); restart it." if (
            new_status == "failed"
        ) else None
        row = await self._apply(
            _APPLY_STATUS_SQL,
            (
                _event_id(envelope, body),
                envelope.session,
                waha_status[:64],
                chip_id,
                user_id,
                new_status,
                at,
                phone,
                error,
                f"WAHA {waha_status}",
            ),
            (envelope.session, at),
        )
        if not row["fresh"]:
            return "duplicate"
        if row["id"] is None:
            return "ignored"
        action = row["action"]
        if action == "apply":
            await self.s.events.publish(
                row["user_id"],
                "chip.status",
                {"chip_id": str(row["id"]), "status": new_status, "previous": row["previous"], "at": format_time(at)},
            )
        if new_status == "waiting_qr" and action in ("apply", "same"):
            # every QR rotation re-sends SCAN_QR_CODE: tell the browser to fetch the new code
            await self.s.events.publish(row["user_id"], "chip.qr", {"chip_id": str(row["id"]), "at": format_time(at)})
        return "ignored" if action == "deleting" else "ok"

    async def _message(self, envelope: Envelope, body: bytes, chip_id, user_id) -> str:
        at = _event_time(envelope)
        row = await self._apply(
            _APPLY_MESSAGE_SQL, (_event_id(envelope, body), envelope.session, chip_id, user_id, at), (envelope.session, at)
        )
        if not row["fresh"]:
            return "duplicate"
        return "ok" if row["touched"] else "ignored"
