"""faithful WAHA: the chip's intended running state (``chips.desired_running``).

WAHA stops every session on a graceful shutdown (a STOPPED webhook each), so a ``disconnected``
chip may be one the tenant logged out or one whose instance went away. The chip actions write
the intent (logout: false; restart: true); provisioning and the reconciler start the sessions of
chips that should run. Existing disconnected chips keep the old rule (not restarted).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-29T18:41:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "faithful WAHA: chips.desired_running"

STATEMENTS = [
    "ALTER TABLE chips ADD COLUMN IF NOT EXISTS desired_running boolean NOT NULL DEFAULT true",
    "UPDATE chips SET desired_running = false WHERE status = 'disconnected'",
]

BACKWARDS = ["ALTER TABLE chips DROP COLUMN IF EXISTS desired_running"]


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
