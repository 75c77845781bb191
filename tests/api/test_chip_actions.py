"""QR, pairing code, restart, logout and messages against the WAHA emulator.

The API under test is served with the static scheduler pointing at a served emulator; sessions are
provisioned here with the WAHA client (as the provisioning worker will), with the API's webhook URL
and key, so chip statuses move by real emulator webhooks.
"""

from __future__ import annotations

import base64
import io
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.support.api import get_chip, history, new_chip, register, set_plan
from tests.support.errors import assert_error
from tests.support.sse import open_stream
from tests.support.waiting import eventually
from tests.support.webhooks import HOOK, deliver_ok, status_event

pytestmark = pytest.mark.anyio

MESSAGES_PER_MINUTE = 3


class Emulator:
    def __init__(self, served, app) -> None:
        self.served, self.app, self.url = served, app, served.url
        self.state = app.state.emulator

    def session(self, name: str):
        return self.state.sessions.get(name)

    def status(self, name: str) -> str | None:
        session = self.session(name)
        return session.status if session else None


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    from app.waha.emulator import EmulatorConfig, create_emulator_app
    from tests.support.asgi_server import serve

    # QR codes last long enough that no rotation happens during a test
    config = EmulatorConfig(
        api_key="test-waha-api-key",
        boot_delay_seconds=0.1,
        qr_first_seconds=120,
        qr_next_seconds=120,
        qr_max=2,
        webhook_timeout_seconds=5,
    )
    app = create_emulator_app(config)
    with serve(app) as served:
        yield Emulator(served, app)


@pytest.fixture(scope="module")
def waha_api(migrated_db, emulator) -> Iterator[Any]:
    """The API with the static scheduler on the emulator, and a small message limit."""
    from app.factory import create_app
    from app.settings import load_settings
    from tests.support.asgi_server import serve

    settings = load_settings(
        {**os.environ, "WHAGO_WAHA_URL": emulator.url, "WHAGO_MESSAGES_PER_MINUTE": str(MESSAGES_PER_MINUTE)}
    )
    assert settings.scheduler == "static"
    assert settings.waha_api_key == emulator.state.config.api_key
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


@pytest.fixture()
async def waha(emulator, waha_api) -> AsyncIterator[Any]:
    from app.waha import WahaClient

    async with WahaClient(emulator.url, waha_api.settings.waha_api_key, timeout=5) as client:
        yield client


async def wait_status(api, user, chip, status: str, timeout: float = 5.0) -> dict:
    async def check():
        got = await get_chip(api, user, chip)
        return got if got["status"] == status else None

    return await eventually(check, timeout, f"chip {chip['alias']} to be {status}")


async def provision(api, waha, waha_api, user, chip) -> dict:
    """What the provisioning worker does: create + start the session with metadata and webhook."""
    from app.waha import chip_metadata

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
    return await wait_status(api, user, chip, "waiting_qr")


async def scan(control, chip, phone: str = "5511912345678") -> None:
    response = await control.post(f"/_emulator/sessions/{chip['session_name']}/scan", json={"phone": phone})
    assert response.status_code == 200, response.text


async def connected_chip(api, waha, waha_api, control, user, alias="sales-1", phone="5511912345678") -> dict:
    chip = await new_chip(api, user, alias)
    await provision(api, waha, waha_api, user, chip)
    await scan(control, chip, phone)
    return await wait_status(api, user, chip, "connected")


def decode_qr(png: bytes) -> str:
    import zxingcpp
    from PIL import Image

    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    results = zxingcpp.read_barcodes(image)
    assert len(results) == 1, results
    return results[0].text


def post(api, user, chip, action: str, body: Any = None, **kwargs) -> Any:
    return api.post(f"/api/v1/chips/{chip['id']}/{action}", json=body, headers=user["headers"], **kwargs)


# --- QR -----------------------------------------------------------------------------------------


