"""Every SQL statement of the messages feature, typed rows out.

Status changes are conditional updates on the status rank (``rank_sql``): a status never moves
backwards, and a concurrent writer is re-checked by PostgreSQL on the row's latest version (READ
COMMITTED re-evaluates an UPDATE's WHERE after waiting on the row lock), so no explicit lock is
needed. The webhook receiver's ack statement lives in app/webhooks/queries.py (one statement per
event), with the same rank rule.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from app.core import db
from app.core.rows import maybe_struct, to_structs
from app.messages.status import RANK, MessageStatus, rank_sql

IDEMPOTENCY_HOURS = 24

_RANK = rank_sql("status")
_SENT = MessageStatus.SENT.value
_FAILED = MessageStatus.FAILED.value
_PENDING = MessageStatus.PENDING.value


class MessageRow(msgspec.Struct, frozen=True):
    id: UUID
    chip_id: UUID
    recipient: str
    kind: str
    body: str | None
    media_url: str | None
    media_mimetype: str | None
    media_filename: str | None
    waha_ref: str
    waha_message_id: str | None
    status: MessageStatus
    error: str | None
    request_hash: str | None
    created_at: datetime
    updated_at: datetime


_COLUMNS = """id, chip_id, recipient, kind, body, media_url, media_mimetype, media_filename, waha_ref,
    waha_message_id, status, error, request_hash, created_at, updated_at"""


async def by_key(chip_id: UUID, key: str) -> MessageRow | None:
    """The message sent with this idempotency key on this chip within the last 24 hours."""
    record = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM messages WHERE chip_id = $1 AND idempotency_key = $2"
        f" AND created_at > now() - interval '{IDEMPOTENCY_HOURS} hours'",
        chip_id,
        key,
    )
    return maybe_struct(record, MessageRow)


async def insert_pending(
    *,
    chip_id: UUID,
    user_id: UUID,
    recipient: str,
    kind: str,
    body: str | None,
    media_url: str | None,
    media_mimetype: str | None,
    media_filename: str | None,
    waha_ref: str,
    idempotency_key: str | None,
    request_hash: str,
) -> MessageRow | None:
    """Record the message as ``pending``; None when another request holds the same key (the
    unique index settles concurrent sends with one key: exactly one inserts)."""
    async with db.transaction():
        if idempotency_key is not None:
            # a key older than 24 hours is free again: the old message keeps its row, not the key
            await db.fetch(
                "UPDATE messages SET idempotency_key = NULL WHERE chip_id = $1 AND idempotency_key = $2"
                f" AND created_at <= now() - interval '{IDEMPOTENCY_HOURS} hours'",
                chip_id,
                idempotency_key,
            )
        record = await db.fetchrow(
            "INSERT INTO messages (chip_id, user_id, recipient, kind, body, media_url, media_mimetype,"
            " media_filename, waha_ref, idempotency_key, request_hash, status)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, '{_PENDING}')"
            " ON CONFLICT (chip_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
            f" RETURNING {_COLUMNS}",
            chip_id,
            user_id,
            recipient,
            kind,
            body,
            media_url,
            media_mimetype,
            media_filename,
            waha_ref,
            idempotency_key,
            request_hash,
        )
    return maybe_struct(record, MessageRow)


async def mark_sent(message_id: UUID, waha_message_id: str | None) -> tuple[MessageRow | None, bool]:
    """WAHA accepted it: ``sent``, unless an ack already moved it further. Returns the row as it
    is now and whether this write changed its status."""
    record = await db.fetchrow(
        f"UPDATE messages SET status = '{_SENT}', waha_message_id = coalesce(waha_message_id, $2),"
        f" updated_at = clock_timestamp() WHERE id = $1 AND {_RANK} < {RANK[MessageStatus.SENT]}"
        f" RETURNING {_COLUMNS}",
        message_id,
        waha_message_id,
    )
    if record is not None:
        return maybe_struct(record, MessageRow), True
    record = await db.fetchrow(
        f"UPDATE messages SET waha_message_id = coalesce(waha_message_id, $2) WHERE id = $1 RETURNING {_COLUMNS}",
        message_id,
        waha_message_id,
    )
    return maybe_struct(record, MessageRow), False


async def mark_failed(message_id: UUID, error: str) -> MessageRow | None:
    """WAHA refused it (still pending): ``failed`` with the reason."""
    record = await db.fetchrow(
        f"UPDATE messages SET status = '{_FAILED}', error = $2, updated_at = clock_timestamp()"
        f" WHERE id = $1 AND {_RANK} < {RANK[MessageStatus.FAILED]} RETURNING {_COLUMNS}",
        message_id,
        error,
    )
    return maybe_struct(record, MessageRow)


class PendingRow(msgspec.Struct, frozen=True):
    id: UUID
    chip_id: UUID
    user_id: UUID
    recipient: str
    waha_ref: str
    waha_message_id: str | None


async def stale_pending(older_than_seconds: int, limit: int) -> list[PendingRow]:
    """Messages still ``pending`` a while after their send (WAHA's answer unrecorded, no ack yet),
    within the last 24 hours, oldest first."""
    records = await db.fetch(
        "SELECT id, chip_id, user_id, recipient, waha_ref, waha_message_id FROM messages"
        f" WHERE status = '{_PENDING}' AND created_at < now() - make_interval(secs => $1)"
        f" AND created_at > now() - interval '{IDEMPOTENCY_HOURS} hours'"
        " ORDER BY created_at LIMIT $2",
        older_than_seconds,
        limit,
    )
    return to_structs(records, PendingRow)


async def advance(message_id: UUID, status: MessageStatus, waha_message_id: str | None) -> MessageRow | None:
    """Move to ``status`` if that is forward (the rank rule); the row when it moved, else None."""
    record = await db.fetchrow(
        f"UPDATE messages SET status = $2::varchar, waha_message_id = coalesce(waha_message_id, $3),"
        f" updated_at = clock_timestamp() WHERE id = $1 AND {_RANK} < $4::int RETURNING {_COLUMNS}",
        message_id,
        status.value,
        waha_message_id,
        RANK[status],
    )
    return maybe_struct(record, MessageRow)


async def delete_pending(message_id: UUID) -> None:
    """WAHA never took it: the request changed nothing, so the row goes."""
    await db.fetch(f"DELETE FROM messages WHERE id = $1 AND status = '{_PENDING}'", message_id)


async def get(chip_id: UUID, message_id: UUID) -> MessageRow | None:
    record = await db.fetchrow(f"SELECT {_COLUMNS} FROM messages WHERE id = $1 AND chip_id = $2", message_id, chip_id)
    return maybe_struct(record, MessageRow)


async def page(chip_id: UUID, limit: int, before: UUID | None) -> list[MessageRow]:
    """Newest first, keyset-paged: ``before`` is the last message of the previous page."""
    records = await db.fetch(
        f"""
        SELECT {_COLUMNS} FROM messages
        WHERE chip_id = $1
          AND ($3::uuid IS NULL OR (created_at, id) < (
                SELECT b.created_at, b.id FROM messages b WHERE b.id = $3 AND b.chip_id = $1))
        ORDER BY created_at DESC, id DESC
        LIMIT $2
        """,
        chip_id,
        limit,
        before,
    )
    return to_structs(records, MessageRow)


async def prune(older_than_days: int, batch: int = 5000) -> int:
    """Delete messages older than the retention, in batches (short locks, bounded WAL bursts)."""
    total = 0
    while True:
        records = await db.fetch(
            "WITH doomed AS (SELECT id FROM messages WHERE created_at < now() - make_interval(days => $1)"
            " LIMIT $2) DELETE FROM messages m USING doomed WHERE m.id = doomed.id RETURNING 1",
            older_than_days,
            batch,
        )
        total += len(records)
        if len(records) < batch:
            return total
