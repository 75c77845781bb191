"""The operator-managed proxy pool: encrypted credentials, race-free least-loaded assignment,
health checks, and moving chips off proxies that went bad or were removed."""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

import msgspec
from prometheus_client import Counter, Gauge

from app.audit import service as audit
from app.container import Container
from app.core import db
from app.core.errors import DependencyUnavailable, NotFound
from app.core.pagination import MAX_LIMIT, Page, paginate
from app.core.queue import ROTATE_PROXY
from app.proxies import queries
from app.proxies.crypto import SecretBox
from app.proxies.schemas import ProxyCreate, ProxyOut, ProxyUpdate
from app.waha.schemas import ProxyConfig

logger = logging.getLogger("whago.proxies")

# Operators are told when chips are stuck on an unhealthy proxy (besides the warning log).
DEGRADED_CHIPS = Gauge(
    "whago_proxy_degraded_chips", "Chips left on an unhealthy proxy: no healthy proxy of their country"
)
FAILOVER_STUCK = Counter(
    "whago_proxy_failover_stuck_total", "Chips that could not fail over to a healthy proxy of their country"
)


def _pick(chip: queries.ChipPlacement, candidates: list[queries.ProxyCandidate], loads: dict[UUID, int]) -> UUID | None:
    """The chip's proxy among usable ``candidates``: its current one if still suitable, else the
    least loaded of its requested country (any country when it asked for none). When nothing is
    suitable it keeps its current proxy (None only when it had none): never a silent drop to
    no proxy, never a proxy of another country than the one asked for."""
    wanted = chip.proxy_country
    usable = [c for c in candidates if loads.get(c.id, 0) < c.max_chips and (not wanted or c.country == wanted)]
    if any(c.id == chip.proxy_id for c in usable):
        return chip.proxy_id
    ranked = sorted(usable, key=lambda c: (loads.get(c.id, 0) / max(c.max_chips, 1), str(c.id)))
    return ranked[0].id if ranked else chip.proxy_id


def _endpoint_changed(old: queries.ProxyEndpoint, changes: dict[str, object]) -> bool:
    """Did an edit change what a WAHA session's proxy config is built from?"""
    if any(name in changes and changes[name] != getattr(old, name) for name in ("scheme", "host", "port", "username")):
        return True
    # Fernet tokens differ on every encryption: any password set or cleared counts as a change.
    return "password_encrypted" in changes and (
        changes["password_encrypted"] is not None or old.password_encrypted is not None
    )


def _snapshot(proxy: ProxyOut) -> dict:
    # what an operator set, never the password (only whether there is one)
    return {
        "scheme": proxy.scheme,
        "host": proxy.host,
        "port": proxy.port,
        "username": proxy.username,
        "has_password": proxy.has_password,
        "country": proxy.country,
        "max_chips": proxy.max_chips,
        "enabled": proxy.enabled,
    }


