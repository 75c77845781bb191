"""Every SQL statement of the chips feature, typed rows out.

Raw SQL (not Piccolo's query builder) where it buys correctness or speed, each said at the
statement: row locks, conditional updates, window counts on the hot listing. Status values come
from ``ChipStatus`` (as parameters, or spliced from the enum where the text must stay constant
for the prepared-statement cache).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import msgspec

from app.chips.status import ChipStatus, Source
from app.core import db
from app.core.rows import maybe_struct, to_structs

D = ChipStatus.DELETING.value


class ChipRow(msgspec.Struct, frozen=True):
    """A chip as the API shows it (with its proxy's country)."""

    id: UUID
    alias: str
    status: ChipStatus
    session_name: str
    phone_number: str | None
    proxy_id: UUID | None
    proxy_country: str | None
    error: str | None
    status_changed_at: datetime
    created_at: datetime
    updated_at: datetime
    health: str = "unknown"
    health_checked_at: datetime | None = None


class WorkRow(msgspec.Struct, frozen=True):
    """What the provisioning worker needs of a chip."""

    id: UUID
    user_id: UUID
    status: ChipStatus
    session_name: str
    proxy_id: UUID | None
    proxy_dirty: bool
    desired_running: bool


class LockedRow(msgspec.Struct, frozen=True):
    """A chip's status fields, read under its row lock by a transition."""

    id: UUID
    user_id: UUID
    status: ChipStatus
    status_changed_at: datetime
    last_status_event_at: datetime | None


class ReconcileRow(msgspec.Struct, frozen=True):
    id: UUID
    user_id: UUID
    status: ChipStatus
    session_name: str
    proxy_dirty: bool
    desired_running: bool
    phone_number: str | None
    provision_enqueued_at: datetime | None
    status_changed_at: datetime
    settled: bool
    stalled: bool


class HistoryRow(msgspec.Struct, frozen=True):
    at: datetime
    from_status: str | None
    to_status: str
    source: str
    detail: str | None


class MovedRow(msgspec.Struct, frozen=True):
    id: UUID
    previous: ChipStatus
    at: datetime


_SELECT = """
SELECT c.id, c.alias, c.status, c.session_name, c.phone_number, c.proxy_id, p.country AS proxy_country,
       c.error, c.status_changed_at, c.created_at, c.updated_at, c.health, c.health_checked_at
FROM chips c LEFT JOIN proxies p ON p.id = c.proxy_id
"""

# The hot listing (the total comes from the page itself unless the page is full or past the end).
_LIST = f"""{_SELECT}
WHERE c.user_id = $1 AND ($2::varchar IS NULL OR c.status = $2)
ORDER BY c.created_at DESC, c.id LIMIT $3 OFFSET $4
"""


async def list_for_user(user_id: UUID, status: ChipStatus | None, limit: int, offset: int) -> list[ChipRow]:
    return to_structs(await db.fetch(_LIST, user_id, status, limit, offset), ChipRow)


async def count_for_user(user_id: UUID, status: ChipStatus | None = None) -> int:
    row = await db.fetchrow(
        "SELECT count(*) AS n FROM chips WHERE user_id = $1 AND ($2::varchar IS NULL OR status = $2)", user_id, status
    )
    return row["n"] if row else 0


async def get(chip_id: UUID, user_id: UUID | None = None) -> ChipRow | None:
    # user_id given: another tenant's chip is indistinguishable from a missing one
    record = await db.fetchrow(_SELECT + " WHERE c.id = $1 AND ($2::uuid IS NULL OR c.user_id = $2)", chip_id, user_id)
    return maybe_struct(record, ChipRow)


async def lock_plan(user_id: UUID) -> str | None:
    """The tenant's plan, with their row locked (raw SQL: FOR UPDATE serialises concurrent
    creates of one tenant across every API process, so the count that follows is exact)."""
    row = await db.fetchrow("SELECT plan FROM users WHERE id = $1 FOR UPDATE", user_id)
    return None if row is None else row["plan"]


async def insert(chip_id: UUID, user_id: UUID, alias: str, session_name: str, proxy_country: str | None) -> datetime:
    row = await db.fetchrow(
        "INSERT INTO chips (id, user_id, alias, status, session_name, proxy_country)"
        " VALUES ($1, $2, $3, $4, $5, $6) RETURNING status_changed_at",
        chip_id,
        user_id,
        alias,
        ChipStatus.PROVISIONING,
        session_name,
        proxy_country,
    )
    if row is None:  # INSERT … RETURNING always answers a row
        raise RuntimeError("chip insert returned nothing")
    return row["status_changed_at"]


async def mark_provision_enqueued(chip_id: UUID) -> None:
    await db.fetch("UPDATE chips SET provision_enqueued_at = now() WHERE id = $1", chip_id)


async def rename(chip_id: UUID, user_id: UUID, alias: str) -> bool:
    rows = await db.fetch(
        "UPDATE chips SET alias = $3, updated_at = now() WHERE id = $1 AND user_id = $2 RETURNING id",
        chip_id,
        user_id,
        alias,
    )
    return bool(rows)


async def history(chip_id: UUID, limit: int) -> list[HistoryRow]:
    return to_structs(
        await db.fetch(
            "SELECT at, from_status, to_status, source, detail FROM chip_events WHERE chip_id = $1"
            " ORDER BY at DESC, id DESC LIMIT $2",
            chip_id,
            limit,
        ),
        HistoryRow,
    )


async def for_work(chip_id: UUID) -> WorkRow | None:
    return maybe_struct(
        await db.fetchrow(
            "SELECT id, user_id, status, session_name, proxy_id, proxy_dirty, desired_running FROM chips WHERE id = $1",
            chip_id,
        ),
        WorkRow,
    )


async def live_chip_ids(user_id: UUID) -> list[UUID]:
    rows = await db.fetch("SELECT id FROM chips WHERE user_id = $1 AND status <> $2", user_id, ChipStatus.DELETING)
    return [r["id"] for r in rows]


async def provisioned(chip_id: UUID, proxy_id: UUID | None) -> None:
    """The session follows the chip's proxy: clear the rotation marker (unless the proxy changed
    meanwhile) and a provisioning error."""
    await db.fetch(
        "UPDATE chips SET proxy_dirty = false,"
        f" error = CASE WHEN status = '{ChipStatus.PROVISIONING.value}' THEN NULL ELSE error END"
        " WHERE id = $1 AND proxy_id IS NOT DISTINCT FROM $2",
        chip_id,
        proxy_id,
    )


async def touch_activity(chip_id: UUID) -> None:
    await db.fetch("UPDATE chips SET last_activity_at = now() WHERE id = $1", chip_id)


async def last_status_event_at(chip_id: UUID) -> datetime | None:
    row = await db.fetchrow("SELECT last_status_event_at FROM chips WHERE id = $1", chip_id)
    return None if row is None else row["last_status_event_at"]


async def for_reconcile(settle_seconds: int, stall_seconds: int) -> list[ReconcileRow]:
    return to_structs(
        await db.fetch(
            """
            SELECT c.id, c.user_id, c.status, c.session_name, c.proxy_dirty, c.desired_running, c.phone_number,
                   c.provision_enqueued_at, c.status_changed_at,
                   c.status_changed_at < now() - make_interval(secs => $1) AS settled,
                   coalesce(c.provision_enqueued_at, c.created_at) < now() - make_interval(secs => $2) AS stalled
            FROM chips c
            """,
            settle_seconds,
            stall_seconds,
        ),
        ReconcileRow,
    )


async def existing_session_names(names: Sequence[str]) -> set[str]:
    """Which of these session names belong to a chip right now (re-read just before deleting
    "orphans", so a chip created during a reconcile pass keeps its brand-new session)."""
    rows = await db.fetch("SELECT session_name FROM chips WHERE session_name = ANY($1::varchar[])", list(names))
    return {r["session_name"] for r in rows}


# --- status writes: called by app.chips.transitions only ---------------------------------------


async def lock(chip_id: UUID, user_id: UUID | None) -> LockedRow | None:
    # raw SQL: the row lock makes check-then-write one decision against concurrent writers
    return maybe_struct(
        await db.fetchrow(
            "SELECT id, user_id, status, status_changed_at, last_status_event_at FROM chips"
            " WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2) FOR UPDATE",
            chip_id,
            user_id,
        ),
        LockedRow,
    )


async def set_status(
    chip_id: UUID, status: ChipStatus, *, set_error: bool, error: str | None, set_phone: bool, phone: str | None
) -> datetime:
    row = await db.fetchrow(
        "UPDATE chips SET status = $2, status_changed_at = now(), updated_at = now(),"
        " error = CASE WHEN $3 THEN $4 ELSE error END,"
        " phone_number = CASE WHEN $5 THEN $6 ELSE phone_number END"
        " WHERE id = $1 RETURNING status_changed_at",
        chip_id,
        status,
        set_error,
        error,
        set_phone,
        phone,
    )
    if row is None:  # callers hold the row lock, so the row is there
        raise RuntimeError(f"chip {chip_id} vanished under its row lock")
    return row["status_changed_at"]


async def set_desired_running(chip_id: UUID, running: bool) -> None:
    await db.fetch("UPDATE chips SET desired_running = $2 WHERE id = $1", chip_id, running)


async def set_phone(chip_id: UUID, phone: str | None) -> None:
    await db.fetch("UPDATE chips SET phone_number = $2, updated_at = now() WHERE id = $1", chip_id, phone)


async def set_all_status(user_id: UUID, status: ChipStatus, skip: Sequence[ChipStatus]) -> list[MovedRow]:
    """Move every chip of a tenant (but those in ``skip``) in one statement; raw SQL for the
    lock-then-update CTE that returns each chip's previous status."""
    return to_structs(
        await db.fetch(
            """
            WITH old AS (
                SELECT id, status FROM chips WHERE user_id = $1 AND status <> ALL($3::varchar[]) FOR UPDATE
            )
            UPDATE chips c SET status = $2, status_changed_at = now(), updated_at = now()
            FROM old WHERE c.id = old.id RETURNING c.id, old.status AS previous, c.status_changed_at AS at
            """,
            user_id,
            status,
            list(skip),
        ),
        MovedRow,
    )


async def insert_history(
    chip_id: UUID, at: datetime, from_status: str | None, to_status: str, source: Source, detail: str | None
) -> None:
    await db.fetch(
        "INSERT INTO chip_events (chip_id, at, from_status, to_status, source, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        chip_id,
        at,
        from_status,
        to_status,
        source,
        detail,
    )


async def insert_history_many(
    moved: Sequence[MovedRow], to_status: ChipStatus, source: Source, detail: str | None
) -> None:
    if not moved:
        return
    await db.fetch(
        "INSERT INTO chip_events (chip_id, at, from_status, to_status, source, detail)"
        " SELECT c, a, f, $4, $5, $6 FROM unnest($1::uuid[], $2::timestamptz[], $3::varchar[]) AS t(c, a, f)",
        [m.id for m in moved],
        [m.at for m in moved],
        [m.previous for m in moved],
        to_status,
        source,
        detail,
    )


async def delete_if_deleting(chip_id: UUID) -> UUID | None:
    """Remove a chip whose teardown finished; returns its tenant (None: not there or not deleting)."""
    row = await db.fetchrow(f"DELETE FROM chips WHERE id = $1 AND status = '{D}' RETURNING user_id", chip_id)
    return None if row is None else row["user_id"]


class HealthRow(msgspec.Struct, frozen=True):
    user_id: UUID
    previous: str
    at: datetime


# One guarded write of a liveness verdict: only a chip that is still connected takes it (a chip
# being deleted, logged out or re-paired meanwhile keeps its state); the history row is written
# in the same statement when the verdict changes.
_SET_HEALTH = f"""
WITH old AS (
    SELECT id, user_id, health FROM chips WHERE id = $1 AND status = '{ChipStatus.CONNECTED.value}' FOR UPDATE
), upd AS (
    UPDATE chips c SET health = $2, health_checked_at = clock_timestamp(), probe_failures = $3
    FROM old WHERE c.id = old.id
    RETURNING c.id, c.health_checked_at AS at
), hist AS (
    INSERT INTO chip_events (chip_id, at, from_status, to_status, source, detail)
    SELECT upd.id, upd.at, '{ChipStatus.CONNECTED.value}', '{ChipStatus.CONNECTED.value}', $4, $5
    FROM upd JOIN old ON old.id = upd.id WHERE old.health <> $2 OR $6
)
SELECT old.user_id, old.health AS previous, upd.at FROM old JOIN upd ON upd.id = old.id
"""


async def set_health(
    chip_id: UUID, health: str, failures: int, source: str, detail: str, *, always_log: bool
) -> HealthRow | None:
    return maybe_struct(
        await db.fetchrow(_SET_HEALTH, chip_id, health, failures, source, detail, always_log), HealthRow
    )


async def reset_health(chip_id: UUID) -> None:
    """A chip liveness gave up on starts over (a re-link or restart gets fresh probes and heals)."""
    await db.fetch(
        "UPDATE chips SET health = 'unknown', probe_failures = 0, heal_count = 0, heal_window_at = NULL,"
        " next_probe_at = NULL WHERE id = $1",
        chip_id,
    )
