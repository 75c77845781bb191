"""The message log over real HTTP: sending (text, media by URL), idempotent retries, WAHA faults,
delivery status from the emulator's message.ack webhooks, reading the log, retention.

The emulator sends no automatic acks here (``ack_delay_seconds=0``): tests drive each ack with the
control endpoint, in any order, any number of times.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from tests.support.api import get_chip, new_chip, register, set_plan
from tests.support.errors import assert_error
from tests.support.sse import open_stream
from tests.support.waiting import eventually
from tests.support.webhooks import HOOK, deliver, deliver_ok, envelope, metadata

pytestmark = pytest.mark.anyio

MESSAGES_PER_MINUTE = 12
FIELDS = {
    "id",
    "chip_id",
    "to",
    "kind",
    "text",
    "media",
    "status",
    "error",
    "waha_message_id",
    "created_at",
    "updated_at",
}


class Emulator:
    def __init__(self, served, app) -> None:
        self.url = served.url
        self.state = app.state.emulator

    def sent(self, chip: dict) -> list[dict]:
        session = self.state.sessions.get(chip["session_name"])
        return list(session.sent) if session else []


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    from app.waha.emulator import EmulatorConfig, create_emulator_app
    from tests.support.asgi_server import serve

    config = EmulatorConfig(
        api_key="test-waha-api-key",
        boot_delay_seconds=0.05,
        qr_first_seconds=120,
        qr_next_seconds=120,
        qr_max=2,
        webhook_timeout_seconds=5,
        ack_delay_seconds=0,
    )
    app = create_emulator_app(config)
    with serve(app) as served:
        yield Emulator(served, app)


@pytest.fixture(scope="module")
def waha_api(migrated_db, emulator) -> Iterator[Any]:
    from app.factory import create_app
    from app.settings import load_settings
    from tests.support.asgi_server import serve

    settings = load_settings(
        {**os.environ, "WHAGO_WAHA_URL": emulator.url, "WHAGO_MESSAGES_PER_MINUTE": str(MESSAGES_PER_MINUTE)}
    )
    with serve(create_app(settings)) as served:
        served.settings = settings
        yield served


@pytest.fixture()
async def api(waha_api, clean_state, emulator) -> AsyncIterator[httpx.AsyncClient]:
    emulator.state.fault = "none"
    emulator.state.deliver_webhooks = True
    async with httpx.AsyncClient(base_url=waha_api.url, timeout=30) as http:
        yield http


@pytest.fixture()
async def control(emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=emulator.url, timeout=10, headers={"X-Api-Key": "test-waha-api-key"}) as http:
        yield http


async def connected_chip(api, waha_api, control, user, alias="sales-1") -> dict:
    from app.waha import WahaClient, chip_metadata

    chip = await new_chip(api, user, alias)
    async with WahaClient(control.base_url.__str__(), waha_api.settings.waha_api_key, timeout=5) as waha:
        await waha.create_session(
            chip["session_name"],
            start=True,
            metadata=chip_metadata(user["user"]["id"], chip["id"]),
            proxy=None,
            webhook_url=waha_api.url + HOOK,
            hmac_key=waha_api.settings.webhook_hmac_key,
            retry_attempts=3,
            retry_delay_seconds=0.1,
        )
    await wait_chip(api, user, chip, "waiting_qr")
    scanned = await control.post(f"/_emulator/sessions/{chip['session_name']}/scan", json={"phone": "5511912345678"})
    assert scanned.status_code == 200, scanned.text
    return await wait_chip(api, user, chip, "connected")


async def wait_chip(api, user, chip, status: str) -> dict:
    async def check():
        got = await get_chip(api, user, chip)
        return got if got["status"] == status else None

    return await eventually(check, 5, f"chip to be {status}")


def send(api, user, chip, body: Any, key: str | None = None) -> Any:
    headers = {**user["headers"], **({"Idempotency-Key": key} if key else {})}
    return api.post(f"/api/v1/chips/{chip['id']}/messages", json=body, headers=headers)


async def message(api, user, chip, message_id: str) -> dict:
    response = await api.get(f"/api/v1/chips/{chip['id']}/messages/{message_id}", headers=user["headers"])
    assert response.status_code == 200, response.text
    return response.json()


async def ack(control, chip, waha_message_id: str, value: int) -> None:
    response = await control.post(
        f"/_emulator/sessions/{chip['session_name']}/messages/{waha_message_id}/ack", json={"ack": value}
    )
    assert response.status_code == 200, response.text


async def wait_message(api, user, chip, message_id: str, status: str) -> dict:
    async def check():
        got = await message(api, user, chip, message_id)
        return got if got["status"] == status else None

    return await eventually(check, 5, f"message to be {status}")


async def delivered_acks(emulator: Emulator, chip: dict) -> int:
    events = {e["id"] for e in list(emulator.state.events) if e["event"] == "message.ack"}
    return sum(1 for d in list(emulator.state.deliveries) if d["event_id"] in events and d.get("status") == 200)


# --- sending and delivery status ------------------------------------------------------------------


def _messages_counted(status: str) -> float:
    # the API runs in this process (tests/support/asgi_server), so its registry is this one
    return REGISTRY.get_sample_value("whago_messages_total", {"status": status}) or 0.0


async def test_text_is_recorded_sent_and_acks_move_it_to_read(api, waha_api, control, emulator, pg):
    user = await register(api)
    chip = await connected_chip(api, waha_api, control, user)
    counted = {s: _messages_counted(s) for s in ("sent", "delivered", "read")}
    async with open_stream(api, user) as sse:
        response = await send(api, user, chip, {"to": "+5521999990000", "text": "olá"})
        assert response.status_code == 202, response.text
        body = response.json()
        assert set(body) == FIELDS
        assert (body["chip_id"], body["to"], body["kind"], body["text"], body["media"]) == (
            chip["id"],
            "5521999990000",
            "text",
            "olá",
            None,
        )
        assert body["status"] == "sent"
        assert body["error"] is None
        [sent] = emulator.sent(chip)
        assert body["waha_message_id"] == sent["id"]
        assert (sent["to"], sent["body"]) == ("5521999990000@c.us", "olá")
        event, data = await sse.next()
        assert (event, data["message_id"], data["status"], data["chip_id"]) == (
            "message.status",
            body["id"],
            "sent",
            chip["id"],
        )
        # out of order and repeated: READ first, then DEVICE, SERVER and READ again
        for value in (2, 3, 2, 1, 3, 0):
            await ack(control, chip, sent["id"], value)
        # the webhook path's events carry the same fields as the send's (the console keys on them)
        for expected in ("delivered", "read"):
            event, data = await sse.next()
            assert (event, data["status"], data["message_id"], data["chip_id"]) == (
                "message.status",
                expected,
                body["id"],
                chip["id"],
            )
            assert data["at"].endswith("Z")
        await eventually(lambda: delivered_acks(emulator, chip), what="acks delivered")
        await eventually(lambda: _all_acks_in(emulator, 6), what="every ack delivered")
        got = await message(api, user, chip, body["id"])
        assert got["status"] == "read"
        assert got["updated_at"] >= body["updated_at"]
        # a late ERROR never moves a read message back
        await ack(control, chip, sent["id"], -1)
        await eventually(lambda: _all_acks_in(emulator, 7), what="the ERROR ack delivered")
        assert (await message(api, user, chip, body["id"]))["status"] == "read"
    # whago_messages_total counts each status change once (repeated and late acks change nothing)
    assert {s: _messages_counted(s) - n for s, n in counted.items()} == {"sent": 1, "delivered": 1, "read": 1}
    activity = await pg.fetchval("SELECT last_activity_at FROM chips WHERE id = $1", uuid.UUID(chip["id"]))
    assert activity is not None


async def _all_acks_in(emulator: Emulator, count: int) -> bool:
    acks = {e["id"] for e in list(emulator.state.events) if e["event"] == "message.ack"}
    ok = {d["event_id"] for d in list(emulator.state.deliveries) if d["event_id"] in acks and d.get("status") == 200}
    return len(ok) >= count


async def test_error_ack_fails_a_sent_message(api, waha_api, control, emulator):
    user = await register(api)
    chip = await connected_chip(api, waha_api, control, user)
    body = (await send(api, user, chip, {"to": "5521999990000", "text": "x"})).json()
    await ack(control, chip, body["waha_message_id"], -1)
    failed = await wait_message(api, user, chip, body["id"], "failed")
    assert failed["error"]
    # a later DEVICE ack proves it arrived after all
    await ack(control, chip, body["waha_message_id"], 2)
    await wait_message(api, user, chip, body["id"], "delivered")


async def test_image_and_file_by_url(api, waha_api, control, emulator):
    user = await register(api)
    chip = await connected_chip(api, waha_api, control, user)
    image = {"url": "https://cdn.example.com/cat.jpg?size=big", "mimetype": "image/jpeg"}
    response = await send(api, user, chip, {"to": "5521999990000@c.us", "image": image, "caption": "a cat"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["kind"], body["text"], body["status"]) == ("image", "a cat", "sent")
    assert body["media"] == {**image, "filename": None}
    doc = {"url": "https://cdn.example.com/report.pdf", "filename": "report.pdf"}
    response = await send(api, user, chip, {"to": "5521999990000", "file": doc})
    assert response.status_code == 202, response.text
    assert response.json()["media"] == {**doc, "mimetype": "application/pdf"}  # guessed from the name
    sent = emulator.sent(chip)
    assert [(m["hasMedia"], m["media"]["url"], m["body"]) for m in sent] == [
        (True, image["url"], "a cat"),
        (True, doc["url"], ""),
    ]
    assert sent[1]["media"]["filename"] == "report.pdf"
    await ack(control, chip, sent[0]["id"], 3)
    await wait_message(api, user, chip, body["id"], "read")


async def test_bad_input_is_400_and_records_nothing(api, waha_api, control, emulator, pg):
    user = await register(api)
    chip = await connected_chip(api, waha_api, control, user)
    url = "https://example.com/a.png"
    for bad in (
        {"to": "5521999990000", "text": ""},
        {"to": "5521999990000", "text": "x" * 4097},
        {"to": "abc", "text": "x"},
        {"to": "55 21 99999", "text": "x"},
        {"to": "", "text": "x"},
        {"to": 5521999990000, "text": "x"},
        {"to": "5521999990000"},
        {"text": "x"},
        {"to": "5521999990000", "text": "x", "html": True},
        {"to": "5521999990000", "text": "x", "caption": "y"},
        {"to": "5521999990000", "text": "x", "image": {"url": url}},
        {"to": "5521999990000", "image": {"url": url}, "file": {"url": url}},
        {"to": "5521999990000", "image": {"url": "http://example.com/a.png"}},
        {"to": "5521999990000", "image": {"url": "ftp://example.com/a.png"}},
        {"to": "5521999990000", "image": {"url": "https://"}},
        {"to": "5521999990000", "image": {"url": "https://user:pw@example.com/a.png"}},
        {"to": "5521999990000", "image": {"url": "https://example.com/a b.png"}},
        {"to": "5521999990000", "image": {"url": "https://example.com/" + "a" * 2100}},
        {"to": "5521999990000", "image": {"url": url, "mimetype": "not a type"}},
        {"to": "5521999990000", "file": {"url": url, "filename": "../x"}},
    ):
        assert_error(await send(api, user, chip, bad), 400, "validation_error")
    assert emulator.sent(chip) == []
    assert await pg.fetchval("SELECT count(*) FROM messages WHERE chip_id = $1", uuid.UUID(chip["id"])) == 0


async def test_not_connected_or_waha_down_leaves_no_row(api, waha_api, control, emulator, pg):
    user = await register(api)
    await set_plan(waha_api.settings.database_url, user["user"]["id"], "business")
    fresh = await new_chip(api, user, "fresh")
    assert_error(await send(api, user, fresh, {"to": "5521999990000", "text": "x"}), 409, "chip_not_connected")
    chip = await connected_chip(api, waha_api, control, user, "linked")
    for mode in ("error500", "refuse"):
        await control.post("/_emulator/fault", json={"mode": mode})
        assert_error(await send(api, user, chip, {"to": "5521999990000", "text": "x"}), 503, "dependency_unavailable")
    await control.post("/_emulator/fault", json={"mode": "none"})
    # WAHA says the session is not WORKING (it was unlinked and our webhook was missed)
    await control.post("/_emulator/webhooks", json={"deliver": False})
    await control.post(f"/_emulator/sessions/{chip['session_name']}/disconnect")
    assert_error(await send(api, user, chip, {"to": "5521999990000", "text": "x"}), 409, "chip_not_connected")
    assert await pg.fetchval("SELECT count(*) FROM messages") == 0


async def test_per_chip_limit(api, waha_api, control, emulator):
    user = await register(api)
    chip = await connected_chip(api, waha_api, control, user)
    for i in range(MESSAGES_PER_MINUTE):
        assert (await send(api, user, chip, {"to": "5521999990000", "text": f"m{i}"})).status_code == 202
    limited = await send(api, user, chip, {"to": "5521999990000", "text": "one too many"})
    assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert len(emulator.sent(chip)) == MESSAGES_PER_MINUTE


# --- idempotency ----------------------------------------------------------------------------------


async def test_idempotency_key_sends_once(api, waha_api, control, emulator, pg):
    user = await register(api)
    await set_plan(waha_api.settings.database_url, user["user"]["id"], "business")
    chip = await connected_chip(api, waha_api, control, user)
    body = {"to": "5521999990000", "text": "pay 10"}
    first = await send(api, user, chip, body, key="order-1")
    assert first.status_code == 202, first.text
    again = await send(api, user, chip, body, key="order-1")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert_error(await send(api, user, chip, {**body, "text": "pay 99"}, key="order-1"), 409, "idempotency_key_reused")
    assert len(emulator.sent(chip)) == 1

    # 10 concurrent sends with one key: one message, sent once
    results = await asyncio.gather(*(send(api, user, chip, body, key="burst") for _ in range(10)))
    assert sorted(r.status_code for r in results) == [200] * 9 + [202], [r.text for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    assert len(emulator.sent(chip)) == 2

    # the same key on another chip is another message
    other = await connected_chip(api, waha_api, control, user, "other")
    assert (await send(api, user, other, body, key="order-1")).status_code == 202
    # after 24 hours the key is free again
    await pg.execute(
        "UPDATE messages SET created_at = created_at - interval '25 hours' WHERE id = $1", uuid.UUID(first.json()["id"])
    )
    later = await send(api, user, chip, body, key="order-1")
    assert later.status_code == 202, later.text
    assert later.json()["id"] != first.json()["id"]
    assert len(emulator.sent(chip)) == 3


async def test_write_after_send_failure_still_202_and_first_ack_completes(api, waha_api, control, emulator, pg):
    user = await register(api)
    chip = await connected_chip(api, waha_api, control, user)
    # our database refuses the write that records WAHA's answer (after WAHA sent the message)
    await pg.execute(
        """
        CREATE OR REPLACE FUNCTION test_refuse_sent() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.body = 'after-send' AND NEW.status = 'sent' AND OLD.status = 'pending'
               AND NEW.waha_message_id IS NOT NULL AND OLD.waha_message_id IS NULL THEN
                IF (SELECT count(*) FROM webhook_events WHERE event = 'message.ack') = 0 THEN
                    RAISE EXCEPTION 'disk full';
                END IF;
            END IF;
            RETURN NEW;
        END $$
        """
    )
    await pg.execute(
        "CREATE TRIGGER test_refuse_sent BEFORE UPDATE ON messages FOR EACH ROW EXECUTE FUNCTION test_refuse_sent()"
    )
    try:
        response = await send(api, user, chip, {"to": "5521999990000", "text": "after-send"}, key="k")
        assert response.status_code == 202, response.text
        body = response.json()
        assert (body["status"], body["waha_message_id"]) == ("pending", None)
        [sent] = emulator.sent(chip)
        # a retry with the key does not send again
        assert (await send(api, user, chip, {"to": "5521999990000", "text": "after-send"}, key="k")).status_code == 200
        assert len(emulator.sent(chip)) == 1
        # the first ack finds it by the id WHAGO asked WAHA to use, and completes it
        await ack(control, chip, sent["id"], 1)
        done = await wait_message(api, user, chip, body["id"], "sent")
        assert done["waha_message_id"] == sent["id"]
    finally:
        await pg.execute("DROP TRIGGER IF EXISTS test_refuse_sent ON messages")
        await pg.execute("DROP FUNCTION IF EXISTS test_refuse_sent()")


async def test_reconciler_completes_a_pending_message_from_waha(api, waha_api, control, emulator, pg):
    from app.container import Container
    from app.worker import jobs

    user = await register(api)
    chip = await connected_chip(api, waha_api, control, user)
    await pg.execute(
        """
        CREATE OR REPLACE FUNCTION test_refuse_sent() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.status = 'sent' AND OLD.status = 'pending' THEN
                RAISE EXCEPTION 'disk full';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    await pg.execute(
        "CREATE TRIGGER test_refuse_sent BEFORE UPDATE ON messages FOR EACH ROW EXECUTE FUNCTION test_refuse_sent()"
    )
    try:
        body = (await send(api, user, chip, {"to": "5521999990000", "text": "lost answer"})).json()
        assert body["status"] == "pending"
    finally:
        await pg.execute("DROP TRIGGER IF EXISTS test_refuse_sent ON messages")
        await pg.execute("DROP FUNCTION IF EXISTS test_refuse_sent()")
    [sent] = emulator.sent(chip)
    # the ack never reaches WHAGO (missed webhook); WAHA knows the message was delivered
    await control.post("/_emulator/webhooks", json={"deliver": False})
    await ack(control, chip, sent["id"], 2)
    container = Container.build(waha_api.settings)
    try:
        # too recent: its acks may still come
        assert await jobs.reconcile_messages({"container": container}) == {"checked": 0, "completed": 0}
        await pg.execute("UPDATE messages SET created_at = created_at - interval '2 minutes'")
        assert await jobs.reconcile_messages({"container": container}) == {"checked": 1, "completed": 1}
        assert await jobs.reconcile_messages({"container": container}) == {"checked": 0, "completed": 0}
    finally:
        await container.aclose()
    got = await message(api, user, chip, body["id"])
    assert (got["status"], got["waha_message_id"]) == ("delivered", sent["id"])