async def test_qr_as_data_url_and_png_while_waiting(api, waha, waha_api, emulator):
    user = await register(api)
    chip = await provision(api, waha, waha_api, user, await new_chip(api, user))
    raw = await waha.get_qr_raw(chip["session_name"])
    assert raw == emulator.session(chip["session_name"]).qr_value

    response = await api.get(f"/api/v1/chips/{chip['id']}/qr", headers=user["headers"])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"status", "qr_code", "message"}
    assert body["status"] == "waiting_qr"
    assert body["message"]
    prefix = "data:image/png;base64,"
    assert body["qr_code"].startswith(prefix)
    assert decode_qr(base64.b64decode(body["qr_code"][len(prefix) :], validate=True)) == raw

    png = await api.get(f"/api/v1/chips/{chip['id']}/qr", headers={**user["headers"], "Accept": "image/png"})
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert decode_qr(png.content) == raw


async def test_qr_when_not_waiting(api, waha, waha_api, control, emulator):
    user = await register(api)
    await set_plan(waha_api.settings.database_url, user["user"]["id"], "enterprise")
    png_headers = {**user["headers"], "Accept": "image/png"}

    async def check_no_qr(chip: dict, status: str) -> None:
        response = await api.get(f"/api/v1/chips/{chip['id']}/qr", headers=user["headers"])
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == status
        assert body["qr_code"] is None
        assert body["message"]
        assert_error(await api.get(f"/api/v1/chips/{chip['id']}/qr", headers=png_headers), 409, "chip_not_waiting_qr")

    provisioning = await new_chip(api, user, "fresh")
    await check_no_qr(provisioning, "provisioning")
    connected = await connected_chip(api, waha, waha_api, control, user, "linked")
    await check_no_qr(connected, "connected")

    # the chip still says waiting_qr but WAHA moved on (its webhook is late): no QR, no error
    late = await provision(api, waha, waha_api, user, await new_chip(api, user, "late"))
    emulator.state.deliver_webhooks = False
    await scan(control, late)
    await check_no_qr(late, "waiting_qr")
    emulator.state.deliver_webhooks = True

    # waiting_qr here, but the session does not exist in WAHA (yet / any more): no QR, not a 404
    ghost = await new_chip(api, user, "ghost")
    await deliver_ok(api, status_event(user, ghost, "SCAN_QR_CODE"))
    await check_no_qr(ghost, "waiting_qr")


# --- pairing code -------------------------------------------------------------------------------


async def test_pairing_code(api, waha, waha_api, emulator):
    user = await register(api)
    chip = await new_chip(api, user)
    assert_error(
        await post(api, user, chip, "pairing-code", {"phone_number": "5511912345678"}), 409, "chip_not_waiting_qr"
    )
    await provision(api, waha, waha_api, user, chip)
    response = await post(api, user, chip, "pairing-code", {"phone_number": "+5511912345678"})
    assert response.status_code == 200, response.text
    assert response.json() == {"code": emulator.session(chip["session_name"]).pairing_code}
    assert len(response.json()["code"]) == 9
    assert response.json()["code"][4] == "-"
    for bad in (
        {},
        {"phone_number": "abc"},
        {"phone_number": "12"},
        {"phone_number": 5511912345678},
        {"phone_number": "5511912345678", "extra": 1},
    ):
        assert_error(await post(api, user, chip, "pairing-code", bad), 400, "validation_error")


async def test_pairing_attempts_limited_to_5_per_chip_per_hour(api, waha, waha_api, emulator):
    user = await register(api)
    await set_plan(waha_api.settings.database_url, user["user"]["id"], "business")
    chip = await provision(api, waha, waha_api, user, await new_chip(api, user, "limited"))
    other = await provision(api, waha, waha_api, user, await new_chip(api, user, "other"))
    phone = {"phone_number": "5511912345678"}
    for _ in range(3):
        assert (await post(api, user, chip, "pairing-code", phone)).status_code == 200
    for _ in range(2):
        restarted = await post(api, user, chip, "restart")
        assert restarted.status_code == 202, restarted.text
        assert restarted.json()["status"] == "starting", restarted.text
        await eventually(lambda: _both_waiting(api, user, chip, emulator), what="QR again after restart")
    for action, body in (("pairing-code", phone), ("restart", None)):
        response = await post(api, user, chip, action, body)
        assert_error(response, 429, "rate_limited")
        retry_after = int(response.headers["retry-after"])
        assert 3000 < retry_after <= 3600
    assert (await get_chip(api, user, chip))["status"] == "waiting_qr"  # the refused restart did nothing
    # a refusal for the wrong state is not an attempt, and other chips have their own budget
    assert (await post(api, user, other, "pairing-code", phone)).status_code == 200
    assert (await post(api, user, other, "restart")).status_code == 202


