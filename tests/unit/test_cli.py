from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, env=dict(os.environ), timeout=60
    )


def test_nomad_render_prints_the_registration_body_without_a_database():
    user_id = str(uuid.uuid4())
    env = {**os.environ, "WHAGO_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "nomad", "render", "--user-id", user_id, "--plan", "enterprise"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)["Job"]
    assert job["ID"] == f"whago-waha-{user_id}"
    assert job["Type"] == "service"
    assert job["Meta"]["whago_plan"] == "enterprise"
    assert job["Meta"]["created_by"] == "whago"
    assert os.environ["WHAGO_WAHA_API_KEY"] not in result.stdout


def test_nomad_render_rejects_bad_input():
    assert run("nomad", "render", "--user-id", "not-a-uuid", "--plan", "free").returncode == 2
    assert run("nomad", "render", "--user-id", str(uuid.uuid4()), "--plan", "platinum").returncode == 2


def test_create_admin_creates_and_resets_an_admin(migrated_db):
    import asyncio

    import asyncpg

    email = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    first = run("create-admin", email.upper(), "--password", "operator-pw-1")
    assert first.returncode == 0, first.stderr
    assert f"created admin {email}" in first.stdout
    second = run("create-admin", email, "--password", "operator-pw-2")
    assert second.returncode == 0
    assert f"reset password of admin {email}" in second.stdout
    assert run("create-admin", email, "--password", "short").returncode != 0

    async def row():
        conn = await asyncpg.connect(migrated_db)
        try:
            return await conn.fetch("SELECT is_admin, token_version FROM users WHERE email = $1", email)
        finally:
            await conn.close()

    assert [(r["is_admin"], r["token_version"]) for r in asyncio.run(row())] == [(True, 1)]


def test_create_admin_never_promotes_a_strangers_account(migrated_db):
    """Whoever registered the operator's address first must not become an admin when the
    operator runs create-admin: it refuses, and --promote-existing re-passwords and revokes."""
    import asyncio

    import asyncpg

    email = f"ops-{uuid.uuid4().hex[:8]}@example.com"

    async def sql(query: str, *args):
        conn = await asyncpg.connect(migrated_db)
        try:
            return await conn.fetchrow(query, *args)
        finally:
            await conn.close()

    asyncio.run(sql("INSERT INTO users (email, password_hash) VALUES ($1, 'stranger-hash')", email))
    refused = run("create-admin", email, "--password", "operator-pw-1")
    assert refused.returncode != 0
    assert "--promote-existing" in refused.stderr
    before = asyncio.run(sql("SELECT is_admin, password_hash, token_version FROM users WHERE email = $1", email))
    assert (before["is_admin"], before["password_hash"], before["token_version"]) == (False, "stranger-hash", 0)

    promoted = run("create-admin", email, "--password", "operator-pw-1", "--promote-existing")
    assert promoted.returncode == 0, promoted.stderr
    assert f"promoted admin {email}" in promoted.stdout
    after = asyncio.run(sql("SELECT is_admin, password_hash, token_version FROM users WHERE email = $1", email))
    assert after["is_admin"] is True
    assert after["password_hash"] != "stranger-hash"
    assert after["token_version"] == 1  # the stranger's tokens are revoked


def test_rotate_encryption_key(migrated_db):
    import asyncio

    import asyncpg
    from cryptography.fernet import Fernet

    old_key = os.environ["WHAGO_ENCRYPTION_KEY"]
    new_key = Fernet.generate_key().decode()
    token = Fernet(old_key).encrypt(b"proxy-secret").decode()

    async def setup_and_read(action):
        conn = await asyncpg.connect(migrated_db)
        try:
            return await action(conn)
        finally:
            await conn.close()

    proxy_id = asyncio.run(
        setup_and_read(
            lambda c: c.fetchval(
                "INSERT INTO proxies (scheme, host, port, password_encrypted)"
                " VALUES ('http', 'p.example', 8080, $1) RETURNING id",
                token,
            )
        )
    )
    env = {**os.environ, "WHAGO_ENCRYPTION_KEY": f"{new_key},{old_key}"}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "rotate-encryption-key"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    stored = asyncio.run(
        setup_and_read(lambda c: c.fetchval("SELECT password_encrypted FROM proxies WHERE id = $1", proxy_id))
    )
    assert Fernet(new_key).decrypt(stored.encode()) == b"proxy-secret"  # readable with the new key alone
    asyncio.run(setup_and_read(lambda c: c.execute("DELETE FROM proxies WHERE id = $1", proxy_id)))
