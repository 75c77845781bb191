"""Fixtures for the WAHA adapter tests: the emulator and a webhook receiver, both served over real
HTTP on loopback (tests/support/asgi_server), with tiny timings so lifecycles run in milliseconds."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.waha import WahaClient
from app.waha.emulator import EmulatorConfig, create_emulator_app
from tests.support.asgi_server import serve
from tests.support.waha import API_KEY, FAST, Emu, Receiver


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(api_key=API_KEY, **FAST)


@pytest.fixture
def emulator(emulator_config: EmulatorConfig) -> Iterator[Emu]:
    app = create_emulator_app(emulator_config)
    with serve(app) as served:
        yield Emu(served, app)


@pytest.fixture
async def client(emulator: Emu):
    async with WahaClient(emulator.url, API_KEY, timeout=5.0) as waha:
        yield waha


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., tuple[Receiver, str]]]:
    stack: list[Any] = []

    def make(**kwargs: Any) -> tuple[Receiver, str]:
        receiver = Receiver(**kwargs)
        context = serve(receiver)
        served = context.__enter__()
        stack.append(context)
        return receiver, served.url + "/hook"

    yield make
    for context in reversed(stack):
        context.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def no_leftover_servers() -> Iterator[None]:
    """Every server a test starts must be stopped when it ends."""
    before = {t.ident for t in threading.enumerate()}
    yield
    leftover = [t.name for t in threading.enumerate() if t.ident not in before and t.name.startswith("asgi-")]
    assert not leftover, f"servers left running: {leftover}"