class ProxyService:
    def __init__(self, services: Container) -> None:
        self.s = services
        self.box = SecretBox(services.settings)

    # --- admin CRUD ------------------------------------------------------------------------

    async def page(self, limit: int = MAX_LIMIT, offset: int = 0) -> Page[ProxyOut]:
        return await paginate(queries.list_views, queries.count, limit, offset)

    async def get(self, proxy_id: UUID) -> ProxyOut:
        proxy = await queries.get_view(proxy_id)
        if proxy is None:
            raise NotFound("Proxy not found.")
        return proxy

    async def create(self, data: ProxyCreate) -> ProxyOut:
        proxy_id = await queries.insert(
            scheme=data.scheme,
            host=data.host,
            port=data.port,
            username=data.username or None,
            password_encrypted=self.box.encrypt(data.password) if data.password else None,
            country=data.country.lower() if data.country else None,
            max_chips=data.max_chips,
        )
        proxy = await self.get(proxy_id)
        await audit.record(None, "proxy.create", ("proxy", proxy_id), after=_snapshot(proxy))
        return proxy

    async def update(self, proxy_id: UUID, data: ProxyUpdate) -> ProxyOut:
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
        if "password" in changes:
            password = changes.pop("password")
            changes["password_encrypted"] = self.box.encrypt(password) if password else None
        if changes.get("country"):
            changes["country"] = changes["country"].lower()
        if "username" in changes:
            changes["username"] = changes["username"] or None  # "" means none, as on create
        if not changes:
            return await self.get(proxy_id)
        before = await self.get(proxy_id)
        async with db.transaction():
            old = await queries.lock_endpoint(proxy_id)
            if old is None:
                raise NotFound("Proxy not found.")
            proxy = await queries.update(proxy_id, changes)
            if proxy is None:  # cannot happen while the row is locked; never a 500 if it does
                raise NotFound("Proxy not found.")
            if proxy.enabled:
                moved = await queries.release_chips_above(proxy_id, proxy.max_chips)
            else:
                moved = await queries.release_chips(proxy_id)
            if proxy.enabled and _endpoint_changed(old, changes):
                # The chips staying on it run WAHA sessions configured with the old address or
                # credentials: mark them so provisioning rewrites the session config.
                moved += await queries.mark_chips_dirty(proxy_id)
        await self._enqueue_rotations(moved)
        after = await self.get(proxy_id)
        await audit.record(None, "proxy.update", ("proxy", proxy_id), before=_snapshot(before), after=_snapshot(after))
        return after

    async def delete(self, proxy_id: UUID) -> None:
        before = await self.get(proxy_id)
        async with db.transaction():
            # Lock the row first: an assignment in flight either finishes before (its chip is
            # released below) or sees the proxy gone, never lands on it between the two steps.
            if not await queries.lock(proxy_id):
                raise NotFound("Proxy not found.")
            moved = await queries.release_chips(proxy_id)
            await queries.delete(proxy_id)
        await self._enqueue_rotations(moved)
        await audit.record(
            None, "proxy.delete", ("proxy", proxy_id), before=_snapshot(before), after={"chips_moved": len(moved)}
        )

    # --- assignment ------------------------------------------------------------------------

    async def assign(self, chip_id: UUID) -> UUID | None:
        """Give the chip the least-loaded healthy proxy of its requested country (any country when
        it asked for none), never above max_chips.

        Candidate proxies are locked in id order, then counted with a fresh statement, so
        concurrent assignments from several workers serialise instead of over-filling a proxy.
        Keeps the chip's current proxy while it is still usable, and also when nothing suitable is
        left (the health check marks it degraded): a chip never silently drops to no proxy.
        None = no proxy (direct) only for a chip that has none and finds none.

        Lock order, everywhere in this module: proxies (by id) before chips. Admin edits, deletes
        and health checks lock a proxy and then update its chips; locking the chip first here
        would deadlock with them.
        """
        async with db.transaction():
            candidates = await queries.lock_usable()
            chip = await queries.lock_chip_placement(chip_id)
            if chip is None:
                return None
            chosen = await self._choose(chip_id, chip, candidates) if candidates else chip.proxy_id
            if chosen is None and chip.proxy_country:
                logger.warning(
                    "chip %s wants a proxy in %r and none is available: it runs without a proxy",
                    chip_id,
                    chip.proxy_country,
                )
            if chosen != chip.proxy_id:
                await queries.place_chip(chip_id, chosen)
            return chosen

    @staticmethod
    async def _choose(
        chip_id: UUID, chip: queries.ChipPlacement, candidates: list[queries.ProxyCandidate]
    ) -> UUID | None:
        loads = await queries.chip_loads([c.id for c in candidates], excluding_chip=chip_id)
        return _pick(chip, candidates, loads)

    async def waha_config(self, proxy_id: UUID | None) -> ProxyConfig | None:
        if proxy_id is None:
            return None
        proxy = await queries.get_endpoint(proxy_id)
        if proxy is None:
            return None
        password = self.box.decrypt(proxy.password_encrypted) if proxy.password_encrypted else None
        host = f"{proxy.host}:{proxy.port}"
        # WAHA wants host:port for HTTP proxies; a SOCKS proxy keeps its scheme so it is not
        # mistaken for HTTP CONNECT (SOCKS support in WAHA is engine-dependent).
        server = host if proxy.scheme == "http" else f"{proxy.scheme}://{host}"
        return ProxyConfig(server=server, username=proxy.username, password=password)

    async def _enqueue_rotations(self, chip_ids: list[UUID]) -> None:
        for chip_id in chip_ids:
            try:
                await self.s.queue.enqueue(ROTATE_PROXY, chip_id, chip_id=str(chip_id))
            except DependencyUnavailable:
                logger.warning("proxy rotation of %s left for the reconciler (queue down)", chip_id)
                return

    # --- health ----------------------------------------------------------------------------

    async def check_health(self) -> dict[str, int]:
        """TCP-connect to every enabled proxy; fail chips over from proxies that stopped answering.

        A proxy turns unhealthy after ``WHAGO_PROXY_UNHEALTHY_AFTER_FAILURES`` consecutive failed
        checks and healthy again after ``WHAGO_PROXY_HEALTHY_AFTER_SUCCESSES`` passed ones (an IP
        change can log a WhatsApp session out: one slow probe must not move anybody). The chips of
        an unhealthy proxy move only to a healthy proxy of their requested country; with none,
        a chip stays where it is and is marked degraded (log + metric), never switched to no proxy.
        """
        settings = self.s.settings
        targets = await queries.probe_targets()
        timeout = settings.proxy_check_timeout_seconds
        semaphore = asyncio.Semaphore(50)

        async def probe(target: queries.ProxyProbeTarget) -> str | None:
            async with semaphore:
                try:
                    _, writer = await asyncio.wait_for(asyncio.open_connection(target.host, target.port), timeout)
                except (TimeoutError, OSError) as exc:
                    return f"{type(exc).__name__}: {exc}"[:200] or type(exc).__name__
                writer.close()
                return None

        errors = await asyncio.gather(*(probe(t) for t in targets))
        moved: list[UUID] = []
        went_bad = stuck = 0
        for target, error in zip(targets, errors, strict=True):
            async with db.transaction():
                candidates = await queries.lock_for_failover(target.id)
                verdict = await queries.record_health(
                    target.id,
                    error=error,
                    unhealthy_after=max(1, settings.proxy_unhealthy_after_failures),
                    healthy_after=max(1, settings.proxy_healthy_after_successes),
                )
                if verdict is None:
                    continue  # deleted meanwhile
                if verdict.healthy:
                    if not verdict.was_healthy:
                        logger.info("proxy %s healthy again", target.id)
                    await queries.clear_degraded(target.id)
                    continue
                if verdict.was_healthy:
                    went_bad += 1
                    logger.warning("proxy %s unhealthy: %s", target.id, error)
                placed, degraded = await self._fail_over(target.id, candidates)
                moved += placed
                stuck += len(degraded)
        await self._enqueue_rotations(moved)
        degraded_now = await queries.count_degraded()
        DEGRADED_CHIPS.set(degraded_now)
        return {
            "checked": len(targets),
            "unhealthy": sum(e is not None for e in errors),
            "went_bad": went_bad,
            "moved": len(moved),
            "degraded": stuck,
        }

    async def _fail_over(
        self, proxy_id: UUID, candidates: list[queries.ProxyCandidate]
    ) -> tuple[list[UUID], list[UUID]]:
        """Inside the health check's transaction (proxies locked): move what can move, mark the rest."""
        chips = await queries.lock_chips_on(proxy_id)
        if not chips:
            return [], []
        loads = await queries.chip_loads([c.id for c in candidates], excluding_chip=chips[0].id) if candidates else {}
        # chip_loads excluded chips[0] (still counted on this proxy, which is not a candidate): no effect
        moved: list[UUID] = []
        stuck: list[queries.ChipOnProxy] = []
        for chip in chips:
            chosen = _pick(queries.ChipPlacement(proxy_id=None, proxy_country=chip.proxy_country), candidates, loads)
            if chosen is None:
                stuck.append(chip)
                continue
            await queries.place_chip(chip.id, chosen)
            loads[chosen] = loads.get(chosen, 0) + 1
            moved.append(chip.id)
        newly = [c.id for c in stuck if not c.proxy_degraded]
        if newly:
            await queries.set_degraded(newly, True)
            FAILOVER_STUCK.inc(len(newly))
            # audit: chips left on an unhealthy proxy (no healthy proxy of their country)
            logger.warning(
                "proxy %s is unhealthy and %d chip(s) have no healthy proxy of their country to move to: "
                "they stay on it, marked degraded (never switched to no proxy)",
                proxy_id,
                len(newly),
            )
        return moved, [c.id for c in stuck]

    async def reencrypt_all(self) -> int:
        """Re-encrypt every stored password with the newest key (key rotation)."""
        stored = await queries.secrets()
        for secret in stored:
            await queries.set_secret(secret.id, self.box.rotate(secret.password_encrypted))
        return len(stored)
