"""Per-tenant PostgreSQL roles for WAHA's session storage, against the real local PostgreSQL: role
A cannot read role B's session tables, provisioning the role again is idempotent, removing a
tenant drops its databases and role; the sessions URL in the job's Variable logs in as the role."""

from __future__ import annotations

import logging
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import pytest

from app.core.tenant_keys import TenantKeys
from app.instances.waha_roles import WahaRoles
from app.scheduler.nomad_job import secret_items, tenant_sessions_url
from app.settings import load_settings
from tests.support.env import TEST_DATABASE_URL

pytestmark = pytest.mark.anyio


def as_role(url: str, role: str, password: str, database: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{role}:{password}@{host}", "/" + database, "", ""))


@pytest.fixture
def settings(base_settings):
    return msgspec.structs.replace(
        base_settings,
        scheduler="nomad",
        waha_sessions_admin_url=TEST_DATABASE_URL,
        waha_sessions_database_url=TEST_DATABASE_URL,
    )


@pytest.fixture
async def roles(settings):
    roles = WahaRoles(settings)
    tenants: list[str] = []
    yield roles, tenants
    for tenant in tenants:  # whatever the test did, leave no role or database behind
        await roles.drop(tenant)


async def test_role_a_cannot_read_role_bs_session_tables(settings, roles):
    roles, tenants = roles
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    tenants += [a, b]
    keys = TenantKeys(settings)
    role_a, role_b = await roles.ensure(a), await roles.ensure(b)
    assert (role_a, role_b) == (keys.db_role(a), keys.db_role(b))

    admin = await asyncpg.connect(TEST_DATABASE_URL)
    try:
        for role in (role_a, role_b):
            row = await admin.fetchrow(
                "SELECT rolcanlogin, rolcreatedb, rolsuper, rolcreaterole, rolreplication, rolbypassrls "
                "FROM pg_roles WHERE rolname = $1",
                role,
            )
            assert tuple(row) == (True, True, False, False, False, False)
        # WAHA (as B) creates its database and a session table, as it does on start
        b_db = f"{role_b}_main"
        as_b_admin = await asyncpg.connect(as_role(TEST_DATABASE_URL, role_b, keys.db_password(b), "postgres"))
        try:
            await as_b_admin.execute(f'CREATE DATABASE "{b_db}"')
        finally:
            await as_b_admin.close()
    finally:
        await admin.close()
    as_b = await asyncpg.connect(as_role(TEST_DATABASE_URL, role_b, keys.db_password(b), b_db))
    try:
        await as_b.execute("CREATE TABLE IF NOT EXISTS session_keys (id text PRIMARY KEY, secret text)")
        await as_b.execute("INSERT INTO session_keys VALUES ('creds', 'b-secret')")
    finally:
        await as_b.close()

    as_a = await asyncpg.connect(as_role(TEST_DATABASE_URL, role_a, keys.db_password(a), b_db))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_a.fetch("SELECT * FROM session_keys")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_a.execute("UPDATE session_keys SET secret = 'x'")
    finally:
        await as_a.close()

    # provisioning again (every ensure_instance does) changes nothing and fails nothing
    assert await roles.ensure(b) == role_b
    assert await roles.ensure(b) == role_b
    as_b = await asyncpg.connect(as_role(TEST_DATABASE_URL, role_b, keys.db_password(b), b_db))
    try:
        assert await as_b.fetchval("SELECT secret FROM session_keys") == "b-secret"
    finally:
        await as_b.close()

    # removing tenant B: its databases and role go, A's role stays
    assert await roles.drop(b) is True
    assert await roles.drop(b) is False
    admin = await asyncpg.connect(TEST_DATABASE_URL)
    try:
        assert await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", b_db) == 0
        names = {r["rolname"] for r in await admin.fetch("SELECT rolname FROM pg_roles")}
        assert role_b not in names
        assert role_a in names
    finally:
        await admin.close()


async def test_concurrent_ensures_of_one_role_all_succeed(roles):
    import asyncio

    roles, tenants = roles
    tenant = str(uuid.uuid4())
    tenants.append(tenant)
    assert len(set(await asyncio.gather(*(roles.ensure(tenant) for _ in range(4))))) == 1


def test_the_variable_carries_the_tenants_own_login(settings):
    tenant = str(uuid.uuid4())
    keys = TenantKeys(settings)
    url = secret_items(settings, tenant)["WHATSAPP_SESSIONS_POSTGRESQL_URL"]
    assert url == tenant_sessions_url(settings, tenant)
    parts = urlsplit(url)
    assert (parts.username, parts.password) == (keys.db_role(tenant), keys.db_password(tenant))
    assert parts.hostname == urlsplit(TEST_DATABASE_URL).hostname
    # without the admin URL the shared login stays
    shared = msgspec.structs.replace(settings, waha_sessions_admin_url="")
    assert tenant_sessions_url(shared, tenant) == TEST_DATABASE_URL


def test_production_warns_when_tenants_share_the_sessions_login(tmp_path, caplog):
    env = {
        "WHAGO_ENV": "production",
        "WHAGO_DEV_STATE_DIR": str(tmp_path),
        "WHAGO_SECRET_KEY": "s" * 40,
        "WHAGO_WEBHOOK_HMAC_KEY": "w" * 40,
        "WHAGO_WAHA_API_KEY": "a" * 40,
        "WHAGO_ENCRYPTION_KEY": "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=",
        "WHAGO_WAHA_SESSIONS_DATABASE_URL": "postgresql://waha:pw@db/waha",
    }
    with caplog.at_level(logging.WARNING, logger="whago.settings"):
        load_settings(env)
    assert "WHAGO_WAHA_SESSIONS_ADMIN_URL is not set" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="whago.settings"):
        load_settings({**env, "WHAGO_WAHA_SESSIONS_ADMIN_URL": "postgresql://admin:pw@db/postgres"})
    assert "WHAGO_WAHA_SESSIONS_ADMIN_URL" not in caplog.text
