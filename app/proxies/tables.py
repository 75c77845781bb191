from __future__ import annotations

from piccolo.columns import UUID, Boolean, Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.defaults.uuid import UUID4
from piccolo.table import Table


class Proxy(Table, tablename="proxies"):
    id = UUID(primary_key=True, default=UUID4())
    scheme = Varchar(length=8)
    host = Varchar(length=253)
    port = Integer()
    username = Varchar(length=128, null=True, default=None)
    password_encrypted = Text(null=True, default=None)  # Fernet token; never leaves the service layer
    country = Varchar(length=2, null=True, default=None)
    max_chips = Integer(default=10)
    enabled = Boolean(default=True)
    healthy = Boolean(default=True)
    consecutive_failures = Integer(default=0)
    consecutive_successes = Integer(default=0)
    last_checked_at = Timestamptz(null=True, default=None)
    last_error = Text(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
