"""The operator-managed proxy pool: encrypted credentials, race-free least-loaded assignment,
health checks, and moving chips off proxies that went bad or were removed."""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

import msgspec

from app.core import db
from app.core.errors import DependencyUnavailable, NotFound
from app.core.queue import ROTATE_PROXY
from app.container import Container
from app.proxies.crypto import SecretBox
from app.proxies.schemas import ProxyCreate, ProxyOut, ProxyUpdate
from app.waha.schemas import ProxyConfig

logger = logging.getLogger("whago.proxies")

_PROXY_SELECT = """
SELECT p.id, p.scheme, p.host, p.port, p.username, p.password_encrypted IS NOT NULL AS has_password, p.country,
       p.max_chips, p.enabled, p.healthy, p.last_checked_at, p.last_error, p.created_at,
       (SELECT count(*) FROM chips c WHERE c.proxy_id = p.id) AS chips
FROM proxies p
"""


def _out(row) -> ProxyOut:
    return msgspec.convert(dict(row), ProxyOut)


def _endpoint_changed(old, changes: dict) -> bool:
    """Did an edit change what a WAHA session's proxy config is built from?"""
    if any(name in changes and changes[name] != old[name] for name in ("scheme", "host", "port", "username")):
        return True
    # Fernet tokens differ on every encryption: any password set or cleared counts as a change.
    return "password_encrypted" in changes and (changes["password_encrypted"] is not None or old["password_encrypted"] is not None)


