"""Every query of the proxy pool, typed rows out.

Plain CRUD and the proxy-row locks use Piccolo. Raw SQL stays where it buys something, each
statement saying what. Statements on ``chips`` are raw too: the pool moves chips between proxies
inside its own transactions (lock order: proxies by id, then chips), without importing the chips
feature's tables.

Run these inside ``db.transaction()`` where a caller needs them atomic: Piccolo queries and
``db.fetch`` both join the current transaction's connection.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import msgspec

from app.core import db
from app.core.rows import maybe_struct, to_structs
from app.proxies.schemas import ProxyOut
from app.proxies.tables import Proxy


class ProxyEndpoint(msgspec.Struct):
    """What a WAHA session's proxy config is built from."""

    scheme: str
    host: str
    port: int
    username: str | None
    password_encrypted: str | None


class ProxyCapacity(msgspec.Struct):
    id: UUID
    enabled: bool
    max_chips: int


class ProxyCandidate(msgspec.Struct):
    id: UUID
    country: str | None
    max_chips: int


class ProxyProbeTarget(msgspec.Struct):
    id: UUID
    host: str
    port: int
    healthy: bool


class ProxySecret(msgspec.Struct):
    id: UUID
    password_encrypted: str


class ChipPlacement(msgspec.Struct):
    proxy_id: UUID | None
    proxy_country: str | None


_ENDPOINT_COLUMNS = (Proxy.scheme, Proxy.host, Proxy.port, Proxy.username, Proxy.password_encrypted)

# Raw: the chip count is a correlated subquery, so a listing is one round trip; has_password is
# computed in the database so the encrypted password is never even read.
_PROXY_VIEW = """
SELECT p.id, p.scheme, p.host, p.port, p.username, p.password_encrypted IS NOT NULL AS has_password, p.country,
       p.max_chips, p.enabled, p.healthy, p.last_checked_at, p.last_error, p.created_at,
       (SELECT count(*) FROM chips c WHERE c.proxy_id = p.id) AS chips
FROM proxies p
"""


def _now() -> datetime:
    return datetime.now(UTC)


# --- admin views and CRUD -----------------------------------------------------------------------


async def list_views(limit: int, offset: int) -> list[ProxyOut]:
    rows = await db.fetch(_PROXY_VIEW + " ORDER BY p.created_at, p.id LIMIT $1 OFFSET $2", limit, offset)
    return to_structs(rows, ProxyOut)


async def count() -> int:
    return await Proxy.count()


async def get_view(proxy_id: UUID) -> ProxyOut | None:
    return maybe_struct(await db.fetchrow(_PROXY_VIEW + " WHERE p.id = $1", proxy_id), ProxyOut)


async def insert(
    *,
    scheme: str,
    host: str,
    port: int,
    username: str | None,
    password_encrypted: str | None,
    country: str | None,
    max_chips: int,
) -> UUID:
    rows = await Proxy.insert(
        Proxy(
            scheme=scheme,
            host=host,
            port=port,
            username=username,
            password_encrypted=password_encrypted,
            country=country,
            max_chips=max_chips,
        )
    ).returning(Proxy.id)
    return rows[0]["id"]


async def lock_endpoint(proxy_id: UUID) -> ProxyEndpoint | None:
    """Lock the proxy row (inside a transaction) and read its endpoint."""
    row = await Proxy.select(*_ENDPOINT_COLUMNS).where(Proxy.id == proxy_id).lock_rows().first()
    return maybe_struct(row, ProxyEndpoint)


async def lock(proxy_id: UUID) -> bool:
    """Lock the proxy row (inside a transaction); False when there is no such proxy."""
    return await Proxy.select(Proxy.id).where(Proxy.id == proxy_id).lock_rows().first() is not None


async def update(proxy_id: UUID, changes: dict[str, object]) -> ProxyCapacity | None:
    """Set the given columns (names as in ``Proxy``); None when there is no such proxy."""
    values: dict = {Proxy._meta.get_column_by_name(name): value for name, value in changes.items()}
    values[Proxy.updated_at] = _now()
    rows = await Proxy.update(values).where(Proxy.id == proxy_id).returning(Proxy.id, Proxy.enabled, Proxy.max_chips)
    return maybe_struct(rows[0] if rows else None, ProxyCapacity)


