"""Platform-wide aggregates for the metrics gauges (run at most every few seconds, not per scrape)."""

from __future__ import annotations

from app.core import db


async def chips_by_status() -> dict[str, int]:
    rows = await db.fetch("SELECT status, count(*) AS n FROM chips GROUP BY status")
    return {row["status"]: int(row["n"]) for row in rows}
