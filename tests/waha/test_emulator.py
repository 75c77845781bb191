"""The emulator over real HTTP: auth, lifecycle, QR, pairing, sending, faults, control endpoints."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import time

import httpx
import pytest
import zxingcpp
from PIL import Image

from app.waha import WahaClient, WahaConflict, WahaNotFound, WahaRejected, WahaUnavailable
from app.waha.emulator import EmulatorConfig, create_emulator_app
from tests.support.asgi_server import serve
from tests.support.waha import API_KEY, FAST, Emu
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio

HOOK = "http://127.0.0.1:9/hook"  # discard port: deliveries fail fast, which these tests ignore


async def create(client: WahaClient, name: str, *, start: bool = True) -> None:
    await client.create_session(
        name, start=start, metadata={"user_id": "u1", "chip_id": "c1"}, proxy=None, webhook_url=HOOK, hmac_key=None
    )


def decode_qr(png: bytes) -> str:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(results) == 1, "exactly one QR code expected"
    return results[0].text


async def test_api_key_header_query_and_open_ping(emulator: Emu) -> None:
    async with httpx.AsyncClient(base_url=emulator.url) as http:
        missing = await http.get("/api/sessions")
        assert missing.status_code == 401
        assert missing.json() == {"message": "Unauthorized", "statusCode": 401}
        assert (await http.get("/api/sessions", headers={"X-Api-Key": "wrong"})).status_code == 401
        assert (await http.get("/api/sessions", headers={"X-Api-Key": API_KEY})).status_code == 200
        assert (await http.get("/api/sessions", params={"x-api-key": API_KEY})).status_code == 200
        assert (await http.get("/health")).status_code == 401  # WAHA's spec puts /health behind the key
        ping = await http.get("/ping")
        assert ping.status_code == 200
        assert ping.json() == {"message": "pong"}


async def test_hashed_api_key_is_accepted() -> None:
    hashed = "sha512:" + hashlib.sha512(b"plain-key").hexdigest()
    with serve(create_emulator_app(EmulatorConfig(api_key=hashed, **FAST))) as served:
        async with httpx.AsyncClient(base_url=served.url) as http:
            assert (await http.get("/api/sessions", headers={"X-Api-Key": "plain-key"})).status_code == 200
            assert (await http.get("/api/sessions", headers={"X-Api-Key": hashed})).status_code == 401


async def test_create_twice_is_422_and_unknown_session_is_404(emulator: Emu) -> None:
    body = {"name": "chip_dup", "start": False, "config": {"metadata": {"a": "b"}}}
    headers = {"X-Api-Key": API_KEY}
    async with httpx.AsyncClient(base_url=emulator.url, headers=headers) as http:
        first = await http.post("/api/sessions", json=body)
        assert first.status_code == 201
        assert first.json()["status"] == "STOPPED"
        again = await http.post("/api/sessions", json=body)
        assert again.status_code == 422
        assert again.json()["message"] == "Session 'chip_dup' already exists. Use PUT to update it."
        for method, path in [
            ("GET", "/api/sessions/nope"),
            ("POST", "/api/sessions/nope/start"),
            ("PUT", "/api/sessions/nope"),
            ("GET", "/api/nope/auth/qr"),
        ]:
            response = await http.request(method, path, json={"config": {}} if method == "PUT" else None)
            assert response.status_code == 404, (method, path)
            assert response.json()["message"] == "Session not found"
        assert (await http.delete("/api/sessions/nope")).status_code == 200  # delete is idempotent
        too_long = await http.post("/api/sessions", json={"name": "x" * 55, "start": False})
        assert too_long.status_code == 400


async def test_lifecycle_scan_stop_start_logout(emulator: Emu, client: WahaClient) -> None:
    await create(client, "chip_life", start=False)
    assert (await client.get_session("chip_life")).status == "STOPPED"
    assert [s.name for s in await client.list_sessions(all=False)] == []  # STOPPED left out
    assert [s.name for s in await client.list_sessions()] == ["chip_life"]

    started = await client.start_session("chip_life")
    assert started.status == "STARTING"
    await emulator.wait_status("chip_life", "SCAN_QR_CODE")
    info = await client.get_session("chip_life")
    assert info.me is None
    assert info.config is not None
    assert info.config.metadata == {"user_id": "u1", "chip_id": "c1"}

    async with httpx.AsyncClient(base_url=emulator.url, headers={"X-Api-Key": API_KEY}) as http:
        scanned = await http.post("/_emulator/sessions/chip_life/scan", json={"phone": "+55 11 98888-7777"})
        assert scanned.status_code == 200
        again = await http.post("/_emulator/sessions/chip_life/scan")
        assert again.status_code == 409  # only a session showing a QR can be scanned
    info = await client.get_session("chip_life")
    assert info.status == "WORKING"
    assert info.me is not None
    assert info.me.id == "5511988887777@c.us"
    assert info.me.push_name

    assert (await client.stop_session("chip_life")).status == "STOPPED"
    assert (await client.get_session("chip_life")).me is None
    await client.start_session("chip_life")  # still linked: no QR this time
    await emulator.wait_status("chip_life", "WORKING")
    assert "SCAN_QR_CODE" not in [e["payload"]["status"] for e in emulator.events("chip_life")[-2:]]

    await client.logout_session("chip_life")  # running: comes back fresh, waiting for a QR
    await emulator.wait_status("chip_life", "SCAN_QR_CODE")
    assert emulator.state.sessions["chip_life"].auth is None

    await client.delete_session("chip_life")
    with pytest.raises(WahaNotFound):
        await client.get_session("chip_life")
    await client.delete_session("chip_life")  # 404 counts as done


async def test_qr_png_matches_raw_and_rotates_until_failed(emulator: Emu, client: WahaClient) -> None:
    await create(client, "chip_qr")
    await emulator.wait_status("chip_qr", "SCAN_QR_CODE")
    first_raw = await client.get_qr_raw("chip_qr")
    assert first_raw.startswith("2@")
    assert decode_qr(await client.get_qr_png("chip_qr")) == first_raw

    await eventually(lambda: emulator.state.sessions["chip_qr"].qr_count >= 2, what="a QR rotation")
    second_raw = await client.get_qr_raw("chip_qr")
    assert second_raw != first_raw
    async with httpx.AsyncClient(base_url=emulator.url, headers={"X-Api-Key": API_KEY}) as http:
        as_json = await http.get(
            "/api/chip_qr/auth/qr", params={"format": "image"}, headers={"Accept": "application/json"}
        )
    assert as_json.status_code == 200
    assert as_json.json()["mimetype"] == "image/png"
    # the QR may have rotated again between the two reads (they last 0.15 s here)
    shown = decode_qr(base64.b64decode(as_json.json()["data"]))
    assert shown == second_raw or emulator.state.sessions["chip_qr"].qr_count > 2

    await emulator.wait_status("chip_qr", "FAILED")
    statuses = [e["payload"]["status"] for e in emulator.events("chip_qr")]
    assert statuses == ["STARTING"] + ["SCAN_QR_CODE"] * FAST["qr_max"] + ["FAILED"]
    with pytest.raises(WahaConflict):
        await client.get_qr_png("chip_qr")
    await client.restart_session("chip_qr")  # FAILED is recovered by a restart
    await emulator.wait_status("chip_qr", "SCAN_QR_CODE")


async def test_qr_and_pairing_code_need_scan_status(emulator: Emu, client: WahaClient) -> None:
    # STOPPED: WAHA has no session object, so session-scoped routes are 404 with WAHA's text
    await create(client, "chip_pair", start=False)
    with pytest.raises(WahaNotFound, match="Please start it first"):
        await client.get_qr_raw("chip_pair")
    with pytest.raises(WahaNotFound):
        await client.request_pairing_code("chip_pair", "5511999990000")
    with pytest.raises(WahaNotFound):
        await client._call("GET", "/api/sessions/chip_pair/me", None)
    # STARTING: the call waits for SCAN_QR_CODE (up to status_wait_seconds) instead of failing
    await client.start_session("chip_pair")
    code = await client.request_pairing_code("chip_pair", "+55 (11) 99999-0000")
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", code)


async def test_wrong_status_is_422_with_wahas_body_after_the_wait(emulator: Emu, client: WahaClient) -> None:
    await create(client, "chip_w422")
    await emulator.wait_status("chip_w422", "SCAN_QR_CODE")
    async with httpx.AsyncClient(base_url=emulator.url, headers={"X-Api-Key": API_KEY}) as http:
        await http.post("/_emulator/sessions/chip_w422/scan")
        started = time.monotonic()
        answer = await http.get("/api/chip_w422/auth/qr", params={"format": "raw"})
        waited = time.monotonic() - started
        assert answer.status_code == 422
        assert answer.json() == {
            "error": "Session status is not as expected. Try again later or restart the session",
            "session": "chip_w422",
            "status": "WORKING",
            "expected": ["SCAN_QR_CODE"],
        }
        assert waited >= 0.2  # FAST's status_wait_seconds
        # FAILED is "running" for WAHA: 422, not 404; /start does not revive it
        await http.post("/_emulator/sessions/chip_w422/fail")
        assert (await http.get("/api/chip_w422/auth/qr")).status_code == 422
        again = await http.post("/api/sessions/chip_w422/start")
        assert again.status_code == 422
        assert again.json()["message"] == "Session 'chip_w422' is already started."


async def test_put_replaces_config_and_restarts_running_session(emulator: Emu, client: WahaClient) -> None:
    await create(client, "chip_put")
    await emulator.wait_status("chip_put", "SCAN_QR_CODE")
    before = len(emulator.events("chip_put"))
    dto = await client.update_session("chip_put", {"metadata": {"user_id": "u2"}})
    assert dto.config is not None
    assert dto.config.metadata == {"user_id": "u2"}
    assert dto.config.webhooks is None
    assert [e["payload"]["status"] for e in emulator.events("chip_put")[before : before + 2]] == ["STOPPED", "STARTING"]
    await emulator.wait_status("chip_put", "SCAN_QR_CODE")


async def test_send_text_requires_working(emulator: Emu, client: WahaClient) -> None:
    await create(client, "chip_send")
    await emulator.wait_status("chip_send", "SCAN_QR_CODE")
    with pytest.raises(WahaConflict):
        await client.send_text("chip_send", "5511977776666", "too early")
    await emulator.wait_status("chip_send", "SCAN_QR_CODE")
    async with httpx.AsyncClient(base_url=emulator.url, headers={"X-Api-Key": API_KEY}) as http:
        await http.post("/_emulator/sessions/chip_send/scan")
    sent = await client.send_text("chip_send", "5511977776666", "hello")
    assert sent["id"].startswith("true_5511977776666@c.us_")
    assert sent["raw"]["body"] == "hello"
    assert sent["raw"]["fromMe"] is True
    assert emulator.state.sessions["chip_send"].sent[-1]["id"] == sent["id"]
    with pytest.raises(WahaNotFound):
        await client.send_text("chip_nobody", "5511977776666", "hello")


async def test_device_unlink_and_engine_failure(emulator: Emu, client: WahaClient) -> None:
    await create(client, "chip_unlink")
    await emulator.wait_status("chip_unlink", "SCAN_QR_CODE")
    async with httpx.AsyncClient(base_url=emulator.url, headers={"X-Api-Key": API_KEY}) as http:
        await http.post("/_emulator/sessions/chip_unlink/scan")
        assert (await http.post("/_emulator/sessions/chip_unlink/fail")).json()["status"] == "FAILED"
        await client.restart_session("chip_unlink")  # link kept: reconnects without a QR
        await emulator.wait_status("chip_unlink", "WORKING")
        unlinked = await http.post("/_emulator/sessions/chip_unlink/disconnect")
        assert unlinked.json()["status"] == "FAILED"
        assert unlinked.json()["me"] is None
    await client.restart_session("chip_unlink")  # link gone: needs a new QR
    await emulator.wait_status("chip_unlink", "SCAN_QR_CODE")


async def test_faults_and_reset(emulator: Emu, client: WahaClient) -> None:
    await create(client, "chip_fault", start=False)
    async with httpx.AsyncClient(base_url=emulator.url, headers={"X-Api-Key": API_KEY}) as http:
        for mode in ("error500", "refuse"):
            assert (await http.post("/_emulator/fault", json={"mode": mode})).status_code == 200
            assert await client.ping() is False
            with pytest.raises(WahaUnavailable):
                await client.get_session("chip_fault")
            assert (await http.get("/_emulator/sessions")).status_code == 200  # control stays up
        await http.post("/_emulator/fault", json={"mode": "none"})
        assert await client.ping() is True
        assert (await http.post("/_emulator/fault", json={"mode": "bogus"})).status_code == 400
        assert (await http.post("/_emulator/reset")).status_code == 200
    assert await client.list_sessions() == []


async def test_bad_api_key_is_rejected_without_leaking_it(emulator: Emu) -> None:
    secret = "not-the-right-key-123456"
    async with WahaClient(emulator.url, secret, timeout=5.0) as waha:
        with pytest.raises(WahaRejected) as caught:
            await waha.list_sessions()
    assert caught.value.status_code == 502
    assert caught.value.waha_status == 401
    assert secret not in str(caught.value)


async def test_closed_port_is_unavailable() -> None:
    async with WahaClient("http://127.0.0.1:9", API_KEY, timeout=1.0) as waha:
        with pytest.raises(WahaUnavailable):
            await waha.get_session("x")
        assert await waha.ping() is False


async def test_control_endpoints_need_the_api_key_and_never_return_secrets(emulator: Emu) -> None:
    config = {
        "proxy": {"server": "http://proxy.example:3128", "username": "u", "password": "proxy-secret-pw"},
        "webhooks": [
            {
                "url": "http://127.0.0.1:9/hook",
                "events": ["session.status"],
                "hmac": {"key": "hook-secret-key"},
                "customHeaders": [{"name": "X-Token", "value": "header-secret"}],
            }
        ],
    }
    async with httpx.AsyncClient(base_url=emulator.url) as anonymous:
        for method, path in [
            ("GET", "/_emulator/sessions"),
            ("GET", "/_emulator/events"),
            ("POST", "/_emulator/sessions/chip_secret/scan"),
            ("POST", "/_emulator/fault"),
            ("POST", "/_emulator/reset"),
        ]:
            response = await anonymous.request(method, path, headers={"X-Api-Key": "wrong"})
            assert response.status_code == 401, (method, path)
            assert (await anonymous.request(method, path)).status_code == 401, (method, path)
    async with httpx.AsyncClient(base_url=emulator.url, headers={"X-Api-Key": API_KEY}) as http:
        created = await http.post("/api/sessions", json={"name": "chip_secret", "start": True, "config": config})
        assert created.status_code == 201, created.text
        await emulator.wait_status("chip_secret", "SCAN_QR_CODE")
        answers = [
            (await http.get("/_emulator/sessions")).text,
            (await http.post("/_emulator/sessions/chip_secret/scan")).text,
            (await http.post("/_emulator/sessions/chip_secret/fail")).text,
        ]
        for text in answers:
            for secret in ("proxy-secret-pw", "hook-secret-key", "header-secret"):
                assert secret not in text
        assert "proxy.example" in answers[0]  # the rest of the config is still shown


# --- WAHA's source, as issue 12 lists it --------------------------------------------------------


async def test_logout_unlinks_on_the_phone_only_while_running(emulator: Emu, client: WahaClient) -> None:
    async with httpx.AsyncClient(base_url=emulator.url, headers={"X-Api-Key": API_KEY}) as http:

        async def linked(name: str, phone: str) -> bool:
            devices = (await http.get(f"/_emulator/phones/{phone}/devices")).json()["devices"]
            return name in [d["session"] for d in devices]

        for name, phone in (("chip_lo_run", "5511900000001"), ("chip_lo_stop", "5511900000002")):
            await create(client, name)
            await emulator.wait_status(name, "SCAN_QR_CODE")
            await http.post(f"/_emulator/sessions/{name}/scan", json={"phone": phone})
            assert await linked(name, phone)
        # running: WAHA unpairs, stops, forgets the auth and starts again (a fresh QR)
        await client.logout_session("chip_lo_run")
        assert not await linked("chip_lo_run", "5511900000001")
        await emulator.wait_status("chip_lo_run", "SCAN_QR_CODE")
        # stopped: unpair returns early; only the local auth goes, the phone keeps the device
        await client.stop_session("chip_lo_stop")
        await client.logout_session("chip_lo_stop")
        assert emulator.state.sessions["chip_lo_stop"].auth is None
        assert await linked("chip_lo_stop", "5511900000002")


async def test_put_sends_stopped_through_the_old_config(emulator: Emu, client: WahaClient, receiver_factory) -> None:
    old, old_url = receiver_factory()
    new, new_url = receiver_factory()
    hook = {"events": ["session.status"], "hmac": None, "retries": None, "customHeaders": None}
    async with httpx.AsyncClient(base_url=emulator.url, headers={"X-Api-Key": API_KEY}) as http:
        config = {"webhooks": [{**hook, "url": old_url}]}
        await http.post("/api/sessions", json={"name": "chip_put_old", "start": True, "config": config})
        await emulator.wait_status("chip_put_old", "SCAN_QR_CODE")
        await http.put("/api/sessions/chip_put_old", json={"config": {"webhooks": [{**hook, "url": new_url}]}})

    def seen(receiver) -> list[str]:
        return [json.loads(body)["payload"]["status"] for _, body in receiver.accepted()]

    await eventually(lambda: "STOPPED" in seen(old) and "STARTING" in seen(new), what="both webhooks")
    assert "STOPPED" not in seen(new)
    assert seen(old).count("STARTING") == 1  # only the first start's


async def test_gows_flap_keeps_me(emulator: Emu, client: WahaClient) -> None:
    await create(client, "chip_flap")
    await emulator.wait_status("chip_flap", "SCAN_QR_CODE")
    async with httpx.AsyncClient(base_url=emulator.url, headers={"X-Api-Key": API_KEY}) as http:
        await http.post("/_emulator/sessions/chip_flap/scan", json={"phone": "5511900000003"})
        flapping = await http.post("/_emulator/sessions/chip_flap/flap", json={"seconds": 0.2})
        assert flapping.json()["status"] == "STARTING"
        assert flapping.json()["me"]["id"] == "5511900000003@c.us"
        assert (await http.post("/_emulator/sessions/chip_flap/flap")).status_code == 409  # not WORKING
    await emulator.wait_status("chip_flap", "WORKING")
    statuses = [e["payload"]["status"] for e in emulator.events("chip_flap")]
    assert statuses[-3:] == ["WORKING", "STARTING", "WORKING"]
    assert all(e["me"] is not None for e in emulator.events("chip_flap")[-2:])


async def test_graceful_shutdown_stops_sessions_and_the_store_restarts_them(receiver_factory) -> None:
    from app.waha.emulator import MemorySessionStore

    receiver, url = receiver_factory()
    store = MemorySessionStore()
    for life in (1, 2):
        app = create_emulator_app(EmulatorConfig(api_key=API_KEY, store=store, **FAST))
        with serve(app) as served:
            emu = Emu(served, app)
            async with WahaClient(served.url, API_KEY, timeout=5.0) as waha:
                if life == 1:
                    await waha.create_session(
                        "chip_boot", start=True, metadata={}, proxy=None, webhook_url=url, hmac_key=None
                    )
            await emu.wait_status("chip_boot", "SCAN_QR_CODE")

    def seen() -> list[str]:
        return [json.loads(body)["payload"]["status"] for _, body in receiver.accepted()]

    # each shutdown sent STOPPED (and still restarted the session on the next boot)
    await eventually(lambda: seen().count("STOPPED") == 2, what="a STOPPED per shutdown")
    assert seen().count("STARTING") == 2
