"""liveness: a chip's last-seen time (every webhook apply), its health verdict and probe/heal state.

``last_seen_at`` is written by the webhook receiver's existing statements (no extra statement);
``health``/``health_checked_at`` are the API's verdict; ``probe_failures``, ``next_probe_at``,
``heal_count`` and ``heal_window_at`` belong to the liveness job (app.liveness). The partial index
serves the probe claim, which only ever looks at connected chips.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-29T19:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "liveness: chips.last_seen_at, health, probe and heal state"

STATEMENTS = [
    "ALTER TABLE chips ADD COLUMN IF NOT EXISTS last_seen_at timestamptz NULL",
    "ALTER TABLE chips ADD COLUMN IF NOT EXISTS health varchar(16) NOT NULL DEFAULT 'unknown'",
    "ALTER TABLE chips ADD COLUMN IF NOT EXISTS health_checked_at timestamptz NULL",
    "ALTER TABLE chips ADD COLUMN IF NOT EXISTS probe_failures integer NOT NULL DEFAULT 0",
    "ALTER TABLE chips ADD COLUMN IF NOT EXISTS next_probe_at timestamptz NULL",
    "ALTER TABLE chips ADD COLUMN IF NOT EXISTS heal_count integer NOT NULL DEFAULT 0",
    "ALTER TABLE chips ADD COLUMN IF NOT EXISTS heal_window_at timestamptz NULL",
    # history rows of liveness verdicts and heals (source 'liveness')
    "ALTER TABLE chip_events DROP CONSTRAINT IF EXISTS chip_events_source_check",
    "ALTER TABLE chip_events ADD CONSTRAINT chip_events_source_check"
    " CHECK (source IN ('api', 'webhook', 'worker', 'reconciler', 'admin', 'liveness'))",
    "CREATE INDEX IF NOT EXISTS chips_liveness_idx ON chips (next_probe_at) WHERE status = 'connected'",
]

BACKWARDS = [
    "DROP INDEX IF EXISTS chips_liveness_idx",
    "DELETE FROM chip_events WHERE source = 'liveness'",
    "ALTER TABLE chip_events DROP CONSTRAINT IF EXISTS chip_events_source_check",
    "ALTER TABLE chip_events ADD CONSTRAINT chip_events_source_check"
    " CHECK (source IN ('api', 'webhook', 'worker', 'reconciler', 'admin'))",
    *(
        f"ALTER TABLE chips DROP COLUMN IF EXISTS {column}"
        for column in (
            "last_seen_at",
            "health",
            "health_checked_at",
            "probe_failures",
            "next_probe_at",
            "heal_count",
            "heal_window_at",
        )
    ),
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
