"""Database plumbing: the Piccolo engine, its pool, migrations, and what counts as "database down"."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from piccolo.engine import engine_finder
from piccolo.engine.postgres import PostgresEngine

from app.settings import Settings

logger = logging.getLogger("whago.db")

# Errors that mean "the database is unreachable or went away", as opposed to a bug in a query.
DB_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
)


class LoopLocalPostgresEngine(PostgresEngine):
    """A Piccolo Postgres engine whose connection pool belongs to the running event loop.

    asyncpg pools are bound to the loop that made them. A server process has one loop, but the
    dev process, the test suite and in-process workers may run several (uvicorn in a thread, a
    worker loop): each gets its own pool instead of touching another loop's connections.
    """

    @staticmethod
    def _loop_key() -> int | None:
        try:
            return id(asyncio.get_running_loop())
        except RuntimeError:
            return None

    @property
    def pool(self):
        return self.__dict__.setdefault("_pools", {}).get(self._loop_key())

    @pool.setter
    def pool(self, value) -> None:
        pools = self.__dict__.setdefault("_pools", {})
        if value is None:
            pools.pop(self._loop_key(), None)
        else:
            pools[self._loop_key()] = value


@functools.cache
def get_engine() -> PostgresEngine:
    # engine_finder() re-resolves the conf module on every call; the engine never changes.
    engine = engine_finder()
    if not isinstance(engine, PostgresEngine):
        raise RuntimeError("WHAGO runs on PostgreSQL: piccolo_conf must define a PostgresEngine")
    return engine


async def _keep_session_state(connection: asyncpg.Connection) -> None:
    """Skip asyncpg's per-release reset round trip (RESET ALL, UNLISTEN, unlock advisory locks).

    WHAGO never leaves session state on a pooled connection: no LISTEN, no session-level advisory
    locks, no SET outside a transaction; transactions always end before release. That round trip
    was a third of the chip listing's database time.
    """


async def start_pool(settings: Settings) -> None:
    # min_size=0: the pool opens connections on demand, so the API starts (and stays up) while the
    # database is down, and recovers by itself when it returns.
    engine = get_engine()
    if engine.pool is None:
        engine.pool = await asyncpg.create_pool(
            **engine.config,
            min_size=0,
            max_size=settings.database_pool_size,
            max_inactive_connection_lifetime=60,
            reset=_keep_session_state,
            # WHAGO's queries are short index lookups: a cached generic plan is as good as a
            # custom one and saves re-planning on every execution of a prepared statement.
            server_settings={"plan_cache_mode": "force_generic_plan"},
        )


async def close_pool() -> None:
    engine = get_engine()
    if engine.pool is not None:
        pool, engine.pool = engine.pool, None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), timeout=5)


async def ping(timeout: float) -> None:
    await asyncio.wait_for(get_engine().run_ddl("SELECT 1"), timeout=timeout)


async def ensure_database(url: str, timeout: float = 5.0) -> bool:
    """Create the target database if it does not exist (local dev and CI convenience).

    Returns True when it was created.
    """
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        return False
    try:
        conn = await asyncpg.connect(url, timeout=timeout)
    except asyncpg.exceptions.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    conn = await asyncpg.connect(admin_url, timeout=timeout)
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        with contextlib.suppress(asyncpg.exceptions.DuplicateDatabaseError):
            await conn.execute(f"CREATE DATABASE {quoted}")
    finally:
        await conn.close()
    logger.info("created database %s", name)
    return True


class MigrationError(RuntimeError):
    pass


MIGRATION_LOCK_KEY = 0x57484147_4F4D4947  # "WHAGOMIG": one key for every WHAGO process


async def migrate(settings: Settings, *, quiet: bool = True) -> str:
    """Apply every pending migration; safe to run again (applied ones are skipped)."""
    from piccolo.apps.migrations.commands.forwards import run_forwards

    await ensure_database(settings.database_url, settings.database_timeout_seconds)
    # Several processes may migrate at once (e.g. a prestart task in every API allocation): a
    # session-level advisory lock makes them take turns; the later ones find nothing to apply.
    lock = await asyncpg.connect(settings.database_url, timeout=settings.database_timeout_seconds)
    try:
        await lock.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        output = io.StringIO()
        with contextlib.redirect_stdout(output) if quiet else contextlib.nullcontext():
            result = await run_forwards("all")
    finally:
        await lock.close()  # closing the session releases the lock, also after an error
    if not result.success:
        raise MigrationError(f"migrations failed: {result.message}\n{output.getvalue()}")
    return result.message or "ok"


async def fetch(sql: str, *args: object) -> list[asyncpg.Record]:
    """Run a query on the current Piccolo transaction if there is one, else on the pool."""
    engine = get_engine()
    transaction = engine.current_transaction.get()
    if transaction is not None:
        return await transaction.connection.fetch(sql, *args)
    if engine.pool is not None:
        async with engine.pool.acquire() as connection:
            return await connection.fetch(sql, *args)
    connection = await engine.get_new_connection()
    try:
        return await connection.fetch(sql, *args)
    finally:
        await connection.close()


async def fetchrow(sql: str, *args: object) -> asyncpg.Record | None:
    rows = await fetch(sql, *args)
    return rows[0] if rows else None


class _Transaction:
    """Piccolo's transaction, made safe on failure.

    Piccolo's ``__aexit__`` releases the connection only when COMMIT/ROLLBACK succeeded (and its
    ``__aenter__`` keeps the connection when BEGIN fails): a failure there (lost connection,
    cancellation, a deferred constraint at COMMIT) leaked a pooled connection still inside its
    transaction, holding its row locks, and left the context pointing at it. Here such a
    connection is closed and handed back (the pool replaces it), never reused mid-transaction.
    """

    def __init__(self) -> None:
        self._inner = get_engine().transaction()

    async def __aenter__(self) -> Any:
        try:
            return await self._inner.__aenter__()
        except BaseException:
            await self._discard()
            raise

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # never suppresses the block's exception (Piccolo's answer only says whether there was one)
        try:
            await self._inner.__aexit__(exc_type, exc, tb)
        except BaseException:
            await self._discard()
            raise

    async def _discard(self) -> None:
        inner = self._inner
        if inner._parent is not None:
            return  # a nested block: the outermost one owns the connection
        context = getattr(inner, "context", None)
        if context is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                inner.engine.current_transaction.reset(context)
        connection = getattr(inner, "connection", None)
        if connection is None:
            return
        connection.terminate()
        pool = inner.engine.pool
        if pool is not None:
            with contextlib.suppress(Exception):
                await pool.release(connection)


def transaction() -> _Transaction:
    """A Piccolo transaction; fetch() and Piccolo queries inside it share its connection."""
    return _Transaction()
