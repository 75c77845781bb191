"""Every SQL statement of the instances feature (the platform's record of each tenant's WAHA).

Raw SQL for the upserts (ON CONFLICT with a rule about statuses we decided ourselves) and for
the idle query (an aggregate across users and chips); each says why at the statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from enum import StrEnum
from uuid import UUID

import msgspec

from app.core import db
from app.core.rows import to_struct
from app.scheduler.base import InstanceState, TenantRef


class RecordStatus(StrEnum):
    """Statuses of the ``instances`` table: the scheduler's, plus two we decide ourselves."""

    PENDING = "pending"
    RUNNING = "running"
    IDLE = "idle"  # stopped by reap_idle; brought back by the tenant's next activity
    REMOVED = "removed"  # removed by an operator; back only when the tenant restarts a chip


# statuses the reconciler leaves alone: they were decided, not drifted into
PARKED = (RecordStatus.IDLE, RecordStatus.REMOVED)
_PARKED_SQL = ", ".join(f"'{s.value}'" for s in PARKED)


class InstanceRecord(msgspec.Struct, frozen=True):
    user_id: UUID
    status: str


# An observation never overrides a parked status unless the instance is actually running again.
_UPSERT_SET = f"""
    job_id = EXCLUDED.job_id,
    status = CASE WHEN instances.status IN ({_PARKED_SQL}) AND EXCLUDED.status <> '{RecordStatus.RUNNING.value}'
                  THEN instances.status ELSE EXCLUDED.status END,
    base_url = EXCLUDED.base_url,
    last_error = NULL,
    last_seen_at = now(),
    updated_at = now()
"""


async def record(instance: InstanceState) -> None:
    """Upsert what we last observed of one instance (raw SQL: ON CONFLICT with the parked rule)."""
    await db.fetch(
        f"""
        INSERT INTO instances (user_id, job_id, status, base_url, sessions, last_seen_at)
        VALUES ($1, $2, $3, $4, 0, now())
        ON CONFLICT (user_id) DO UPDATE SET {_UPSERT_SET}
        """,
        UUID(instance.user_id),
        instance.job_id,
        instance.status,
        instance.base_url,
    )


async def record_many(observed: Sequence[tuple[InstanceState, int]]) -> None:
    """Bulk form for the reconciler: one statement per pass, with the sessions it counted."""
    if not observed:
        return
    await db.fetch(
        f"""
        INSERT INTO instances (user_id, job_id, status, base_url, sessions, last_seen_at)
        SELECT u, j, s, b, n, now() FROM unnest($1::uuid[], $2::varchar[], $3::varchar[], $4::text[], $5::int[])
            AS t(u, j, s, b, n)
        WHERE EXISTS (SELECT 1 FROM users WHERE users.id = t.u)
        ON CONFLICT (user_id) DO UPDATE SET {_UPSERT_SET}, sessions = EXCLUDED.sessions
        """,
        [UUID(i.user_id) for i, _ in observed],
        [i.job_id for i, _ in observed],
        [i.status for i, _ in observed],
        [i.base_url for i, _ in observed],
        [n for _, n in observed],
    )


async def recount_sessions(user_id: UUID, gone_status: str) -> None:
    """Count in the UPDATE itself (the tenant's chips not in ``gone_status``): a count read first and
    written later could overwrite a newer one (provisioning racing teardown)."""
    await db.fetch(
        "UPDATE instances SET sessions = (SELECT count(*) FROM chips c WHERE c.user_id = $1 AND c.status <> $2),"
        " updated_at = now() WHERE user_id = $1",
        user_id,
        gone_status,
    )


async def all_records() -> dict[UUID, InstanceRecord]:
    rows = await db.fetch("SELECT user_id, status FROM instances")
    return {r["user_id"]: to_struct(r, InstanceRecord) for r in rows}


async def forget(user_id: UUID) -> None:
    await db.fetch("DELETE FROM instances WHERE user_id = $1", user_id)


async def tenant(user_id: UUID) -> TenantRef | None:
    row = await db.fetchrow(
        "SELECT u.id, u.plan, u.email, (SELECT count(*) FROM chips c WHERE c.user_id = u.id) AS chips"
        " FROM users u WHERE u.id = $1",
        user_id,
    )
    if row is None:
        return None
    return TenantRef(id=str(row["id"]), plan=row["plan"], email=row["email"], chip_count=row["chips"])


async def tenant_exists(user_id: UUID) -> bool:
    return await db.fetchrow("SELECT 1 FROM users WHERE id = $1", user_id) is not None


async def idle_candidates(idle_for: timedelta) -> list[UUID]:
    """Tenants whose instance runs (not parked) and who showed no activity (API use, chip
    traffic) for ``idle_for``. Raw SQL: one aggregate across users and their chips."""
    rows = await db.fetch(
        f"""
        SELECT i.user_id FROM instances i JOIN users u ON u.id = i.user_id
        WHERE i.status NOT IN ({_PARKED_SQL})
          AND greatest(u.last_active_at,
                       coalesce((SELECT max(c.last_activity_at) FROM chips c WHERE c.user_id = u.id), u.last_active_at))
              < now() - $1::interval
        ORDER BY i.user_id
        """,
        idle_for,
    )
    return [r["user_id"] for r in rows]


async def park_idle(user_id: UUID) -> None:
    await db.fetch(
        "UPDATE instances SET status = $2, base_url = NULL, updated_at = now() WHERE user_id = $1"
        f" AND status NOT IN ({_PARKED_SQL})",
        user_id,
        RecordStatus.IDLE,
    )


async def unpark_idle(user_id: UUID) -> bool:
    """idle → pending; True when this call did it (so one wake-up per return, across processes)."""
    rows = await db.fetch(
        "UPDATE instances SET status = $2, updated_at = now() WHERE user_id = $1 AND status = $3 RETURNING user_id",
        user_id,
        RecordStatus.PENDING,
        RecordStatus.IDLE,
    )
    return bool(rows)


async def mark_pending(user_id: UUID) -> None:
    await db.fetch(
        "UPDATE instances SET status = $2, updated_at = now() WHERE user_id = $1", user_id, RecordStatus.PENDING
    )


async def mark_removed(user_id: UUID, job_id: str) -> None:
    # kept as 'removed' (not deleted) so the reconciler does not bring it straight back
    await db.fetch(
        "INSERT INTO instances (user_id, job_id, status) VALUES ($1, $2, $3)"
        " ON CONFLICT (user_id) DO UPDATE SET status = $3, base_url = NULL, sessions = 0, updated_at = now()",
        user_id,
        job_id,
        RecordStatus.REMOVED,
    )
