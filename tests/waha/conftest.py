"""Fixtures for the WAHA adapter tests: the emulator and a webhook receiver, both served over real
HTTP on loopback (tests/support/asgi_server), with tiny timings so lifecycles run in milliseconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from app.waha import WahaClient
from app.waha.emulator import EmulatorApp, EmulatorConfig, create_emulator_app
from app.waha.emulator.asgi import read_body
from tests.support.asgi_server import ServedApp, serve

API_KEY = "emulator-test-api-key"
HMAC_KEY = "webhook-test-hmac-key"
FAST = {"boot_delay_seconds": 0.05, "qr_first_seconds": 0.4, "qr_next_seconds": 0.15, "qr_max": 3,
        "webhook_timeout_seconds": 2.0, "worker_id": "test-worker"}


async def eventually(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy (the emulator and receiver run in other threads)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await anyio.sleep(0.01)


class Emu:
    """A served emulator: ``.url``, ``.app``, ``.state`` (the Emulator)."""

    def __init__(self, served: ServedApp, app: EmulatorApp) -> None:
        self.served, self.app, self.url = served, app, served.url
        self.state = app.state.emulator

    def status(self, name: str) -> str | None:
        session = self.state.sessions.get(name)
        return session.status if session else None

    async def wait_status(self, name: str, status: str, timeout: float = 5.0) -> None:
        await eventually(lambda: self.status(name) == status, timeout, f"{name} to be {status}")

    def events(self, name: str, event: str = "session.status") -> list[dict[str, Any]]:
        return [e for e in list(self.state.events) if e["session"] == name and e["event"] == event]


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


class Receiver:
    """A webhook receiver: records every request (headers + raw body); the first ``fail_first``
    requests get ``fail_status``."""

    def __init__(self, fail_first: int = 0, fail_status: int = 500) -> None:
        self.fail_first, self.fail_status = fail_first, fail_status
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = await read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        with self._lock:
            status = self.fail_status if len(self.requests) < self.fail_first else 200
            self.requests.append((headers, body, status))
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"status":"ok"}'})

    def accepted(self) -> list[tuple[dict[str, str], bytes]]:
        with self._lock:
            return [(h, b) for h, b, status in self.requests if status == 200]


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
