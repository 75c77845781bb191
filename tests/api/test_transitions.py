"""The one writer of chip status (app/chips/transitions.py) on the real database: each guard of
``move``, what a move writes (status, history row with its source, error/phone), what it publishes
and when, ``move_all`` and ``remove``. The HTTP tests reach these through routes; here every guard
is checked on its own so a guard that stops guarding fails a test."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.anyio


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    async def publish(self, user_id, event: str, data: dict[str, Any]) -> None:
        self.events.append((str(user_id), event, data))


@pytest.fixture
async def pool(settings, clean_state):
    from app.core import db

    await db.start_pool(settings)
    try:
        yield db
    finally:
        await db.close_pool()


@pytest.fixture
def events() -> Recorder:
    return Recorder()


@pytest.fixture
def transitions(pool, events):
    from app.chips.transitions import ChipTransitions

    return ChipTransitions(events)


async def _user(conn, email: str = "t@example.com") -> uuid.UUID:
    return await conn.fetchval("INSERT INTO users (email, password_hash) VALUES ($1, 'h') RETURNING id", email)


async def _chip(conn, transitions, user_id: uuid.UUID, status: str = "provisioning") -> uuid.UUID:
    chip_id = uuid.uuid4()
    await transitions.create(chip_id, user_id, alias="a", session_name=f"s{chip_id.hex[:8]}", proxy_country=None)
    if status != "provisioning":
        await conn.execute("UPDATE chips SET status = $2 WHERE id = $1", chip_id, status)
    return chip_id


async def _history(conn, chip_id: uuid.UUID) -> list[tuple[str | None, str, str, str]]:
    rows = await conn.fetch(
        "SELECT from_status, to_status, source, detail FROM chip_events WHERE chip_id = $1 ORDER BY id", chip_id
    )
    return [(r["from_status"], r["to_status"], r["source"], r["detail"]) for r in rows]


async def test_create_writes_provisioning_with_its_first_history_row(conn, transitions, events):
    from app.chips.status import ChipStatus

    user = await _user(conn)
    chip_id = uuid.uuid4()
    t = await transitions.create(chip_id, user, alias="x", session_name="sx", proxy_country="br")
    assert (t.chip_id, t.user_id, t.previous, t.status) == (chip_id, user, None, ChipStatus.PROVISIONING)
    row = await conn.fetchrow("SELECT status, status_changed_at, proxy_country FROM chips WHERE id = $1", chip_id)
    assert (row["status"], row["proxy_country"]) == ("provisioning", "br")
    assert row["status_changed_at"] == t.at
    assert await _history(conn, chip_id) == [(None, "provisioning", "api", "chip created")]
    assert events.events == []  # the caller publishes after its own commit


async def test_a_move_writes_status_history_and_publishes_after_the_write(conn, transitions, events):
    from app.chips.status import ChipStatus, Source

    user = await _user(conn)
    chip_id = await _chip(conn, transitions, user)
    moved = await transitions.move(chip_id, ChipStatus.STARTING, Source.WORKER, "session started")
    assert moved.transition is not None
    assert moved.transition.previous == ChipStatus.PROVISIONING
    assert await conn.fetchval("SELECT status FROM chips WHERE id = $1", chip_id) == "starting"
    assert (await _history(conn, chip_id))[-1] == ("provisioning", "starting", "worker", "session started")
    [(who, name, data)] = events.events
    assert (who, name) == (str(user), "chip.status")
    assert data["chip_id"] == str(chip_id)
    assert (data["status"], data["previous"]) == ("starting", "provisioning")
    assert data["at"].endswith("Z")


async def test_a_move_to_the_status_it_has_writes_and_publishes_nothing(conn, transitions, events):
    from app.chips.status import ChipStatus, Source

    user = await _user(conn)
    chip_id = await _chip(conn, transitions, user, "connected")
    before = await conn.fetchval("SELECT status_changed_at FROM chips WHERE id = $1", chip_id)
    moved = await transitions.move(chip_id, ChipStatus.CONNECTED, Source.WORKER, "again")
    assert moved.transition is None
    assert await conn.fetchval("SELECT status_changed_at FROM chips WHERE id = $1", chip_id) == before
    assert len(await _history(conn, chip_id)) == 1
    assert events.events == []


async def test_never_from_keeps_a_deleting_chip_deleting(conn, transitions, events):
    from app.chips.status import ChipStatus, Source

    user = await _user(conn)
    chip_id = await _chip(conn, transitions, user, "deleting")
    await conn.execute("UPDATE chips SET desired_running = false WHERE id = $1", chip_id)
    moved = await transitions.move(chip_id, ChipStatus.CONNECTED, Source.WEBHOOK, "late", running=True)
    assert moved.transition is None
    row = await conn.fetchrow("SELECT status, desired_running FROM chips WHERE id = $1", chip_id)
    assert row["status"] == "deleting"
    assert row["desired_running"] is False  # nor is the intent written on a chip that may not change
    assert len(await _history(conn, chip_id)) == 1
    assert events.events == []


async def test_only_if_changed_at_lets_the_main_path_win(conn, transitions, events):
    """The reconciler's rule: a fix decided on an old reading is dropped when the status changed since."""
    from app.chips.status import ChipStatus, Source

    user = await _user(conn)
    chip_id = await _chip(conn, transitions, user, "starting")
    seen = await conn.fetchval("SELECT status_changed_at FROM chips WHERE id = $1", chip_id)
    stale = await transitions.move(
        chip_id, ChipStatus.FAILED, Source.RECONCILER, "stale", only_if_changed_at=seen - timedelta(seconds=1)
    )
    assert stale.transition is None
    assert await conn.fetchval("SELECT status FROM chips WHERE id = $1", chip_id) == "starting"
    fresh = await transitions.move(chip_id, ChipStatus.FAILED, Source.RECONCILER, "fix", only_if_changed_at=seen)
    assert fresh.transition is not None
    assert await conn.fetchval("SELECT status FROM chips WHERE id = $1", chip_id) == "failed"
    assert [e[2]["status"] for e in events.events] == ["failed"]


