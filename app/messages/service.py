"""Sending messages and reading the log.

Order of a send: the chip (404 / 409 ``chip_not_connected``), the idempotency key (a repeat
answers the first message, never sends again), the per-chip limit, the ``pending`` row, then
WAHA. Remote calls never run inside a database transaction. Outcomes of the WAHA call:

- accepted: ``sent`` with WAHA's message id (if that write fails the answer is still 202
  ``pending``: the message went out, and the first ack completes the row, matched by the id we
  asked WAHA to use);
- unreachable (nothing sent): the row is removed, 503; a timeout after the request went out is
  "maybe sent": the row stays ``pending`` for the acks to settle, never a 503;
- session not WORKING: the row is removed, 409 ``chip_not_connected``;
- refused (a 4xx): ``failed`` with a short reason.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import msgspec

from app.chips.service import ChipService
from app.chips.status import ChipStatus
from app.container import Container
from app.core.errors import Conflict, DependencyUnavailable, NotFound
from app.events.bus import format_time
from app.messages import queries
from app.messages.queries import MessageRow
from app.messages.schemas import MediaIn, MediaOut, MessageIn, MessageOut, MessagePage
from app.messages.status import ACK_TO_STATUS, RANK, MessageStatus
from app.waha.client import (
    WahaClient,
    WahaConflict,
    WahaError,
    WahaNotFound,
    WahaRejected,
    WahaTimedOut,
    WahaUnavailable,
)
from app.waha.sessions import session_name

logger = logging.getLogger("whago.messages")

MESSAGE_LIMIT = "messages"
_MAX_ERROR = 300


def to_message_out(row: MessageRow) -> MessageOut:
    media = None
    if row.media_url is not None:
        media = MediaOut(url=row.media_url, mimetype=row.media_mimetype, filename=row.media_filename)
    return MessageOut(
        id=row.id,
        chip_id=row.chip_id,
        to=row.recipient,
        kind=row.kind,
        text=row.body,
        media=media,
        status=row.status,
        error=row.error,
        waha_message_id=row.waha_message_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def new_waha_ref() -> str:
    """A WhatsApp-shaped message id (``3EB0`` + hex, as WhatsApp Web makes them) we ask WAHA to use."""
    return "3EB0" + secrets.token_hex(9).upper()


def request_hash(data: MessageIn) -> str:
    return hashlib.sha256(msgspec.json.encode(data)).hexdigest()


def _mimetype(data: MessageIn, media: MediaIn) -> str:
    if media.mimetype:
        return media.mimetype
    guessed, _ = mimetypes.guess_type(media.filename or media.url.split("?", 1)[0])
    return guessed or ("image/jpeg" if data.image is not None else "application/octet-stream")


class MessageService:
    def __init__(self, services: Container) -> None:
        self.s = services
        self.chips = ChipService(services)

    async def send(
        self, user_id: UUID, chip_id: UUID, data: MessageIn, idempotency_key: str | None
    ) -> tuple[MessageOut, bool]:
        """The message and whether this request created it (False: a repeated idempotency key)."""
        chip = await self.chips.get(user_id, chip_id)
        digest = request_hash(data)
        if idempotency_key is not None:
            existing = await queries.by_key(chip_id, idempotency_key)
            if existing is not None:
                return self._replay(existing, digest), False
        if chip.status != ChipStatus.CONNECTED:
            raise Conflict("The chip is not connected.", code="chip_not_connected")
        limit = self.s.settings.messages_per_minute
        await self.s.limiter.hit(
            MESSAGE_LIMIT,
            str(chip_id),
            limit=limit,
            window_seconds=60,
            detail=f"At most {limit} messages per minute per chip.",
        )
        media = data.media
        row = await queries.insert_pending(
            chip_id=chip_id,
            user_id=user_id,
            recipient=data.to.lstrip("+"),
            kind=data.kind,
            body=data.text if data.text is not None else data.caption,
            media_url=media.url if media else None,
            media_mimetype=_mimetype(data, media) if media else None,
            media_filename=media.filename if media else None,
            waha_ref=new_waha_ref(),
            idempotency_key=idempotency_key,
            request_hash=digest,
        )
        if row is None:  # a concurrent request with the same key recorded it first (only a key conflicts)
            existing = await queries.by_key(chip_id, idempotency_key) if idempotency_key is not None else None
            if existing is None:  # that request's send failed and removed its row in between
                raise DependencyUnavailable("A request with this Idempotency-Key just failed; try again.")
            return self._replay(existing, digest), False
        return await self._deliver(user_id, chip.session_name, row), True

    def _replay(self, existing: MessageRow, digest: str) -> MessageOut:
        if existing.request_hash != digest:
            raise Conflict(
                "This Idempotency-Key was used for a different message on this chip.", code="idempotency_key_reused"
            )
        return to_message_out(existing)

    async def _deliver(self, user_id: UUID, session: str, row: MessageRow) -> MessageOut:
        try:
            sent = await self._remote(user_id, lambda client: self._call(client, session, row))
        except WahaTimedOut:
            logger.warning("message %s: WAHA timed out after the request went out; left pending", row.id)
            return to_message_out(row)
        except DependencyUnavailable:
            await queries.delete_pending(row.id)
            raise
        except (WahaConflict, WahaNotFound):
            await queries.delete_pending(row.id)
            raise Conflict(
                "WhatsApp refused the message: the chip is not connected.", code="chip_not_connected"
            ) from None
        except WahaRejected as exc:
            failed = await queries.mark_failed(row.id, f"WAHA refused the message: {exc.detail}"[:_MAX_ERROR])
            if failed is None:
                return to_message_out(row)
            await self.publish(user_id, failed)
            return to_message_out(failed)
        try:
            updated, changed = await queries.mark_sent(row.id, sent.get("id"))
            await self.chips.touch_activity(row.chip_id)
        except Exception:
            # The message went out: never a 503 for it. The first ack completes the row.
            logger.exception("message %s sent, but recording it failed; left pending for its acks", row.id)
            return to_message_out(row)
        if updated is None:
            return to_message_out(row)
        if changed:
            await self.publish(user_id, updated)
        return to_message_out(updated)

    @staticmethod
    async def _call(client: WahaClient, session: str, row: MessageRow) -> dict[str, Any]:
        if row.kind == "text":
            return await client.send_text(session, row.recipient, row.body or "", message_id=row.waha_ref)
        send = client.send_image if row.kind == "image" else client.send_file
        return await send(
            session,
            row.recipient,
            row.media_url or "",
            row.media_mimetype or "application/octet-stream",
            filename=row.media_filename,
            caption=row.body,
        )

    async def _remote(self, user_id: UUID, call: Callable[[WahaClient], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """Run a WAHA call on the tenant's instance; a connection failure drops its cached address."""
        instance = await self.s.scheduler.get_instance(str(user_id))
        if instance is None or not instance.base_url or instance.status != "running":
            raise DependencyUnavailable("The WAHA instance for this account is not running yet; try again shortly.")
        try:
            return await call(self.s.waha.for_tenant(instance.base_url, user_id))
        except WahaTimedOut:
            raise
        except WahaUnavailable:
            await self.s.scheduler.invalidate(str(user_id))
            raise

    async def publish(self, user_id: UUID, row: MessageRow) -> None:
        await self.s.events.publish(
            user_id,
            "message.status",
            {
                "chip_id": str(row.chip_id),
                "message_id": str(row.id),
                "status": row.status.value,
                "at": format_time(row.updated_at),
            },
        )

    async def get(self, user_id: UUID, chip_id: UUID, message_id: UUID) -> MessageOut:
        await self.chips.get(user_id, chip_id)  # another tenant's chip: 404, as a missing one
        row = await queries.get(chip_id, message_id)
        if row is None:
            raise NotFound("Message not found.")
        return to_message_out(row)

    async def list(self, user_id: UUID, chip_id: UUID, *, limit: int, before: UUID | None) -> MessagePage:
        await self.chips.get(user_id, chip_id)
        rows = await queries.page(chip_id, limit + 1, before)
        more = len(rows) > limit
        rows = rows[:limit]
        return MessagePage(items=[to_message_out(r) for r in rows], next_before=rows[-1].id if more else None)

    async def reconcile_pending(self, *, older_than_seconds: int = 60, limit: int = 200) -> dict[str, int]:
        """Complete messages left ``pending`` (our write after the send failed, or WAHA timed out)
        from WAHA's own record of them: found → its ack sets the status; not found or WAHA
        unreachable → left for the acks and the next round (never guessed as failed)."""
        counts = {"checked": 0, "completed": 0}
        for row in await queries.stale_pending(older_than_seconds, limit):
            counts["checked"] += 1
            instance = await self.s.scheduler.get_instance(str(row.user_id))
            if instance is None or not instance.base_url or instance.status != "running":
                continue
            client = self.s.waha.for_tenant(instance.base_url, row.user_id)
            chat = row.recipient if "@" in row.recipient else row.recipient + "@c.us"
            waha_id = row.waha_message_id or f"true_{chat}_{row.waha_ref}"
            try:
                found = await client.get_message(session_name(row.chip_id), chat, waha_id)
            except WahaError:
                continue
            ack = found.get("ack")
            status = ACK_TO_STATUS.get(ack) if isinstance(ack, int) else None
            # WAHA knows it, so it went out: at least "sent" even when its ack says less
            if status is None or RANK[status] < RANK[MessageStatus.SENT]:
                status = MessageStatus.SENT
            found_id = found.get("id")
            moved = await queries.advance(row.id, status, found_id if isinstance(found_id, str) else waha_id)
            if moved is not None:
                counts["completed"] += 1
                await self.publish(row.user_id, moved)
        return counts

    async def prune(self) -> int:
        """Remove messages older than WHAGO_MESSAGE_RETENTION_DAYS (the daily job)."""
        return await queries.prune(self.s.settings.message_retention_days)
