"""GET /api/v1/events: server-sent chip events over real HTTP, fed by webhooks through Redis
pub/sub, isolated per tenant, authenticated with short-lived stream tokens only."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import httpx
import jwt
import pytest

from tests.support.api import new_chip, register
from tests.support.errors import assert_error
from tests.support.sse import EVENTS, open_stream, stream_token
from tests.support.waiting import eventually
from tests.support.webhooks import deliver, deliver_ok, now_ms, status_event

pytestmark = pytest.mark.anyio


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_chip_status_and_qr_events_follow_webhooks(client):
    user = await register(client)
    chip = await new_chip(client, user)
    t0 = now_ms()
    async with open_stream(client, user) as sse:
        await deliver_ok(client, status_event(user, chip, "STARTING", at=t0 + 1))
        event, data = await sse.next()
        assert event == "chip.status"
        assert set(data) == {"chip_id", "status", "previous", "at"}
        assert data["chip_id"] == chip["id"]
        assert data["status"] == "starting"
        assert data["previous"] == "provisioning"
        assert parse_time(data["at"]) == datetime.fromtimestamp((t0 + 1) / 1000, UTC)

        await deliver_ok(client, status_event(user, chip, "SCAN_QR_CODE", at=t0 + 2))
        assert await sse.next() == (
            "chip.status",
            {"chip_id": chip["id"], "status": "waiting_qr", "previous": "starting", "at": at_text(t0 + 2)},
        )
        event, qr = await sse.next()
        assert event == "chip.qr"
        assert set(qr) == {"chip_id", "at"}
        assert qr["chip_id"] == chip["id"]

        # a QR rotation re-sends SCAN_QR_CODE: only a fresh chip.qr, no status change
        await deliver_ok(client, status_event(user, chip, "SCAN_QR_CODE", at=t0 + 3))
        event, qr = await sse.next()
        assert event == "chip.qr"
        assert parse_time(qr["at"]) == datetime.fromtimestamp((t0 + 3) / 1000, UTC)

        # a duplicate and a stale event publish nothing; the next real change does
        duplicate = status_event(user, chip, "WORKING", at=t0 + 10, phone="5511912345678")
        await deliver_ok(client, duplicate)
        event, data = await sse.next()
        assert (event, data["status"], data["previous"]) == ("chip.status", "connected", "waiting_qr")
        await deliver_ok(client, duplicate, expect="duplicate")
        await deliver_ok(client, status_event(user, chip, "FAILED", at=t0 + 5))  # stale
        await deliver_ok(client, status_event(user, chip, "STOPPED", at=t0 + 11))
        event, data = await sse.next()
        assert (event, data["status"], data["previous"]) == ("chip.status", "disconnected", "connected")
        assert sse.pending() == 0

    # comments are comment-only frames: nothing an EventSource would dispatch as a message
    connected = next(f for f in sse.frames if "connected" in f["comment"])
    assert connected["data"] is None
    assert connected["event"] is None


def at_text(ms: int) -> str:
    """The ``at`` the API publishes for an envelope timestamp: RFC 3339 UTC, like every REST time."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


async def test_other_tenant_stream_gets_nothing(client):
    alice, bob = await register(client), await register(client)
    a_chip, b_chip = await new_chip(client, alice), await new_chip(client, bob)
    async with open_stream(client, alice) as alice_sse, open_stream(client, bob) as bob_sse:
        await deliver_ok(client, status_event(alice, a_chip, "SCAN_QR_CODE"))
        assert (await alice_sse.next())[1]["chip_id"] == a_chip["id"]
        assert (await alice_sse.next())[0] == "chip.qr"
        # Bob's chip changes after Alice's: Bob's first event must be his own (pub/sub keeps order)
        await deliver_ok(client, status_event(bob, b_chip, "STARTING"))
        event, data = await bob_sse.next()
        assert (event, data["chip_id"], data["status"]) == ("chip.status", b_chip["id"], "starting")
        assert bob_sse.pending() == 0
        assert alice_sse.pending() == 0
        # a webhook lying about the tenant publishes nowhere
        lie = status_event(bob, a_chip, "WORKING")
        await deliver_ok(client, lie, expect="ignored")
        await deliver_ok(client, status_event(bob, b_chip, "SCAN_QR_CODE"))
        assert (await bob_sse.next())[1]["status"] == "waiting_qr"
        await deliver_ok(client, status_event(alice, a_chip, "STOPPED"))
        event, data = await alice_sse.next()
        assert (data["chip_id"], data["status"], data["previous"]) == (a_chip["id"], "disconnected", "waiting_qr")