class ProxyService:
    def __init__(self, services: Container) -> None:
        self.s = services
        self.box = SecretBox(services.settings)

    # --- admin CRUD ------------------------------------------------------------------------

    async def list(self) -> list[ProxyOut]:
        return [_out(r) for r in await db.fetch(_PROXY_SELECT + " ORDER BY p.created_at, p.id")]

    async def get(self, proxy_id: UUID) -> ProxyOut:
        row = await db.fetchrow(_PROXY_SELECT + " WHERE p.id = $1", proxy_id)
        if row is None:
            raise NotFound("Proxy not found.")
        return _out(row)

    async def create(self, data: ProxyCreate) -> ProxyOut:
        row = await db.fetchrow(
            "INSERT INTO proxies (scheme, host, port, username, password_encrypted, country, max_chips)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            data.scheme,
            data.host,
            data.port,
            data.username or None,
            self.box.encrypt(data.password) if data.password else None,
            data.country.lower() if data.country else None,
            data.max_chips,
        )
        return await self.get(row["id"])

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
        columns = list(changes)
        assignments = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(columns))
        async with db.transaction():
            old = await db.fetchrow(
                "SELECT scheme, host, port, username, password_encrypted FROM proxies WHERE id = $1 FOR UPDATE", proxy_id
            )
            if old is None:
                raise NotFound("Proxy not found.")
            row = await db.fetchrow(
                f"UPDATE proxies SET {assignments}, updated_at = now() WHERE id = $1 RETURNING id, enabled, max_chips",
                proxy_id,
                *changes.values(),
            )
            moved = await self._release_chips(proxy_id, over_capacity_only=row["enabled"], max_chips=row["max_chips"])
            if row["enabled"] and _endpoint_changed(old, changes):
                # The chips staying on it run WAHA sessions configured with the old address or
                # credentials: mark them so provisioning rewrites the session config.
                moved += [
                    r["id"]
                    for r in await db.fetch(
                        "UPDATE chips SET proxy_dirty = true WHERE proxy_id = $1 RETURNING id", proxy_id
                    )
                ]
        await self._enqueue_rotations(moved)
        return await self.get(proxy_id)

    async def delete(self, proxy_id: UUID) -> None:
        async with db.transaction():
            # Lock the row first: an assignment in flight either finishes before (its chip is
            # released below) or sees the proxy gone, never lands on it between the two steps.
            if await db.fetchrow("SELECT id FROM proxies WHERE id = $1 FOR UPDATE", proxy_id) is None:
                raise NotFound("Proxy not found.")
            moved = await self._release_chips(proxy_id, over_capacity_only=False)
            await db.fetch("DELETE FROM proxies WHERE id = $1", proxy_id)
        await self._enqueue_rotations(moved)

    # --- assignment ------------------------------------------------------------------------

    async def assign(self, chip_id: UUID) -> UUID | None:
        """Give the chip the least-loaded healthy proxy (its country first), never above max_chips.

        Candidate proxies are locked in id order, then counted with a fresh statement, so
        concurrent assignments from several workers serialise instead of over-filling a proxy.
        Keeps the chip's current proxy while it is still usable. None = no proxy (direct).

        Lock order, everywhere in this module: proxies (by id) before chips. Admin edits, deletes
        and health checks lock a proxy and then update its chips; locking the chip first here
        would deadlock with them.
        """
        async with db.transaction():
            candidates = await db.fetch(
                "SELECT id, country, max_chips FROM proxies WHERE enabled AND healthy ORDER BY id FOR UPDATE"
            )
            chip = await db.fetchrow("SELECT proxy_id, proxy_country FROM chips WHERE id = $1 FOR UPDATE", chip_id)
            if chip is None:
                return None
            if not candidates:
                chosen = None
            else:
                loads = {
                    r["proxy_id"]: r["n"]
                    for r in await db.fetch(
                        "SELECT proxy_id, count(*) AS n FROM chips WHERE proxy_id = ANY($1::uuid[]) AND id <> $2"
                        " GROUP BY proxy_id",
                        [c["id"] for c in candidates],
                        chip_id,
                    )
                }
                usable = [c for c in candidates if loads.get(c["id"], 0) < c["max_chips"]]
                current = next((c for c in usable if c["id"] == chip["proxy_id"]), None)
                wanted = chip["proxy_country"]
                if current is not None and (not wanted or current["country"] == wanted):
                    chosen = current["id"]
                else:
                    ranked = sorted(
                        usable,
                        key=lambda c: (
                            0 if wanted and c["country"] == wanted else 1,
                            loads.get(c["id"], 0) / max(c["max_chips"], 1),
                            str(c["id"]),
                        ),
                    )
                    chosen = ranked[0]["id"] if ranked else None
            if chosen != chip["proxy_id"]:
                # proxy_dirty: the WAHA session config must follow (cleared once it has)
                await db.fetch("UPDATE chips SET proxy_id = $2, proxy_dirty = true WHERE id = $1", chip_id, chosen)
            return chosen

    async def waha_config(self, proxy_id: UUID | None) -> ProxyConfig | None:
        if proxy_id is None:
            return None
        row = await db.fetchrow("SELECT scheme, host, port, username, password_encrypted FROM proxies WHERE id = $1", proxy_id)
        if row is None:
            return None
        password = self.box.decrypt(row["password_encrypted"]) if row["password_encrypted"] else None
        host = f"{row['host']}:{row['port']}"
        # WAHA wants host:port for HTTP proxies; a SOCKS proxy keeps its scheme so it is not
        # mistaken for HTTP CONNECT (SOCKS support in WAHA is engine-dependent).
        server = host if row["scheme"] == "http" else f"{row['scheme']}://{host}"
        return ProxyConfig(server=server, username=row["username"], password=password)

    async def _release_chips(self, proxy_id: UUID, *, over_capacity_only: bool, max_chips: int = 0) -> list[UUID]:
        """Detach chips from a proxy (all of them, or those above its capacity) and mark them
        for rotation; call inside a transaction. 'proxy_dirty' is the durable to-do.

        Above capacity, the oldest ``max_chips`` chips stay and the newer ones move: a long-running
        number keeps the IP WhatsApp knows it by (a changed IP is a classic cause of forced logouts).
        """
        if over_capacity_only:
            rows = await db.fetch(
                "UPDATE chips SET proxy_id = NULL, proxy_dirty = true WHERE id IN ("
                " SELECT id FROM chips WHERE proxy_id = $1 ORDER BY created_at, id OFFSET $2) RETURNING id",
                proxy_id,
                max_chips,
            )
        else:
            rows = await db.fetch(
                "UPDATE chips SET proxy_id = NULL, proxy_dirty = true WHERE proxy_id = $1 RETURNING id", proxy_id
            )
        return [r["id"] for r in rows]

    async def _enqueue_rotations(self, chip_ids: list[UUID]) -> None:
        for chip_id in chip_ids:
            try:
                await self.s.queue.enqueue(ROTATE_PROXY, chip_id, chip_id=str(chip_id))
            except DependencyUnavailable:
                logger.warning("proxy rotation of %s left for the reconciler (queue down)", chip_id)
                return

    # --- health ----------------------------------------------------------------------------

    async def check_health(self) -> dict[str, int]:
        """TCP-connect to every enabled proxy; move chips off the ones that stopped answering."""
        rows = await db.fetch("SELECT id, host, port, healthy FROM proxies WHERE enabled")
        timeout = self.s.settings.proxy_check_timeout_seconds
        semaphore = asyncio.Semaphore(50)

        async def probe(row) -> str | None:
            async with semaphore:
                try:
                    _, writer = await asyncio.wait_for(asyncio.open_connection(row["host"], row["port"]), timeout)
                except (OSError, asyncio.TimeoutError) as exc:
                    return f"{type(exc).__name__}: {exc}"[:200] or type(exc).__name__
                writer.close()
                return None

        errors = await asyncio.gather(*(probe(r) for r in rows))
        moved: list[UUID] = []
        went_bad = 0
        for row, error in zip(rows, errors, strict=True):
            async with db.transaction():
                await db.fetch(
                    "UPDATE proxies SET healthy = $2, last_error = $3, last_checked_at = now() WHERE id = $1",
                    row["id"],
                    error is None,
                    error,
                )
                if error is not None:
                    if row["healthy"]:
                        went_bad += 1
                        logger.warning("proxy %s unhealthy: %s", row["id"], error)
                    moved += await self._release_chips(row["id"], over_capacity_only=False)
        await self._enqueue_rotations(moved)
        return {"checked": len(rows), "unhealthy": sum(e is not None for e in errors), "went_bad": went_bad, "moved": len(moved)}

    async def reencrypt_all(self) -> int:
        """Re-encrypt every stored password with the newest key (key rotation)."""
        rows = await db.fetch("SELECT id, password_encrypted FROM proxies WHERE password_encrypted IS NOT NULL")
        for row in rows:
            await db.fetch(
                "UPDATE proxies SET password_encrypted = $2 WHERE id = $1", row["id"], self.box.rotate(row["password_encrypted"])
            )
        return len(rows)
