"""The emulator's liveness fault "zombie" over real HTTP: WORKING, but nothing flows and
check-exists hangs; a restart clears it unless it survives restarts (stored with the session)."""

from __future__ import annotations

import httpx
import pytest

from app.waha import WahaClient, WahaTimedOut
from app.waha.emulator import EmulatorConfig, create_emulator_app
from app.waha.emulator.store import MemorySessionStore
from tests.support.asgi_server import serve
from tests.support.waha import API_KEY, FAST, Emu

pytestmark = pytest.mark.anyio

HOOK = "http://127.0.0.1:9/hook"
KEY = {"X-Api-Key": API_KEY}


async def working(client: WahaClient, emu: Emu, name: str) -> None:
    await client.create_session(
        name, start=True, metadata={"user_id": "u1", "chip_id": "c1"}, proxy=None, webhook_url=HOOK, hmac_key=None
    )
    await emu.wait_status(name, "SCAN_QR_CODE")
    async with httpx.AsyncClient(base_url=emu.url, headers=KEY) as http:
        assert (await http.post(f"/_emulator/sessions/{name}/scan", json={"phone": "5511911112222"})).status_code == 200


async def fault(emu: Emu, name: str, body: dict) -> httpx.Response:
    async with httpx.AsyncClient(base_url=emu.url) as http:
        return await http.post(f"/_emulator/sessions/{name}/fault", json=body, headers=KEY)


async def test_check_exists_answers_a_live_session(client: WahaClient, emulator: Emu) -> None:
    await working(client, emulator, "live")
    answer = await client.check_exists("live", "5511911112222", timeout=2)
    assert answer == {"numberExists": True, "chatId": "5511911112222@c.us"}


async def test_zombie_stays_working_sends_nothing_and_hangs_until_a_restart(client: WahaClient, emulator: Emu) -> None:
    await working(client, emulator, "z")
    async with httpx.AsyncClient(base_url=emulator.url) as http:
        assert (await http.post("/_emulator/sessions/z/fault", json={"fault": "x"}, headers=KEY)).status_code == 400
        assert (await http.post("/_emulator/sessions/z/fault", json={"fault": "zombie"})).status_code == 401
    assert (await fault(emulator, "z", {"fault": "zombie"})).json() == {"fault": "zombie", "survive_restart": False}
    assert (await client.get_session("z")).status == "WORKING"
    before = len(emulator.state.events)
    async with httpx.AsyncClient(base_url=emulator.url, headers=KEY) as http:
        assert (await http.post("/_emulator/sessions/z/message", json={"text": "lost"})).status_code == 200
    assert len(emulator.state.events) == before  # nothing reaches WAHA from WhatsApp
    with pytest.raises(WahaTimedOut):
        await client.check_exists("z", "5511911112222", timeout=0.2)
    await client.restart_session("z")
    await emulator.wait_status("z", "WORKING")
    assert (await client.check_exists("z", "5511911112222", timeout=2))["numberExists"] is True


async def test_zombie_surviving_restarts_survives_a_session_and_an_instance_restart() -> None:
    store = MemorySessionStore()
    config = EmulatorConfig(api_key=API_KEY, store=store, **FAST)
    app = create_emulator_app(config)
    with serve(app) as served:
        emu = Emu(served, app)
        async with WahaClient(emu.url, API_KEY, timeout=5.0) as client:
            await working(client, emu, "z")
            assert (await fault(emu, "z", {"fault": "zombie", "survive_restart": True})).status_code == 200
            await client.restart_session("z")
            await emu.wait_status("z", "WORKING")
            with pytest.raises(WahaTimedOut):
                await client.check_exists("z", "5511911112222", timeout=0.2)
    again = create_emulator_app(config)  # the instance restarted on the same storage
    with serve(again) as served:
        emu = Emu(served, again)
        await emu.wait_status("z", "WORKING")
        assert emu.state.sessions["z"].zombie
        assert (await fault(emu, "z", {"fault": None})).status_code == 200
        async with WahaClient(emu.url, API_KEY, timeout=5.0) as client:
            assert (await client.check_exists("z", "5511911112222", timeout=2))["numberExists"] is True


async def test_zombie_needs_a_working_session(client: WahaClient, emulator: Emu) -> None:
    await client.create_session(
        "q", start=True, metadata={"user_id": "u1", "chip_id": "c1"}, proxy=None, webhook_url=HOOK, hmac_key=None
    )
    await emulator.wait_status("q", "SCAN_QR_CODE")
    assert (await fault(emulator, "q", {"fault": "zombie"})).status_code == 409


async def test_the_zombie_flag_turns_every_session_once_working() -> None:
    app = create_emulator_app(EmulatorConfig(api_key=API_KEY, zombie=True, **FAST))
    with serve(app) as served:
        emu = Emu(served, app)
        async with WahaClient(emu.url, API_KEY, timeout=5.0) as client:
            await working(client, emu, "f")
            assert emu.state.sessions["f"].zombie
            await client.restart_session("f")  # `once`: a restart cures it
            await emu.wait_status("f", "WORKING")
            assert not emu.state.sessions["f"].zombie
