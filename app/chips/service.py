"""Chip registry rules: plan limits (race-free), tenant isolation, history, provisioning intent."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from uuid import UUID, uuid4

from app.chips.schemas import ChipCreate, ChipEventOut, ChipEventPage, ChipOut, ChipPage, ChipProxy
from app.core import db
from app.core.errors import Conflict, DependencyUnavailable, NotAuthenticated, NotFound
from app.core.queue import PROVISION_CHIP, TEARDOWN_CHIP
from app.container import Container
from app.waha.sessions import session_name

logger = logging.getLogger("whago.chips")

_CHIP_SELECT = """
SELECT c.id, c.alias, c.status, c.session_name, c.phone_number, c.proxy_id, p.country AS proxy_country,
       c.error, c.status_changed_at, c.created_at, c.updated_at
FROM chips c LEFT JOIN proxies p ON p.id = c.proxy_id
"""

_LIST_SQL = f"""
SELECT q.*, count(*) OVER () AS total FROM ({_CHIP_SELECT}
    WHERE c.user_id = $1 AND ($2::varchar IS NULL OR c.status = $2)) q
ORDER BY q.created_at DESC, q.id LIMIT $3 OFFSET $4
"""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_chip_out(row) -> ChipOut:
    proxy = ChipProxy(id=row["proxy_id"], country=row["proxy_country"]) if row["proxy_id"] else None
    return ChipOut(
        id=row["id"],
        alias=row["alias"],
        status=row["status"],
        session_name=row["session_name"],
        phone_number=row["phone_number"],
        proxy=proxy,
        error=row["error"],
        status_changed_at=row["status_changed_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def record_transition(
    chip_id: UUID, from_status: str | None, to_status: str, source: str, detail: str | None = None, at=None
) -> None:
    """One history row per status change (or ignored event); call inside the change's transaction."""
    await db.fetch(
        "INSERT INTO chip_events (chip_id, at, from_status, to_status, source, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        chip_id,
        at or utcnow(),
        from_status,
        to_status,
        source,
        detail,
    )


class ChipService:
    def __init__(self, services: Container) -> None:
        self.s = services

    async def list(self, user_id: UUID, *, limit: int, offset: int, status: str | None) -> ChipPage:
        rows = await db.fetch(_LIST_SQL, user_id, status, limit, offset)
        if rows:
            total = rows[0]["total"]
        else:
            count = await db.fetchrow(
                "SELECT count(*) AS n FROM chips WHERE user_id = $1 AND ($2::varchar IS NULL OR status = $2)",
                user_id,
                status,
            )
            total = count["n"]
        return ChipPage(items=[to_chip_out(r) for r in rows], total=total)

    async def _row(self, user_id: UUID, chip_id: UUID):
        # Another tenant's chip is indistinguishable from a missing one.
        row = await db.fetchrow(_CHIP_SELECT + " WHERE c.id = $1 AND c.user_id = $2", chip_id, user_id)
        if row is None:
            raise NotFound("Chip not found.")
        return row

    async def get(self, user_id: UUID, chip_id: UUID) -> ChipOut:
        return to_chip_out(await self._row(user_id, chip_id))

    async def create(self, user_id: UUID, data: ChipCreate) -> ChipOut:
        chip_id = uuid4()
        async with db.transaction():
            # The user's row lock serialises concurrent creates for one tenant across every API
            # process; the count below then sees every committed chip.
            user = await db.fetchrow("SELECT plan FROM users WHERE id = $1 FOR UPDATE", user_id)
            if user is None:
                raise NotAuthenticated("Unknown user.")
            limit = self.s.settings.plan_limits.get(user["plan"], 0)
            used = await db.fetchrow("SELECT count(*) AS n FROM chips WHERE user_id = $1", user_id)
            if used["n"] >= limit:
                raise Conflict(
                    f"Plan '{user['plan']}' allows {limit} chip(s); delete one or upgrade.", code="plan_limit_reached"
                )
            await db.fetch(
                "INSERT INTO chips (id, user_id, alias, status, session_name, proxy_country)"
                " VALUES ($1, $2, $3, 'provisioning', $4, $5)",
                chip_id,
                user_id,
                data.alias.strip(),
                session_name(chip_id),
                data.proxy_country.lower() if data.proxy_country else None,
            )
            await record_transition(chip_id, None, "provisioning", "api", "chip created")
        await self.enqueue_provisioning(chip_id)
        return await self.get(user_id, chip_id)

    async def enqueue_provisioning(self, chip_id: UUID) -> bool:
        """Enqueue provision_chip; on success mark the outbox row. Redis down leaves it for later."""
        try:
            await self.s.queue.enqueue(PROVISION_CHIP, chip_id, chip_id=str(chip_id))
        except DependencyUnavailable:
            return False
        await db.fetch("UPDATE chips SET provision_enqueued_at = now() WHERE id = $1", chip_id)
        return True

    async def rename(self, user_id: UUID, chip_id: UUID, alias: str) -> ChipOut:
        rows = await db.fetch(
            "UPDATE chips SET alias = $3, updated_at = now() WHERE id = $1 AND user_id = $2 RETURNING id",
            chip_id,
            user_id,
            alias.strip(),
        )
        if not rows:
            raise NotFound("Chip not found.")
        return await self.get(user_id, chip_id)

    async def request_delete(self, user_id: UUID, chip_id: UUID) -> ChipOut:
        async with db.transaction():
            row = await db.fetchrow(
                "SELECT status FROM chips WHERE id = $1 AND user_id = $2 FOR UPDATE", chip_id, user_id
            )
            if row is None:
                raise NotFound("Chip not found.")
            if row["status"] != "deleting":
                await db.fetch(
                    "UPDATE chips SET status = 'deleting', status_changed_at = now(), updated_at = now()"
                    " WHERE id = $1",
                    chip_id,
                )
                await record_transition(chip_id, row["status"], "deleting", "api", "delete requested")
        # 'deleting' is itself the durable record: if Redis is down the reconciler enqueues it later.
        try:
            await self.s.queue.enqueue(TEARDOWN_CHIP, chip_id, chip_id=str(chip_id))
        except DependencyUnavailable:
            logger.warning("teardown of chip %s left for the reconciler: queue unavailable", chip_id)
        return await self.get(user_id, chip_id)

    async def events(self, user_id: UUID, chip_id: UUID, limit: int) -> ChipEventPage:
        await self._row(user_id, chip_id)
        rows = await db.fetch(
            "SELECT at, from_status, to_status, source, detail FROM chip_events WHERE chip_id = $1"
            " ORDER BY at DESC, id DESC LIMIT $2",
            chip_id,
            limit,
        )
        return ChipEventPage(items=[ChipEventOut(**dict(r)) for r in rows])
