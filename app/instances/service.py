"""The platform's record of each tenant's WAHA instance, idle reaping and waking up."""

from __future__ import annotations

import logging
from datetime import timedelta
from uuid import UUID

from app.core import db
from app.core.errors import DependencyUnavailable, NotFound
from app.core.queue import PROVISION_CHIP
from app.container import Container
from app.chips.service import record_transition, utcnow
from app.events.bus import publish_chip_event
from app.scheduler.base import Instance, TenantRef, job_id_for

logger = logging.getLogger("whago.instances")

IDLE = "idle"  # stopped by reap_idle; brought back by the tenant's next activity
REMOVED = "removed"  # removed by an operator; back only when the tenant re-links a chip
# statuses the reconciler leaves alone: they were decided, not drifted into
PARKED = (IDLE, REMOVED)


async def record_instance(instance: Instance, *, sessions: int | None = None) -> None:
    """Upsert what we last observed. 'idle' is ours: an observation never overrides it."""
    await db.fetch(
        """
        INSERT INTO instances (user_id, job_id, status, base_url, sessions, last_seen_at)
        VALUES ($1, $2, $3, $4, coalesce($5, 0), now())
        ON CONFLICT (user_id) DO UPDATE SET
            job_id = EXCLUDED.job_id,
            status = CASE WHEN instances.status IN ('idle', 'removed') AND EXCLUDED.status <> 'running'
                          THEN instances.status ELSE EXCLUDED.status END,
            base_url = EXCLUDED.base_url,
            sessions = coalesce($5, instances.sessions),
            last_error = NULL,
            last_seen_at = now(),
            updated_at = now()
        """,
        UUID(instance.user_id),
        instance.job_id,
        instance.status,
        instance.base_url,
        sessions,
    )


async def record_instances(observed: list[tuple[Instance, int]]) -> None:
    """Bulk form of record_instance for the reconciler: one statement per pass, not per tenant."""
    if not observed:
        return
    await db.fetch(
        """
        INSERT INTO instances (user_id, job_id, status, base_url, sessions, last_seen_at)
        SELECT u, j, s, b, n, now() FROM unnest($1::uuid[], $2::varchar[], $3::varchar[], $4::text[], $5::int[])
            AS t(u, j, s, b, n)
        WHERE EXISTS (SELECT 1 FROM users WHERE users.id = t.u)
        ON CONFLICT (user_id) DO UPDATE SET
            job_id = EXCLUDED.job_id,
            status = CASE WHEN instances.status IN ('idle', 'removed') AND EXCLUDED.status <> 'running'
                          THEN instances.status ELSE EXCLUDED.status END,
            base_url = EXCLUDED.base_url,
            sessions = EXCLUDED.sessions,
            last_error = NULL,
            last_seen_at = now(),
            updated_at = now()
        """,
        [UUID(i.user_id) for i, _ in observed],
        [i.job_id for i, _ in observed],
        [i.status for i, _ in observed],
        [i.base_url for i, _ in observed],
        [n for _, n in observed],
    )


async def tenant_ref(user_id: UUID) -> TenantRef | None:
    row = await db.fetchrow(
        "SELECT u.id, u.plan, u.email, (SELECT count(*) FROM chips c WHERE c.user_id = u.id) AS chips"
        " FROM users u WHERE u.id = $1",
        user_id,
    )
    if row is None:
        return None
    return TenantRef(id=str(row["id"]), plan=row["plan"], email=row["email"], chip_count=row["chips"])


class InstanceService:
    def __init__(self, services: Container) -> None:
        self.s = services

    async def ensure(self, user_id: UUID) -> Instance:
        tenant = await tenant_ref(user_id)
        if tenant is None:
            raise NotFound("Tenant not found.")
        instance = await self.s.scheduler.ensure_instance(tenant)
        await record_instance(instance)
        return instance

    async def reap_idle(self) -> list[str]:
        """Stop instances of tenants with no activity (API use, chip traffic) for WHAGO_IDLE_DAYS."""
        cutoff = timedelta(days=self.s.settings.idle_days)
        rows = await db.fetch(
            """
            SELECT i.user_id FROM instances i JOIN users u ON u.id = i.user_id
            WHERE i.status <> 'idle'
              AND greatest(u.last_active_at,
                           coalesce((SELECT max(c.last_activity_at) FROM chips c WHERE c.user_id = u.id), u.last_active_at))
                  < now() - $1::interval
            """,
            cutoff,
        )
        reaped = []
        for row in rows:
            user_id = str(row["user_id"])
            await self.s.scheduler.stop_instance(user_id)
            await db.fetch(
                "UPDATE instances SET status = 'idle', base_url = NULL, updated_at = now() WHERE user_id = $1",
                row["user_id"],
            )
            logger.info("instance of %s stopped after %s idle days", user_id, self.s.settings.idle_days)
            reaped.append(user_id)
        return reaped

    async def wake_if_idle(self, user_id: UUID) -> bool:
        """Tenant activity after idling: provisioning brings the instance (and its persisted
        sessions, no new QR) back. Returns True when a wake-up was started."""
        rows = await db.fetch(
            "UPDATE instances SET status = 'pending', updated_at = now() WHERE user_id = $1 AND status = 'idle'"
            " RETURNING user_id",
            user_id,
        )
        if not rows:
            return False
        chips = await db.fetch("SELECT id FROM chips WHERE user_id = $1 AND status <> 'deleting'", user_id)
        for chip in chips:
            try:
                await self.s.queue.enqueue(PROVISION_CHIP, chip["id"], chip_id=str(chip["id"]))
            except DependencyUnavailable:
                break  # the reconciler ensures instances of non-idle tenants with chips
        return True

    async def _require_tenant(self, user_id: UUID) -> None:
        # Adapters without per-tenant processes (static) accept any id: say 404 for unknown users.
        if await db.fetchrow("SELECT 1 FROM users WHERE id = $1", user_id) is None:
            raise NotFound("Tenant not found.")

    async def restart(self, user_id: UUID) -> None:
        await self._require_tenant(user_id)
        await self.s.scheduler.restart_instance(str(user_id))
        await self.s.scheduler.invalidate(str(user_id))

    async def remove(self, user_id: UUID) -> int:
        """Stop and remove the tenant's instance; their chips go 'disconnected'."""
        await self._require_tenant(user_id)
        await self.s.scheduler.remove_instance(str(user_id))
        async with db.transaction():
            # Kept as 'removed' (not deleted) so the reconciler does not bring it straight back;
            # the tenant's next restart of a chip provisions it again.
            await db.fetch(
                "INSERT INTO instances (user_id, job_id, status) VALUES ($1, $2, 'removed')"
                " ON CONFLICT (user_id) DO UPDATE SET status = 'removed', base_url = NULL, sessions = 0,"
                " updated_at = now()",
                user_id,
                job_id_for(str(user_id)),
            )
            rows = await db.fetch(
                """
                WITH old AS (
                    SELECT id, status FROM chips
                    WHERE user_id = $1 AND status NOT IN ('disconnected', 'deleting') FOR UPDATE
                )
                UPDATE chips c SET status = 'disconnected', status_changed_at = now(), updated_at = now()
                FROM old WHERE c.id = old.id RETURNING c.id, old.status
                """,
                user_id,
            )
            for row in rows:
                await record_transition(row["id"], row["status"], "disconnected", "admin", "instance removed by an operator")
        for row in rows:
            await publish_chip_event(
                self.s.redis, user_id, "chip.status",
                {"chip_id": str(row["id"]), "status": "disconnected", "previous": row["status"], "at": utcnow().isoformat()},
            )
        return len(rows)