async def test_pairing_attempts_per_phone_survive_chip_deletion(api, waha, waha_api, emulator):
    user = await register(api)
    await set_plan(waha_api.settings.database_url, user["user"]["id"], "business")
    phone = {"phone_number": "5511955554444"}
    chip = await provision(api, waha, waha_api, user, await new_chip(api, user, "first"))
    for _ in range(5):
        assert (await post(api, user, chip, "pairing-code", phone)).status_code == 200
    assert (await api.delete(f"/api/v1/chips/{chip['id']}", headers=user["headers"])).status_code == 202
    again = await provision(api, waha, waha_api, user, await new_chip(api, user, "second"))
    # same tenant, same phone: still limited (the per-phone count is not the chip's)
    assert_error(await post(api, user, again, "pairing-code", {"phone_number": "+5511955554444"}), 429, "rate_limited")
    # another phone number has its own budget
    assert (await post(api, user, again, "pairing-code", {"phone_number": "5511900001111"})).status_code == 200


async def _both_waiting(api, user, chip, emulator) -> bool:
    got = await get_chip(api, user, chip)
    return got["status"] == "waiting_qr" and emulator.status(chip["session_name"]) == "SCAN_QR_CODE"


# --- messages -----------------------------------------------------------------------------------


async def test_messages(api, waha, waha_api, control, emulator, pg):
    user = await register(api)
    chip = await provision(api, waha, waha_api, user, await new_chip(api, user))
    message = {"to": "5521999990000", "text": "olá"}
    assert_error(await post(api, user, chip, "messages", message), 409, "chip_not_connected")
    await scan(control, chip)
    await wait_status(api, user, chip, "connected")
    assert await pg.fetchval("SELECT last_activity_at FROM chips WHERE id = $1", uuid.UUID(chip["id"])) is None

    for bad in (
        {"to": "5521999990000", "text": ""},
        {"to": "", "text": "x"},
        {"to": "abc", "text": "x"},
        {"to": "55 21 99999", "text": "x"},
        {"to": "5521999990000"},
        {"text": "x"},
        {"to": 5521999990000, "text": "x"},
        {"to": "5521999990000", "text": "x" * 4097},
        {"to": "5521999990000", "text": "x", "html": True},
    ):
        assert_error(await post(api, user, chip, "messages", bad), 400, "validation_error")

    sent_ok = []
    for to in ("5521999990000", "+5521999990001", "5521999990002@c.us"):
        response = await post(api, user, chip, "messages", {"to": to, "text": f"hi {to}"})
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] == "sent"
        assert body["chip_id"] == chip["id"]
        assert body["to"] == to.lstrip("+")
        assert body["id"]
        sent_ok.append(body)
    sent = emulator.session(chip["session_name"]).sent
    assert [(m["to"], m["body"]) for m in sent] == [
        ("5521999990000@c.us", "hi 5521999990000"),
        ("5521999990001@c.us", "hi +5521999990001"),
        ("5521999990002@c.us", "hi 5521999990002@c.us"),
    ]
    assert [b["waha_message_id"] for b in sent_ok] == [m["id"] for m in sent]
    assert await pg.fetchval("SELECT last_activity_at FROM chips WHERE id = $1", uuid.UUID(chip["id"])) is not None

    limited = await post(api, user, chip, "messages", message)
    assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert len(emulator.session(chip["session_name"]).sent) == MESSAGES_PER_MINUTE


# --- logout and restart -------------------------------------------------------------------------