# --- acks WHAGO did not cause ---------------------------------------------------------------------


def ack_event(user, chip, message_id: str, value: Any, event_id: str | None = None) -> dict:
    payload = {
        "id": message_id,
        "from": "5511912345678@c.us",
        "to": "5521999990000@c.us",
        "participant": None,
        "fromMe": True,
        "ack": value,
        "ackName": "READ",
    }
    body = envelope(chip["session_name"], event="message.ack", meta=metadata(user, chip), payload=payload)
    if event_id == "":
        del body["id"]
    return body


async def test_foreign_unknown_and_unmapped_acks(api, waha_api, control, emulator, pg):
    user = await register(api)
    chip = await connected_chip(api, waha_api, control, user)
    chip_uuid = uuid.UUID(chip["id"])
    await pg.execute("UPDATE chips SET last_activity_at = NULL WHERE id = $1", chip_uuid)
    # sent from the phone: unknown to WHAGO, counted as activity only
    await deliver_ok(api, ack_event(user, chip, "true_5521999990000@c.us_3EB0FFFF", 2), expect="ignored")
    assert await pg.fetchval("SELECT last_activity_at FROM chips WHERE id = $1", chip_uuid) is not None
    # an unmapped ack value: recorded nowhere
    before = await pg.fetchval("SELECT count(*) FROM webhook_events")
    for value in (7, 1.5):
        await deliver_ok(api, ack_event(user, chip, "true_x@c.us_3EB0AAAA", value), expect="ignored")
    assert await pg.fetchval("SELECT count(*) FROM webhook_events") == before
    # a bad payload is a 400
    broken = ack_event(user, chip, "x", 1)
    broken["payload"] = {"ack": 1}
    assert (await deliver(api, broken)).status_code == 400

    # without an envelope id, payload.id + ack dedup a redelivery (new timestamp, same tick)
    body = (await send(api, user, chip, {"to": "5521999990000", "text": "x"})).json()
    first = ack_event(user, chip, body["waha_message_id"], 2, event_id="")
    await deliver_ok(api, first)
    again = ack_event(user, chip, body["waha_message_id"], 2, event_id="")
    again["timestamp"] += 1000
    await deliver_ok(api, again, expect="duplicate")
    # with an envelope id, the same event twice is a duplicate
    third = ack_event(user, chip, body["waha_message_id"], 3)
    await deliver_ok(api, third)
    await deliver_ok(api, third, expect="duplicate")
    assert (await message(api, user, chip, body["id"]))["status"] == "read"