async def delete(proxy_id: UUID) -> None:
    await Proxy.delete().where(Proxy.id == proxy_id)


async def get_endpoint(proxy_id: UUID) -> ProxyEndpoint | None:
    return maybe_struct(await Proxy.select(*_ENDPOINT_COLUMNS).where(Proxy.id == proxy_id).first(), ProxyEndpoint)


# --- assignment ---------------------------------------------------------------------------------


async def lock_usable() -> list[ProxyCandidate]:
    """Lock every enabled, healthy proxy in id order (the module's lock order) and read it."""
    rows = await (
        Proxy.select(Proxy.id, Proxy.country, Proxy.max_chips)
        .where((Proxy.enabled == True) & (Proxy.healthy == True))  # noqa: E712 (Piccolo column expressions)
        .order_by(Proxy.id)
        .lock_rows()
    )
    return to_structs(rows, ProxyCandidate)


async def lock_chip_placement(chip_id: UUID) -> ChipPlacement | None:
    """Lock the chip row (after its candidate proxies) and read where it sits and wants to be."""
    # Raw: a row lock on another feature's table, taken in this transaction's lock order.
    row = await db.fetchrow("SELECT proxy_id, proxy_country FROM chips WHERE id = $1 FOR UPDATE", chip_id)
    return maybe_struct(row, ChipPlacement)


async def chip_loads(proxy_ids: list[UUID], *, excluding_chip: UUID) -> dict[UUID, int]:
    """Chips per proxy, not counting ``excluding_chip``; run after locking the proxies, so the
    count is fresh and no concurrent assignment can change it before commit."""
    # Raw: one grouped count over all candidates (the least-loaded choice), not one per proxy.
    rows = await db.fetch(
        "SELECT proxy_id, count(*) AS n FROM chips WHERE proxy_id = ANY($1::uuid[]) AND id <> $2 GROUP BY proxy_id",
        proxy_ids,
        excluding_chip,
    )
    return {r["proxy_id"]: r["n"] for r in rows}


async def place_chip(chip_id: UUID, proxy_id: UUID | None) -> None:
    """Move the chip; proxy_dirty says its WAHA session config must follow (cleared once it has)."""
    # Raw: a write to another feature's table inside the assignment's transaction.
    await db.fetch(
        "UPDATE chips SET proxy_id = $2, proxy_dirty = true, proxy_degraded = false WHERE id = $1", chip_id, proxy_id
    )


async def release_chips(proxy_id: UUID) -> list[UUID]:
    """Detach every chip from the proxy and mark it for rotation; the moved chips' ids."""
    # Raw: one bulk UPDATE … RETURNING on the chips table.
    rows = await db.fetch(
        "UPDATE chips SET proxy_id = NULL, proxy_dirty = true WHERE proxy_id = $1 RETURNING id", proxy_id
    )
    return [r["id"] for r in rows]


async def release_chips_above(proxy_id: UUID, keep: int) -> list[UUID]:
    """Detach the chips beyond the oldest ``keep`` ones and mark them for rotation."""
    # Raw: one bulk UPDATE over an ordered subquery (which chips stay depends on their age).
    rows = await db.fetch(
        "UPDATE chips SET proxy_id = NULL, proxy_dirty = true WHERE id IN ("
        " SELECT id FROM chips WHERE proxy_id = $1 ORDER BY created_at, id OFFSET $2) RETURNING id",
        proxy_id,
        keep,
    )
    return [r["id"] for r in rows]


async def mark_chips_dirty(proxy_id: UUID) -> list[UUID]:
    """Mark every chip on the proxy so provisioning rewrites its WAHA session's proxy config."""
    # Raw: one bulk UPDATE … RETURNING on the chips table.
    rows = await db.fetch("UPDATE chips SET proxy_dirty = true WHERE proxy_id = $1 RETURNING id", proxy_id)
    return [r["id"] for r in rows]


# --- health and key rotation --------------------------------------------------------------------


