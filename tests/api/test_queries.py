"""The data layer's plumbing: Piccolo queries and ``db.fetch`` share one transaction's connection
(so a Piccolo row lock holds for the raw statements after it, and a rollback undoes both), and the
queries modules answer typed rows."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pool(settings, clean_state):
    """A pool on the test's own loop (the served API has its own)."""
    from app.core import db

    await db.start_pool(settings)
    try:
        yield db
    finally:
        await db.close_pool()


async def test_piccolo_and_raw_queries_share_the_transaction(pool, conn):
    from app.proxies.tables import Proxy

    async with pool.transaction():
        piccolo_pid = (await Proxy.raw("SELECT pg_backend_pid() AS pid"))[0]["pid"]
        raw_pid = (await pool.fetchrow("SELECT pg_backend_pid() AS pid"))["pid"]
        assert piccolo_pid == raw_pid

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with pool.transaction():
            await Proxy.insert(Proxy(scheme="http", host="rolled.back", port=1))
            await pool.fetch("INSERT INTO proxies (scheme, host, port) VALUES ('http', 'rolled.back', 2)")
            raise Boom
    assert await conn.fetchval("SELECT count(*) FROM proxies") == 0  # both undone together

    async with pool.transaction():
        await Proxy.insert(Proxy(scheme="http", host="kept", port=1))
        await pool.fetch("INSERT INTO proxies (scheme, host, port) VALUES ('http', 'kept', 2)")
    assert await conn.fetchval("SELECT count(*) FROM proxies WHERE host = 'kept'") == 2


async def test_a_piccolo_row_lock_holds_for_the_rest_of_the_transaction(pool, conn):
    from app.proxies import queries

    proxy_id = await queries.insert(
        scheme="http", host="locked", port=1, username=None, password_encrypted=None, country=None, max_chips=1
    )
    nowait = "SELECT id FROM proxies WHERE id = $1 FOR UPDATE NOWAIT"
    async with pool.transaction():
        assert await queries.lock(proxy_id)
        await pool.fetch("SELECT 1")  # a raw statement later in the same transaction
        # another session cannot take the row while this transaction holds it
        with pytest.raises(asyncpg.exceptions.LockNotAvailableError):
            await conn.fetch(nowait, proxy_id)
    assert len(await conn.fetch(nowait, proxy_id)) == 1  # released at commit
    assert not await queries.lock(uuid.uuid4())


async def test_queries_answer_typed_rows(pool, conn):
    from app.proxies import queries as proxy_queries
    from app.proxies.schemas import ProxyOut
    from app.users import queries as user_queries

    user = await user_queries.insert(
        email=f"q-{uuid.uuid4().hex[:8]}@example.com", name="Q", password_hash="x", plan="free", is_admin=False
    )
    assert isinstance(user, user_queries.UserRow)
    assert user.plan == "free"
    assert await user_queries.get_by_email(user.email) == user
    assert await user_queries.get_by_id(user.id) == user
    assert await user_queries.get_by_id(uuid.uuid4()) is None
    assert await user_queries.update(user.id, plan="business") is True
    assert (await user_queries.get_by_id(user.id)).plan == "business"
    assert await user_queries.update(uuid.uuid4(), plan="business") is False

    proxy_id = await proxy_queries.insert(
        scheme="http", host="h", port=1, username=None, password_encrypted="tok", country="br", max_chips=3
    )
    view = await proxy_queries.get_view(proxy_id)
    assert isinstance(view, ProxyOut)
    assert view.has_password is True
    assert view.chips == 0
    assert await proxy_queries.count() == 1
    endpoint = await proxy_queries.get_endpoint(proxy_id)
    assert isinstance(endpoint, proxy_queries.ProxyEndpoint)
    assert endpoint.password_encrypted == "tok"
