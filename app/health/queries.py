"""Platform-wide aggregates for the metrics gauges (run at most every few seconds, not per scrape)."""

from __future__ import annotations

from app.core import db


async def chips_by_status() -> dict[str, int]:
    rows = await db.fetch("SELECT status, count(*) AS n FROM chips GROUP BY status")
    return {row["status"]: int(row["n"]) for row in rows}


async def proxy_capacity() -> dict[str, int]:
    """Proxies configured, usable (enabled and healthy), and free chip slots on the usable ones."""
    row = await db.fetchrow(
        """
        SELECT count(*) AS total,
               count(*) FILTER (WHERE p.enabled AND p.healthy) AS usable,
               coalesce(sum(greatest(p.max_chips - coalesce(c.n, 0), 0)) FILTER (WHERE p.enabled AND p.healthy), 0)
                   AS free
        FROM proxies p
        LEFT JOIN (SELECT proxy_id, count(*) AS n FROM chips WHERE proxy_id IS NOT NULL GROUP BY proxy_id) c
            ON c.proxy_id = p.id
        """
    )
    return (
        {"total": 0, "usable": 0, "free": 0} if row is None else {k: int(row[k]) for k in ("total", "usable", "free")}
    )


async def chips_failed_since(*, minutes: int) -> int:
    row = await db.fetchrow(
        "SELECT count(*) AS n FROM chips"
        " WHERE status = 'failed' AND status_changed_at > now() - make_interval(mins => $1)",
        minutes,
    )
    return int(row["n"]) if row else 0