async def test_logout_disconnects_and_unlinks(api, waha, waha_api, control, emulator):
    user = await register(api)
    chip = await connected_chip(api, waha, waha_api, control, user)
    assert chip["phone_number"] == "5511912345678"
    async with open_stream(api, user) as sse:
        response = await post(api, user, chip, "logout")
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "disconnected"
        assert response.json()["phone_number"] is None
        # WAHA's own STARTING (its logout restarts the session) may land before our write and
        # be published first; the tenant then sees disconnected next, from wherever it was
        seen = []
        while not seen or seen[-1][1] != "disconnected":
            event, data = await sse.next()
            seen.append((event, data["status"], data["previous"]))
            assert len(seen) <= 3, seen
        assert all(e == "chip.status" for e, _, _ in seen), seen
        assert seen[0][2] == "connected"
        assert {status for _, status, _ in seen} <= {"starting", "disconnected"}, seen
    session = emulator.session(chip["session_name"])
    assert session.status == "STOPPED"
    assert session.auth is None
    # the phone no longer lists the device: WAHA unpairs only a running session, so WHAGO logs
    # out before stopping (stop-then-logout left the device linked on the phone)
    devices = (await control.get("/_emulator/phones/5511912345678/devices")).json()["devices"]
    assert chip["session_name"] not in [device["session"] for device in devices]  # other tests share the phone
    # WAHA's own webhooks (the logout's restart, then the stop), landing before or after our write
    # and in any order, leave the chip disconnected
    await eventually(lambda: _all_delivered(emulator, chip), what="every webhook of the logout")
    got = await get_chip(api, user, chip)
    assert got["status"] == "disconnected"
    assert got["phone_number"] is None
    rows = await history(api, user, chip, source=None)
    assert ("connected", "disconnected") in [(r["from_status"], r["to_status"]) for r in rows]
    assert_error(
        await post(api, user, chip, "messages", {"to": "5521999990000", "text": "x"}), 409, "chip_not_connected"
    )

    # restart after logout: a new pairing (QR), since the link is gone
    restarted = await post(api, user, chip, "restart")
    assert restarted.status_code == 202
    assert restarted.json()["status"] == "starting"
    await wait_status(api, user, chip, "waiting_qr")


async def test_logout_when_webhook_wins_the_race_still_clears_the_phone(api, waha, waha_api, control, emulator):
    user = await register(api)
    chip = await connected_chip(api, waha, waha_api, control, user)
    # WAHA already said STOPPED (e.g. the tenant stopped it elsewhere): the chip is disconnected
    # but still shows the number; logging out must unlink it anyway
    await control.post(f"/_emulator/sessions/{chip['session_name']}/disconnect", json={"status": "STOPPED"})
    got = await wait_status(api, user, chip, "disconnected")
    assert got["phone_number"] == "5511912345678"
    response = await post(api, user, chip, "logout")
    assert response.status_code == 202
    assert response.json()["phone_number"] is None


async def test_logout_converges_to_disconnected_whatever_the_webhook_order(api, waha, waha_api, control, emulator):
    """A running session's logout restarts it (STOPPED, STARTING, SCAN_QR_CODE) before WHAGO's
    stop (STOPPED): delivered in any order, the chip ends disconnected with no phone."""
    user = await register(api)
    chip = await connected_chip(api, waha, waha_api, control, user)
    assert (await control.post("/_emulator/webhooks", json={"delay": [0.0, 0.3]})).status_code == 200
    try:
        assert (await post(api, user, chip, "logout")).status_code == 202
        await eventually(lambda: _all_delivered(emulator, chip), what="every webhook of the logout")
    finally:
        await control.post("/_emulator/webhooks", json={"delay": [0.0, 0.0]})
    got = await get_chip(api, user, chip)
    assert (got["status"], got["phone_number"]) == ("disconnected", None)


async def test_concurrent_out_of_order_deliveries_converge_to_wahas_latest_status(
    api, waha, waha_api, control, emulator
):
    """WAHA sends every event on its own: under a delay fault events overtake each other, across
    chips and within one. Whatever order they land in, each chip ends at WAHA's latest status."""
    import asyncio

    user = await register(api)
    await set_plan(waha_api.settings.database_url, user["user"]["id"], "business")
    chips = [await connected_chip(api, waha, waha_api, control, user, f"c{i}", f"551190000{i:04d}") for i in range(3)]
    assert (await control.post("/_emulator/webhooks", json={"delay": [0.0, 0.25]})).status_code == 200

    async def churn(chip: dict, end_failed: bool) -> None:
        name = chip["session_name"]
        assert (await post(api, user, chip, "restart")).status_code == 202
        await eventually(lambda: emulator.status(name) == "WORKING", what=f"{name} reconnected")
        assert (await control.post(f"/_emulator/sessions/{name}/flap", json={"seconds": 0.05})).status_code == 200
        await eventually(lambda: emulator.status(name) == "WORKING", what=f"{name} after the flap")
        await control.post(f"/_emulator/sessions/{name}/fail")
        if not end_failed:
            await waha.restart_session(name)
            await eventually(lambda: emulator.status(name) == "WORKING", what=f"{name} restarted")

    try:
        await asyncio.gather(*(churn(chip, end_failed=i == 0) for i, chip in enumerate(chips)))
        for chip in chips:
            await eventually(lambda chip=chip: _all_delivered(emulator, chip), what="every webhook delivered")
    finally:
        await control.post("/_emulator/webhooks", json={"delay": [0.0, 0.0]})
    expected = {"WORKING": "connected", "FAILED": "failed"}
    for chip in chips:
        got = await get_chip(api, user, chip)
        assert got["status"] == expected[emulator.status(chip["session_name"])], got


