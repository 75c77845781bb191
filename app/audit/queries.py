"""Every query of the audit feature (the ``audit_log`` table), typed rows out."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import msgspec

from app.core import db
from app.core.rows import to_structs


class AuditRow(msgspec.Struct):
    id: UUID
    at: datetime
    actor_id: UUID | None
    actor_email: str | None
    action: str
    target_type: str
    target_id: str | None
    before: str | None  # jsonb as text: decoded by the service
    after: str | None
    request_id: str | None


async def insert(
    *,
    actor_id: UUID | None,
    actor_email: str | None,
    action: str,
    target_type: str,
    target_id: str | None,
    before: str | None,
    after: str | None,
    request_id: str | None,
) -> None:
    # The actor's email is copied now (looked up when the caller only knows the id), so the entry
    # still names them after the account is deleted.
    await db.fetch(
        """
        INSERT INTO audit_log (actor_id, actor_email, action, target_type, target_id, before, after, request_id)
        VALUES ($1, COALESCE($2, (SELECT email FROM users WHERE id = $1)), $3, $4, $5, $6::jsonb, $7::jsonb, $8)
        """,
        actor_id,
        actor_email,
        action,
        target_type,
        target_id,
        before,
        after,
        request_id,
    )


async def page(
    *, limit: int, before: UUID | None, actor_id: UUID | None, action: str | None, target_id: str | None
) -> list[AuditRow]:
    """Newest first; ``before`` is the cursor: the id of the last entry seen (older ones follow).
    NULL filters match all."""
    rows = await db.fetch(
        """
        SELECT id, at, actor_id, actor_email, action, target_type, target_id,
               before::text AS before, after::text AS after, request_id
        FROM audit_log
        WHERE ($2::uuid IS NULL OR seq < (SELECT seq FROM audit_log WHERE id = $2))
          AND ($3::uuid IS NULL OR actor_id = $3)
          AND ($4::text IS NULL OR action = $4)
          AND ($5::text IS NULL OR target_id = $5)
        ORDER BY seq DESC
        LIMIT $1
        """,
        limit,
        before,
        actor_id,
        action,
        target_id,
    )
    return to_structs(rows, AuditRow)


async def prune(older_than: timedelta) -> int:
    rows = await db.fetch(
        "WITH gone AS (DELETE FROM audit_log WHERE at < now() - $1::interval RETURNING 1)"
        " SELECT count(*) AS n FROM gone",
        older_than,
    )
    return int(rows[0]["n"])
