"""A transaction whose COMMIT or ROLLBACK fails never leaves its connection open inside the
transaction (holding locks, counted as in use) nor the context pointing at it."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

pytestmark = pytest.mark.anyio


async def test_a_failed_commit_never_leaks_a_connection_inside_its_transaction(settings, migrated_db, monkeypatch):
    import asyncpg.transaction

    from app.core import db

    await db.start_pool(msgspec.structs.replace(settings, database_pool_size=2))
    try:
        real_commit = asyncpg.transaction.Transaction.commit

        async def lost_commit(self):
            raise ConnectionResetError("connection lost during COMMIT")

        monkeypatch.setattr(asyncpg.transaction.Transaction, "commit", lost_commit)
        for _ in range(3):  # more than the pool holds: a leak would exhaust it
            with pytest.raises(ConnectionResetError):
                async with db.transaction():
                    # a row lock that a leaked, still-open transaction would hold forever
                    await db.fetch("SELECT pg_advisory_xact_lock(424242)")
            # the context no longer points at the failed transaction
            assert db.get_engine().current_transaction.get() is None
        monkeypatch.setattr(asyncpg.transaction.Transaction, "commit", real_commit)

        async def works() -> None:
            async with db.transaction():
                await db.fetch("SELECT pg_advisory_xact_lock(424242)")

        await asyncio.wait_for(works(), timeout=5)
        pool = db.get_engine().pool
        assert pool is not None
        async with pool.acquire() as connection:
            assert not connection.is_in_transaction()
    finally:
        await db.close_pool()
