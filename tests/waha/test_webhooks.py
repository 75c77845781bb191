"""Webhook delivery from the emulator to a real receiver: envelope, HMAC over raw bytes, headers,
event filtering, ordering, retries, suppression."""

from __future__ import annotations

import hashlib
import hmac
import json
import re

import anyio
import httpx
import msgspec
import pytest

from app.waha import WahaClient
from app.waha.sessions import build_session_config
from app.webhooks.schemas import Envelope, StatusPayload
from tests.support.waha import API_KEY, HMAC_KEY, Emu
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio

METADATA = {"user_id": "u-42", "chip_id": "c-42"}


async def create(client: WahaClient, name: str, url: str, *, hmac_key: str | None = HMAC_KEY, **kwargs) -> None:
    await client.create_session(
        name, start=True, metadata=METADATA, proxy=None, webhook_url=url, hmac_key=hmac_key, **kwargs
    )


def statuses(requests: list[tuple[dict[str, str], bytes]]) -> list[str]:
    return [
        json.loads(body)["payload"]["status"] for _, body in requests if json.loads(body)["event"] == "session.status"
    ]


async def test_envelope_hmac_and_headers(emulator: Emu, client: WahaClient, receiver_factory) -> None:
    receiver, url = receiver_factory()
    await create(client, "chip_hook", url)
    await eventually(lambda: "SCAN_QR_CODE" in statuses(receiver.accepted()), what="SCAN_QR_CODE webhook")
    async with httpx.AsyncClient(base_url=emulator.url, headers={"X-Api-Key": API_KEY}) as http:
        await http.post("/_emulator/sessions/chip_hook/scan", json={"phone": "5511912345678", "pushName": "Ana"})
        await eventually(lambda: "WORKING" in statuses(receiver.accepted()), what="WORKING webhook")
        await http.post("/_emulator/sessions/chip_hook/message", json={"from": "5521999990000", "text": "oi"})
    await eventually(lambda: any(b'"event":"message"' in body for _, body in receiver.accepted()), what="message")

    requests = receiver.accepted()
    for headers, body in requests:
        expected = hmac.new(HMAC_KEY.encode(), body, hashlib.sha512).hexdigest()
        assert headers["x-webhook-hmac"] == expected  # over the exact raw bytes
        assert headers["x-webhook-hmac-algorithm"] == "sha512"
        assert headers["content-type"] == "application/json"
        assert re.fullmatch(r"\d{13}", headers["x-webhook-timestamp"])
        assert headers["x-webhook-request-id"]
        envelope = json.loads(body)
        assert list(envelope) == [
            "id",
            "timestamp",
            "event",
            "session",
            "metadata",
            "me",
            "payload",
            "engine",
            "environment",
        ]
        assert re.fullmatch(r"evt_[0-9a-hjkmnp-tv-z]{26}", envelope["id"])
        assert envelope["session"] == "chip_hook"
        assert envelope["metadata"] == METADATA
        assert envelope["environment"]["worker"]["id"] == "test-worker"
    assert len({json.loads(body)["id"] for _, body in requests}) == len(requests)
    assert statuses(requests) == ["STARTING", "SCAN_QR_CODE", "WORKING"]  # emission order kept

    events = [json.loads(body) for _, body in requests]
    working = next(e for e in events if e["event"] == "session.status" and e["payload"]["status"] == "WORKING")
    assert working["me"]["id"] == "5511912345678@c.us"
    assert working["me"]["pushName"] == "Ana"
    assert [p["status"] for p in working["payload"]["statuses"]] == ["STARTING", "SCAN_QR_CODE", "WORKING"]
    starting = events[0]
    assert starting["me"] is None
    assert starting["payload"]["data"] is None
    message = next(e for e in events if e["event"] == "message")
    assert message["payload"]["from"] == "5521999990000@c.us"
    assert message["payload"]["body"] == "oi"
    assert message["me"]["id"] == "5511912345678@c.us"
    assert not any(e["event"] == "message.any" for e in events)  # not subscribed
    # the envelope decodes with the struct the webhook receiver will use
    for _, body in requests:
        decoded = msgspec.json.decode(body, type=Envelope)
        assert decoded.metadata == METADATA
        assert decoded.id
        assert decoded.timestamp
        if decoded.event == "session.status":
            assert msgspec.convert(decoded.payload, StatusPayload).status in ("STARTING", "SCAN_QR_CODE", "WORKING")
    assert msgspec.json.decode(requests[-1][1], type=Envelope).me is not None


