"""The only code that changes a chip's status: the guarded update, its history row (with its
source) and the live event, in that order and always together.

Writes happen under the chip's row lock inside one transaction; the live event is published after
the commit, so a browser that re-reads on the event sees the new state. Every event carries its
time in one format (RFC 3339, ``…Z``). The webhook receiver applies WAHA's statuses with its own
single statement (the hot path) but publishes through ``publish`` here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

from app.chips import queries
from app.chips.status import ChipStatus, Source
from app.core import db
from app.core.errors import NotFound
from app.events.bus import format_time

R = TypeVar("R")


class EventPublisher(Protocol):
    async def publish(self, user_id: UUID | str, event: str, data: dict[str, Any]) -> None: ...


class _Keep:
    """Sentinel: leave the column as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


@dataclass(frozen=True, slots=True)
class Transition:
    chip_id: UUID
    user_id: UUID
    previous: ChipStatus | None
    status: ChipStatus
    at: datetime

    def event(self) -> dict[str, Any]:
        return {
            "chip_id": str(self.chip_id),
            "status": self.status.value,
            "previous": self.previous.value if self.previous is not None else None,
            "at": format_time(self.at),
        }


@dataclass(frozen=True, slots=True)
class Moved(Generic[R]):
    """What ``move`` did: the transition (None when nothing changed) and what ``then`` returned."""

    transition: Transition | None
    result: R | None


class ChipTransitions:
    def __init__(self, events: EventPublisher) -> None:
        self._events = events

    async def publish(self, *transitions: Transition) -> None:
        for transition in transitions:
            await self._events.publish(transition.user_id, "chip.status", transition.event())

    async def create(
        self, chip_id: UUID, user_id: UUID, *, alias: str, session_name: str, proxy_country: str | None
    ) -> Transition:
        """Insert a new chip (``provisioning``) with its first history row. Runs inside the
        caller's transaction (the plan check); the caller publishes the result after commit."""
        at = await queries.insert(chip_id, user_id, alias, session_name, proxy_country)
        await queries.insert_history(chip_id, at, None, ChipStatus.PROVISIONING, Source.API, "chip created")
        return Transition(chip_id, user_id, None, ChipStatus.PROVISIONING, at)

    async def move(
        self,
        chip_id: UUID,
        to: ChipStatus,
        source: Source,
        detail: str,
        *,
        user_id: UUID | None = None,
        never_from: Collection[ChipStatus] = (ChipStatus.DELETING,),
        only_if_changed_at: datetime | None = None,
        unless_webhook_since: Any = KEEP,
        error: Any = None,
        phone: Any = KEEP,
        running: Any = KEEP,
        then: Callable[[], Awaitable[R]] | None = None,
    ) -> Moved[R]:
        """Move one chip to ``to`` unless a guard says no; returns what happened.

        - ``user_id``: the chip must be this tenant's (else 404, as for a missing chip);
        - ``never_from``: statuses this change may not leave (a deleting chip stays deleting);
        - ``only_if_changed_at``: the status must not have changed since this time (the
          reconciler's "the main path wins" rule);
        - ``unless_webhook_since``: the chip's ``last_status_event_at`` before a remote call; a
          webhook applied since then is newer news from WAHA and wins, unless it reported a
          pre-restart state (disconnected/failed);
        - ``error``/``phone``: new values, or ``KEEP``. A logout's phone reset applies even when
          the status is already there (WAHA's own webhook won the race);
        - ``running``: the tenant's intent (``desired_running``: logout False, restart True), or
          ``KEEP``; written whenever the chip may be changed at all, even if a newer webhook
          keeps the status (the intent is the tenant's, not WAHA's news);
        - ``then``: runs under the same lock after the write (to answer with the state this
          write left, which a racing webhook cannot show through).
        """
        transition = None
        async with db.transaction():
            row = await queries.lock(chip_id, user_id)
            if row is None:
                if user_id is not None:
                    raise NotFound("Chip not found.")
                return Moved(None, None)
            blocked = (
                row.status in never_from
                or (only_if_changed_at is not None and row.status_changed_at != only_if_changed_at)
                or (
                    unless_webhook_since is not KEEP
                    and row.last_status_event_at != unless_webhook_since
                    and row.status not in (ChipStatus.DISCONNECTED, ChipStatus.FAILED)
                )
            )
            if running is not KEEP and row.status not in never_from:
                await queries.set_desired_running(chip_id, bool(running))
            if blocked:
                pass
            elif row.status == to:
                if phone is not KEEP:
                    await queries.set_phone(chip_id, phone)
            else:
                at = await queries.set_status(
                    chip_id,
                    to,
                    set_error=error is not KEEP,
                    error=None if error is KEEP else error,
                    set_phone=phone is not KEEP,
                    phone=None if phone is KEEP else phone,
                )
                await queries.insert_history(chip_id, at, row.status, to, source, detail)
                transition = Transition(chip_id, row.user_id, row.status, to, at)
            result = await then() if then is not None else None
        if transition is not None:
            await self.publish(transition)
        return Moved(transition, result)

    async def move_all(
        self, user_id: UUID, to: ChipStatus, source: Source, detail: str, *, never_from: Collection[ChipStatus]
    ) -> list[Transition]:
        """Move every chip of a tenant (except those in ``never_from`` or already there)."""
        skip = sorted({*never_from, to})
        async with db.transaction():
            moved = await queries.set_all_status(user_id, to, skip)
            await queries.insert_history_many(moved, to, source, detail)
        transitions = [Transition(m.id, user_id, m.previous, to, m.at) for m in moved]
        await self.publish(*transitions)
        return transitions

    async def remove(self, chip_id: UUID) -> bool:
        """The end of ``deleting``: the row goes (its history with it) and ``chip.deleted`` is sent."""
        user_id = await queries.delete_if_deleting(chip_id)
        if user_id is None:
            return False
        at = datetime.now(UTC)
        await self._events.publish(user_id, "chip.deleted", {"chip_id": str(chip_id), "at": format_time(at)})
        return True
