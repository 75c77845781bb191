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
from datetime import UTC, datetime, timedelta
from uuid import UUID

import msgspec

from app.chips.status import WAHA_TO_CHIP_STATUS, ChipStatus
from app.chips.transitions import ChipTransitions, Transition
from app.container import Container
from app.core import db, metrics
from app.core.errors import NotAuthenticated, ValidationFailed
from app.core.tenant_keys import TenantKeys
from app.events.bus import format_time
from app.messages.status import ACK_TO_STATUS, RANK
from app.webhooks.queries import APPLY_ACK, APPLY_MESSAGE, APPLY_STATUS
from app.webhooks.schemas import AckPayload, Envelope, StatusPayload

logger = logging.getLogger("whago.webhooks")

HANDLED_EVENTS = ("session.status", "message", "message.ack")

_NO_METADATA = object()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def _metadata_uuid(metadata: dict | None, name: str) -> UUID | object | None:
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
        return datetime.now(UTC)
    return _EPOCH + timedelta(milliseconds=envelope.timestamp)  # exact, unlike a float division


def _status_time(envelope: Envelope, max_future_seconds: int) -> tuple[datetime, bool]:
    """The event's time, clamped to the receive time when it lies further ahead than allowed:
    a WAHA clock far in the future would otherwise freeze the chip's status until that time
    (older events never move a chip back). Returns (time, clamped)."""
    at = _event_time(envelope)
    received = datetime.now(UTC)
    if at > received + timedelta(seconds=max_future_seconds):
        return received, True
    return at, False


def _event_id(envelope: Envelope, body: bytes, tenant: UUID | None = None) -> str:
    # WAHA before 2025.3 sent no id: the same delivery repeated has the same bytes.
    return _scoped(envelope.id or "sha256:" + hashlib.sha256(body).hexdigest()[:57], tenant)


def _scoped(event_id: str, tenant: UUID | None) -> str:
    # On a tenant's route the dedup key is the tenant's own: another tenant's key cannot claim an
    # id first and make this tenant's real event a "duplicate".
    if tenant is None:
        return event_id
    return "t:" + hashlib.sha256(f"{tenant}/{event_id}".encode()).hexdigest()[:62]