async def test_not_running_session_maps_to_the_chip_conflicts(api, waha, waha_api, control, emulator):
    """WAHA answers 404 ("Please start it first") on a stopped session: when WHAGO has not seen the
    STOPPED yet, a tenant gets the chip's conflict, not a 404."""
    user = await register(api)
    await set_plan(waha_api.settings.database_url, user["user"]["id"], "business")
    waiting = await provision(api, waha, waha_api, user, await new_chip(api, user, "waiting"))
    connected = await connected_chip(api, waha, waha_api, control, user, "linked")
    emulator.state.deliver_webhooks = False  # the STOPPED webhooks are late
    try:
        for chip in (waiting, connected):
            await waha.stop_session(chip["session_name"])
        assert_error(
            await post(api, user, connected, "messages", {"to": "5521999990000", "text": "x"}),
            409,
            "chip_not_connected",
        )
        assert_error(
            await post(api, user, waiting, "pairing-code", {"phone_number": "5511912345678"}),
            409,
            "chip_not_waiting_qr",
        )
        png = await api.get(f"/api/v1/chips/{waiting['id']}/qr", headers={**user["headers"], "Accept": "image/png"})
        assert_error(png, 409, "chip_not_waiting_qr")
    finally:
        emulator.state.deliver_webhooks = True


def _all_delivered(emulator: Emulator, chip: dict) -> bool:
    state = emulator.state
    ids = {e["id"] for e in list(state.events) if e["session"] == chip["session_name"]}
    done = {d["event_id"] for d in list(state.deliveries) if d.get("status") == 200}
    return ids <= done and not state._workers.get(chip["session_name"])


async def test_restart_of_a_linked_chip_reconnects(api, waha, waha_api, control, emulator):
    user = await register(api)
    chip = await connected_chip(api, waha, waha_api, control, user)
    response = await post(api, user, chip, "restart")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "starting"
    got = await wait_status(api, user, chip, "connected")  # the link survives a restart: no QR
    assert got["phone_number"] == "5511912345678"
    # WAHA's STOPPED for this restart may land before or after the API's own write
    transitions = [(r["from_status"], r["to_status"], r["source"]) for r in reversed(await history(api, user, chip))]
    transitions += [
        (r["from_status"], r["to_status"], r["source"]) for r in reversed(await history(api, user, chip, "api"))
    ]
    assert ("starting", "connected", "webhook") in transitions
    assert {
        ("connected", "starting", "api"),
        ("disconnected", "starting", "api"),
        ("disconnected", "starting", "webhook"),
    } & set(transitions)


async def test_restart_and_logout_refused_while_provisioning_or_deleting(api):
    user = await register(api)
    chip = await new_chip(api, user)
    for action in ("restart", "logout"):
        assert_error(await post(api, user, chip, action), 409, "chip_busy")
    await api.delete(f"/api/v1/chips/{chip['id']}", headers=user["headers"])
    for action in ("restart", "logout"):
        assert_error(await post(api, user, chip, action), 409, "chip_busy")
    assert (await get_chip(api, user, chip))["status"] == "deleting"


# --- WAHA down ----------------------------------------------------------------------------------


