"""The platform's record of each tenant's WAHA instance, and idle reaping.

Knows nothing of chips: what happens to a tenant's chips when their instance goes or comes back
is the chips feature's business (it calls this service, never the reverse).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from uuid import UUID

from app.audit import service as audit
from app.container import Container
from app.core.errors import NotFound, WhagoError
from app.instances import queries
from app.instances.queries import PARKED, InstanceRecord
from app.instances.waha_roles import WahaRoles
from app.scheduler.base import InstanceState, job_id_for

logger = logging.getLogger("whago.instances")

# what the reconciler needs to know of the records, without reaching into this feature's queries
__all__ = ["PARKED", "InstanceRecord", "InstanceService"]


class InstanceService:
    def __init__(self, services: Container) -> None:
        self.s = services
        self.roles = WahaRoles(services.settings)

    async def ensure(self, user_id: UUID) -> InstanceState:
        tenant = await queries.tenant(user_id)
        if tenant is None:
            raise NotFound("Tenant not found.")
        if self.roles.enabled:
            # before the instance: its sessions URL (in the job's Variable) logs in as this role
            await self.roles.ensure(user_id)
        instance = await self.s.scheduler.ensure_instance(tenant)
        await queries.record(instance)
        return instance

    async def reap_idle(self) -> list[str]:
        """Stop instances of tenants with no activity (API use, chip traffic) for WHAGO_IDLE_DAYS.

        One tenant's scheduler failure does not stop the others: it is logged and retried on
        the next run (the instance stays recorded as running until it is really stopped)."""
        reaped = []
        for user_id in await queries.idle_candidates(timedelta(days=self.s.settings.idle_days)):
            try:
                await self.s.scheduler.stop_instance(str(user_id))
            except WhagoError as exc:
                logger.warning("could not stop the idle instance of %s: %s", user_id, exc.detail)
                continue
            await queries.park_idle(user_id)
            logger.info("instance of %s stopped after %s idle days", user_id, self.s.settings.idle_days)
            reaped.append(str(user_id))
        return reaped

    async def unpark_idle(self, user_id: UUID) -> bool:
        """idle → pending, once per return (True for the caller that did it)."""
        return await queries.unpark_idle(user_id)

    async def mark_pending(self, user_id: UUID) -> None:
        await queries.mark_pending(user_id)

    async def records(self) -> dict[UUID, InstanceRecord]:
        return await queries.all_records()

    async def record_observed(self, observed: list[tuple[InstanceState, int]]) -> None:
        """The reconciler's observations, one statement per pass (with the sessions it counted)."""
        await queries.record_many(observed)

    async def forget(self, user_id: UUID) -> None:
        await queries.forget(user_id)

    async def recount_sessions(self, user_id: UUID, gone_status: str) -> None:
        """Sessions = the tenant's chips but those in ``gone_status`` (the chips feature's word)."""
        await queries.recount_sessions(user_id, gone_status)

    async def _require_tenant(self, user_id: UUID) -> None:
        # Adapters without per-tenant processes (static) accept any id: say 404 for unknown users.
        if not await queries.tenant_exists(user_id):
            raise NotFound("Tenant not found.")

    async def restart(self, user_id: UUID) -> None:
        await self._require_tenant(user_id)
        await self.s.scheduler.restart_instance(str(user_id))
        await self.s.scheduler.invalidate(str(user_id))
        await audit.record(None, "instance.restart", ("instance", user_id))

    async def remove(self, user_id: UUID) -> None:
        """Stop and remove the tenant's instance; it stays removed until a chip restart."""
        await self._require_tenant(user_id)
        await self.s.scheduler.remove_instance(str(user_id))
        await queries.mark_removed(user_id, job_id_for(str(user_id)))
        await audit.record(None, "instance.remove", ("instance", user_id))

    async def forget_tenant_storage(self, user_id: UUID) -> bool:
        """Removing a tenant for good: its WAHA sessions role and the databases it owns go.
        Not part of idle stops, chip teardown or instance removal: sessions survive those."""
        return await self.roles.drop(user_id) if self.roles.enabled else False
