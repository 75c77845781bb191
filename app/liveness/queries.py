"""The liveness job's SQL: the claim of quiet chips to probe, and the heal bookkeeping.

The claim is one statement: ``FOR UPDATE SKIP LOCKED`` keeps two workers' passes apart, and the
claimed rows' ``next_probe_at`` moves a period (plus up to 20 % jitter, which spreads the chips
of a burst over later passes) ahead before the statement commits, so no chip is claimed twice in
a period. At most ``per_instance`` chips of one tenant (one WAHA instance) are taken per pass.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from app.chips.status import ChipHealth, ChipStatus
from app.core import db
from app.core.rows import to_structs

_CONNECTED = ChipStatus.CONNECTED.value
_DEGRADED = ChipHealth.DEGRADED.value
# what WHAGO last heard of the chip: any webhook (last_seen_at), activity, or its last status change
_SEEN = (
    "greatest(coalesce(c.last_seen_at, '-infinity'::timestamptz),"
    " coalesce(c.last_activity_at, '-infinity'::timestamptz), c.status_changed_at)"
)


class ProbeRow(msgspec.Struct, frozen=True):
    id: UUID
    user_id: UUID
    session_name: str
    phone_number: str
    health: str
    probe_failures: int
    heal_count: int
    heal_window_at: datetime | None


# A degraded chip is probed whatever its traffic: a heal's restart sends status events of its
# own, which must not pass for proof of life.
CLAIM = f"""
WITH candidates AS (
    SELECT c.id, c.user_id, {_SEEN} AS seen
    FROM chips c
    WHERE c.status = '{_CONNECTED}' AND c.desired_running AND c.phone_number IS NOT NULL
      AND (c.next_probe_at IS NULL OR c.next_probe_at <= now())
      AND (c.health = '{_DEGRADED}' OR {_SEEN} < now() - make_interval(secs => $1))
    ORDER BY c.next_probe_at NULLS FIRST
    LIMIT $4
    FOR UPDATE OF c SKIP LOCKED
), ranked AS (
    SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY seen) AS n FROM candidates
)
UPDATE chips c SET next_probe_at = now() + make_interval(secs => $2 * (1 + 0.2 * random()))
FROM ranked r WHERE c.id = r.id AND r.n <= $3
RETURNING c.id, c.user_id, c.session_name, c.phone_number, c.health, c.probe_failures, c.heal_count,
          c.heal_window_at
"""


async def claim(quiet_seconds: float, period_seconds: float, per_instance: int, limit: int) -> list[ProbeRow]:
    return to_structs(await db.fetch(CLAIM, float(quiet_seconds), float(period_seconds), per_instance, limit), ProbeRow)


async def note_heal(chip_id: UUID, count: int, window_at: datetime, backoff_seconds: float) -> None:
    """A heal starts: count it in the chip's hour window, and wait ``backoff_seconds`` (growing with
    each heal) before the probe that judges it."""
    await db.fetch(
        "UPDATE chips SET heal_count = $2, heal_window_at = $3,"
        " next_probe_at = now() + make_interval(secs => $4) WHERE id = $1",
        chip_id,
        count,
        window_at,
        float(backoff_seconds),
    )
