"""The Piccolo app: every feature's tables, and the top-level ``piccolo_migrations`` folder."""

from __future__ import annotations

from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.chips.tables import Chip, ChipEvent
from app.instances.tables import Instance
from app.messages.tables import Message
from app.proxies.tables import Proxy
from app.users.tables import User
from app.webhooks.tables import WebhookEvent

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "piccolo_migrations"

APP_CONFIG = AppConfig(
    app_name="whago",
    migrations_folder_path=str(MIGRATIONS_DIR),
    table_classes=[User, Proxy, Chip, ChipEvent, WebhookEvent, Instance, Message],
    migration_dependencies=[],
    commands=[],
)
