"""An open event stream's periodic upkeep: its authorization is re-checked every CHECK_SECONDS, but
its slot (among the user's bounded streams, a Redis sorted-set member with a 60 s expiry) is
refreshed only as often as the lease asks. Refreshing the slot on every check made 1,000 idle
streams cost 500 Redis transactions a second, the API process's largest cost under load
(tests/bench/bench_streams.py, issue 17)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import httpx
import pytest
from litestar import Litestar
from litestar.di import Provide

from app.events import controller as events_controller
from app.events.bus import EventHub
from app.events.controller import EventsController
from app.events.streams import StreamLease

pytestmark = pytest.mark.anyio


class FakeHub(EventHub):
    """Connected, never closing, never publishing: only the stream's own upkeep runs."""

    def __init__(self) -> None:  # no Redis
        self._closing = False
        self.connected = asyncio.Event()
        self.connected.set()

    @contextlib.asynccontextmanager
    async def listen(self, user_id):
        yield asyncio.Queue()


async def test_the_slot_is_refreshed_far_less_often_than_the_stream_is_checked(monkeypatch):
    monkeypatch.setattr(events_controller, "CHECK_SECONDS", 0.01)
    checks, refreshes = [], []
    checked_enough = asyncio.Event()

    async def still_valid() -> bool:
        checks.append(1)
        if len(checks) >= 20:
            checked_enough.set()
        return True

    async def refresh() -> None:
        refreshes.append(1)

    async def release() -> None:
        pass

    lease = StreamLease(
        user_id=uuid.uuid4(), still_valid=still_valid, refresh=refresh, release=release, refresh_seconds=20.0
    )
    hub = FakeHub()
    app = Litestar(
        route_handlers=[EventsController],
        dependencies={
            "stream_lease": Provide(lambda: lease, sync_to_thread=False),
            "event_hub": Provide(lambda: hub, sync_to_thread=False),
        },
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=10) as client:

        async def read() -> None:
            async with client.stream("GET", "/api/v1/events") as response:
                assert response.status_code == 200
                async for _ in response.aiter_bytes():
                    pass

        reader = asyncio.create_task(read())
        try:
            await asyncio.wait_for(checked_enough.wait(), 10)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    assert len(checks) >= 20
    assert not refreshes, f"{len(refreshes)} slot refreshes for {len(checks)} checks (within 20 s of acquiring it)"
