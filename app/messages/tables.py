from __future__ import annotations

from piccolo.columns import UUID, ForeignKey, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.defaults.uuid import UUID4
from piccolo.table import Table

from app.chips.tables import Chip
from app.users.tables import User


class Message(Table, tablename="messages"):
    """An outbound message and its WhatsApp delivery status (schema: the "messages" migration)."""

    id = UUID(primary_key=True, default=UUID4())
    chip_id = ForeignKey(references=Chip, on_delete=OnDelete.cascade)
    user_id = ForeignKey(references=User, on_delete=OnDelete.cascade)
    recipient = Varchar(length=96)
    kind = Varchar(length=8)
    body = Text(null=True, default=None)
    media_url = Text(null=True, default=None)
    media_mimetype = Varchar(length=128, null=True, default=None)
    media_filename = Varchar(length=255, null=True, default=None)
    waha_ref = Varchar(length=64)
    waha_message_id = Varchar(length=255, null=True, default=None)
    status = Varchar(length=12, default="pending")
    error = Text(null=True, default=None)
    idempotency_key = Varchar(length=255, null=True, default=None)
    request_hash = Varchar(length=64, null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
