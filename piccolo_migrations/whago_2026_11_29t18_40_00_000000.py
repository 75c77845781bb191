"""Audit log: who changed what (admin changes and security events), for operators.

Feature: ops (issue 15). ``before``/``after`` hold non-secret snapshots; ``actor_email`` is
copied at write time so an entry keeps naming its actor after the account is gone.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-29T18:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit log"

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS audit_log (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        -- the order of writing: the cursor and "newest first" follow it (ids are random UUIDs)
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        at timestamptz NOT NULL DEFAULT now(),
        actor_id uuid,
        actor_email varchar(254),
        action varchar(64) NOT NULL,
        target_type varchar(32) NOT NULL,
        target_id varchar(254),
        before jsonb,
        after jsonb,
        request_id varchar(128)
    )
    """,
    # newest first (seq DESC) under each filter
    "CREATE INDEX IF NOT EXISTS audit_log_actor_idx ON audit_log (actor_id, seq DESC)",
    "CREATE INDEX IF NOT EXISTS audit_log_action_idx ON audit_log (action, seq DESC)",
    "CREATE INDEX IF NOT EXISTS audit_log_target_idx ON audit_log (target_id, seq DESC)",
    "CREATE INDEX IF NOT EXISTS audit_log_at_idx ON audit_log (at)",
]

BACKWARDS = ["DROP TABLE IF EXISTS audit_log"]


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
