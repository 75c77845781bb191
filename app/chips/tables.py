from __future__ import annotations

from piccolo.columns import UUID, BigSerial, Boolean, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.defaults.uuid import UUID4
from piccolo.table import Table

from app.proxies.tables import Proxy
from app.users.tables import User


class Chip(Table, tablename="chips"):
    id = UUID(primary_key=True, default=UUID4())
    user_id = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    alias = Varchar(length=64)
    status = Varchar(length=20, default="provisioning")
    session_name = Varchar(length=54, unique=True)
    phone_number = Varchar(length=32, null=True, default=None)
    proxy_id = ForeignKey(references=Proxy, on_delete=OnDelete.set_null, null=True)
    proxy_country = Varchar(length=2, null=True, default=None)
    proxy_dirty = Boolean(default=False)
    # written by the proxies feature: stuck on an unhealthy proxy, no healthy one of its country
    proxy_degraded = Boolean(default=False)
    # the tenant's intent: false after a logout, true after a restart (a STOPPED from WAHA alone,
    # e.g. its instance shutting down, does not change it)
    desired_running = Boolean(default=True)
    error = Text(null=True, default=None)
    # envelope timestamp of the last applied WAHA status event: older events never move the chip back
    last_status_event_at = Timestamptz(null=True, default=None)
    last_activity_at = Timestamptz(null=True, default=None)
    # liveness (app.liveness): any webhook apply touches last_seen_at; health is WHAGO's verdict
    # (ok / degraded / unknown), never a status; the rest is the probe job's bookkeeping
    last_seen_at = Timestamptz(null=True, default=None)
    health = Varchar(length=16, default="unknown")
    health_checked_at = Timestamptz(null=True, default=None)
    probe_failures = Integer(default=0)
    next_probe_at = Timestamptz(null=True, default=None)
    heal_count = Integer(default=0)
    heal_window_at = Timestamptz(null=True, default=None)
    # outbox marker: NULL while the provisioning job still has to be enqueued (Redis was down)
    provision_enqueued_at = Timestamptz(null=True, default=None)
    status_changed_at = Timestamptz(default=TimestamptzNow())
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class ChipEvent(Table, tablename="chip_events"):
    id = BigSerial(primary_key=True)
    chip_id = ForeignKey(references=Chip, on_delete=OnDelete.cascade)
    at = Timestamptz(default=TimestamptzNow())
    from_status = Varchar(length=20, null=True, default=None)
    to_status = Varchar(length=20)
    source = Varchar(length=16)
    detail = Text(null=True, default=None)
