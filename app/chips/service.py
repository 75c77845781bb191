"""Chip registry rules: plan limits (race-free), tenant isolation, history, provisioning intent."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from uuid import UUID, uuid4

from app.chips import queries
from app.chips.queries import ChipRow, ReconcileRow
from app.chips.schemas import ChipCreate, ChipEventOut, ChipEventPage, ChipOut, ChipPage, ChipProxy
from app.chips.status import ChipHealth, ChipStatus, Source
from app.chips.transitions import KEEP, ChipTransitions
from app.container import Container
from app.core import db
from app.core.errors import Conflict, DependencyUnavailable, NotAuthenticated, NotFound
from app.core.pagination import paginate
from app.core.queue import PROVISION_CHIP, TEARDOWN_CHIP
from app.waha.sessions import session_name

logger = logging.getLogger("whago.chips")


def tenant_error(text: str | None) -> str | None:
    """The short form of a chip's error (or failure detail) that its tenant sees.

    WHAGO's own texts are sentences with no ": " ("WAHA reported the session FAILED …"); a worker's
    final failure is "<what> failed after N attempts: <remote error>", and the remote part (Nomad or
    WAHA text: addresses, node names, job internals) stays in the operator view and the logs.
    """
    if text is None:
        return None
    summary, cut, _ = text.partition(": ")
    summary = summary.strip()[:160]
    return f"{summary}. Details are with the operators." if cut else summary


def to_chip_out(row: ChipRow) -> ChipOut:
    return ChipOut(
        id=row.id,
        alias=row.alias,
        status=row.status,
        session_name=row.session_name,
        phone_number=row.phone_number,
        proxy=ChipProxy(id=row.proxy_id, country=row.proxy_country) if row.proxy_id else None,
        error=tenant_error(row.error),
        status_changed_at=row.status_changed_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        # a verdict only describes a connected chip; any other status is "unknown"
        health=ChipHealth(row.health) if row.status == ChipStatus.CONNECTED else ChipHealth.UNKNOWN,
        health_checked_at=row.health_checked_at,
    )


class ChipService:
    def __init__(self, services: Container) -> None:
        self.s = services
        self.transitions = ChipTransitions(services.events)

    async def list(self, user_id: UUID, *, limit: int, offset: int, status: ChipStatus | None) -> ChipPage:
        async def page(limit: int, offset: int) -> list[ChipOut]:
            return [to_chip_out(r) for r in await queries.list_for_user(user_id, status, limit, offset)]

        return await paginate(page, lambda: queries.count_for_user(user_id, status), limit, offset, page_type=ChipPage)

    async def get(self, user_id: UUID, chip_id: UUID) -> ChipOut:
        row = await queries.get(chip_id, user_id)
        if row is None:
            raise NotFound("Chip not found.")  # another tenant's chip looks the same as a missing one
        return to_chip_out(row)

    async def create(self, user_id: UUID, data: ChipCreate) -> ChipOut:
        chip_id = uuid4()
        async with db.transaction():
            plan = await queries.lock_plan(user_id)
            if plan is None:
                raise NotAuthenticated("Unknown user.")
            limit = self.s.settings.plan_limits.get(plan, 0)
            # deleting chips still count: they stop counting once teardown removes them
            if await queries.count_for_user(user_id) >= limit:
                raise Conflict(
                    f"Plan '{plan}' allows {limit} chip(s); delete one or upgrade.", code="plan_limit_reached"
                )
            created = await self.transitions.create(
                chip_id,
                user_id,
                alias=data.alias.strip(),
                session_name=session_name(chip_id),
                proxy_country=data.proxy_country.lower() if data.proxy_country else None,
            )
        await self.transitions.publish(created)
        await self.enqueue_provisioning(chip_id)
        return await self.get(user_id, chip_id)

    async def enqueue_provisioning(self, chip_id: UUID) -> None:
        """Enqueue provision_chip; on success mark the outbox row. Redis down leaves it for later
        (the unmarked row is what the reconciler looks for)."""
        try:
            await self.s.queue.enqueue(PROVISION_CHIP, chip_id, chip_id=str(chip_id))
        except DependencyUnavailable:
            return
        await queries.mark_provision_enqueued(chip_id)

    async def rename(self, user_id: UUID, chip_id: UUID, alias: str) -> ChipOut:
        if not await queries.rename(chip_id, user_id, alias.strip()):
            raise NotFound("Chip not found.")
        return await self.get(user_id, chip_id)

    async def request_delete(self, user_id: UUID, chip_id: UUID) -> ChipOut:
        moved = await self.transitions.move(
            chip_id,
            ChipStatus.DELETING,
            Source.API,
            "delete requested",
            user_id=user_id,
            never_from=(),
            error=KEEP,
            then=lambda: self.get(user_id, chip_id),
        )
        # 'deleting' is itself the durable record: if Redis is down the reconciler enqueues it later.
        try:
            await self.s.queue.enqueue(TEARDOWN_CHIP, chip_id, chip_id=str(chip_id))
        except DependencyUnavailable:
            logger.warning("teardown of chip %s left for the reconciler: queue unavailable", chip_id)
        if moved.result is None:
            raise NotFound("Chip not found.")
        return moved.result

    async def touch_activity(self, chip_id: UUID) -> None:
        """Something went through the chip (a message sent): the liveness/idle clocks restart."""
        await queries.touch_activity(chip_id)

    async def events(self, user_id: UUID, chip_id: UUID, limit: int) -> ChipEventPage:
        await self.get(user_id, chip_id)
        rows = await queries.history(chip_id, limit)
        return ChipEventPage(
            items=[
                ChipEventOut(
                    at=r.at,
                    from_status=r.from_status,
                    to_status=r.to_status,
                    source=r.source,
                    # a worker's final failure carries the remote error text: the tenant gets the summary
                    detail=tenant_error(r.detail)
                    if r.source == Source.WORKER and r.to_status == ChipStatus.FAILED
                    else r.detail,
                )
                for r in rows
            ]
        )

    # --- for the reconciler (it reads chips through this service, never through chips' queries)

    async def reconcile_snapshot(self, settle_seconds: int, stall_seconds: int) -> Sequence[ReconcileRow]:
        return await queries.for_reconcile(settle_seconds, stall_seconds)

    async def existing_session_names(self, names: Sequence[str]) -> set[str]:
        return await queries.existing_session_names(names)

    async def mark_provision_enqueued(self, chip_id: UUID) -> None:
        await queries.mark_provision_enqueued(chip_id)