async def test_every_stream_of_a_user_gets_the_event(client):
    user = await register(client)
    chip = await new_chip(client, user)
    async with open_stream(client, user) as one, open_stream(client, user) as two:
        await deliver_ok(client, status_event(user, chip, "STARTING"))
        assert (await one.next())[1]["status"] == "starting"
        assert (await two.next())[1]["status"] == "starting"


async def test_stream_rejects_anything_but_a_valid_stream_token(client, settings):
    user = await register(client)
    user_id = user["user"]["id"]
    now = int(time.time())

    def forge(key: str, **claims) -> str:
        payload = {
            "iss": "whago",
            "aud": "whago-event-stream",
            "sub": user_id,
            "typ": "stream",
            "ver": 0,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + 60,
            **claims,
        }
        return jwt.encode(payload, key, algorithm="HS256")

    good = forge(settings.secret_key)
    tampered = good[:-4] + ("BBBB" if good.endswith("AAAA") else "AAAA")  # same claims, broken signature
    bad_tokens = [
        user["access_token"],  # an access token is not a stream token
        "garbage",
        "a.b.c",
        forge("some-other-key-" + "y" * 32),
        forge(settings.secret_key, exp=now - 5, iat=now - 65),  # expired
        forge(settings.secret_key, typ="access"),
        forge(settings.secret_key, sub="not-a-uuid"),
        forge(settings.secret_key, aud="whago-api"),  # wrong audience
        forge(settings.secret_key, iss="someone-else"),
        forge(settings.secret_key, ver=1),  # a version the user never had (revoked)
        forge(settings.secret_key, jti="not-a-uuid"),
        jwt.encode({"sub": user_id, "typ": "stream", "iat": now}, settings.secret_key, algorithm="HS256"),  # no exp
        tampered,
    ]
    for token in bad_tokens:
        response = await client.get(EVENTS, params={"token": token})
        assert_error(response, 401, "not_authenticated")
        assert "text/event-stream" not in response.headers.get("content-type", "")
    assert_error(await client.get(EVENTS), 401, "not_authenticated")
    assert_error(await client.get(EVENTS, params={"token": ""}), 401, "not_authenticated")
    # a bearer header is not how the stream authenticates
    assert_error(await client.get(EVENTS, headers=user["headers"]), 401, "not_authenticated")
    # and a stream token is no access token
    stream = await stream_token(client, user)
    assert_error(
        await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {stream}"}), 401, "not_authenticated"
    )
    assert_error(await client.post("/api/v1/auth/stream-token"), 401, "not_authenticated")
    # the forged-but-valid control: the same recipe with the right key works
    async with client.stream("GET", EVENTS, params={"token": good}) as response:
        assert response.status_code == 200


async def test_event_published_by_another_api_process_reaches_the_stream(client, settings, api_server):
    from app.factory import create_app
    from tests.support.asgi_server import serve

    user = await register(client)
    chip = await new_chip(client, user)
    with serve(create_app(settings)) as second:
        assert second.url != api_server.url
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as waha_side, open_stream(client, user) as sse:
            await deliver_ok(waha_side, status_event(user, chip, "STARTING"))
            event, data = await sse.next()
            assert (event, data["chip_id"], data["status"]) == ("chip.status", chip["id"], "starting")
            # and the other way round: a browser on the second process, a webhook on the first
            async with open_stream(waha_side, user) as sse2:
                await deliver_ok(client, status_event(user, chip, "SCAN_QR_CODE"))
                assert (await sse2.next())[1]["status"] == "waiting_qr"
                assert (await sse2.next())[0] == "chip.qr"
            assert (await sse.next())[1]["status"] == "waiting_qr"


async def test_closed_stream_unsubscribes(client, api_server):
    from app.events.bus import user_channel

    user = await register(client)
    chip = await new_chip(client, user)
    hub = api_server.app.state.container.events
    channel = user_channel(user["user"]["id"])
    async with open_stream(client, user) as sse:
        assert len(hub._listeners.get(channel, ())) == 1
        await deliver_ok(client, status_event(user, chip, "STARTING"))
        await sse.next()
    await eventually(lambda: channel not in hub._listeners, what="the closed stream's listener to be removed")
    # later webhooks still work with no listener at all
    response = await deliver(client, status_event(user, chip, "SCAN_QR_CODE"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
