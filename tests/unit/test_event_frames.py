"""Live events are framed once per process: the hub hands every stream of the tenant the same,
ready SSE frame, byte for byte what each stream used to build itself (decode the published event,
re-encode its data, Litestar's ServerSentEventMessage). A tenant with N streams paid that N times
(tests/bench/bench_streams.py, issue 17)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import msgspec
import pytest
import redis.asyncio as aioredis
from litestar.response import ServerSentEventMessage

from app.events.bus import EventHub, format_time, sse_frame

pytestmark = pytest.mark.anyio

PAYLOADS = [
    ("chip.status", {"chip_id": str(uuid.uuid4()), "status": "connected", "previous": "waiting_qr", "at": "x"}),
    ("chip.qr", {"chip_id": str(uuid.uuid4()), "at": format_time(datetime.now(UTC))}),
    ("chip.health", {"chip_id": "c", "health": None, "n": 3, "ratio": 0.1, "ok": True, "list": [1, "two", {}]}),
    ("message.status", {"text": 'quote " backslash \\ newline \n tab \t nul \x00 ünïcode 😀 \u2028', "e": ""}),
]


def old_frame(message: bytes) -> bytes:
    """What a stream wrote for a published event before (app/events/controller.py)."""
    decoded = msgspec.json.decode(message)
    return ServerSentEventMessage(event=decoded["event"], data=msgspec.json.encode(decoded["data"]).decode()).encode()


@pytest.mark.parametrize(("event", "data"), PAYLOADS)
def test_the_frame_is_byte_identical_to_the_streams_own(event, data):
    message = msgspec.json.encode({"event": event, "data": data})  # as EventHub.publish writes it
    assert sse_frame(message) == old_frame(message)


def test_json_with_line_breaks_still_makes_one_data_line():
    message = b'{"event": "chip.qr",\n "data": {\n  "chip_id": "c"\n }\n}'
    assert sse_frame(message) == old_frame(message) == b'event: chip.qr\r\ndata: {"chip_id":"c"}\r\n\r\n'


async def test_every_stream_of_a_tenant_gets_the_same_frame(settings):
    redis = aioredis.Redis.from_url(settings.redis_url)
    hub = EventHub(redis)
    await hub.start()
    try:
        await asyncio.wait_for(hub.connected.wait(), 5)
        user = uuid.uuid4()
        async with hub.listen(user) as first, hub.listen(user) as second:
            data = {"chip_id": str(uuid.uuid4()), "status": "connected", "previous": "waiting_qr", "at": "t"}
            await hub.publish(user, "chip.status", data)
            a = await asyncio.wait_for(first.get(), 5)
            b = await asyncio.wait_for(second.get(), 5)
        assert a is b  # framed once for both
        assert a == old_frame(msgspec.json.encode({"event": "chip.status", "data": data}))
    finally:
        await hub.stop()
        await redis.aclose()