async def test_unless_webhook_since_a_newer_webhook_wins_but_not_a_pre_restart_state(conn, transitions):
    from app.chips.status import ChipStatus, Source

    user = await _user(conn)
    chip_id = await _chip(conn, transitions, user, "connected")
    await conn.execute("UPDATE chips SET last_status_event_at = now() WHERE id = $1", chip_id)
    before_call = await conn.fetchval("SELECT now() - interval '1 minute'")
    moved = await transitions.move(
        chip_id, ChipStatus.STARTING, Source.API, "restart", unless_webhook_since=before_call, running=True
    )
    assert moved.transition is None  # WAHA's newer news wins
    row = await conn.fetchrow("SELECT status, desired_running FROM chips WHERE id = $1", chip_id)
    assert row["status"] == "connected"
    assert row["desired_running"] is True  # the intent is written all the same

    # the same call over a webhook reporting a pre-restart state moves it
    await conn.execute("UPDATE chips SET status = 'disconnected' WHERE id = $1", chip_id)
    moved = await transitions.move(
        chip_id, ChipStatus.STARTING, Source.API, "restart", unless_webhook_since=before_call
    )
    assert moved.transition is not None
    # and with no webhook since the reading, it moves too
    seen = await conn.fetchval("SELECT last_status_event_at FROM chips WHERE id = $1", chip_id)
    await conn.execute("UPDATE chips SET status = 'connected' WHERE id = $1", chip_id)
    moved = await transitions.move(chip_id, ChipStatus.STARTING, Source.API, "restart", unless_webhook_since=seen)
    assert moved.transition is not None


async def test_error_and_phone_are_kept_unless_given(conn, transitions):
    from app.chips.status import ChipStatus, Source

    user = await _user(conn)
    chip_id = await _chip(conn, transitions, user, "connected")
    await conn.execute("UPDATE chips SET error = 'old error', phone_number = '5511' WHERE id = $1", chip_id)

    from app.chips.transitions import KEEP

    await transitions.move(chip_id, ChipStatus.DISCONNECTED, Source.WEBHOOK, "kept", error=KEEP)
    row = await conn.fetchrow("SELECT error, phone_number FROM chips WHERE id = $1", chip_id)
    assert (row["error"], row["phone_number"]) == ("old error", "5511")

    await transitions.move(chip_id, ChipStatus.FAILED, Source.WORKER, "boom", error="new error", phone=None)
    row = await conn.fetchrow("SELECT error, phone_number FROM chips WHERE id = $1", chip_id)
    assert (row["error"], row["phone_number"]) == ("new error", None)

    # the default clears the error: a chip that moves on is no longer failing
    await transitions.move(chip_id, ChipStatus.STARTING, Source.API, "restart")
    assert await conn.fetchval("SELECT error FROM chips WHERE id = $1", chip_id) is None


