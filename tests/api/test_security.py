"""The security pass (issue 9): bounded hashing, per-IP and race-free login limits, revocable
tokens, sign-up control, single-use stream tokens with a per-user cap."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import msgspec
import pytest

from tests.support.api import register
from tests.support.errors import assert_error
from tests.support.sse import EVENTS, SSEReader, open_stream, stream_token
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio

LOGIN = "/api/v1/auth/login"


@contextlib.contextmanager
def served(settings, **overrides) -> Iterator[str]:
    """A second API process with some settings changed (same database and Redis)."""
    from app.factory import create_app
    from tests.support.asgi_server import serve

    with serve(create_app(msgspec.structs.replace(settings, **overrides))) as app:
        yield app.url


@contextlib.asynccontextmanager
async def http(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def from_ip(ip: str) -> dict:
    return {"X-Forwarded-For": ip}


# --- 1. bounded hashing ------------------------------------------------------------------------


async def test_password_hashing_never_runs_more_than_the_cap_at_once(settings):
    from app.core.security import ARGON2_MEMORY_KIB, PasswordHashing

    hashing = PasswordHashing(msgspec.structs.replace(settings, password_hash_concurrency=2))
    real = hashing._hasher

    class SlowHasher:
        def verify(self, hash_: str, password: str) -> bool:
            time.sleep(0.02)  # long enough for unbounded threads to pile up
            return real.verify(hash_, password)

    hashing._hasher = SlowHasher()  # type: ignore[assignment]
    results = await asyncio.gather(*(hashing.verify(None, "guess") for _ in range(30)))
    assert results == [False] * 30
    assert hashing.peak == 2
    assert hashing.active == 0
    # production parameters: OWASP's minimum argon2id memory, not argon2-cffi's 64 MiB default
    production = PasswordHashing(msgspec.structs.replace(settings, env="development"))
    assert production._hasher.memory_cost == ARGON2_MEMORY_KIB <= 19 * 1024
    assert production._hasher.type.name == "ID"


async def test_register_and_login_are_limited_per_client_ip(settings, clean_state):
    with served(settings, auth_ip_limit_per_minute=3, trusted_proxies="127.0.0.1/32") as url:
        async with http(url) as client:
            for n in range(3):
                body = {"email": f"ip-{n}-{uuid.uuid4().hex[:6]}@example.com", "password": "correct horse"}
                assert (
                    await client.post("/api/v1/auth/register", json=body, headers=from_ip("203.0.113.7"))
                ).status_code == 201
            limited = await client.post(
                LOGIN, json={"email": "x@example.com", "password": "whatever1"}, headers=from_ip("203.0.113.7")
            )
            assert_error(limited, 429, "rate_limited")
            assert int(limited.headers["Retry-After"]) >= 1
            # another client (as named by the trusted proxy) is not affected
            other = await client.post(
                "/api/v1/auth/register",
                json={"email": f"other-{uuid.uuid4().hex[:6]}@example.com", "password": "correct horse"},
                headers=from_ip("198.51.100.9"),
            )
            assert other.status_code == 201
    # from an untrusted peer, X-Forwarded-For is ignored: it cannot buy a fresh budget per request
    with served(settings, auth_ip_limit_per_minute=2) as url:
        async with http(url) as client:
            answers = [
                (
                    await client.post(
                        LOGIN, json={"email": "y@example.com", "password": "whatever1"}, headers=from_ip(f"192.0.2.{n}")
                    )
                ).status_code
                for n in range(4)
            ]
            assert answers == [401, 401, 429, 429]


# --- 2. race-free login limits -----------------------------------------------------------------


async def test_concurrent_wrong_guesses_never_exceed_the_limit(client, settings):
    user = await register(client)
    guesses = await asyncio.gather(
        *(client.post(LOGIN, json={"email": user["user"]["email"], "password": f"wrong-{n}-pw"}) for n in range(25))
    )
    codes = [r.status_code for r in guesses]
    assert codes.count(401) == settings.login_max_failures
    assert codes.count(429) == 25 - settings.login_max_failures


async def test_a_strangers_failures_do_not_lock_the_owner_out(settings, clean_state):
    with served(settings, trusted_proxies="127.0.0.1") as url:
        async with http(url) as client:
            owner = await register(client)
            email = owner["user"]["email"]
            for n in range(settings.login_max_failures + 3):
                await client.post(
                    LOGIN, json={"email": email, "password": f"guess-{n}-x"}, headers=from_ip("203.0.113.66")
                )
            stranger = await client.post(
                LOGIN, json={"email": email, "password": owner["password"]}, headers=from_ip("203.0.113.66")
            )
            assert_error(stranger, 429, "rate_limited")
            ok = await client.post(
                LOGIN, json={"email": email, "password": owner["password"]}, headers=from_ip("198.51.100.1")
            )
            assert ok.status_code == 200, ok.text


# --- 3. revocable tokens -----------------------------------------------------------------------


async def test_logout_revokes_that_token_only(client):
    user = await register(client)
    second = (await client.post(LOGIN, json={"email": user["user"]["email"], "password": user["password"]})).json()
    out = await client.post("/api/v1/auth/logout", headers=user["headers"])
    assert out.status_code == 204
    gone = await client.get("/api/v1/auth/me", headers=user["headers"])
    assert_error(gone, 401, "not_authenticated")
    assert "revoked" in gone.json()["detail"].lower()
    assert (await client.get("/api/v1/auth/me", headers=bearer(second["access_token"]))).status_code == 200


async def test_password_change_revokes_every_earlier_token(client):
    user = await register(client)
    other = (await client.post(LOGIN, json={"email": user["user"]["email"], "password": user["password"]})).json()
    wrong = await client.post(
        "/api/v1/auth/password",
        json={"current_password": "not it at all", "new_password": "a new secret"},
        headers=user["headers"],
    )
    assert_error(wrong, 401, "invalid_credentials")
    short = await client.post(
        "/api/v1/auth/password",
        json={"current_password": user["password"], "new_password": "short"},
        headers=user["headers"],
    )
    assert_error(short, 400, "validation_error")
    changed = await client.post(
        "/api/v1/auth/password",
        json={"current_password": user["password"], "new_password": "a new secret"},
        headers=user["headers"],
    )
    assert changed.status_code == 200, changed.text
    assert set(changed.json()) == {"user", "access_token", "token_type", "expires_in"}
    for old in (user["access_token"], other["access_token"]):
        assert_error(await client.get("/api/v1/auth/me", headers=bearer(old)), 401, "not_authenticated")
    assert (await client.get("/api/v1/auth/me", headers=bearer(changed.json()["access_token"]))).status_code == 200
    assert (
        await client.post(LOGIN, json={"email": user["user"]["email"], "password": user["password"]})
    ).status_code == 401
    assert (
        await client.post(LOGIN, json={"email": user["user"]["email"], "password": "a new secret"})
    ).status_code == 200


async def test_revocation_reaches_another_api_process_within_5_seconds(client, settings, admin):
    user = await register(client)
    with served(settings) as url:
        async with http(url) as other:
            # the other process has verified (and cached) the token
            assert (await other.get("/api/v1/auth/me", headers=user["headers"])).status_code == 200
            started = time.monotonic()
            patched = await client.patch(
                f"/api/v1/admin/users/{user['user']['id']}", json={"disabled": True}, headers=admin["headers"]
            )
            assert patched.status_code == 200
            assert patched.json()["disabled"] is True

            async def refused() -> bool:
                return (await other.get("/api/v1/auth/me", headers=user["headers"])).status_code == 401

            await eventually(refused, timeout=5.0, what="the other process refuses the disabled user's token")
            assert time.monotonic() - started < 5.0
    disabled_login = await client.post(LOGIN, json={"email": user["user"]["email"], "password": user["password"]})
    assert_error(disabled_login, 403, "account_disabled")
    # re-enabled: a fresh login works, the earlier token stays revoked
    await client.patch(f"/api/v1/admin/users/{user['user']['id']}", json={"disabled": False}, headers=admin["headers"])
    assert (
        await client.post(LOGIN, json={"email": user["user"]["email"], "password": user["password"]})
    ).status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=user["headers"])).status_code == 401


async def test_changing_is_admin_revokes_earlier_tokens(client, admin):
    user = await register(client)
    url = f"/api/v1/admin/users/{user['user']['id']}"
    assert (await client.patch(url, json={"plan": "business"}, headers=admin["headers"])).status_code == 200
    assert (
        await client.get("/api/v1/auth/me", headers=user["headers"])
    ).status_code == 200  # a plan change keeps tokens
    assert (await client.patch(url, json={"is_admin": True}, headers=admin["headers"])).status_code == 200
    assert_error(await client.get("/api/v1/auth/me", headers=user["headers"]), 401, "not_authenticated")
    assert_error(await client.patch(url, json={"disabled": "yes"}, headers=admin["headers"]), 400, "validation_error")


async def test_a_disabled_users_open_stream_closes(client, admin):
    user = await register(client)
    async with open_stream(client, user) as sse:
        await client.patch(
            f"/api/v1/admin/users/{user['user']['id']}", json={"disabled": True}, headers=admin["headers"]
        )
        await asyncio.wait_for(sse._task, 10)  # the server ended the stream


# --- 5. sign-up control ------------------------------------------------------------------------


async def test_closed_signup_refuses_register_and_admins_create_users(settings, client, admin):
    with served(settings, signup="closed") as url:
        async with http(url) as closed:
            refused = await closed.post(
                "/api/v1/auth/register", json={"email": "new@example.com", "password": "correct horse"}
            )
            assert_error(refused, 403, "signup_closed")
            body = {"email": "Made@Example.com", "password": "correct horse", "name": "Made", "plan": "business"}
            created = await closed.post("/api/v1/admin/users", json=body, headers=admin["headers"])
            assert created.status_code == 201, created.text
            assert created.json()["email"] == "made@example.com"
            assert created.json()["plan"] == "business"
            assert created.json()["is_admin"] is False
            assert "password" not in created.text
            assert_error(
                await closed.post("/api/v1/admin/users", json=body, headers=admin["headers"]), 409, "email_taken"
            )
            bad_plan = {**body, "email": "other@example.com", "plan": "platinum"}
            assert_error(
                await closed.post("/api/v1/admin/users", json=bad_plan, headers=admin["headers"]),
                400,
                "validation_error",
            )
            tenant = await closed.post(LOGIN, json={"email": "made@example.com", "password": "correct horse"})
            assert tenant.status_code == 200
            forbidden = await closed.post(
                "/api/v1/admin/users", json=body, headers=bearer(tenant.json()["access_token"])
            )
            assert_error(forbidden, 403, "forbidden")


# --- 8. stream tokens --------------------------------------------------------------------------


async def test_stream_token_opens_one_stream(client):
    user = await register(client)
    token = await stream_token(client, user)
    async with client.stream("GET", EVENTS, params={"token": token}) as first:
        assert first.status_code == 200
        again = await client.get(EVENTS, params={"token": token})
        assert_error(again, 401, "not_authenticated")
        assert "used" in again.json()["detail"]


async def test_open_streams_per_user_are_bounded(settings, client):
    user = await register(client)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(settings.max_streams_per_user):
            await stack.enter_async_context(open_stream(client, user))
        over = await client.get(EVENTS, params={"token": await stream_token(client, user)})
        assert_error(over, 429, "rate_limited")
        # another user is not affected
        async with open_stream(client, await register(client)):
            pass

    # closed streams give their slots back
    async with open_stream(client, user) as sse:
        assert isinstance(sse, SSEReader)
