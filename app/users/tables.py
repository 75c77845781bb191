from __future__ import annotations

from piccolo.columns import UUID, Boolean, Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.defaults.uuid import UUID4
from piccolo.table import Table


class User(Table, tablename="users"):
    id = UUID(primary_key=True, default=UUID4())
    email = Varchar(length=254, unique=True)  # stored lower-cased: emails are case-insensitive
    name = Varchar(length=128, default="")
    password_hash = Text()
    plan = Varchar(length=32, default="free")
    is_admin = Boolean(default=False)
    disabled = Boolean(default=False)
    # bumped to revoke every earlier token (password change, disabling, is_admin change)
    token_version = Integer(default=0)
    created_at = Timestamptz(default=TimestamptzNow())
    last_active_at = Timestamptz(default=TimestamptzNow())
