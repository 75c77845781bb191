"""Admin views and actions across tenants: users, instances (list, restart, remove) and chips.

The API under test runs WHAGO_SCHEDULER=static (one shared WAHA): restart and remove are no-ops
at the scheduler, so these tests check what WHAGO itself records and answers.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import pytest
import redis as sync_redis

from tests.support.api import add_chip, register
from tests.support.env import TEST_REDIS_URL
from tests.support.errors import assert_error

pytestmark = pytest.mark.anyio


# ---------------------------------------------------------------------------- users
async def test_users_list_counts_chips(client, admin, conn):
    other = await register(client)
    for status in ("connected", "waiting_qr"):
        await add_chip(conn, other["user"]["id"], status)
    listing = await client.get("/api/v1/admin/users", headers=admin["headers"])
    assert listing.status_code == 200
    body = listing.json()
    assert body["total"] == 2
    by_id = {u["id"]: u for u in body["items"]}
    assert by_id[other["user"]["id"]]["chips"] == 2
    assert by_id[admin["user"]["id"]]["chips"] == 0
    assert by_id[admin["user"]["id"]]["is_admin"] is True
    assert "password" not in listing.text
    assert "password_hash" not in listing.text
    page = await client.get("/api/v1/admin/users?limit=1&offset=1", headers=admin["headers"])
    assert page.json()["total"] == 2
    assert len(page.json()["items"]) == 1
    assert_error(
        await client.patch(f"/api/v1/admin/users/{uuid.uuid4()}", json={"plan": "business"}, headers=admin["headers"]),
        404,
        "not_found",
    )
    assert_error(
        await client.patch(
            f"/api/v1/admin/users/{other['user']['id']}", json={"email": "x@y.z"}, headers=admin["headers"]
        ),
        400,
        "validation_error",
    )


# ---------------------------------------------------------------------------- instances
async def test_instances_list_shape(client, admin, conn):
    assert (await client.get("/api/v1/admin/instances", headers=admin["headers"])).json() == []
    tenants = [await register(client) for _ in range(2)]
    seen = datetime(2026, 11, 1, 12, 30, tzinfo=UTC)
    first, second = (uuid.UUID(t["user"]["id"]) for t in tenants)
    await conn.execute(
        "INSERT INTO instances (user_id, job_id, status, base_url, sessions, last_seen_at, last_error, created_at)"
        " VALUES ($1, $2, 'running', 'http://10.0.0.5:24001', 3, $3, 'old failure', now() - interval '1 hour')",
        first,
        f"whago-waha-{first}",
        seen,
    )
    await conn.execute(
        "INSERT INTO instances (user_id, job_id, status) VALUES ($1, $2, 'idle')", second, f"whago-waha-{second}"
    )
    response = await client.get("/api/v1/admin/instances", headers=admin["headers"])
    assert response.status_code == 200
    assert response.json() == [
        {
            "user_id": str(first),
            "job_id": f"whago-waha-{first}",
            "status": "running",
            "base_url": "http://10.0.0.5:24001",
            "sessions": 3,
            "last_seen_at": "2026-11-01T12:30:00Z",
        },
        {
            "user_id": str(second),
            "job_id": f"whago-waha-{second}",
            "status": "idle",
            "base_url": None,
            "sessions": 0,
            "last_seen_at": None,
        },
    ]


async def test_instance_actions_need_an_admin(client, admin):
    user = await register(client)
    target = f"/api/v1/admin/instances/{user['user']['id']}"
    for method, path in [
        ("GET", "/api/v1/admin/instances"),
        ("POST", target + "/restart"),
        ("DELETE", target),
        ("GET", "/api/v1/admin/chips"),
    ]:
        assert_error(await client.request(method, path, headers=user["headers"]), 403, "forbidden")
        assert_error(await client.request(method, path), 401, "not_authenticated")


async def test_restart_instance(client, admin):
    tenant = await register(client)
    response = await client.post(f"/api/v1/admin/instances/{tenant['user']['id']}/restart", headers=admin["headers"])
    assert response.status_code == 202
    assert response.json() == {"status": "restarting"}
    assert_error(
        await client.post(f"/api/v1/admin/instances/{uuid.uuid4()}/restart", headers=admin["headers"]), 404, "not_found"
    )
    assert_error(
        await client.post("/api/v1/admin/instances/not-a-uuid/restart", headers=admin["headers"]), 404, "not_found"
    )


async def test_remove_instance_disconnects_the_tenants_chips(client, admin, conn):
    tenant, bystander = await register(client), await register(client)
    tid = uuid.UUID(tenant["user"]["id"])
    await conn.execute(
        "INSERT INTO instances (user_id, job_id, status) VALUES ($1, $2, 'running')", tid, f"whago-waha-{tid}"
    )
    chips = {
        status: await add_chip(conn, tid, status, phone="5511999990000" if status == "connected" else None)
        for status in ("connected", "waiting_qr", "starting", "failed", "disconnected", "deleting")
    }
    untouched = await add_chip(conn, bystander["user"]["id"], "connected")

    pubsub = sync_redis.Redis.from_url(TEST_REDIS_URL).pubsub()
    pubsub.subscribe(f"whago:user:{tid}:events")
    pubsub.get_message(timeout=1)  # the subscribe confirmation

    response = await client.delete(f"/api/v1/admin/instances/{tid}", headers=admin["headers"])
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "removed", "chips_disconnected": 4}

    statuses = {r["id"]: r["status"] for r in await conn.fetch("SELECT id, status FROM chips")}
    for before in ("connected", "waiting_qr", "starting", "failed"):
        assert statuses[chips[before]] == "disconnected"
        history = await conn.fetch(
            "SELECT from_status, to_status, source FROM chip_events WHERE chip_id = $1", chips[before]
        )
        assert [tuple(h) for h in history] == [(before, "disconnected", "admin")]
    assert statuses[chips["deleting"]] == "deleting"  # teardown owns it
    assert statuses[chips["disconnected"]] == "disconnected"
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM chip_events WHERE chip_id = ANY($1::uuid[])",
            [chips["deleting"], chips["disconnected"]],
        )
        == 0
    )
    assert statuses[untouched] == "connected"
    # kept as 'removed' so the reconciler does not bring it straight back
    assert await conn.fetchval("SELECT status FROM instances WHERE user_id = $1", tid) == "removed"

    # the tenant's live stream hears about each chip
    events, deadline = [], time.monotonic() + 5
    while len(events) < 4 and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            events.append(json.loads(message["data"]))
    pubsub.close()
    assert sorted(
        (e["event"], e["data"]["chip_id"], e["data"]["status"], e["data"]["previous"]) for e in events
    ) == sorted(
        ("chip.status", str(chips[before]), "disconnected", before)
        for before in ("connected", "waiting_qr", "starting", "failed")
    )

    # the tenant sees it too, with the history
    mine = await client.get(f"/api/v1/chips/{chips['connected']}/events", headers=tenant["headers"])
    assert mine.json()["items"][0]["source"] == "admin"

    again = await client.delete(f"/api/v1/admin/instances/{tid}", headers=admin["headers"])
    assert again.status_code == 202
    assert again.json()["chips_disconnected"] == 0  # idempotent
    assert_error(
        await client.delete(f"/api/v1/admin/instances/{uuid.uuid4()}", headers=admin["headers"]), 404, "not_found"
    )


# ---------------------------------------------------------------------------- chips
async def test_chips_across_tenants_with_filters(client, admin, conn):
    a, b = await register(client), await register(client)
    a_connected = await add_chip(conn, a["user"]["id"], "connected", phone="5511988887777", age_seconds=30)
    a_waiting = await add_chip(conn, a["user"]["id"], "waiting_qr", age_seconds=20)
    b_connected = await add_chip(conn, b["user"]["id"], "connected", age_seconds=10)

    everything = await client.get("/api/v1/admin/chips", headers=admin["headers"])
    assert everything.status_code == 200
    body = everything.json()
    assert body["total"] == 3
    assert [c["id"] for c in body["items"]] == [str(b_connected), str(a_waiting), str(a_connected)]  # newest first
    first = body["items"][2]
    assert set(first) == {
        "id",
        "user_id",
        "alias",
        "status",
        "session_name",
        "phone_number",
        "proxy_id",
        "error",
        "status_changed_at",
        "created_at",
    }
    assert first["user_id"] == a["user"]["id"]
    assert first["phone_number"] == "5511988887777"

    async def ids(query: str) -> tuple[list[str], int]:
        response = await client.get(f"/api/v1/admin/chips?{query}", headers=admin["headers"])
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["items"]], response.json()["total"]

    assert await ids(f"user_id={a['user']['id']}") == ([str(a_waiting), str(a_connected)], 2)
    assert await ids("status=connected") == ([str(b_connected), str(a_connected)], 2)
    assert await ids(f"user_id={a['user']['id']}&status=connected") == ([str(a_connected)], 1)
    assert await ids(f"user_id={b['user']['id']}&status=waiting_qr") == ([], 0)
    assert await ids(f"user_id={uuid.uuid4()}") == ([], 0)
    assert await ids("limit=1&offset=1") == ([str(a_waiting)], 3)
    for bad in ("status=sleeping", "user_id=not-a-uuid", "limit=0", "offset=-1"):
        assert_error(await client.get(f"/api/v1/admin/chips?{bad}", headers=admin["headers"]), 400, "validation_error")
