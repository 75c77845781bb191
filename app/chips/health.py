"""The only code that writes a chip's liveness verdict (``health``): the guarded write, its history
row (source ``liveness``) and the ``chip.health`` live event, always together.

Health is not a status: it has its own columns and never moves ``status``, which stays what WAHA
reports. A verdict is taken only by a chip that is still connected when it is written.
"""

from __future__ import annotations

from uuid import UUID

from app.chips import queries
from app.chips.status import ChipHealth, Source
from app.chips.transitions import EventPublisher
from app.events.bus import format_time


async def record_health(
    events: EventPublisher, chip_id: UUID, health: ChipHealth, *, failures: int, detail: str, always_log: bool = False
) -> bool:
    """Write a verdict; history when it changes (or ``always_log``: a heal step), the live event
    when it changes. False when the chip is no longer connected (nothing written)."""
    row = await queries.set_health(
        chip_id, health.value, failures, Source.LIVENESS.value, detail, always_log=always_log
    )
    if row is None:
        return False
    if row.previous != health.value:
        await events.publish(
            row.user_id, "chip.health", {"chip_id": str(chip_id), "health": health.value, "at": format_time(row.at)}
        )
    return True


async def reset_health(chip_id: UUID) -> None:
    await queries.reset_health(chip_id)
