"""The emulator's outbound messages: sendImage/sendFile, automatic signed message.ack webhooks
SERVER -> DEVICE -> READ (``ack_delay_seconds``), and the ack control endpoint."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import msgspec
import pytest

from app.waha import WahaClient
from app.waha.emulator import EmulatorConfig
from app.webhooks.schemas import AckPayload, Envelope
from tests.support.waha import API_KEY, FAST, HMAC_KEY, Emu
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio


def acks(receiver) -> list[tuple[str, int, str]]:
    found = []
    for headers, body in receiver.accepted():
        envelope = json.loads(body)
        if envelope["event"] == "message.ack":
            assert headers["x-webhook-hmac"] == hmac.new(HMAC_KEY.encode(), body, hashlib.sha512).hexdigest()
            payload = msgspec.convert(msgspec.json.decode(body, type=Envelope).payload, AckPayload)
            found.append((payload.id, int(payload.ack), envelope["payload"]["ackName"]))
    return found


async def linked(client: WahaClient, emulator: Emu, http: httpx.AsyncClient, name: str, url: str) -> None:
    await client.create_session(
        name, start=True, metadata={"user_id": "u"}, proxy=None, webhook_url=url, hmac_key=HMAC_KEY
    )
    await emulator.wait_status(name, "SCAN_QR_CODE")
    assert (await http.post(f"/_emulator/sessions/{name}/scan")).status_code == 200


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(api_key=API_KEY, **{**FAST, "ack_delay_seconds": 0.05})


async def test_sent_messages_get_server_device_read(emulator: Emu, client: WahaClient, receiver_factory) -> None:
    receiver, url = receiver_factory()
    async with httpx.AsyncClient(base_url=emulator.url, headers={"X-Api-Key": API_KEY}) as http:
        await linked(client, emulator, http, "chip_acks", url)
        text = await client.send_text("chip_acks", "5521999990000", "hi", message_id="3EB0AAAABBBBCCCCDDDD01")
        image = await client.send_image("chip_acks", "5521999990000", "https://example.com/a.jpg", "image/jpeg")
        document = await client.send_file(
            "chip_acks", "5521999990000", "https://example.com/a.pdf", "application/pdf", filename="a.pdf"
        )
    assert text["id"] == "true_5521999990000@c.us_3EB0AAAABBBBCCCCDDDD01"  # WAHA used our id
    assert image["raw"]["media"]["url"] == "https://example.com/a.jpg"
    assert document["raw"]["media"]["filename"] == "a.pdf"
    await eventually(lambda: len(acks(receiver)) == 9, what="three acks per message")
    for sent in (text, image, document):
        assert [(a, n) for i, a, n in acks(receiver) if i == sent["id"]] == [(1, "SERVER"), (2, "DEVICE"), (3, "READ")]


async def test_ack_control_endpoint(emulator: Emu, client: WahaClient, receiver_factory) -> None:
    receiver, url = receiver_factory()
    async with httpx.AsyncClient(base_url=emulator.url, headers={"X-Api-Key": API_KEY}) as http:
        await linked(client, emulator, http, "chip_ctl", url)
        # no automatic acks for a session that stops before they are due
        sent = await client.send_text("chip_ctl", "5521999990000", "hi")
        await client.stop_session("chip_ctl")
        base = f"/_emulator/sessions/chip_ctl/messages/{sent['id']}/ack"
        for value in (3, 1, 3, -1, 4):  # any order, any number of times
            response = await http.post(base, json={"ack": value})
            assert response.status_code == 200, response.text
            assert response.json()["payload"]["ack"] == value
        raw_id = sent["id"].rsplit("_", 1)[1]
        assert (
            await http.post(f"/_emulator/sessions/chip_ctl/messages/{raw_id}/ack", json={"ack": 2})
        ).status_code == 200
        assert (await http.post("/_emulator/sessions/chip_ctl/messages/nope/ack", json={"ack": 1})).status_code == 404
        assert (await http.post(base, json={"ack": 5})).status_code == 400
        assert (await http.post(base, json={"ack": "1"})).status_code == 400
        assert (await http.post("/_emulator/sessions/none/messages/x/ack", json={"ack": 1})).status_code == 404
    await eventually(lambda: len(acks(receiver)) == 6, what="the driven acks")
    # each event is delivered on its own, as WAHA does, so they may arrive in any order
    assert sorted(a for _, a, _ in acks(receiver)) == sorted([3, 1, 3, -1, 4, 2])


async def test_media_sends_need_a_remote_file(emulator: Emu, client: WahaClient, receiver_factory) -> None:
    _, url = receiver_factory()
    async with httpx.AsyncClient(base_url=emulator.url, headers={"X-Api-Key": API_KEY}) as http:
        await linked(client, emulator, http, "chip_media", url)
        for path in ("/api/sendImage", "/api/sendFile"):
            for body in (
                {"session": "chip_media", "chatId": "5521999990000@c.us"},
                {"session": "chip_media", "chatId": "5521999990000@c.us", "file": {"url": "https://x/a"}},
                {"session": "chip_media", "file": {"url": "https://x/a", "mimetype": "image/png"}},
            ):
                assert (await http.post(path, json=body)).status_code == 400
        await client.stop_session("chip_media")
        with pytest.raises(Exception) as refused:
            await client.send_image("chip_media", "5521999990000", "https://example.com/a.jpg", "image/jpeg")
        assert "422" in str(refused.value)
