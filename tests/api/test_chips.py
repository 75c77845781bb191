from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest
import redis as sync_redis

from tests.support.api import register, set_plan
from tests.support.env import TEST_REDIS_URL

pytestmark = pytest.mark.anyio


async def _create(client, user, alias="sales-1", **extra):
    return await client.post("/api/v1/chips", json={"alias": alias, **extra}, headers=user["headers"])


async def test_create_get_list_rename_delete_and_events(client):
    user = await register(client)
    created = await _create(client, user, proxy_country="BR")
    assert created.status_code == 202, created.text
    chip = created.json()
    assert chip["status"] == "provisioning"
    assert chip["session_name"] == "chip_" + uuid.UUID(chip["id"]).hex
    assert chip["phone_number"] is None
    assert chip["proxy"] is None
    assert chip["error"] is None
    assert set(chip) == {
        "id",
        "alias",
        "status",
        "session_name",
        "phone_number",
        "proxy",
        "error",
        "status_changed_at",
        "created_at",
        "updated_at",
    }

    got = await client.get(f"/api/v1/chips/{chip['id']}", headers=user["headers"])
    assert got.json() == chip

    listing = await client.get("/api/v1/chips", headers=user["headers"])
    assert listing.json() == {"items": [chip], "total": 1, "limit": 50, "offset": 0}

    renamed = await client.patch(f"/api/v1/chips/{chip['id']}", json={"alias": "support"}, headers=user["headers"])
    assert renamed.status_code == 200
    assert renamed.json()["alias"] == "support"

    deleted = await client.delete(f"/api/v1/chips/{chip['id']}", headers=user["headers"])
    assert deleted.status_code == 202
    assert deleted.json()["status"] == "deleting"

    events = await client.get(f"/api/v1/chips/{chip['id']}/events", headers=user["headers"])
    items = events.json()["items"]
    assert [(e["from_status"], e["to_status"], e["source"]) for e in items] == [
        ("provisioning", "deleting", "api"),
        (None, "provisioning", "api"),
    ]
    limited = await client.get(f"/api/v1/chips/{chip['id']}/events?limit=1", headers=user["headers"])
    assert len(limited.json()["items"]) == 1


async def test_create_enqueues_one_provisioning_job(client):
    user = await register(client)
    chip = (await _create(client, user)).json()
    raw = sync_redis.Redis.from_url(TEST_REDIS_URL).get(f"saq:job:whago:provision:{chip['id']}")
    assert raw is not None, "provisioning job not enqueued"
    job = json.loads(raw)
    assert job["function"] == "provision_chip"
    assert job["kwargs"] == {"chip_id": chip["id"]}
    assert job["timeout"] > 10
    assert job["retries"] > 1


async def test_pagination_and_status_filter(client, migrated_db):
    user = await register(client)
    await set_plan(migrated_db, user["user"]["id"], "enterprise")
    ids = [(await _create(client, user, alias=f"chip-{i}")).json()["id"] for i in range(5)]
    page = await client.get("/api/v1/chips?limit=2&offset=1", headers=user["headers"])
    assert page.json()["total"] == 5
    assert [c["id"] for c in page.json()["items"]] == list(reversed(ids))[1:3]
    beyond = await client.get("/api/v1/chips?offset=50", headers=user["headers"])
    assert beyond.json() == {"items": [], "total": 5, "limit": 50, "offset": 50}
    await client.delete(f"/api/v1/chips/{ids[0]}", headers=user["headers"])
    deleting = await client.get("/api/v1/chips?status=deleting", headers=user["headers"])
    assert [c["id"] for c in deleting.json()["items"]] == [ids[0]]
    bad = await client.get("/api/v1/chips?status=sleeping", headers=user["headers"])
    assert bad.status_code == 400
    assert bad.json()["code"] == "validation_error"
    for query in ("limit=0", "limit=101", "offset=-1", "limit=abc"):
        response = await client.get(f"/api/v1/chips?{query}", headers=user["headers"])
        assert response.status_code == 400, query


async def test_plan_limit_sequential(client):
    user = await register(client)
    assert (await _create(client, user)).status_code == 202
    second = await _create(client, user, alias="second")
    assert second.status_code == 409
    assert second.json()["code"] == "plan_limit_reached"


@pytest.mark.parametrize(("plan", "limit"), [("free", 1), ("enterprise", 10)])
async def test_plan_limit_holds_under_50_concurrent_creates(client, migrated_db, plan, limit):
    user = await register(client)
    await set_plan(migrated_db, user["user"]["id"], plan)
    responses = await asyncio.gather(*(_create(client, user, alias=f"c{i}") for i in range(50)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(202) == limit
    assert codes.count(409) == 50 - limit
    conn = await asyncpg.connect(migrated_db)
    try:
        stored = await conn.fetchval("SELECT count(*) FROM chips WHERE user_id = $1", uuid.UUID(user["user"]["id"]))
    finally:
        await conn.close()
    assert stored == limit


async def test_tenant_isolation(client):
    alice, mallory = await register(client), await register(client)
    chip = (await _create(client, alice)).json()
    path = f"/api/v1/chips/{chip['id']}"
    for method, url, body in [
        ("GET", path, None),
        ("PATCH", path, {"alias": "mine now"}),
        ("DELETE", path, None),
        ("GET", path + "/events", None),
    ]:
        response = await client.request(method, url, json=body, headers=mallory["headers"])
        assert response.status_code == 404, (method, url)
        assert response.json()["code"] == "not_found"
    assert (await client.get("/api/v1/chips", headers=mallory["headers"])).json()["items"] == []
    # nothing changed for the owner
    assert (await client.get(path, headers=alice["headers"])).json() == chip


async def test_unknown_chip_is_404(client):
    user = await register(client)
    response = await client.get(f"/api/v1/chips/{uuid.uuid4()}", headers=user["headers"])
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    response = await client.get("/api/v1/chips/not-a-uuid", headers=user["headers"])
    assert response.status_code in (400, 404)
    assert "code" in response.json()
