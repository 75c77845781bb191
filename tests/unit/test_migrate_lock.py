"""``whago migrate`` takes turns through a PostgreSQL advisory lock, so the prestart task of
every API allocation (or two operators) can run it at once."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from app.core.db import MIGRATION_LOCK_KEY, migrate
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio


async def test_concurrent_migrations_take_turns(settings, migrated_db):
    holder = await asyncpg.connect(migrated_db)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        runs = [asyncio.create_task(migrate(settings)) for _ in range(2)]

        async def both_waiting() -> bool:
            waiting = await holder.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database ="
                " (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            return waiting == 2

        await eventually(both_waiting, timeout=10, what="both migrations to wait for the lock")
        assert not any(run.done() for run in runs)
        await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        results = await asyncio.wait_for(asyncio.gather(*runs), 30)
        assert all(results)
    finally:
        await holder.close()