async def test_no_hmac_header_without_key(emulator: Emu, client: WahaClient, receiver_factory) -> None:
    receiver, url = receiver_factory()
    await create(client, "chip_nokey", url, hmac_key=None)
    await eventually(lambda: receiver.accepted(), what="a webhook")
    headers, _ = receiver.accepted()[0]
    assert "x-webhook-hmac" not in headers
    assert "x-webhook-hmac-algorithm" not in headers


def tries_of(receiver, event_id: str) -> list[tuple[dict[str, str], bytes, int]]:
    return [r for r in receiver.requests if json.loads(r[1])["id"] == event_id]


async def test_retries_on_500_same_bytes_and_request_id(emulator: Emu, client: WahaClient, receiver_factory) -> None:
    receiver, url = receiver_factory(fail_first=2)
    await create(client, "chip_retry", url, retry_attempts=4, retry_delay_seconds=0.02)
    await eventually(
        lambda: {"STARTING", "SCAN_QR_CODE"} <= set(statuses(receiver.accepted())), what="delivery after retries"
    )
    starting = next(e for e in emulator.events("chip_retry") if e["payload"]["status"] == "STARTING")
    tries = tries_of(receiver, starting["id"])
    assert tries[0][2] == 500
    assert tries[-1][2] == 200
    assert len({body for _, body, _ in tries}) == 1  # the same event, byte for byte
    assert len({h["x-webhook-request-id"] for h, _, _ in tries}) == 1
    attempts = [d["attempt"] for d in list(emulator.state.deliveries) if d["event_id"] == starting["id"]]
    assert attempts == list(range(1, len(tries) + 1))


async def test_attempts_count_retries_and_a_failing_event_holds_back_nothing(
    emulator: Emu, client: WahaClient, receiver_factory
) -> None:
    receiver, url = receiver_factory(fail_first=1000, fail_status=503)
    config = build_session_config(
        metadata=METADATA,
        webhook_url=url,
        hmac_key=None,
        events=["session.status"],
        retry_attempts=3,
        retry_delay_seconds=0.05,
        retry_policy="constant",
    )
    async with httpx.AsyncClient(base_url=emulator.url, headers={"X-Api-Key": API_KEY}) as http:
        await http.post("/api/sessions", json={"name": "chip_giveup", "start": False, "config": config})
    await client.start_session("chip_giveup")  # STARTING, then SCAN_QR_CODE after the boot delay
    await emulator.wait_status("chip_giveup", "SCAN_QR_CODE")
    starting, qr = emulator.events("chip_giveup")[:2]
    # WAHA sends each event on its own: the QR event goes out while STARTING is still retrying
    await eventually(lambda: tries_of(receiver, qr["id"]), what="the next event, not held back")
    assert len(tries_of(receiver, starting["id"])) < 4
    # `attempts: 3` is three retries: four tries in all, then it gives up
    await eventually(lambda: len(tries_of(receiver, starting["id"])) == 4, what="1 + 3 tries")
    await anyio.sleep(0.2)
    assert len(tries_of(receiver, starting["id"])) == 4


