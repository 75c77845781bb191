"""Initial schema: users, proxies, chips, chip history, processed webhook events, instances.

Hand-written SQL (rather than Piccolo's auto migrations) so the database itself carries the
invariants the services rely on: case-insensitive unique emails, the chip status set, one
session name per chip.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-28T23:45:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "initial schema"

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS users (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        email varchar(254) NOT NULL UNIQUE,
        name varchar(128) NOT NULL DEFAULT '',
        password_hash text NOT NULL,
        plan varchar(32) NOT NULL DEFAULT 'free',
        is_admin boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_active_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE UNIQUE INDEX IF NOT EXISTS users_email_lower_key ON users (lower(email))",
    """
    CREATE TABLE IF NOT EXISTS proxies (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        scheme varchar(8) NOT NULL CHECK (scheme IN ('http', 'socks5')),
        host varchar(253) NOT NULL,
        port integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
        username varchar(128),
        password_encrypted text,
        country varchar(2),
        max_chips integer NOT NULL DEFAULT 10 CHECK (max_chips >= 0),
        enabled boolean NOT NULL DEFAULT true,
        healthy boolean NOT NULL DEFAULT true,
        last_checked_at timestamptz,
        last_error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS chips (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        alias varchar(64) NOT NULL,
        status varchar(20) NOT NULL DEFAULT 'provisioning' CHECK (status IN
            ('provisioning', 'starting', 'waiting_qr', 'connected', 'disconnected', 'failed', 'deleting')),
        session_name varchar(54) NOT NULL UNIQUE,
        phone_number varchar(32),
        proxy_id uuid REFERENCES proxies (id) ON DELETE SET NULL,
        proxy_country varchar(2),
        -- set when the proxy assignment changed and the WAHA session config must follow
        proxy_dirty boolean NOT NULL DEFAULT false,
        error text,
        last_status_event_at timestamptz,
        last_activity_at timestamptz,
        provision_enqueued_at timestamptz,
        status_changed_at timestamptz NOT NULL DEFAULT now(),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    ) WITH (fillfactor = 85)
    """,
    "CREATE INDEX IF NOT EXISTS chips_user_created_idx ON chips (user_id, created_at DESC, id)",
    "CREATE INDEX IF NOT EXISTS chips_proxy_idx ON chips (proxy_id) WHERE proxy_id IS NOT NULL",
    # No status in any index (nor in a partial index's predicate): status updates, the hot
    # write path of webhooks, stay HOT updates (fillfactor leaves room on the page for them).
    "CREATE INDEX IF NOT EXISTS chips_unenqueued_idx ON chips (created_at) WHERE provision_enqueued_at IS NULL",
    """
    CREATE TABLE IF NOT EXISTS chip_events (
        id bigserial PRIMARY KEY,
        chip_id uuid NOT NULL REFERENCES chips (id) ON DELETE CASCADE,
        at timestamptz NOT NULL DEFAULT now(),
        from_status varchar(20),
        to_status varchar(20) NOT NULL,
        source varchar(16) NOT NULL CHECK (source IN ('api', 'webhook', 'worker', 'reconciler', 'admin')),
        detail text
    )
    """,
    "CREATE INDEX IF NOT EXISTS chip_events_chip_at_idx ON chip_events (chip_id, at DESC, id DESC)",
    """
    CREATE TABLE IF NOT EXISTS webhook_events (
        event_id varchar(64) PRIMARY KEY,
        event varchar(64) NOT NULL,
        session_name varchar(64) NOT NULL,
        outcome text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS webhook_events_received_idx ON webhook_events (received_at)",
    """
    CREATE TABLE IF NOT EXISTS instances (
        user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
        job_id varchar(128) NOT NULL,
        status varchar(16) NOT NULL DEFAULT 'pending',
        base_url text,
        sessions integer NOT NULL DEFAULT 0,
        last_error text,
        last_seen_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
]

BACKWARDS = [
    "DROP TABLE IF EXISTS instances",
    "DROP TABLE IF EXISTS webhook_events",
    "DROP TABLE IF EXISTS chip_events",
    "DROP TABLE IF EXISTS chips",
    "DROP TABLE IF EXISTS proxies",
    "DROP TABLE IF EXISTS users",
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
