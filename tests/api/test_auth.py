from __future__ import annotations

import time
import uuid

import jwt
import pytest

from tests.support.api import register

pytestmark = pytest.mark.anyio


async def test_register_login_me(client):
    user = await register(client, "Alice@Example.com")
    assert user["token_type"] == "bearer"
    assert user["expires_in"] > 0
    assert user["user"]["email"] == "alice@example.com"
    assert user["user"]["plan"] == "free"
    assert user["user"]["max_chips"] == 1
    assert user["user"]["is_admin"] is False
    assert "password" not in user["user"]
    assert "password_hash" not in user["user"]

    login = await client.post("/api/v1/auth/login", json={"email": "ALICE@example.com", "password": "correct horse"})
    assert login.status_code == 200
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
    assert me.status_code == 200
    assert me.json()["id"] == user["user"]["id"]
    assert set(me.json()) == {"id", "email", "name", "plan", "is_admin", "disabled", "max_chips", "created_at"}


async def test_email_taken_is_case_insensitive(client):
    await register(client, "bob@example.com")
    again = await client.post("/api/v1/auth/register", json={"email": "BOB@example.com", "password": "another pw"})
    assert again.status_code == 409
    assert again.json() == {"status_code": 409, "detail": again.json()["detail"], "code": "email_taken"}


async def test_bad_credentials_do_not_reveal_the_email(client):
    await register(client, "carol@example.com")
    wrong_password = await client.post(
        "/api/v1/auth/login", json={"email": "carol@example.com", "password": "nope-nope"}
    )
    unknown_email = await client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "nope-nope"}
    )
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json() == unknown_email.json()
    assert wrong_password.json()["code"] == "invalid_credentials"


async def test_failed_logins_are_rate_limited_per_email(client, settings):
    user = await register(client, "dave@example.com")
    for _ in range(settings.login_max_failures):
        response = await client.post("/api/v1/auth/login", json={"email": "dave@example.com", "password": "wrong-pw"})
        assert response.status_code == 401
    limited = await client.post("/api/v1/auth/login", json={"email": "dave@example.com", "password": user["password"]})
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= settings.login_failure_window_seconds
    # another account is not affected
    other = await register(client, "erin@example.com")
    ok = await client.post("/api/v1/auth/login", json={"email": "erin@example.com", "password": other["password"]})
    assert ok.status_code == 200


async def test_missing_expired_tampered_and_wrong_type_tokens(client, settings):
    user = await register(client)
    assert (await client.get("/api/v1/auth/me")).json()["code"] == "not_authenticated"
    assert (await client.get("/api/v1/auth/me", headers={"Authorization": "Basic abc"})).status_code == 401

    token = user["access_token"]
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    response = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {tampered}"})
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"

    forged = jwt.encode(
        {"sub": user["user"]["id"], "typ": "access", "exp": int(time.time()) + 60}, "wrong-key-" + "y" * 32
    )
    response = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401

    claims = {"iss": "whago", "aud": "whago-api", "sub": user["user"]["id"], "typ": "access", "ver": 0}
    expired = jwt.encode(
        {**claims, "jti": str(uuid.uuid4()), "iat": 1, "exp": int(time.time()) - 5}, settings.secret_key
    )
    response = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert "expired" in response.json()["detail"].lower()

    # everything right but the audience, the issuer or the version
    for wrong in ({"aud": "whago-event-stream"}, {"iss": "elsewhere"}, {"ver": 7}, {"aud": None}):
        token = jwt.encode(
            {**claims, "jti": str(uuid.uuid4()), "iat": int(time.time()), "exp": int(time.time()) + 60, **wrong},
            settings.secret_key,
        )
        response = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, wrong
        assert response.json()["code"] == "not_authenticated"

    stream = await client.post("/api/v1/auth/stream-token", headers=user["headers"])
    assert stream.status_code == 200
    assert 0 < stream.json()["expires_in"] <= 120
    # a stream token is not an access token
    response = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {stream.json()['token']}"})
    assert response.status_code == 401


async def test_plans_are_public(client):
    response = await client.get("/api/v1/plans")
    assert response.status_code == 200
    assert response.json() == [
        {"name": "free", "max_chips": 1},
        {"name": "business", "max_chips": 3},
        {"name": "enterprise", "max_chips": 10},
    ]


async def test_passwords_are_case_sensitive_and_emails_are_not(client):
    user = await register(client, "Frank@Example.com", password="Correct Horse Battery")
    assert user["user"]["email"] == "frank@example.com"
    for wrong in ("correct horse battery", "CORRECT HORSE BATTERY"):
        response = await client.post("/api/v1/auth/login", json={"email": "frank@example.com", "password": wrong})
        assert response.status_code == 401, wrong
    for email in ("frank@example.com", "FRANK@example.COM"):
        response = await client.post("/api/v1/auth/login", json={"email": email, "password": "Correct Horse Battery"})
        assert response.status_code == 200, email


async def test_successful_logins_do_not_count_as_failures(client, settings):
    user = await register(client, "frank@example.com")
    login = {"email": "frank@example.com", "password": user["password"]}
    for _ in range(settings.login_max_failures + 1):
        ok = await client.post("/api/v1/auth/login", json=login)
        assert ok.status_code == 200, ok.text
    # the failures still allowed are all of them: the successes were taken back
    for _ in range(settings.login_max_failures):
        wrong = await client.post("/api/v1/auth/login", json={**login, "password": "wrong-pw"})
        assert wrong.status_code == 401
    assert (await client.post("/api/v1/auth/login", json=login)).status_code == 429
