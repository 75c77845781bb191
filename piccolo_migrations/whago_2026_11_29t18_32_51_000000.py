"""messages: the outbound message log (status from WAHA's send answer and message.ack webhooks).

Hand-written SQL like the initial schema: the status set and the idempotency key's uniqueness per
chip are the database's to enforce (concurrent sends with one key insert one row).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-29T18:32:51:000000"
VERSION = "1.38.0"
DESCRIPTION = "messages"

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS messages (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        chip_id uuid NOT NULL REFERENCES chips (id) ON DELETE CASCADE,
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        recipient varchar(96) NOT NULL,
        kind varchar(8) NOT NULL CHECK (kind IN ('text', 'image', 'file')),
        body text,
        media_url text,
        media_mimetype varchar(128),
        media_filename varchar(255),
        -- the id we ask WAHA to use (pre-generated message id): acks match it even when our
        -- write of WAHA's answer failed after the send
        waha_ref varchar(64) NOT NULL,
        waha_message_id varchar(255),
        status varchar(12) NOT NULL DEFAULT 'pending' CHECK (status IN
            ('pending', 'sent', 'delivered', 'read', 'failed')),
        error text,
        idempotency_key varchar(255),
        request_hash varchar(64),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    ) WITH (fillfactor = 90)
    """,
    "CREATE INDEX IF NOT EXISTS messages_chip_created_idx ON messages (chip_id, created_at DESC, id DESC)",
    "CREATE UNIQUE INDEX IF NOT EXISTS messages_chip_idempotency_key ON messages (chip_id, idempotency_key)"
    " WHERE idempotency_key IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS messages_chip_ref_idx ON messages (chip_id, waha_ref)",
    "CREATE INDEX IF NOT EXISTS messages_chip_waha_id_idx ON messages (chip_id, waha_message_id)"
    " WHERE waha_message_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS messages_created_idx ON messages (created_at)",
]

BACKWARDS = ["DROP TABLE IF EXISTS messages"]


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
