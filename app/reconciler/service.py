"""The reconciler: make the real world (scheduler instances, WAHA sessions) match PostgreSQL.

One run at a time cluster-wide (a Redis lock with expiry). Desired state comes from the
database; actual state from ONE paged instance listing plus one session listing per running
instance (per distinct WAHA URL). It heals in both directions and never fights the main path:
chips changed in the last seconds are left alone, and status fixes are conditional updates
that lose to any concurrent change.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from uuid import UUID

from app.chips.provisioning import reports_to_us
from app.chips.service import record_transition, utcnow
from app.core import db
from app.core.errors import DependencyUnavailable, WhagoError
from app.core.queue import PROVISION_CHIP, ROTATE_PROXY, TEARDOWN_CHIP
from app.core.redis import key
from app.container import Container
from app.events.bus import publish_chip_event
from app.instances.service import PARKED, record_instances
from app.scheduler.base import Instance
from app.waha.client import WahaError
from app.waha.sessions import chip_id_from_session, chip_metadata
from app.webhooks.service import WAHA_TO_CHIP_STATUS

logger = logging.getLogger("whago.reconciler")

LOCK_KEY = key("lock", "reconcile")
# A chip whose status changed this recently is in the middle of the main path (webhooks, user
# actions): the reconciler does not second-guess it.
SETTLE_SECONDS = 30
# A provisioning chip is only re-enqueued after its job had this long to run.
PROVISION_STALL_SECONDS = 120

_RELEASE_LOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"


@dataclass
class ReconcileReport:
    ran: bool = True
    tenants: int = 0
    instances: int = 0
    sessions: int = 0
    drift: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "ran": self.ran,
            "tenants": self.tenants,
            "instances": self.instances,
            "sessions": self.sessions,
            "drift": dict(self.drift),
            "errors": self.errors[:20],
            "seconds": round(self.seconds, 3),
        }


class Reconciler:
    def __init__(self, services: Container, *, concurrency: int = 32) -> None:
        self.s = services
        self.concurrency = concurrency

    async def run(self) -> ReconcileReport:
        token = uuid.uuid4().hex
        ttl_ms = max(self.s.settings.reconcile_interval_seconds, 60) * 5 * 1000
        if not await self.s.redis.set(LOCK_KEY, token, nx=True, px=ttl_ms):
            return ReconcileReport(ran=False)
        try:
            return await self._run()
        finally:
            try:
                await self.s.redis.eval(_RELEASE_LOCK, 1, LOCK_KEY, token)
            except Exception:  # the lock expires by itself
                logger.warning("could not release the reconcile lock")

    async def _enqueue(self, spec, chip_id: UUID, report: ReconcileReport, drift: str) -> None:
        try:
            if await self.s.queue.enqueue(spec, chip_id, chip_id=str(chip_id)):
                report.drift[drift] += 1
                if spec is PROVISION_CHIP:
                    await db.fetch("UPDATE chips SET provision_enqueued_at = now() WHERE id = $1", chip_id)
        except DependencyUnavailable:
            report.errors.append(f"queue unavailable for {spec.name} {chip_id}")

    async def _run(self) -> ReconcileReport:
        started = time.perf_counter()
        report = ReconcileReport()
        settings = self.s.settings

        chips = await db.fetch(
            """
            SELECT c.id, c.user_id, c.status, c.session_name, c.proxy_dirty, c.phone_number,
                   c.provision_enqueued_at, c.status_changed_at,
                   c.status_changed_at < now() - make_interval(secs => $1) AS settled,
                   coalesce(c.provision_enqueued_at, c.created_at) < now() - make_interval(secs => $2) AS stalled
            FROM chips c
            """,
            SETTLE_SECONDS,
            PROVISION_STALL_SECONDS,
        )
        tenants: dict[UUID, list] = defaultdict(list)
        for chip in chips:
            tenants[chip["user_id"]].append(chip)
        report.tenants = len(tenants)
        records = {r["user_id"]: r for r in await db.fetch("SELECT user_id, status, created_at FROM instances")}

        listed = {}
        for instance in await self.s.scheduler.list_instances():
            listed[instance.user_id] = instance
        report.instances = len(listed)

        # 1. Instances nobody needs: unknown tenant, or a tenant without chips past the grace period.
        grace = settings.instance_grace_seconds
        for user_key, instance in listed.items():
            try:
                owner = UUID(user_key)
            except ValueError:
                owner = None
            if owner is not None and tenants.get(owner):
                continue
            if not await self._past_grace(instance, grace):
                continue
            try:
                await self.s.scheduler.remove_instance(instance.user_id)
                if owner is not None:
                    await db.fetch("DELETE FROM instances WHERE user_id = $1", owner)
                report.drift["instance_removed"] += 1
            except WhagoError as exc:
                report.errors.append(f"remove {instance.job_id}: {exc.detail}")

        # 2. Tenants with chips: find (or bring back) their instance, skipping idle-reaped ones.
        semaphore = asyncio.Semaphore(self.concurrency)
        running: dict[UUID, Instance] = {}

        async def locate(user_id: UUID) -> None:
            record = records.get(user_id)
            if record is not None and record["status"] in PARKED:
                return  # reaped for inactivity or removed by an operator: not drift
            instance = listed.get(str(user_id))
            if instance is not None and instance.status == "running" and instance.base_url is None:
                async with semaphore:
                    instance = await self.s.scheduler.get_instance(str(user_id))
            if instance is None and str(user_id) not in listed:
                async with semaphore:
                    instance = await self.s.scheduler.get_instance(str(user_id))
            if instance is not None and instance.status == "running" and instance.base_url:
                running[user_id] = instance
                return
            # chips but no running instance: provisioning ensures it (deduplicated per chip)
            report.drift["instance_missing"] += 1
            for chip in tenants[user_id]:
                if chip["status"] != "deleting":
                    await self._enqueue(PROVISION_CHIP, chip["id"], report, "chip_reprovisioned")

        results = await asyncio.gather(*(locate(u) for u in tenants), return_exceptions=True)
        report.errors += [f"locate: {r}" for r in results if isinstance(r, Exception)]

        # 3. One session listing per distinct WAHA URL (a static WAHA is shared by every tenant).
        by_url: dict[str, list[UUID]] = defaultdict(list)
        for user_id, instance in running.items():
            by_url[instance.base_url].append(user_id)

        async def sessions_of(url: str):
            async with semaphore:
                return url, await self.s.waha.get(url).list_sessions(all=True)

        listings = await asyncio.gather(*(sessions_of(u) for u in by_url), return_exceptions=True)
        sessions_by_url = {}
        for result in listings:
            if isinstance(result, BaseException):
                report.errors.append(f"list sessions: {result}")
                continue
            url, sessions = result
            sessions_by_url[url] = {s.name: s for s in sessions}
            report.sessions += len(sessions)

        observed = []
        for user_id, instance in running.items():
            sessions = sessions_by_url.get(instance.base_url)
            if sessions is None:
                continue
            mine = tenants[user_id]
            observed.append((instance, sum(1 for c in mine if c["session_name"] in sessions)))
            for chip in mine:
                await self._reconcile_chip(chip, sessions.get(chip["session_name"]), report)
        await record_instances(observed)

        # 4. Sessions without a chip, per WAHA URL (only WHAGO's own chip_* sessions).
        known = {c["session_name"] for c in chips}
        for url, sessions in sessions_by_url.items():
            for name in sessions:
                if chip_id_from_session(name) is not None and name not in known:
                    try:
                        await self.s.waha.get(url).delete_session(name)
                        report.drift["session_orphan_deleted"] += 1
                    except WahaError as exc:
                        report.errors.append(f"delete {name}: {exc.detail}")

        # 5. Durable to-dos whose job may have been lost (Redis down, worker killed).
        for chip in chips:
            if chip["status"] == "deleting" and chip["settled"]:
                await self._enqueue(TEARDOWN_CHIP, chip["id"], report, "teardown_requeued")
            elif chip["status"] == "provisioning" and (chip["provision_enqueued_at"] is None or chip["stalled"]):
                await self._enqueue(PROVISION_CHIP, chip["id"], report, "provision_requeued")
            elif chip["proxy_dirty"] and chip["status"] not in ("provisioning", "deleting"):
                await self._enqueue(ROTATE_PROXY, chip["id"], report, "proxy_rotation_requeued")

        report.seconds = time.perf_counter() - started
        if report.drift or report.errors:
            logger.info("reconcile: %s", report.as_dict())
        return report

    async def _past_grace(self, instance: Instance, grace: int) -> bool:
        """First sighting starts the clock (kept in Redis: rebuilt harmlessly if lost)."""
        clock = key("reconcile", "unneeded", instance.job_id)
        now = time.time()
        first = await self.s.redis.set(clock, now, nx=True, ex=grace * 4 + 3600, get=True)
        return first is not None and now - float(first) >= grace

    async def _reconcile_chip(self, chip, session, report: ReconcileReport) -> None:
        status = chip["status"]
        if status in ("deleting", "provisioning"):
            return  # teardown / provisioning own these; step 5 re-drives them if stuck
        if session is None:
            report.drift["session_missing"] += 1
            await self._enqueue(PROVISION_CHIP, chip["id"], report, "chip_reprovisioned")
            return
        settings = self.s.settings
        metadata = chip_metadata(chip["user_id"], chip["id"])
        if not reports_to_us(session, metadata, settings.webhook_url, settings.webhook_signing_key):
            # webhook key rotated, public URL moved, or the config was edited behind our back
            report.drift["session_config_stale"] += 1
            await self._enqueue(PROVISION_CHIP, chip["id"], report, "session_config_requeued")
        observed = WAHA_TO_CHIP_STATUS.get(session.status)
        if observed is None or observed == status or not chip["settled"]:
            return
        phone = session.me.phone_number if (observed == "connected" and session.me is not None) else None
        async with db.transaction():
            rows = await db.fetch(
                "UPDATE chips SET status = $3::varchar, status_changed_at = now(), updated_at = now(),"
                " phone_number = coalesce($4, phone_number),"
                " error = CASE WHEN $3::varchar = 'failed' THEN 'WAHA reports the session FAILED' ELSE NULL END"
                " WHERE id = $1 AND status = $2 AND status_changed_at = $5 RETURNING id",
                chip["id"],
                status,
                observed,
                phone,
                chip["status_changed_at"],
            )
            if not rows:
                return  # changed under us: the main path wins
            await record_transition(
                chip["id"], status, observed, "reconciler", f"WAHA reports {session.status} (missed webhook)"
            )
        report.drift["status_fixed"] += 1
        await publish_chip_event(
            self.s.redis, chip["user_id"], "chip.status",
            {"chip_id": str(chip["id"]), "status": observed, "previous": status, "at": utcnow().isoformat()},
        )
