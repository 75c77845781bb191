"""The reconciler: make the real world (scheduler instances, WAHA sessions) match PostgreSQL.

One run at a time cluster-wide (a Redis lock with expiry). Desired state comes from the
database; actual state from ONE paged instance listing plus one session listing per running
instance (per distinct WAHA URL). It heals in both directions and never fights the main path:
chips changed in the last seconds are left alone, and status fixes lose to any concurrent change.

A pass runs in named phases over one ``_Pass`` (what was read, what was found, the report):
load desired → list instances → remove unneeded instances → locate tenants' instances → list
sessions → reconcile chips → delete orphan sessions → re-drive lost jobs.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

from app.chips.provisioning import reports_to_us
from app.chips.service import ChipService, ReconcileRow
from app.chips.status import OURS, WAHA_TO_CHIP_STATUS, ChipStatus, Source
from app.chips.transitions import KEEP, Moved
from app.container import Container
from app.core import metrics
from app.core.errors import DependencyUnavailable, WhagoError
from app.core.queue import PROVISION_CHIP, ROTATE_PROXY, TEARDOWN_CHIP, JobSpec
from app.core.redis import key
from app.core.tenant_keys import TenantKeys, tenant_webhook_url
from app.instances.service import PARKED, InstanceRecord, InstanceService
from app.scheduler.base import InstanceState
from app.waha.client import WahaError
from app.waha.schemas import SessionInfo
from app.waha.sessions import chip_id_from_session, chip_metadata

logger = logging.getLogger("whago.reconciler")

LOCK_KEY = key("lock", "reconcile")
# A chip whose status changed this recently is in the middle of the main path (webhooks, user
# actions): the reconciler does not second-guess it.
SETTLE_SECONDS = 30
# A provisioning chip is only re-enqueued after its job had this long to run.
PROVISION_STALL_SECONDS = 120

_RELEASE_LOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"

T = TypeVar("T")


@dataclass
class ReconcileReport:
    ran: bool = True
    tenants: int = 0
    instances: int = 0
    sessions: int = 0
    # sessions still posting to the platform-key route (configured before per-tenant keys); each
    # is requeued for provisioning, which moves it to its tenant's route and key
    legacy_webhook_sessions: int = 0
    drift: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "tenants": self.tenants,
            "instances": self.instances,
            "sessions": self.sessions,
            "legacy_webhook_sessions": self.legacy_webhook_sessions,
            "drift": dict(self.drift),
            "errors": self.errors[:20],
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Pass:
    """One pass's state, filled phase by phase."""

    report: ReconcileReport
    chips: Sequence[ReconcileRow] = field(default_factory=list)
    tenants: dict[UUID, list[ReconcileRow]] = field(default_factory=lambda: defaultdict(list))
    records: dict[UUID, InstanceRecord] = field(default_factory=dict)
    listed: dict[str, InstanceState] = field(default_factory=dict)  # by user id string
    running: dict[UUID, InstanceState] = field(default_factory=dict)
    sessions_by_url: dict[str, dict[str, SessionInfo]] = field(default_factory=dict)
    owner_by_url: dict[str, UUID] = field(default_factory=dict)  # a tenant on that URL (for its key)


# every kind of drift this module counts: their series exist (at 0) before the first occurrence
DRIFT_KINDS = (
    "instance_removed",
    "instance_missing",
    "chip_reprovisioned",
    "session_orphan_deleted",
    "teardown_requeued",
    "provision_requeued",
    "proxy_rotation_requeued",
    "session_missing",
    "session_config_stale",
    "session_config_requeued",
    "session_stopped",
    "session_restarted",
    "session_stopped_as_intended",
    "status_fixed",
)
for _kind in DRIFT_KINDS:
    metrics.RECONCILE_DRIFT.labels(_kind)


