"""One liveness pass (the ``liveness`` job, every WHAGO_LIVENESS_PROBE_SECONDS).

Connected chips WHAGO has heard nothing of for WHAGO_LIVENESS_QUIET_SECONDS (webhooks set
``last_seen_at``) are claimed (app.liveness.queries) and probed: WAHA's session status, then
``check-exists`` of the chip's own number, which needs the WhatsApp connection, with a short
timeout. WHAGO_LIVENESS_FAILURES failed probes in a row make the chip ``degraded`` and start the
heals: restart the session (WAHA keeps the pairing: no new QR), then the tenant's instance, with a
growing wait between them, at most WHAGO_LIVENESS_HEALS_PER_HOUR; a passing probe makes it ``ok``.
Out of heals, the chip is ``failed`` (ChipTransitions) and operators are alerted.

An unreachable instance (connection refused, 502-504, no instance) is the reconciler's and the
scheduler's business: no verdict for any chip on it. A chip that is not WORKING in WAHA is left
to the webhooks and the reconciler too. A Redis lock per chip keeps two workers from probing or
healing one chip at once, even when a heal outlasts the period.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID

from app.chips.health import record_health, reset_health
from app.chips.status import ChipHealth, ChipStatus, Source
from app.chips.transitions import ChipTransitions
from app.container import Container
from app.core import metrics
from app.liveness import queries
from app.liveness.queries import ProbeRow
from app.waha.client import WahaClient, WahaError, WahaNotFound, WahaTimedOut, WahaUnavailable

logger = logging.getLogger("whago.liveness")

GIVE_UP_ERROR = "Linked but unreachable, restart or re-link."
# Probes of one instance run at most this many at a time: a tenant's WAHA never sees a burst.
PER_INSTANCE_CONCURRENCY = 2
CLAIM_LIMIT = 5000  # rows one pass looks at (per-instance bounds apply within them)
_INSTANCE_DOWN_STATUSES = (None, 502, 503, 504)

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

Outcome = Literal["ok", "failed", "unreachable", "skipped"]


class _InstanceDown(Exception):
    """The instance did not answer: no verdict for its chips in this pass."""


def last_step(heal_count: int) -> str:
    """Heals alternate session -> instance within a window; the step the last heal took."""
    return "session" if (heal_count - 1) % 2 == 0 else "instance"


class LivenessService:
    def __init__(self, services: Container) -> None:
        self.s = services
        self.settings = services.settings
        self.transitions = ChipTransitions(services.events)

    async def run_pass(self) -> dict[str, int]:
        st = self.settings
        claimed = await queries.claim(
            st.liveness_quiet_seconds, st.liveness_probe_seconds, st.liveness_max_per_instance, CLAIM_LIMIT
        )
        by_instance: dict[UUID, list[ProbeRow]] = defaultdict(list)
        for chip in claimed:
            by_instance[chip.user_id].append(chip)
        results = await asyncio.gather(*(self._instance(user_id, chips) for user_id, chips in by_instance.items()))
        counts: dict[str, int] = defaultdict(int)
        for outcomes in results:
            for outcome in outcomes:
                counts[outcome] += 1
        return {"claimed": len(claimed), "instances": len(by_instance), **counts}

    async def _instance(self, user_id: UUID, chips: list[ProbeRow]) -> list[Outcome]:
        instance = None
        try:
            instance = await self.s.scheduler.get_instance(str(user_id))
        except Exception:
            logger.warning("liveness: instance of %s not known to the scheduler right now", user_id)
        if instance is None or not instance.base_url:
            return self._count(["unreachable"] * len(chips))
        client = self.s.waha.for_tenant(instance.base_url, user_id)
        down = asyncio.Event()
        gate = asyncio.Semaphore(PER_INSTANCE_CONCURRENCY)

        async def one(chip: ProbeRow) -> Outcome:
            async with gate:
                if down.is_set():
                    return "unreachable"
                try:
                    return await self._locked(chip, lambda: self._probe(chip, client))
                except _InstanceDown:
                    down.set()
                    return "unreachable"

        return self._count(list(await asyncio.gather(*(one(chip) for chip in chips))))

    @staticmethod
    def _count(outcomes: list[Outcome]) -> list[Outcome]:
        for outcome in outcomes:
            metrics.LIVENESS_PROBES.labels(outcome).inc()
        return outcomes

    async def _locked(self, chip: ProbeRow, work: Callable[[], Awaitable[Outcome]]) -> Outcome:
        key, token = f"whago:liveness:{chip.id}", secrets.token_hex(8)
        # outlives a probe plus an instance restart; released at once when done
        ttl = int(self.settings.liveness_probe_timeout_seconds + self.settings.instance_ready_timeout_seconds + 60)
        if not await self.s.redis.set(key, token, nx=True, ex=ttl):
            return "skipped"  # another worker is on this chip
        try:
            return await work()
        finally:
            await self.s.redis.eval(_RELEASE, 1, key, token)  # type: ignore[misc]

    async def _probe(self, chip: ProbeRow, client: WahaClient) -> Outcome:
        try:
            session = await client.get_session(chip.session_name)
        except WahaNotFound:
            return "skipped"  # gone from WAHA: the reconciler's finding, not a dead connection
        except WahaUnavailable:
            raise _InstanceDown from None
        except WahaError:
            return "skipped"
        if session.status != "WORKING":
            return "skipped"  # the status itself is news for the webhooks and the reconciler
        reason: str | None = None
        try:
            answer = await client.check_exists(
                chip.session_name, chip.phone_number, timeout=self.settings.liveness_probe_timeout_seconds
            )
            if not answer.get("numberExists"):
                reason = "check-exists did not find the chip's own number"
        except WahaTimedOut:
            reason = "check-exists timed out"
        except WahaUnavailable as exc:
            if exc.waha_status in _INSTANCE_DOWN_STATUSES:
                raise _InstanceDown from None
            reason = f"check-exists answered {exc.waha_status}"
        except WahaError as exc:
            reason = f"check-exists answered {exc.waha_status}"
        if reason is None:
            await self._passed(chip)
            return "ok"
        await self._failed(chip, reason, client)
        return "failed"

    async def _passed(self, chip: ProbeRow) -> None:
        if chip.health == ChipHealth.DEGRADED and chip.heal_count > 0:
            metrics.SESSION_HEALS.labels(last_step(chip.heal_count), "ok").inc()
            logger.info("liveness: chip %s healed (%s restart)", chip.id, last_step(chip.heal_count))
        await record_health(self.s.events, chip.id, ChipHealth.OK, failures=0, detail="liveness probe passed")

    async def _failed(self, chip: ProbeRow, reason: str, client: WahaClient) -> None:
        st = self.settings
        failures = chip.probe_failures + 1
        degraded = chip.health == ChipHealth.DEGRADED or failures >= st.liveness_failures
        if chip.health == ChipHealth.DEGRADED and chip.heal_count > 0:
            metrics.SESSION_HEALS.labels(last_step(chip.heal_count), "failed").inc()
        verdict = ChipHealth.DEGRADED if degraded else ChipHealth(chip.health)
        detail = f"liveness probe failed ({failures} in a row): {reason}"
        if not await record_health(self.s.events, chip.id, verdict, failures=failures, detail=detail, always_log=True):
            return  # no longer connected: deleted, logged out, re-paired meanwhile
        if degraded:
            await self._heal(chip, client)

    async def _heal(self, chip: ProbeRow, client: WahaClient) -> None:
        st = self.settings
        now = datetime.now(UTC)
        count, window_at = chip.heal_count, chip.heal_window_at
        if window_at is None or window_at < now - timedelta(hours=1):
            count, window_at = 0, now
        if count >= st.liveness_heals_per_hour:
            await self._give_up(chip, count)
            return
        step = "session" if count % 2 == 0 else "instance"
        # backoff: the probe that judges this heal waits one more period for every heal so far
        await queries.note_heal(chip.id, count + 1, window_at, st.liveness_probe_seconds * (count + 1))
        what = "the session (no new QR)" if step == "session" else "the account's WAHA instance"
        await record_health(
            self.s.events,
            chip.id,
            ChipHealth.DEGRADED,
            failures=chip.probe_failures + 1,
            detail=f"liveness heal {count + 1} of {st.liveness_heals_per_hour}: restarting {what}",
            always_log=True,
        )
        try:
            if step == "session":
                await client.restart_session(chip.session_name)
            else:
                await self.s.scheduler.restart_instance(str(chip.user_id))
        except Exception as exc:
            metrics.SESSION_HEALS.labels(step, "failed").inc()
            logger.warning("liveness: %s restart of chip %s failed: %s", step, chip.id, type(exc).__name__)

    async def _give_up(self, chip: ProbeRow, heals: int) -> None:
        metrics.SESSION_HEALS.labels("give_up", "failed").inc()
        # operator alert: the log line (ERROR) and the give_up series
        logger.error("liveness: chip %s still dead after %d heals in an hour: marked failed", chip.id, heals)
        others = [s for s in ChipStatus if s != ChipStatus.CONNECTED]
        await self.transitions.move(
            chip.id,
            ChipStatus.FAILED,
            Source.LIVENESS,
            f"liveness: still unreachable after {heals} heals in an hour",
            never_from=others,
            error=GIVE_UP_ERROR,
            running=False,  # the reconciler leaves it failed until the tenant restarts or re-links it
        )
        await reset_health(chip.id)
