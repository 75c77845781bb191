"""security pass: revocable tokens (per-user version, disabled accounts, revoked token ids) and
proxy health counters with a per-chip "proxy degraded" flag.

Hand-written SQL, like the initial schema.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-29T18:32:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "security pass"

STATEMENTS = [
    # Every token carries the version it was issued under; bumping it revokes all earlier tokens.
    "ALTER TABLE users ADD COLUMN IF NOT EXISTS token_version integer NOT NULL DEFAULT 0",
    "ALTER TABLE users ADD COLUMN IF NOT EXISTS disabled boolean NOT NULL DEFAULT false",
    # Single tokens revoked by logout, kept until they would have expired anyway.
    """
    CREATE TABLE IF NOT EXISTS revoked_tokens (
        jti uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        expires_at timestamptz NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS revoked_tokens_expires_idx ON revoked_tokens (expires_at)",
    # Hysteresis: unhealthy after N consecutive failed checks, healthy again after M successes.
    "ALTER TABLE proxies ADD COLUMN IF NOT EXISTS consecutive_failures integer NOT NULL DEFAULT 0",
    "ALTER TABLE proxies ADD COLUMN IF NOT EXISTS consecutive_successes integer NOT NULL DEFAULT 0",
    # Written by the proxies feature only: the chip stays on an unhealthy proxy because no healthy
    # one of its country exists (never a silent switch to no proxy). Not a chip status.
    "ALTER TABLE chips ADD COLUMN IF NOT EXISTS proxy_degraded boolean NOT NULL DEFAULT false",
]

BACKWARDS = [
    "ALTER TABLE chips DROP COLUMN IF EXISTS proxy_degraded",
    "ALTER TABLE proxies DROP COLUMN IF EXISTS consecutive_successes",
    "ALTER TABLE proxies DROP COLUMN IF EXISTS consecutive_failures",
    "DROP TABLE IF EXISTS revoked_tokens",
    "ALTER TABLE users DROP COLUMN IF EXISTS disabled",
    "ALTER TABLE users DROP COLUMN IF EXISTS token_version",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="whago", description=DESCRIPTION)

    async def run() -> None:
        engine = engine_finder()
        for statement in STATEMENTS:
            await engine.run_ddl(statement)

    async def run_backwards() -> None:
        engine = engine_finder()
        for statement in BACKWARDS:
            await engine.run_ddl(statement)

    manager.add_raw(run)
    manager.add_raw_backwards(run_backwards)
    return manager
