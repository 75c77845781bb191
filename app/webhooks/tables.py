from __future__ import annotations

from piccolo.columns import Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class WebhookEvent(Table, tablename="webhook_events"):
    """Processed WAHA envelope ids: the unique key that makes redelivery a no-op across restarts."""

    event_id = Varchar(length=64, primary_key=True)
    event = Varchar(length=64)
    session_name = Varchar(length=64)
    outcome = Text()
    received_at = Timestamptz(default=TimestamptzNow())