# --- reading the log ------------------------------------------------------------------------------


async def test_list_is_newest_first_with_a_cursor_and_tenant_scoped(api, waha_api, control, emulator):
    alice, mallory = await register(api), await register(api)
    chip = await connected_chip(api, waha_api, control, alice)
    ids = [(await send(api, alice, chip, {"to": "5521999990000", "text": f"m{i}"})).json()["id"] for i in range(5)]
    seen, before = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"before": before} if before else {})}
        response = await api.get(f"/api/v1/chips/{chip['id']}/messages", params=params, headers=alice["headers"])
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_before"}
        seen += [m["id"] for m in page["items"]]
        before = page["next_before"]
        if before is None:
            break
    assert seen == list(reversed(ids))
    for params in ({"limit": 0}, {"limit": 101}, {"before": "nope"}):
        response = await api.get(f"/api/v1/chips/{chip['id']}/messages", params=params, headers=alice["headers"])
        assert_error(response, 400, "validation_error")

    for path in (f"/api/v1/chips/{chip['id']}/messages", f"/api/v1/chips/{chip['id']}/messages/{ids[0]}"):
        assert_error(await api.get(path, headers=mallory["headers"]), 404, "not_found")
    assert_error(await send(api, mallory, chip, {"to": "5521999990000", "text": "x"}), 404, "not_found")
    missing = f"/api/v1/chips/{chip['id']}/messages/{uuid.uuid4()}"
    assert_error(await api.get(missing, headers=alice["headers"]), 404, "not_found")


async def test_retention_prunes_old_messages(api, waha_api, control, emulator, pg):
    from app.container import Container
    from app.worker import jobs

    user = await register(api)
    chip = await connected_chip(api, waha_api, control, user)
    old = (await send(api, user, chip, {"to": "5521999990000", "text": "old"})).json()
    new = (await send(api, user, chip, {"to": "5521999990000", "text": "new"})).json()
    await pg.execute("UPDATE messages SET created_at = now() - interval '31 days' WHERE id = $1", uuid.UUID(old["id"]))
    container = Container.build(waha_api.settings)
    try:
        assert await jobs.prune_messages({"container": container}) == 1
    finally:
        await container.aclose()
    remaining = await pg.fetch("SELECT id FROM messages WHERE chip_id = $1", uuid.UUID(chip["id"]))
    assert [str(r["id"]) for r in remaining] == [new["id"]]
