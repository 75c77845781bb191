from __future__ import annotations

from piccolo.columns import UUID, Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class Instance(Table, tablename="instances"):
    """The platform's record of a tenant's WAHA instance, as last observed."""

    user_id = UUID(primary_key=True)  # references users(id) ON DELETE CASCADE (see migration)
    job_id = Varchar(length=128)
    status = Varchar(length=16, default="pending")
    base_url = Text(null=True, default=None)
    sessions = Integer(default=0)
    last_error = Text(null=True, default=None)
    last_seen_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
