"""Test-wide settings: set before any ``app`` import because settings are read once."""

from __future__ import annotations

import os
import tempfile

TEST_DATABASE_URL = os.environ.get("WHAGO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/whago_test")
TEST_REDIS_URL = os.environ.get("WHAGO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

os.environ.update(
    {
        "WHAGO_ENV": "test",
        "WHAGO_DATABASE_URL": TEST_DATABASE_URL,
        "WHAGO_REDIS_URL": TEST_REDIS_URL,
        "WHAGO_SECRET_KEY": "test-secret-key-" + "x" * 32,
        "WHAGO_WEBHOOK_HMAC_KEY": "test-webhook-hmac-key",
        "WHAGO_WAHA_API_KEY": "test-waha-api-key",
        "WHAGO_ENCRYPTION_KEY": "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=",
        "WHAGO_PUBLIC_URL": "http://127.0.0.1:8000",
        "WHAGO_SCHEDULER": "static",
        "WHAGO_WAHA_URL": "http://127.0.0.1:9",
        # the local scheduler's emulator session files (and any dev state) stay out of the repo
        "WHAGO_DEV_STATE_DIR": tempfile.mkdtemp(prefix="whago-test-state-"),
    }
)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


import asyncio  # noqa: E402
import uuid  # noqa: E402
from collections.abc import AsyncIterator, Iterator  # noqa: E402

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import redis as sync_redis  # noqa: E402

from tests.support.asgi_server import ServedApp  # noqa: E402

_TABLES = "chip_events, webhook_events, instances, chips, proxies, users"


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


async def register(client: httpx.AsyncClient, email: str | None = None, password: str = "correct horse") -> dict:
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    body = response.json()
    body["headers"] = {"Authorization": f"Bearer {body['access_token']}"}
    body["password"] = password
    return body


async def set_plan(database_url: str, user_id: str, plan: str, is_admin: bool | None = None) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE users SET plan = $2 WHERE id = $1", uuid.UUID(user_id), plan)
        if is_admin is not None:
            await conn.execute("UPDATE users SET is_admin = $2 WHERE id = $1", uuid.UUID(user_id), is_admin)
    finally:
        await conn.close()