async def probe_targets() -> list[ProxyProbeTarget]:
    rows = await Proxy.select(Proxy.id, Proxy.host, Proxy.port, Proxy.healthy).where(Proxy.enabled == True)  # noqa: E712
    return to_structs(rows, ProxyProbeTarget)


class HealthVerdict(msgspec.Struct):
    healthy: bool
    was_healthy: bool
    country: str | None


async def lock_for_failover(proxy_id: UUID) -> list[ProxyCandidate]:
    """Lock the checked proxy together with every usable one, in id order (the module's lock order:
    a concurrent assignment locks the same rows in the same order, so the two cannot deadlock);
    the usable ones (enabled, healthy, not this proxy) are returned as failover candidates."""
    rows = await db.fetch(
        "SELECT id, country, max_chips, (id <> $1 AND enabled AND healthy) AS usable FROM proxies"
        " WHERE id = $1 OR (enabled AND healthy) ORDER BY id FOR UPDATE",
        proxy_id,
    )
    return to_structs([r for r in rows if r["usable"]], ProxyCandidate)


async def record_health(
    proxy_id: UUID, *, error: str | None, unhealthy_after: int, healthy_after: int
) -> HealthVerdict | None:
    """Count the check; the verdict flips only after ``unhealthy_after`` consecutive failures or
    ``healthy_after`` consecutive successes (one slow probe moves nobody). None: proxy gone."""
    # Raw: the counters and the verdict change in one statement that also reports the old verdict.
    row = await db.fetchrow(
        """
        UPDATE proxies p SET
            consecutive_failures = CASE WHEN $2::text IS NULL THEN 0 ELSE old.consecutive_failures + 1 END,
            consecutive_successes = CASE WHEN $2::text IS NULL THEN old.consecutive_successes + 1 ELSE 0 END,
            healthy = CASE WHEN $2::text IS NULL THEN old.healthy OR old.consecutive_successes + 1 >= $4
                           ELSE old.healthy AND old.consecutive_failures + 1 < $3 END,
            last_error = $2::text,
            last_checked_at = now()
        FROM (SELECT id, healthy, consecutive_failures, consecutive_successes FROM proxies WHERE id = $1) old
        WHERE p.id = old.id
        RETURNING p.healthy, old.healthy AS was_healthy, p.country
        """,
        proxy_id,
        error,
        unhealthy_after,
        healthy_after,
    )
    return maybe_struct(row, HealthVerdict)


class ChipOnProxy(msgspec.Struct):
    id: UUID
    proxy_country: str | None
    proxy_degraded: bool


async def lock_chips_on(proxy_id: UUID) -> list[ChipOnProxy]:
    # Raw: row locks on another feature's table, after the proxies (the module's lock order).
    rows = await db.fetch(
        "SELECT id, proxy_country, proxy_degraded FROM chips WHERE proxy_id = $1 ORDER BY created_at, id FOR UPDATE",
        proxy_id,
    )
    return to_structs(rows, ChipOnProxy)


async def set_degraded(chip_ids: list[UUID], degraded: bool) -> None:
    """The proxies feature's own flag on chips: stuck on an unhealthy proxy (not a chip status)."""
    if chip_ids:
        await db.fetch("UPDATE chips SET proxy_degraded = $2 WHERE id = ANY($1::uuid[])", chip_ids, degraded)


async def clear_degraded(proxy_id: UUID) -> int:
    rows = await db.fetch(
        "UPDATE chips SET proxy_degraded = false WHERE proxy_id = $1 AND proxy_degraded RETURNING id", proxy_id
    )
    return len(rows)


async def count_degraded() -> int:
    row = await db.fetchrow("SELECT count(*) AS n FROM chips WHERE proxy_degraded")
    return row["n"] if row else 0


async def secrets() -> list[ProxySecret]:
    rows = await Proxy.select(Proxy.id, Proxy.password_encrypted).where(Proxy.password_encrypted.is_not_null())
    return to_structs(rows, ProxySecret)


async def set_secret(proxy_id: UUID, password_encrypted: str) -> None:
    await Proxy.update({Proxy.password_encrypted: password_encrypted}).where(Proxy.id == proxy_id)
