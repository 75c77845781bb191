"""The WAHA emulator and a webhook receiver as the WAHA adapter tests use them (tests/waha)."""

from __future__ import annotations

import threading
from typing import Any

from app.waha.emulator import EmulatorApp
from app.waha.emulator.asgi import read_body
from tests.support.asgi_server import ServedApp
from tests.support.waiting import eventually

API_KEY = "emulator-test-api-key"
HMAC_KEY = "webhook-test-hmac-key"
# tiny timings so that lifecycles run in milliseconds
FAST = {
    "boot_delay_seconds": 0.05,
    "qr_first_seconds": 0.4,
    "qr_next_seconds": 0.15,
    "qr_max": 3,
    "webhook_timeout_seconds": 2.0,
    "worker_id": "test-worker",
    "ack_delay_seconds": 0,  # acks are driven by hand (control endpoint) unless a test asks for them
    "status_wait_seconds": 0.2,  # WAHA waits 5 s for the expected status before its 422
    "zombie_hang_seconds": 0.5,  # a zombie's check-exists (WAHA: until its own timeout)
}


class Emu:
    """A served emulator: ``.url``, ``.app``, ``.state`` (the Emulator)."""

    def __init__(self, served: ServedApp, app: EmulatorApp) -> None:
        self.served, self.app, self.url = served, app, served.url
        self.state = app.state.emulator

    def status(self, name: str) -> str | None:
        session = self.state.sessions.get(name)
        return session.status if session else None

    async def wait_status(self, name: str, status: str, timeout: float = 5.0) -> None:
        await eventually(lambda: self.status(name) == status, timeout, f"{name} to be {status}", interval=0.01)

    def events(self, name: str, event: str = "session.status") -> list[dict[str, Any]]:
        return [e for e in list(self.state.events) if e["session"] == name and e["event"] == event]


class Receiver:
    """A webhook receiver: records every request (headers + raw body); the first ``fail_first``
    requests get ``fail_status`` (with ``Retry-After: retry_after`` if given)."""

    def __init__(self, fail_first: int = 0, fail_status: int = 500, retry_after: str | None = None) -> None:
        self.fail_first, self.fail_status, self.retry_after = fail_first, fail_status, retry_after
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
        headers = [(b"content-type", b"application/json")]
        if status != 200 and self.retry_after is not None:
            headers.append((b"retry-after", self.retry_after.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"status":"ok"}'})

    def accepted(self) -> list[tuple[dict[str, str], bytes]]:
        with self._lock:
            return [(h, b) for h, b, status in self.requests if status == 200]
