"""Per-tenant PostgreSQL roles for WAHA's session storage (issue 10).

Where ``WHAGO_WAHA_SESSIONS_ADMIN_URL`` names a login allowed to create roles, each tenant's WAHA
connects as its own role (``whago_waha_<tenant hex>``, password derived from the platform secret,
see ``app.core.tenant_keys``) with only ``LOGIN CREATEDB``: WAHA creates its main database and one
per session, owned by that role, and another tenant's role has no privilege on their tables.

This talks to the sessions server, not WHAGO's database, so its statements live here rather than
in ``queries.py`` (like the WAHA client holds WAHA's HTTP calls). Role names and passwords are hex
derived by WHAGO (never user input); they are still quoted, since DDL takes no parameters.
"""

from __future__ import annotations

import logging
from uuid import UUID

import asyncpg

from app.core.errors import DependencyUnavailable
from app.core.tenant_keys import TenantKeys
from app.settings import Settings

logger = logging.getLogger("whago.instances.roles")

_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class WahaRoles:
    def __init__(self, settings: Settings) -> None:
        self.admin_url = settings.waha_sessions_admin_url
        self.keys = TenantKeys(settings)
        self.timeout = settings.database_timeout_seconds

    @property
    def enabled(self) -> bool:
        return bool(self.admin_url)

    async def _connect(self) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(self.admin_url, timeout=self.timeout)
        except _ERRORS as exc:
            raise DependencyUnavailable(f"WAHA sessions database unavailable: {type(exc).__name__}") from None

    async def ensure(self, user_id: UUID | str) -> str:
        """Create the tenant's role, or bring an existing one back to exactly ``LOGIN CREATEDB``
        and the current derived password (a rotated platform secret). Idempotent, also when two
        workers race."""
        role = self.keys.db_role(user_id)
        # INHERIT (the default) stays: the owner of a new database is pg_database_owner, which owns
        # its public schema on PostgreSQL >= 15; a NOINHERIT role could not create tables there
        attributes = "LOGIN CREATEDB NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS"
        password = _literal(self.keys.db_password(user_id))
        conn = await self._connect()
        try:
            # serialised per role (two workers provisioning one tenant): concurrent ALTER ROLEs
            # of one role fail with "tuple concurrently updated"
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", role, timeout=self.timeout)
                exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role, timeout=self.timeout)
                verb = "ALTER" if exists else "CREATE"
                await conn.execute(f"{verb} ROLE {_ident(role)} {attributes} PASSWORD {password}")
            if not exists:
                logger.info("created WAHA sessions role %s", role)
            return role
        except _ERRORS as exc:
            raise DependencyUnavailable(f"WAHA sessions database: {type(exc).__name__}") from None
        finally:
            await conn.close()

    async def drop(self, user_id: UUID | str) -> bool:
        """Removing a tenant: drop the databases its WAHA created, then its role. The
        sessions are gone for good (a re-created tenant pairs again). False if there was none."""
        role = self.keys.db_role(user_id)
        conn = await self._connect()
        try:
            databases = await conn.fetch(
                "SELECT d.datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE r.rolname = $1",
                role,
                timeout=self.timeout,
            )
            for row in databases:
                await conn.execute(f"DROP DATABASE IF EXISTS {_ident(row['datname'])} WITH (FORCE)")
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role, timeout=self.timeout)
            if exists:
                await conn.execute(f"DROP ROLE IF EXISTS {_ident(role)}")
            return bool(exists)
        except _ERRORS as exc:
            raise DependencyUnavailable(f"WAHA sessions database: {type(exc).__name__}") from None
        finally:
            await conn.close()
