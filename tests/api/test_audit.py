"""The audit log: one entry per admin change and security event, readable by admins only."""

from __future__ import annotations

import uuid

import pytest

from tests.support.api import register
from tests.support.errors import assert_error

pytestmark = pytest.mark.anyio

AUDIT = "/api/v1/admin/audit"


async def _entries(client, admin, **params) -> list[dict]:
    response = await client.get(AUDIT, params=params, headers=admin["headers"])
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_non_admins_get_403_and_anonymous_401(client, admin):
    tenant = await register(client)
    assert_error(await client.get(AUDIT, headers=tenant["headers"]), 403, "forbidden")
    assert_error(await client.get(AUDIT), 401, "not_authenticated")


async def test_plan_and_admin_changes_are_audited_with_actor_and_request_id(client, admin):
    tenant = await register(client)
    tid = tenant["user"]["id"]
    response = await client.patch(
        f"/api/v1/admin/users/{tid}",
        json={"plan": "business", "is_admin": True},
        headers={**admin["headers"], "X-Request-ID": "req-audit-1"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-audit-1"
    [entry] = await _entries(client, admin, action="user.update")
    assert entry["actor_id"] == admin["user"]["id"]
    assert entry["actor_email"] == admin["user"]["email"]
    assert entry["target_type"] == "user"
    assert entry["target_id"] == tid
    assert entry["before"] == {"plan": "free", "is_admin": False}
    assert entry["after"] == {"plan": "business", "is_admin": True}
    assert entry["request_id"] == "req-audit-1"
    # a PATCH that changes nothing writes nothing
    await client.patch(f"/api/v1/admin/users/{tid}", json={"plan": "business"}, headers=admin["headers"])
    assert len(await _entries(client, admin, action="user.update")) == 1
    # a refused PATCH writes nothing either
    await client.patch(f"/api/v1/admin/users/{tid}", json={"plan": "nope"}, headers=admin["headers"])
    assert len(await _entries(client, admin, action="user.update")) == 1


async def test_instance_restart_and_remove_are_audited(client, admin):
    tenant = await register(client)
    tid = tenant["user"]["id"]
    assert (await client.post(f"/api/v1/admin/instances/{tid}/restart", headers=admin["headers"])).status_code == 202
    assert (await client.delete(f"/api/v1/admin/instances/{tid}", headers=admin["headers"])).status_code == 202
    actions = [(e["action"], e["target_id"], e["actor_id"]) for e in await _entries(client, admin, target_id=tid)]
    assert actions == [
        ("instance.remove", tid, admin["user"]["id"]),
        ("instance.restart", tid, admin["user"]["id"]),
    ]
    # an unknown tenant is a 404 and no entry
    await client.post(f"/api/v1/admin/instances/{uuid.uuid4()}/restart", headers=admin["headers"])
    assert len(await _entries(client, admin, action="instance.restart")) == 1


async def test_proxy_changes_are_audited_without_the_password(client, admin):
    created = await client.post(
        "/api/v1/admin/proxies",
        json={"scheme": "http", "host": "10.0.0.9", "port": 3128, "username": "u", "password": "pr0xy-s3cret"},
        headers=admin["headers"],
    )
    assert created.status_code == 201
    pid = created.json()["id"]
    edited = await client.patch(
        f"/api/v1/admin/proxies/{pid}", json={"port": 3129, "password": "n3w-s3cret"}, headers=admin["headers"]
    )
    assert edited.status_code == 200
    assert (await client.delete(f"/api/v1/admin/proxies/{pid}", headers=admin["headers"])).status_code == 204
    response = await client.get(AUDIT, params={"target_id": pid}, headers=admin["headers"])
    assert "s3cret" not in response.text
    assert "password_encrypted" not in response.text
    entries = response.json()["items"]
    assert [e["action"] for e in entries] == ["proxy.delete", "proxy.update", "proxy.create"]
    delete, update, create = entries
    assert create["after"]["host"] == "10.0.0.9"
    assert create["after"]["has_password"] is True
    assert update["before"]["port"] == 3128
    assert update["after"]["port"] == 3129
    assert delete["before"]["port"] == 3129
    assert all(e["actor_id"] == admin["user"]["id"] for e in entries)


async def test_login_lockout_is_audited_once(client, admin, settings):
    victim = await register(client)
    email = victim["user"]["email"]
    for _ in range(settings.login_max_failures + 2):
        await client.post("/api/v1/auth/login", json={"email": email, "password": "wrong-password"})
    [entry] = await _entries(client, admin, action="auth.login_locked")
    assert entry["target_id"] == victim["user"]["id"]
    assert entry["actor_id"] is None
    assert entry["after"]["email"] == email
    assert "wrong-password" not in str(entry)


async def test_cursor_pages_newest_first_and_filters(client, admin):
    tenant = await register(client)
    tid = tenant["user"]["id"]
    for plan in ("business", "enterprise", "free", "business", "enterprise"):
        await client.patch(f"/api/v1/admin/users/{tid}", json={"plan": plan}, headers=admin["headers"])
    first = (await client.get(AUDIT, params={"limit": 2}, headers=admin["headers"])).json()
    assert [e["after"]["plan"] for e in first["items"]] == ["enterprise", "business"]
    second = (
        await client.get(AUDIT, params={"limit": 2, "before": first["next_before"]}, headers=admin["headers"])
    ).json()
    assert [e["after"]["plan"] for e in second["items"]] == ["free", "enterprise"]
    last = (
        await client.get(AUDIT, params={"limit": 2, "before": second["next_before"]}, headers=admin["headers"])
    ).json()
    assert [e["after"]["plan"] for e in last["items"]] == ["business"]
    assert last["next_before"] is None
    assert len(await _entries(client, admin, actor_id=admin["user"]["id"])) == 5
    assert await _entries(client, admin, actor_id=str(uuid.uuid4())) == []
    assert_error(await client.get(AUDIT, params={"before": "nope"}, headers=admin["headers"]), 400, "validation_error")


async def test_prune_drops_entries_past_retention(client, admin, conn, settings):
    from app.audit.service import AuditService

    tenant = await register(client)
    await client.patch(
        f"/api/v1/admin/users/{tenant['user']['id']}", json={"plan": "business"}, headers=admin["headers"]
    )
    await conn.execute(
        "INSERT INTO audit_log (action, target_type, at) VALUES ('user.update', 'user', now() - interval '400 days')"
    )
    assert await AuditService(settings).prune() == 1
    assert await conn.fetchval("SELECT count(*) FROM audit_log") == 1


async def test_password_changes_and_logouts_are_audited_without_secrets(client, admin):
    user = await register(client)
    uid = user["user"]["id"]
    changed = await client.post(
        "/api/v1/auth/password",
        json={"current_password": user["password"], "new_password": "a-new-long-password"},
        headers={"Authorization": f"Bearer {user['access_token']}"},
    )
    assert changed.status_code == 200, changed.text
    [entry] = await _entries(client, admin, action="auth.password_change")
    assert (entry["target_type"], entry["target_id"], entry["actor_id"]) == ("user", uid, uid)  # by themselves
    assert entry["after"] == {"tokens_revoked": True}
    assert user["password"] not in str(entry)
    assert "a-new-long-password" not in str(entry)

    token = changed.json()["access_token"]
    out = await client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert out.status_code == 204
    [entry] = await _entries(client, admin, action="auth.token_revoked")
    assert (entry["target_type"], entry["target_id"]) == ("user", uid)
    assert entry["after"] == {"reason": "logout"}
    assert token not in str(entry)


def test_scrub_drops_secret_keys_at_any_depth_but_keeps_flags():
    from app.audit.service import scrub

    snapshot = {
        "password": "hunter2",
        "api_key": "k",
        "proxy_password": "p",
        "tokens_revoked": True,
        "host": "h",
        "nested": {"hmac": "h", "has_password": True, "token": "t"},
    }
    assert scrub(snapshot) == {"tokens_revoked": True, "host": "h", "nested": {"has_password": True}}
    assert scrub(None) is None