class Reconciler:
    def __init__(self, services: Container, *, concurrency: int = 32) -> None:
        self.s = services
        self.concurrency = concurrency
        self.chips = ChipService(services)
        self.instances = InstanceService(services)
        self.transitions = self.chips.transitions
        self._semaphore = asyncio.Semaphore(concurrency)
        self.keys = TenantKeys(services.settings)

    async def run(self) -> ReconcileReport:
        token = uuid.uuid4().hex
        ttl_ms = max(self.s.settings.reconcile_interval_seconds, 60) * 5 * 1000
        if not await self.s.redis.set(LOCK_KEY, token, nx=True, px=ttl_ms):
            return ReconcileReport(ran=False)
        try:
            return await self._run()
        finally:
            try:
                await self.s.redis.eval(_RELEASE_LOCK, 1, LOCK_KEY, token)  # type: ignore[misc]
            except Exception:  # the lock expires by itself
                logger.warning("could not release the reconcile lock")

    async def _run(self) -> ReconcileReport:
        started = time.perf_counter()
        p = _Pass(report=ReconcileReport())
        await self._load_desired(p)
        await self._list_instances(p)
        await self._remove_unneeded_instances(p)
        await self._locate_instances(p)
        await self._list_sessions(p)
        await self._reconcile_chips(p)
        await self._delete_orphan_sessions(p)
        await self._redrive_lost_jobs(p)
        p.report.seconds = time.perf_counter() - started
        for kind, count in p.report.drift.items():  # kinds are the fixed names used in this module
            metrics.RECONCILE_DRIFT.labels(kind).inc(count)
        if p.report.drift or p.report.errors:
            logger.info("reconcile: %s", p.report.as_dict())
        return p.report

    # --- phases -------------------------------------------------------------------------------

    async def _load_desired(self, p: _Pass) -> None:
        p.chips = await self.chips.reconcile_snapshot(SETTLE_SECONDS, PROVISION_STALL_SECONDS)
        for chip in p.chips:
            p.tenants[chip.user_id].append(chip)
        p.report.tenants = len(p.tenants)
        p.records = await self.instances.records()

    async def _list_instances(self, p: _Pass) -> None:
        p.listed = {instance.user_id: instance for instance in await self.s.scheduler.list_instances()}
        p.report.instances = len(p.listed)

    async def _remove_unneeded_instances(self, p: _Pass) -> None:
        """Unknown tenant, or a tenant without chips past the grace period."""
        grace = self.s.settings.instance_grace_seconds
        for user_key, instance in p.listed.items():
            owner = _uuid_or_none(user_key)
            if owner is not None and p.tenants.get(owner):
                continue
            if not await self._past_grace(instance, grace):
                continue
            try:
                await self.s.scheduler.remove_instance(instance.user_id)
                if owner is not None:
                    await self.instances.forget(owner)
                p.report.drift["instance_removed"] += 1
            except WhagoError as exc:
                p.report.errors.append(f"remove {instance.job_id}: {exc.detail}")

    async def _locate_instances(self, p: _Pass) -> None:
        """Tenants with chips: find (or bring back) their instance, skipping parked ones."""

        async def locate(user_id: UUID) -> None:
            record = p.records.get(user_id)
            if record is not None and record.status in PARKED:
                return  # reaped for inactivity or removed by an operator: not drift
            instance = p.listed.get(str(user_id))
            if instance is None or (instance.status == "running" and instance.base_url is None):
                # not in the listing, or listed without an address: ask for this one
                instance = await self._bounded(lambda: self.s.scheduler.get_instance(str(user_id)))
            if instance is not None and instance.status == "running" and instance.base_url:
                p.running[user_id] = instance
                return
            # chips but no running instance: provisioning ensures it (deduplicated per chip)
            p.report.drift["instance_missing"] += 1
            for chip in p.tenants[user_id]:
                if chip.status != ChipStatus.DELETING:
                    await self._enqueue(PROVISION_CHIP, chip.id, p.report, "chip_reprovisioned")

        results = await asyncio.gather(*(locate(u) for u in p.tenants), return_exceptions=True)
        p.report.errors += [f"locate: {r}" for r in results if isinstance(r, Exception)]

    async def _list_sessions(self, p: _Pass) -> None:
        """One session listing per distinct WAHA URL (a static WAHA is shared by every tenant)."""
        for user_id, instance in p.running.items():
            if instance.base_url:
                p.owner_by_url.setdefault(instance.base_url, user_id)
        urls = sorted(p.owner_by_url)

        async def sessions_of(url: str) -> tuple[str, list[SessionInfo]]:
            client = self.s.waha.for_tenant(url, p.owner_by_url[url])
            return url, await self._bounded(lambda: client.list_sessions(all=True))

        for result in await asyncio.gather(*(sessions_of(u) for u in urls), return_exceptions=True):
            if isinstance(result, BaseException):
                p.report.errors.append(f"list sessions: {result}")
                continue
            url, sessions = result
            p.sessions_by_url[url] = {s.name: s for s in sessions}
            p.report.sessions += len(sessions)

    async def _reconcile_chips(self, p: _Pass) -> None:
        observed = []
        for user_id, instance in p.running.items():
            sessions = p.sessions_by_url.get(instance.base_url or "")
            if sessions is None:
                continue  # its listing failed: nothing known, nothing changed
            mine = p.tenants[user_id]
            observed.append((instance, sum(1 for c in mine if c.session_name in sessions)))
            for chip in mine:
                await self._reconcile_chip(chip, sessions.get(chip.session_name), p.report, instance.base_url or "")
        await self.instances.record_observed(observed)

    async def _delete_orphan_sessions(self, p: _Pass) -> None:
        """Sessions without a chip, per WAHA URL (only WHAGO's own chip_* sessions)."""
        known = {c.session_name for c in p.chips}
        for url, sessions in p.sessions_by_url.items():
            candidates = [n for n in sessions if chip_id_from_session(n) is not None and n not in known]
            if not candidates:
                continue
            # re-read: a chip created after the pass loaded the chips has a brand-new session
            candidates = [n for n in candidates if n not in await self.chips.existing_session_names(candidates)]
            for name in candidates:
                try:
                    await self.s.waha.for_tenant(url, p.owner_by_url[url]).delete_session(name)
                    p.report.drift["session_orphan_deleted"] += 1
                except WahaError as exc:
                    p.report.errors.append(f"delete {name}: {exc.detail}")

    async def _redrive_lost_jobs(self, p: _Pass) -> None:
        """Durable to-dos whose job may have been lost (Redis down, worker killed)."""
        for chip in p.chips:
            if chip.status == ChipStatus.DELETING and chip.settled:
                await self._enqueue(TEARDOWN_CHIP, chip.id, p.report, "teardown_requeued")
            elif chip.status == ChipStatus.PROVISIONING and (chip.provision_enqueued_at is None or chip.stalled):
                await self._enqueue(PROVISION_CHIP, chip.id, p.report, "provision_requeued")
            elif chip.proxy_dirty and chip.status not in OURS:
                await self._enqueue(ROTATE_PROXY, chip.id, p.report, "proxy_rotation_requeued")

    # --- helpers ------------------------------------------------------------------------------

    async def _bounded(self, call: Callable[[], Awaitable[T]]) -> T:
        async with self._semaphore:
            return await call()

    async def _enqueue(self, spec: JobSpec, chip_id: UUID, report: ReconcileReport, drift: str) -> None:
        try:
            if await self.s.queue.enqueue(spec, chip_id, chip_id=str(chip_id)):
                report.drift[drift] += 1
                if spec is PROVISION_CHIP:
                    await self.chips.mark_provision_enqueued(chip_id)
        except DependencyUnavailable:
            report.errors.append(f"queue unavailable for {spec.name} {chip_id}")

    async def _past_grace(self, instance: InstanceState, grace: int) -> bool:
        """First sighting starts the clock (kept in Redis: rebuilt harmlessly if lost)."""
        clock = key("reconcile", "unneeded", instance.job_id)
        now = time.time()
        first = await self.s.redis.set(clock, now, nx=True, ex=grace * 4 + 3600, get=True)
        return first is not None and now - float(first) >= grace

    async def _reconcile_chip(
        self, chip: ReconcileRow, session: SessionInfo | None, report: ReconcileReport, url: str
    ) -> None:
        if chip.status in OURS:
            return  # teardown / provisioning own these; the re-drive phase handles them if stuck
        if session is None:
            report.drift["session_missing"] += 1
            await self._enqueue(PROVISION_CHIP, chip.id, report, "chip_reprovisioned")
            return
        settings = self.s.settings
        metadata = chip_metadata(chip.user_id, chip.id)
        hook_url = tenant_webhook_url(settings, chip.user_id)
        if not reports_to_us(session, metadata, hook_url, self.keys.webhook_key(chip.user_id)):
            # webhook key rotated, public URL moved, still on the platform route, or the config
            # was edited behind our back
            if _on_platform_route(session, settings.webhook_url):
                report.legacy_webhook_sessions += 1
            report.drift["session_config_stale"] += 1
            await self._enqueue(PROVISION_CHIP, chip.id, report, "session_config_requeued")
        if (
            session.status != "STOPPED"
            and not chip.desired_running
            and chip.status == ChipStatus.DISCONNECTED
            and chip.settled
        ):
            # logged out, yet running (the logout's stop never happened, or something started
            # it behind our back): the tenant's intent wins over WAHA's report
            try:
                await self._bounded(lambda: self.s.waha.for_tenant(url, chip.user_id).stop_session(chip.session_name))
                report.drift["session_stopped_as_intended"] += 1
            except WahaError as exc:
                report.errors.append(f"stop {chip.session_name}: {exc.detail}")
            return
        if session.status == "STOPPED" and chip.desired_running and chip.settled:
            # WAHA stopped it on its own (an instance shutdown or reschedule sends STOPPED for
            # every session, and a worker that comes back under another id or without its
            # storage does not restart them): the tenant never asked for that, so start it
            report.drift["session_stopped"] += 1
            await self._enqueue(PROVISION_CHIP, chip.id, report, "session_restarted")
        if chip.status == ChipStatus.FAILED and not chip.desired_running:
            return  # liveness gave up on it (a WORKING zombie): failed until the tenant acts
        observed = WAHA_TO_CHIP_STATUS.get(session.status)
        if observed is None or observed == chip.status or not chip.settled:
            return
        phone = session.me.phone_number if (observed == ChipStatus.CONNECTED and session.me is not None) else None
        moved: Moved[None] = await self.transitions.move(
            chip.id,
            observed,
            Source.RECONCILER,
            f"WAHA reports {session.status} (missed webhook)",
            never_from=OURS,
            only_if_changed_at=chip.status_changed_at,  # changed under us: the main path wins
            error="WAHA reports the session FAILED" if observed == ChipStatus.FAILED else None,
            phone=phone if phone is not None else KEEP,
        )
        if moved.transition is not None:
            report.drift["status_fixed"] += 1


def _on_platform_route(session: SessionInfo, platform_url: str) -> bool:
    config = session.config
    return config is not None and any(h.url == platform_url for h in config.webhooks or [])


def _uuid_or_none(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None
