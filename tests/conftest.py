"""Test-wide settings and fixtures. The environment is applied before any ``app`` import because
settings are read once (tests/support/env.py)."""

from __future__ import annotations

from tests.support.env import TEST_REDIS_URL, apply_test_environment

apply_test_environment()

import asyncio  # noqa: E402
from collections.abc import AsyncIterator, Iterator  # noqa: E402

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import pytest  # noqa: E402
import redis as sync_redis  # noqa: E402

from tests.support.asgi_server import ServedApp  # noqa: E402

_TABLES = "audit_log, messages, chip_events, webhook_events, instances, chips, proxies, users"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def settings():
    from app.settings import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def migrated_db(settings) -> str:
    from app.core.db import migrate

    asyncio.run(migrate(settings))
    return settings.database_url


def _truncate(url: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"TRUNCATE {_TABLES} CASCADE")
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture()
def clean_state(migrated_db) -> Iterator[None]:
    """Empty tables and the test Redis database before each test that touches them."""
    _truncate(migrated_db)
    sync_redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    yield


@pytest.fixture(scope="session")
def api_server(migrated_db, settings) -> Iterator[ServedApp]:
    """The API served over real HTTP on loopback, once per test session."""
    from app.factory import create_app

    served = ServedApp(create_app(settings)).start()
    yield served
    served.stop()


@pytest.fixture()
async def client(api_server, clean_state) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_server.url, timeout=30) as http:
        yield http
