"""Piccolo configuration, selected through ``PICCOLO_CONF=app.piccolo_conf`` (set in app/__init__.py)."""

from __future__ import annotations

from piccolo.conf.apps import AppRegistry

from app.core.db import LoopLocalPostgresEngine
from app.settings import get_settings

_settings = get_settings()

DB = LoopLocalPostgresEngine(
    config={
        "dsn": _settings.database_url,
        # connect timeout: an unreachable database fails fast instead of hanging a request
        "timeout": _settings.database_timeout_seconds,
        "command_timeout": 30,
    }
)

APP_REGISTRY = AppRegistry(apps=["app.piccolo_app"])
