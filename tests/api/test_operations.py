"""Health, outages and migrations, against real processes and databases."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from app.factory import create_app
from app.settings import load_settings
from tests.support.api import register
from tests.support.asgi_server import ServedApp, free_port
from tests.support.env import TEST_DATABASE_URL, TEST_REDIS_URL
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio


def proxied(url: str) -> tuple[TcpProxy, str]:
    """A switchable proxy in front of the server ``url`` names, and ``url`` pointed at the proxy
    (same credentials and database number: each engineer's test database stays their own)."""
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or {"redis": 6379}.get(parts.scheme, 5432))
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{proxy.port}" if credentials else f"127.0.0.1:{proxy.port}"
    return proxy, urlunsplit(parts._replace(netloc=netloc))


async def test_live_and_ready(client):
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["redis"] == "ok"


async def test_metrics_endpoint(client):
    await client.get("/api/v1/plans")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert "whago_requests_total" in response.text


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{proc.stdout.read()}")
        try:
            httpx.get(url + "/health/live", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(url)


@pytest.fixture()
def api_behind_db_proxy(migrated_db, clean_state):
    """A real ``whago serve`` process whose database connection goes through a switchable proxy."""
    proxy, database_url = proxied(TEST_DATABASE_URL)
    proxy.up()
    port = free_port()
    env = {
        **os.environ,
        "WHAGO_DATABASE_URL": database_url,
        "WHAGO_DATABASE_TIMEOUT_SECONDS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url, proc)
        yield url, proxy
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        proxy.close()


async def test_database_outage_gives_503_and_recovers(api_behind_db_proxy):
    url, proxy = api_behind_db_proxy
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        user = await register(http)
        assert (await http.get("/health/ready")).status_code == 200

        proxy.down()
        ready = await http.get("/health/ready")
        assert ready.status_code == 503
        body = ready.json()
        assert body["code"] == "dependency_unavailable"
        assert "database" in body["detail"]
        assert body["extra"]["database"] != "ok"
        assert body["extra"]["redis"] == "ok"
        for response in (
            await http.get("/api/v1/chips", headers=user["headers"]),
            await http.post("/api/v1/chips", json={"alias": "x"}, headers=user["headers"]),
            await http.post("/api/v1/auth/login", json={"email": user["user"]["email"], "password": "whatever1"}),
        ):
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "dependency_unavailable"
        assert (await http.get("/health/live")).status_code == 200
        assert (await http.get("/api/v1/plans")).status_code == 200

        proxy.up()

        async def ready() -> bool:
            return (await http.get("/health/ready")).status_code == 200

        await eventually(ready, timeout=15, what="the API to recover", interval=0.2)
        created = await http.post("/api/v1/chips", json={"alias": "after"}, headers=user["headers"])
        assert created.status_code == 202
        assert (await http.get("/api/v1/chips", headers=user["headers"])).json()["total"] == 1


async def test_redis_outage_records_chip_and_enqueues_later(migrated_db, clean_state, settings):
    """Redis down: the chip is recorded durably with an outbox mark; the drain enqueues it later."""
    proxy, redis_url = proxied(TEST_REDIS_URL)
    proxy.up()
    outage_settings = load_settings({**os.environ, "WHAGO_REDIS_URL": redis_url, "WHAGO_REDIS_TIMEOUT_SECONDS": "0.5"})
    served = ServedApp(create_app(outage_settings)).start()
    try:
        async with httpx.AsyncClient(base_url=served.url, timeout=20) as http:
            user = await register(http)
            proxy.down()
            ready = await http.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["extra"]["redis"] != "ok"
            created = await http.post("/api/v1/chips", json={"alias": "durable"}, headers=user["headers"])
            assert created.status_code == 202, created.text
            chip_id = uuid.UUID(created.json()["id"])
            conn = await asyncpg.connect(migrated_db)
            try:
                marker = await conn.fetchval("SELECT provision_enqueued_at FROM chips WHERE id = $1", chip_id)
                assert marker is None  # recorded, waiting for the queue
                proxy.up()
                from app.container import Container
                from app.core import db
                from app.reconciler.service import Reconciler

                await db.start_pool(settings)
                container = Container.build(settings)
                try:
                    # the reconciler is what drains the outbox once Redis is back
                    report = await Reconciler(container).run()
                    assert report.drift["provision_requeued"] == 1, report.as_dict()
                    assert await container.redis.exists(f"saq:job:whago:provision:{chip_id}")
                finally:
                    await container.aclose()
                marker = await conn.fetchval("SELECT provision_enqueued_at FROM chips WHERE id = $1", chip_id)
                assert marker is not None
            finally:
                await conn.close()
    finally:
        served.stop()
        proxy.close()


MIGRATION_FILES = len(list((Path(__file__).resolve().parents[2] / "piccolo_migrations").glob("whago_*.py")))


async def test_migrations_apply_to_an_empty_database_and_rerun():
    name = f"whago_migrate_{uuid.uuid4().hex[:8]}"
    url = TEST_DATABASE_URL.rsplit("/", 1)[0] + "/" + name
    env = {**os.environ, "WHAGO_DATABASE_URL": url}
    try:
        for _ in range(2):  # creates the database, applies; then a no-op re-run
            result = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "app.cli", "migrate"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0, result.stderr + result.stdout
        conn = await asyncpg.connect(url)
        try:
            tables = {
                r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
            }
            applied = await conn.fetchval("SELECT count(*) FROM migration")
        finally:
            await conn.close()
        assert {
            "users",
            "chips",
            "chip_events",
            "webhook_events",
            "proxies",
            "instances",
            "messages",
            "audit_log",
        } <= tables
        # every migration file applied exactly once (the re-run added nothing)
        assert applied == MIGRATION_FILES
    finally:
        admin = await asyncpg.connect(TEST_DATABASE_URL.rsplit("/", 1)[0] + "/postgres")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