async def _actions(api, user, waiting: dict, connected: dict) -> list[tuple[str, httpx.Response]]:
    return [
        ("qr json", await api.get(f"/api/v1/chips/{waiting['id']}/qr", headers=user["headers"])),
        (
            "qr png",
            await api.get(f"/api/v1/chips/{waiting['id']}/qr", headers={**user["headers"], "Accept": "image/png"}),
        ),
        ("pairing", await post(api, user, waiting, "pairing-code", {"phone_number": "5511912345678"})),
        ("restart", await post(api, user, connected, "restart")),
        ("logout", await post(api, user, connected, "logout")),
        ("message", await post(api, user, connected, "messages", {"to": "5521999990000", "text": "x"})),
    ]


async def test_waha_errors_are_503_and_change_nothing(api, waha, waha_api, control, emulator):
    user = await register(api)
    await set_plan(waha_api.settings.database_url, user["user"]["id"], "business")
    waiting = await provision(api, waha, waha_api, user, await new_chip(api, user, "waiting"))
    connected = await connected_chip(api, waha, waha_api, control, user, "linked")
    before = [await get_chip(api, user, c) for c in (waiting, connected)]
    histories = [await history(api, user, c, source=None) for c in (waiting, connected)]
    for mode in ("error500", "refuse"):
        assert (await control.post("/_emulator/fault", json={"mode": mode})).status_code == 200
        for name, response in await _actions(api, user, waiting, connected):
            assert response.status_code == 503, (mode, name, response.text)
            assert_error(response, 503, "dependency_unavailable")
            assert "test-waha-api-key" not in response.text
    await control.post("/_emulator/fault", json={"mode": "none"})
    assert [await get_chip(api, user, c) for c in (waiting, connected)] == before
    assert [await history(api, user, c, source=None) for c in (waiting, connected)] == histories
    assert emulator.session(connected["session_name"]).status == "WORKING"
    assert emulator.session(connected["session_name"]).sent == []


async def test_waha_unreachable_is_503_and_changes_nothing(client):
    """The suite's default API points the static scheduler at a closed port."""
    from app.settings import get_settings

    url = httpx.URL(get_settings().waha_url)
    with socket.socket() as probe:
        assert probe.connect_ex((url.host, url.port)) != 0, "expected nothing listening on the WAHA URL"
    user = await register(client)
    await set_plan(get_settings().database_url, user["user"]["id"], "business")
    waiting, connected = await new_chip(client, user, "waiting"), await new_chip(client, user, "linked")
    await deliver_ok(client, status_event(user, waiting, "SCAN_QR_CODE"))
    await deliver_ok(client, status_event(user, connected, "WORKING", phone="5511912345678"))
    before = [await get_chip(client, user, c) for c in (waiting, connected)]
    for name, response in await _actions(client, user, waiting, connected):
        assert response.status_code == 503, (name, response.text)
        assert_error(response, 503, "dependency_unavailable")
    assert [await get_chip(client, user, c) for c in (waiting, connected)] == before


# --- tenant isolation ---------------------------------------------------------------------------


async def test_another_tenants_chip_is_404_on_every_action(api, waha, waha_api, control, emulator):
    alice, mallory = await register(api), await register(api)
    chip = await connected_chip(api, waha, waha_api, control, alice)
    attempts = [
        await api.get(f"/api/v1/chips/{chip['id']}/qr", headers=mallory["headers"]),
        await api.get(f"/api/v1/chips/{chip['id']}/qr", headers={**mallory["headers"], "Accept": "image/png"}),
        await post(api, mallory, chip, "pairing-code", {"phone_number": "5511912345678"}),
        await post(api, mallory, chip, "restart"),
        await post(api, mallory, chip, "logout"),
        await post(api, mallory, chip, "messages", {"to": "5521999990000", "text": "x"}),
    ]
    for response in attempts:
        assert_error(response, 404, "not_found")
    unknown = {"id": str(uuid.uuid4())}
    assert_error(await post(api, alice, unknown, "restart"), 404, "not_found")
    got = await get_chip(api, alice, chip)
    assert got["status"] == "connected"
    assert got["phone_number"] == "5511912345678"
    session = emulator.session(chip["session_name"])
    assert session.status == "WORKING"
    assert session.auth is not None
    assert session.sent == []
    # and Mallory's refused attempts did not use up Alice's pairing budget
    for _ in range(5):
        assert (await post(api, alice, chip, "restart")).status_code == 202
        await wait_status(api, alice, chip, "connected")
