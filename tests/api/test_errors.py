"""Every error comes back in the contract's shape, and bad input changes nothing."""

from __future__ import annotations

import pytest

from tests.support.api import register, set_plan
from tests.support.errors import assert_error

pytestmark = pytest.mark.anyio


BAD_REGISTRATIONS = [
    b"{not json",
    b"[]",
    b'"a string"',
    b"{}",
    b'{"email": "a@b.co"}',
    b'{"email": 5, "password": "longenough"}',
    b'{"email": "a@b.co", "password": 12345678}',
    b'{"email": "not-an-email", "password": "longenough"}',
    b'{"email": "a@b.co", "password": "short"}',
    ('{"email": "' + "a" * 250 + '@b.co", "password": "longenough"}').encode(),
    ('{"email": "a@b.co", "password": "' + "p" * 129 + '"}').encode(),
    ('{"email": "a@b.co", "password": "longenough", "name": "' + "n" * 129 + '"}').encode(),
    b'{"email": "a@b.co", "password": "longenough", "is_admin": true}',
]


@pytest.mark.parametrize("body", BAD_REGISTRATIONS)
async def test_bad_registration_bodies_are_400_and_create_nothing(client, body):
    response = await client.post("/api/v1/auth/register", content=body, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "validation_error")
    # nothing was created: the same email still registers
    assert (
        await client.post("/api/v1/auth/register", json={"email": "a@b.co", "password": "longenough"})
    ).status_code == 201


BAD_CHIPS = [
    b"{bad",
    b"{}",
    b'{"alias": 7}',
    b'{"alias": ""}',
    b'{"alias": "   "}',
    ('{"alias": "' + "x" * 65 + '"}').encode(),
    b'{"alias": "ok", "proxy_country": "brazil"}',
    b'{"alias": "ok", "proxy_country": 55}',
    b'{"alias": "ok", "status": "connected"}',
]


@pytest.mark.parametrize("body", BAD_CHIPS)
async def test_bad_chip_bodies_are_400_and_change_nothing(client, body):
    user = await register(client)
    headers = {**user["headers"], "Content-Type": "application/json"}
    assert_error(await client.post("/api/v1/chips", content=body, headers=headers), 400, "validation_error")
    assert (await client.get("/api/v1/chips", headers=user["headers"])).json()["total"] == 0
    chip = (await client.post("/api/v1/chips", json={"alias": "fine"}, headers=user["headers"])).json()
    response = await client.patch(f"/api/v1/chips/{chip['id']}", content=body, headers=headers)
    assert_error(response, 400, "validation_error")
    assert (await client.get(f"/api/v1/chips/{chip['id']}", headers=user["headers"])).json()["alias"] == "fine"


async def test_validation_error_carries_field_details(client):
    response = await client.post("/api/v1/auth/register", json={"email": "a@b.co", "password": 1})
    body = assert_error(response, 400, "validation_error")
    assert any(item.get("key") == "password" for item in body["extra"])


async def test_unknown_route_and_method(client):
    assert_error(await client.get("/api/v1/nope"), 404, "not_found")
    # a GET outside the API is the web console's (deep links); other methods stay JSON 404s
    assert_error(await client.post("/nothing/here"), 404, "not_found")
    assert_error(await client.put("/api/v1/plans"), 405, "method_not_allowed")


async def test_admin_guard(client, migrated_db):
    user = await register(client)
    assert_error(await client.get("/api/v1/admin/users", headers=user["headers"]), 403, "forbidden")
    assert_error(await client.get("/api/v1/admin/users"), 401, "not_authenticated")
    await set_plan(migrated_db, user["user"]["id"], "free", is_admin=True)
    listing = await client.get("/api/v1/admin/users", headers=user["headers"])
    assert listing.status_code == 200
    assert listing.json()["total"] == 1
    assert "password_hash" not in listing.text
    other = await register(client)
    path = f"/api/v1/admin/users/{other['user']['id']}"
    assert_error(await client.patch(path, json={"plan": "platinum"}, headers=user["headers"]), 400, "validation_error")
    updated = await client.patch(path, json={"plan": "business"}, headers=user["headers"])
    assert updated.status_code == 200
    assert updated.json()["plan"] == "business"
    assert updated.json()["max_chips"] == 3
    me = await client.get("/api/v1/auth/me", headers=other["headers"])
    assert me.json()["plan"] == "business"
    assert_error(await client.get("/api/v1/admin/users", headers=other["headers"]), 403, "forbidden")


async def test_schema_is_served(client):
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/chips" in paths
    assert "/api/v1/auth/register" in paths


@pytest.mark.parametrize("path", ["/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/chips"])
async def test_absurdly_nested_json_is_a_400_not_a_500(client, path):
    user = await register(client)
    depth = 20_000
    body = '{"alias": ' + '{"a": [' * depth + "1" + "]}" * depth + "}"
    response = await client.post(path, content=body, headers={**user["headers"], "Content-Type": "application/json"})
    assert_error(response, 400, "validation_error")
    # and the process is fine afterwards
    assert (await client.get("/api/v1/chips", headers=user["headers"])).status_code == 200
