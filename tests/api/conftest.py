"""Fixtures shared by the API tests."""

from __future__ import annotations

import asyncpg
import pytest

from tests.support.api import register, set_plan


@pytest.fixture
async def admin(client, migrated_db) -> dict:
    """A registered operator (is_admin) with bearer headers."""
    user = await register(client)
    await set_plan(migrated_db, user["user"]["id"], "free", is_admin=True)
    return user


@pytest.fixture
async def conn(migrated_db, clean_state):
    """A direct database connection for seeding and checking rows."""
    connection = await asyncpg.connect(migrated_db)
    yield connection
    await connection.close()


@pytest.fixture
async def pg(migrated_db):
    """A direct database connection that leaves the tables as they are (no cleaning)."""
    connection = await asyncpg.connect(migrated_db)
    yield connection
    await connection.close()
