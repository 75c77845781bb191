"""The chip data layer's statements where a wrong word changes which rows they touch or in what
order they answer: each checked on the real database with rows that tell the difference."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pool(settings, clean_state):
    from app.core import db

    await db.start_pool(settings)
    try:
        yield db
    finally:
        await db.close_pool()


async def _user(conn, email: str = "q@example.com") -> uuid.UUID:
    return await conn.fetchval("INSERT INTO users (email, password_hash) VALUES ($1, 'h') RETURNING id", email)


async def _chip(conn, user_id: uuid.UUID, **columns) -> uuid.UUID:
    chip_id = await conn.fetchval(
        "INSERT INTO chips (user_id, alias, session_name) VALUES ($1, 'a', $2) RETURNING id",
        user_id,
        f"s_{uuid.uuid4().hex[:10]}",
    )
    for column, value in columns.items():
        await conn.execute(f"UPDATE chips SET {column} = $2 WHERE id = $1", chip_id, value)  # noqa: S608 (test names)
    return chip_id


async def _proxy(conn, host: str) -> uuid.UUID:
    return await conn.fetchval("INSERT INTO proxies (scheme, host, port) VALUES ('http', $1, 3128) RETURNING id", host)


async def test_history_is_newest_first_and_ties_keep_the_later_write_first(pool, conn):
    from app.chips import queries

    user = await _user(conn)
    chip = await _chip(conn, user)
    # one transaction's rows share now(): their order is the order they were written
    await conn.execute(
        "INSERT INTO chip_events (chip_id, at, from_status, to_status, source, detail) VALUES"
        " ($1, '2026-01-01T00:00:00Z', NULL, 'provisioning', 'api', 'first'),"
        " ($1, '2026-01-01T00:00:05Z', 'provisioning', 'starting', 'webhook', 'third'),"
        " ($1, '2026-01-01T00:00:00Z', 'provisioning', 'failed', 'worker', 'second')",
        chip,
    )
    rows = await queries.history(chip, 10)
    assert [r.detail for r in rows] == ["third", "second", "first"]
    assert [r.detail for r in await queries.history(chip, 2)] == ["third", "second"]


async def test_provisioned_clears_only_that_chip_and_only_for_the_proxy_it_still_has(pool, conn):
    from app.chips import queries

    user = await _user(conn)
    old, new = await _proxy(conn, "old.example"), await _proxy(conn, "new.example")
    a = await _chip(conn, user, proxy_dirty=True, error="proxy down")
    b = await _chip(conn, user, proxy_dirty=True, error="proxy down")  # no proxy either
    c = await _chip(conn, user, proxy_id=old, proxy_dirty=True)
    d = await _chip(conn, user, proxy_id=new, proxy_dirty=True)  # rotated while provisioning ran

    await queries.provisioned(a, None)
    await queries.provisioned(c, old)
    await queries.provisioned(d, old)
    rows = {
        r["id"]: (r["proxy_dirty"], r["error"]) for r in await conn.fetch("SELECT id, proxy_dirty, error FROM chips")
    }
    assert rows[a] == (False, None)
    assert rows[b] == (True, "proxy down")
    assert rows[c] == (False, None)
    assert rows[d] == (True, None)  # its new proxy still has to be applied


async def test_a_provisioning_error_is_cleared_but_not_a_later_one(pool, conn):
    from app.chips import queries

    user = await _user(conn)
    provisioning = await _chip(conn, user, error="worker crashed")
    connected = await _chip(conn, user, status="failed", error="logged out on the phone")
    await queries.provisioned(provisioning, None)
    await queries.provisioned(connected, None)
    assert await conn.fetchval("SELECT error FROM chips WHERE id = $1", provisioning) is None
    assert await conn.fetchval("SELECT error FROM chips WHERE id = $1", connected) == "logged out on the phone"