async def test_a_phone_reset_applies_even_when_the_status_is_already_there(conn, transitions, events):
    from app.chips.status import ChipStatus, Source

    user = await _user(conn)
    chip_id = await _chip(conn, transitions, user, "disconnected")
    await conn.execute("UPDATE chips SET phone_number = '5511' WHERE id = $1", chip_id)
    moved = await transitions.move(chip_id, ChipStatus.DISCONNECTED, Source.API, "logout", phone=None)
    assert moved.transition is None
    assert await conn.fetchval("SELECT phone_number FROM chips WHERE id = $1", chip_id) is None
    assert events.events == []


async def test_another_tenants_chip_is_not_found_and_unchanged(conn, transitions):
    from app.chips.status import ChipStatus, Source
    from app.core.errors import NotFound

    owner = await _user(conn, "owner@example.com")
    other = await _user(conn, "other@example.com")
    chip_id = await _chip(conn, transitions, owner, "connected")
    with pytest.raises(NotFound):
        await transitions.move(chip_id, ChipStatus.DISCONNECTED, Source.API, "x", user_id=other)
    assert await conn.fetchval("SELECT status FROM chips WHERE id = $1", chip_id) == "connected"
    # without a tenant (workers), a missing chip is no error
    gone = await transitions.move(uuid.uuid4(), ChipStatus.FAILED, Source.WORKER, "x")
    assert (gone.transition, gone.result) == (None, None)


async def test_then_runs_after_the_write_and_its_result_is_returned(conn, transitions):
    from app.chips.status import ChipStatus, Source

    user = await _user(conn)
    chip_id = await _chip(conn, transitions, user)

    from app.core import db

    async def read_back():  # on the move's own connection: sees its uncommitted write
        return (await db.fetchrow("SELECT status FROM chips WHERE id = $1", chip_id))["status"]

    moved = await transitions.move(chip_id, ChipStatus.STARTING, Source.WORKER, "x", then=read_back)
    assert moved.result == "starting"


async def test_move_all_moves_every_chip_but_the_excluded_ones(conn, transitions, events):
    from app.chips.status import ChipStatus, Source

    user = await _user(conn)
    other = await _user(conn, "o@example.com")
    a = await _chip(conn, transitions, user, "connected")
    b = await _chip(conn, transitions, user, "deleting")
    c = await _chip(conn, transitions, user, "disconnected")
    d = await _chip(conn, transitions, other, "connected")
    moved = await transitions.move_all(
        user, ChipStatus.DISCONNECTED, Source.ADMIN, "instance removed", never_from=[ChipStatus.DELETING]
    )
    assert {t.chip_id for t in moved} == {a}
    statuses = dict(await conn.fetch("SELECT id, status FROM chips"))
    assert statuses == {a: "disconnected", b: "deleting", c: "disconnected", d: "connected"}
    assert (await _history(conn, a))[-1] == ("connected", "disconnected", "admin", "instance removed")
    assert len(await _history(conn, c)) == 1
    assert [(e[1], e[2]["chip_id"]) for e in events.events] == [("chip.status", str(a))]


async def test_remove_deletes_only_a_deleting_chip_and_says_so(conn, transitions, events):
    user = await _user(conn)
    alive = await _chip(conn, transitions, user, "connected")
    assert await transitions.remove(alive) is False
    assert await conn.fetchval("SELECT count(*) FROM chips WHERE id = $1", alive) == 1
    assert events.events == []

    doomed = await _chip(conn, transitions, user, "deleting")
    assert await transitions.remove(doomed) is True
    assert await conn.fetchval("SELECT count(*) FROM chips WHERE id = $1", doomed) == 0
    assert await conn.fetchval("SELECT count(*) FROM chip_events WHERE chip_id = $1", doomed) == 0
    [(who, name, data)] = events.events
    assert (who, name, data["chip_id"]) == (str(user), "chip.deleted", str(doomed))
    assert data["at"].endswith("Z")
