"""WHAGO_ALERT_WEBHOOK_URL: conditions are pushed as {"content": …}, once per interval, without ids
or secrets; nothing is pushed while all is well or when no URL is set."""

from __future__ import annotations

import json

import asyncpg
import msgspec
import pytest

from app.container import Container
from app.health.alerts import AlertService
from tests.support.api import add_chip

pytestmark = pytest.mark.anyio

HOOK = "https://chat.example.com/api/webhooks/123/planted-hook-token"


@pytest.fixture
async def container(settings, clean_state):
    built = Container.build(msgspec.structs.replace(settings, alert_webhook_url=HOOK, alert_min_interval_seconds=600))
    yield built
    await built.aclose()


async def test_conditions_are_pushed_once_per_interval(container, migrated_db, httpx_mock):
    httpx_mock.add_response(url=HOOK, method="POST", status_code=204, is_reusable=True)
    service = AlertService(container)
    container.scheduler.ping = _ok  # the static test WAHA is not running; the scheduler check is not under test
    assert await service.push() == []  # all is well: nothing sent
    conn = await asyncpg.connect(migrated_db)
    try:
        user_id = await conn.fetchval("INSERT INTO users (email, password_hash) VALUES ('a@x.io', 'h') RETURNING id")
        await conn.execute("INSERT INTO proxies (scheme, host, port, max_chips) VALUES ('http', '10.0.0.1', 80, 0)")
        for _ in range(4):
            await add_chip(conn, user_id, "failed")
        chip_ids = [str(r["id"]) for r in await conn.fetch("SELECT id FROM chips")]
    finally:
        await conn.close()
    assert sorted(await service.push()) == ["chips_failed", "proxy_pool"]
    bodies = [json.loads(r.content) for r in httpx_mock.get_requests()]
    assert {tuple(b) for b in bodies} == {("content",)}
    text = " ".join(b["content"] for b in bodies)
    assert "proxy pool is exhausted" in text
    assert "4 chips failed" in text
    assert str(user_id) not in text
    assert not any(c in text for c in chip_ids)
    assert await service.push() == []  # within the interval: not again
    assert len(httpx_mock.get_requests()) == 2


async def test_no_url_no_push(settings, clean_state):
    built = Container.build(settings)
    try:
        assert settings.alert_webhook_url == ""
        assert await AlertService(built).push() == []
    finally:
        await built.aclose()


async def _ok() -> None:
    return None
