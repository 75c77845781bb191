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
        "health",
        "health_checked_at",
    }
    assert chip["health"] == "unknown"  # api.md: not connected
    assert chip["health_checked_at"] is None

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


def _job(kind: str, chip_id: str) -> dict | None:
    raw = sync_redis.Redis.from_url(TEST_REDIS_URL).get(f"saq:job:whago:{kind}:{chip_id}")
    return json.loads(raw) if raw is not None else None


async def _deleting_rows(client, user, chip_id) -> list[dict]:
    events = await client.get(f"/api/v1/chips/{chip_id}/events", headers=user["headers"])
    return [e for e in events.json()["items"] if e["to_status"] == "deleting"]


async def test_delete_enqueues_teardown_once_and_records_one_change(client):
    user = await register(client)
    chip = (await _create(client, user)).json()
    assert _job("teardown", chip["id"]) is None
    first = await client.delete(f"/api/v1/chips/{chip['id']}", headers=user["headers"])
    assert first.status_code == 202
    assert first.json()["status_changed_at"] > chip["status_changed_at"]
    job = _job("teardown", chip["id"])
    assert job is not None, "teardown job not enqueued"
    assert job["function"] == "teardown_chip"
    assert job["kwargs"] == {"chip_id": chip["id"]}
    # a repeated DELETE answers the same chip, changes nothing and records nothing
    second = await client.delete(f"/api/v1/chips/{chip['id']}", headers=user["headers"])
    assert second.status_code == 202
    assert second.json()["status"] == "deleting"
    assert second.json()["status_changed_at"] == first.json()["status_changed_at"]
    assert len(await _deleting_rows(client, user, chip["id"])) == 1


async def test_concurrent_deletes_move_the_chip_once(client):
    user = await register(client)
    chip = (await _create(client, user)).json()
    responses = await asyncio.gather(
        *(client.delete(f"/api/v1/chips/{chip['id']}", headers=user["headers"]) for _ in range(10))
    )
    assert [r.status_code for r in responses] == [202] * 10
    assert {r.json()["status_changed_at"] for r in responses} == {responses[0].json()["status_changed_at"]}
    assert len(await _deleting_rows(client, user, chip["id"])) == 1
    assert _job("teardown", chip["id"]) is not None


async def test_deleting_another_tenants_chip_is_404_and_changes_nothing(client):
    alice, mallory = await register(client), await register(client)
    chip = (await _create(client, alice)).json()
    response = await client.delete(f"/api/v1/chips/{chip['id']}", headers=mallory["headers"])
    assert response.status_code == 404
    got = await client.get(f"/api/v1/chips/{chip['id']}", headers=alice["headers"])
    assert got.json()["status"] == "provisioning"
    assert _job("teardown", chip["id"]) is None


async def test_the_plan_limit_counts_one_tenants_chips_only(client):
    alice, bob = await register(client), await register(client)  # both on the free plan (1 chip)
    assert (await _create(client, alice)).status_code == 202
    assert (await _create(client, bob)).status_code == 202
    assert (await _create(client, bob, alias="second")).status_code == 409


async def test_create_marks_the_provisioning_outbox_row(client, migrated_db):
    user = await register(client)
    chip = (await _create(client, user)).json()
    conn = await asyncpg.connect(migrated_db)
    try:
        marked = await conn.fetchval("SELECT provision_enqueued_at FROM chips WHERE id = $1", uuid.UUID(chip["id"]))
    finally:
        await conn.close()
    # marked: the reconciler's sweep for never-enqueued chips leaves it alone
    assert marked is not None


async def test_status_filtered_total_past_the_last_page(client, migrated_db):
    user = await register(client)
    await set_plan(migrated_db, user["user"]["id"], "enterprise")
    ids = [(await _create(client, user, alias=f"chip-{i}")).json()["id"] for i in range(3)]
    await client.delete(f"/api/v1/chips/{ids[0]}", headers=user["headers"])
    for status, total in (("deleting", 1), ("provisioning", 2)):
        beyond = await client.get(f"/api/v1/chips?status={status}&offset=10&limit=5", headers=user["headers"])
        assert beyond.json() == {"items": [], "total": total, "limit": 5, "offset": 10}, status
        # a page that is not full also tells the total right
        page = await client.get(f"/api/v1/chips?status={status}&offset=1&limit=5", headers=user["headers"])
        assert page.json()["total"] == total, status


async def test_alias_is_trimmed_and_country_lower_cased(client, migrated_db):
    user = await register(client)
    chip = (await _create(client, user, alias="  sales desk \t", proxy_country="BR")).json()
    assert chip["alias"] == "sales desk"
    renamed = await client.patch(f"/api/v1/chips/{chip['id']}", json={"alias": " support  "}, headers=user["headers"])
    assert renamed.json()["alias"] == "support"
    conn = await asyncpg.connect(migrated_db)
    try:
        row = await conn.fetchrow("SELECT alias, proxy_country FROM chips WHERE id = $1", uuid.UUID(chip["id"]))
    finally:
        await conn.close()
    assert (row["alias"], row["proxy_country"]) == ("support", "br")