async def test_retry_after_is_honoured(emulator: Emu, client: WahaClient, receiver_factory) -> None:
    receiver, url = receiver_factory(fail_first=1, fail_status=429, retry_after="1")
    await create(client, "chip_later", url, retry_attempts=2, retry_delay_seconds=0.01, retry_policy="constant")
    await eventually(lambda: receiver.requests, what="a first try")
    first_id = json.loads(receiver.requests[0][1])["id"]
    await eventually(lambda: len(tries_of(receiver, first_id)) == 2, what="the retried delivery", timeout=5)

    def recorded() -> list[float]:
        # the emulator records an attempt once its answer is in: after the receiver saw it
        return [d["at"] for d in list(emulator.state.deliveries) if d["event_id"] == first_id]

    times = await eventually(lambda: recorded() if len(recorded()) == 2 else None, what="both attempts recorded")
    assert times[1] - times[0] >= 0.9  # Retry-After: 1, not the configured 0.01 s


async def test_timestamp_header_is_the_events_time(emulator: Emu, client: WahaClient, receiver_factory) -> None:
    receiver, url = receiver_factory(fail_first=1)
    await create(client, "chip_ts", url, retry_attempts=2, retry_delay_seconds=0.05, retry_policy="constant")
    await eventually(lambda: len(receiver.accepted()) >= 2, what="deliveries")
    for headers, body, _ in receiver.requests:
        assert headers["x-webhook-timestamp"] == str(json.loads(body)["timestamp"])


async def test_delay_fault_reorders_events(emulator: Emu, client: WahaClient, receiver_factory) -> None:
    receiver, url = receiver_factory()
    async with httpx.AsyncClient(base_url=emulator.url, headers={"X-Api-Key": API_KEY}) as http:
        assert (await http.post("/_emulator/webhooks", json={"delay": [0.0, 0.3]})).json()["delay"] == [0.0, 0.3]
        assert (await http.post("/_emulator/webhooks", json={"delay": [1, 0]})).status_code == 400
        for index in range(8):
            await create(client, f"chip_order{index}", url)
    await eventually(lambda: len(receiver.accepted()) >= 16, what="every event", timeout=5)
    stamps = [json.loads(body)["timestamp"] for _, body in receiver.accepted()]
    assert stamps != sorted(stamps)  # some events overtook earlier ones


async def test_suppressed_delivery_drops_events(emulator: Emu, client: WahaClient, receiver_factory) -> None:
    receiver, url = receiver_factory()
    async with httpx.AsyncClient(base_url=emulator.url, headers={"X-Api-Key": API_KEY}) as http:
        assert (await http.post("/_emulator/webhooks", json={"deliver": False})).status_code == 200
        await create(client, "chip_quiet", url)
        await emulator.wait_status("chip_quiet", "SCAN_QR_CODE")
        assert len(emulator.events("chip_quiet")) == 2  # recorded, not delivered
        await http.post("/_emulator/webhooks", json={"deliver": True})
        await http.post("/_emulator/sessions/chip_quiet/scan")
    await eventually(lambda: receiver.accepted(), what="delivery after re-enabling")
    assert statuses(receiver.accepted()) == ["WORKING"]


async def test_deleting_a_session_ends_its_webhook_delivery(
    emulator: Emu, client: WahaClient, receiver_factory
) -> None:
    # A receiver that never accepts keeps the session's deliveries retrying: deleting the session
    # must end those tasks, not leave them behind for the life of the process.
    receiver, url = receiver_factory(fail_first=1_000_000)
    await create(client, "chip_gone", url, retry_attempts=1000, retry_delay_seconds=0.02, retry_policy="constant")
    await eventually(lambda: len(receiver.requests) >= 3, what="retried deliveries")
    state = emulator.state
    tasks = set(state._workers["chip_gone"])

    await client.delete_session("chip_gone")

    assert "chip_gone" not in state._workers
    await eventually(lambda: all(task.done() for task in tasks), what="the delivery tasks to end")
    await anyio.sleep(0.1)  # a request already on the wire may still land
    seen = len(receiver.requests)
    await anyio.sleep(0.3)  # ~15 retries would land here if delivery went on
    assert len(receiver.requests) == seen