class WebhookService:
    def __init__(self, services: Container) -> None:
        self.s = services
        self.transitions = ChipTransitions(services.events)
        self.keys = TenantKeys(services.settings)
        self._tenant: UUID | None = None  # the route's tenant, set by ``receive`` (one per request)

    async def _apply(self, sql: str, args: tuple, order: tuple):
        committer = self.s.webhook_commits
        if committer is None:
            return await db.fetchrow(sql, *args)
        return await committer.fetchrow(sql, args, order)

    async def receive(self, body: bytes, signature: str | None, tenant: UUID | None = None) -> str:
        """Apply one delivery; counted in ``whago_webhook_events_total`` by event and outcome.

        ``tenant``: the per-tenant route's user id, verified with that tenant's derived keys and
        scoping every change to its chips; None for the platform-key route (older sessions)."""
        keys = self.s.settings.webhook_hmac_keys if tenant is None else self.keys.webhook_keys(tenant)
        try:
            verify_signature(body, signature, keys)
        except NotAuthenticated:
            metrics.WEBHOOK_EVENTS.labels("unknown", "invalid_signature").inc()
            raise
        self._tenant = tenant
        try:
            envelope = msgspec.json.decode(body, type=Envelope)
        # msgspec raises UnicodeDecodeError for bad UTF-8 and RecursionError for absurd nesting
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            metrics.WEBHOOK_EVENTS.labels("unknown", "invalid").inc()
            raise ValidationFailed(f"Not a WAHA event envelope: {exc}") from None
        # only handled event names become label values: a sender cannot mint new series
        event = envelope.event if envelope.event in HANDLED_EVENTS else "other"
        try:
            outcome = await self._receive(envelope, body)
        except ValidationFailed:
            metrics.WEBHOOK_EVENTS.labels(event, "invalid").inc()
            raise
        metrics.WEBHOOK_EVENTS.labels(event, outcome).inc()
        return outcome

    async def _receive(self, envelope: Envelope, body: bytes) -> str:
        if envelope.event not in HANDLED_EVENTS:
            return "ignored"
        chip_id = _metadata_uuid(envelope.metadata, "chip_id")
        user_id = _metadata_uuid(envelope.metadata, "user_id")
        if chip_id is _NO_METADATA or user_id is _NO_METADATA:
            logger.warning("webhook for %s ignored: malformed metadata", envelope.session)
            return "ignored"
        if envelope.event == "message":
            return await self._message(envelope, body, chip_id, user_id)
        if envelope.event == "message.ack":
            return await self._ack(envelope, chip_id, user_id)
        return await self._status(envelope, body, chip_id, user_id)

    async def _status(self, envelope: Envelope, body: bytes, chip_id, user_id) -> str:
        try:
            payload = msgspec.convert(envelope.payload, StatusPayload)
        except msgspec.ValidationError as exc:
            raise ValidationFailed(f"session.status payload: {exc}") from None
        waha_status = payload.status
        new_status = WAHA_TO_CHIP_STATUS.get(waha_status)
        at, clamped = _status_time(envelope, self.s.settings.webhook_max_future_seconds)
        if clamped:
            logger.warning("webhook for %s: timestamp in the future, clamped to the receive time", envelope.session)
        phone = _phone_number(envelope.me.id) if waha_status == "WORKING" and envelope.me is not None else None
        error = (
            "WAHA reported the session FAILED (QR expired or device unlinked); restart it."
            if (new_status == "failed")
            else None
        )
        row = await self._apply(
            APPLY_STATUS,
            (
                _event_id(envelope, body, self._tenant),
                envelope.session,
                waha_status[:64],
                chip_id,
                user_id,
                new_status,
                at,
                phone,
                error,
                # recorded in the chip's history
                f"WAHA {waha_status} (event timestamp in the future; receive time used)"
                if clamped
                else f"WAHA {waha_status}",
                self._tenant,
            ),
            (envelope.session, at),
        )
        if not row["fresh"]:
            return "duplicate"
        if row["id"] is None:
            return "ignored"
        action = row["action"]
        if (
            action == "apply"
            and new_status == ChipStatus.WAITING_QR
            and row["previous"] in (ChipStatus.PROVISIONING, ChipStatus.STARTING)
        ):
            # accepted → first QR; a restart of an older chip also passes here, hence the bound
            age = (datetime.now(UTC) - row["created_at"]).total_seconds()
            if 0 <= age <= metrics.PROVISION_MAX_SECONDS:
                metrics.PROVISION_SECONDS.observe(age)
        if action == "apply" and new_status is not None:  # 'apply' needs a mapped status
            await self.transitions.publish(
                Transition(row["id"], row["user_id"], ChipStatus(row["previous"]), new_status, at)
            )
        if new_status == ChipStatus.WAITING_QR and action in ("apply", "same"):
            # every QR rotation re-sends SCAN_QR_CODE: tell the browser to fetch the new code
            await self.s.events.publish(row["user_id"], "chip.qr", {"chip_id": str(row["id"]), "at": format_time(at)})
        return "ignored" if action == "deleting" else "ok"

    async def _message(self, envelope: Envelope, body: bytes, chip_id, user_id) -> str:
        at = _event_time(envelope)
        row = await self._apply(
            APPLY_MESSAGE,
            (_event_id(envelope, body, self._tenant), envelope.session, chip_id, user_id, at, self._tenant),
            (envelope.session, at),
        )
        if not row["fresh"]:
            return "duplicate"
        return "ok" if row["touched"] else "ignored"

    async def _ack(self, envelope: Envelope, chip_id, user_id) -> str:
        """A delivery tick for a message: its status moves forward (never back), and the chip
        counts as active. Acks for messages WHAGO did not send (sent from the phone) only count
        as activity; an unmapped ack value is recorded nowhere and changes nothing."""
        try:
            payload = msgspec.convert(envelope.payload, AckPayload)
        except msgspec.ValidationError as exc:
            raise ValidationFailed(f"message.ack payload: {exc}") from None
        ack = int(payload.ack) if float(payload.ack).is_integer() else None
        status = ACK_TO_STATUS.get(ack) if ack is not None else None
        if status is None:
            return "ignored"
        # dedup: the envelope id, else (older WAHA, no id) the message id and ack value, so the
        # same tick redelivered with a new timestamp is still one event
        event_id = _scoped(
            envelope.id or "ack:" + hashlib.sha256(f"{envelope.session}|{payload.id}|{ack}".encode()).hexdigest()[:60],
            self._tenant,
        )
        at = _event_time(envelope)
        row = await self._apply(
            APPLY_ACK,
            (
                event_id,
                envelope.session,
                f"ack {ack}",
                chip_id,
                user_id,
                at,
                payload.id,
                _raw_message_id(payload.id),
                status.value,
                "WhatsApp reported an error sending the message (ack ERROR).",
                RANK[status],
                self._tenant,
            ),
            (envelope.session, at),
        )
        if not row["fresh"]:
            return "duplicate"
        if row["chip_id"] is None or row["message_id"] is None:
            return "ignored"
        if row["changed_at"] is not None:
            metrics.MESSAGES.labels(status.value).inc()
            await self.s.events.publish(
                row["user_id"],
                "message.status",
                {
                    "chip_id": str(row["chip_id"]),
                    "message_id": str(row["message_id"]),
                    "status": status.value,
                    "at": format_time(row["changed_at"]),
                },
            )
        return "ok"


def _raw_message_id(message_id: str) -> str:
    """WhatsApp's own id inside WAHA's ``<fromMe>_<chat id>_<id>[_<participant>]``."""
    parts = message_id.split("_")
    if len(parts) >= 3 and parts[0] in ("true", "false"):
        return parts[2]
    return message_id
