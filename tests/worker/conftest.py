"""Fixtures for the worker tests; the platform itself is tests/support/platform.py."""

from __future__ import annotations

import pytest

from app.waha.emulator import create_emulator_app
from tests.support.asgi_server import ServedApp
from tests.support.platform import emulator_config


@pytest.fixture()
def static_emulator(clean_state, settings):
    """One WAHA emulator for every tenant (the static scheduler)."""
    app = create_emulator_app(emulator_config(settings))
    served = ServedApp(app).start()
    yield served, app.state.emulator
    served.stop()
