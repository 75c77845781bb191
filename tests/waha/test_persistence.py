"""Emulator session storage (waha.md §1.5): a restarted WAHA restarts the sessions it was running.

Each test serves an emulator over real HTTP, shuts it down (ASGI lifespan shutdown, like a
container stop) and serves a NEW emulator on the same store, then checks what came back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import msgspec
import pytest

from app.waha import WahaClient, WahaNotFound
from app.waha.emulator import (
    EmulatorConfig,
    FileSessionStore,
    MemorySessionStore,
    SessionStore,
    StoredSession,
    create_emulator_app,
)
from tests.support.asgi_server import serve
from tests.support.waha import API_KEY, FAST, HMAC_KEY, Emu
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio

WORKER = "whago-waha-test-worker"


@contextmanager
def served(store: SessionStore | None, worker_id: str = WORKER, **overrides: Any) -> Iterator[Emu]:
    options = {**FAST, "worker_id": worker_id, "qr_first_seconds": 30.0, **overrides}
    app = create_emulator_app(EmulatorConfig(api_key=API_KEY, store=store, **options))
    with serve(app) as server:
        yield Emu(server, app)


async def create(emu: Emu, name: str, hook: str, *, start: bool = True) -> None:
    async with WahaClient(emu.url, API_KEY, timeout=5.0) as waha:
        await waha.create_session(
            name,
            start=start,
            metadata={"user_id": "u1", "chip_id": name},
            proxy=None,
            webhook_url=hook,
            hmac_key=HMAC_KEY,
            retry_attempts=2,
            retry_delay_seconds=0,
        )


async def control(emu: Emu, name: str, action: str, body: dict | None = None) -> None:
    async with httpx.AsyncClient(base_url=emu.url, headers={"X-Api-Key": API_KEY}) as http:
        response = await http.post(f"/_emulator/sessions/{name}/{action}", json=body or {})
        assert response.status_code == 200, response.text


async def call(emu: Emu, method: str, name: str) -> Any:
    async with WahaClient(emu.url, API_KEY, timeout=5.0) as waha:
        return await getattr(waha, method)(name)


def statuses(emu: Emu, name: str) -> list[str]:
    return [e["payload"]["status"] for e in emu.events(name)]


def delivered(receiver, emu: Emu, name: str) -> list[tuple[str, dict | None]]:
    """(status, me) of every session.status delivery for ``name`` emitted by ``emu`` (not by an
    earlier emulator); each one's HMAC checked."""
    mine = {e["id"] for e in list(emu.state.events)}
    out = []
    for headers, body in receiver.accepted():
        envelope = json.loads(body)
        if envelope["id"] not in mine or envelope["session"] != name or envelope["event"] != "session.status":
            continue
        assert headers["x-webhook-hmac"] == hmac.new(HMAC_KEY.encode(), body, hashlib.sha512).hexdigest()
        assert envelope["metadata"] == {"user_id": "u1", "chip_id": name}
        out.append((envelope["payload"]["status"], envelope["me"]))
    return out


async def first_life(emu: Emu, hook: str) -> None:
    """linked+running, waiting for QR, linked but stopped by a user, logged out (running),
    failed with the link kept, and deleted."""
    for name in ("chip_linked", "chip_qr", "chip_stopped", "chip_loggedout", "chip_failed", "chip_deleted"):
        await create(emu, name, hook)
    for name in ("chip_linked", "chip_qr", "chip_stopped", "chip_loggedout", "chip_failed", "chip_deleted"):
        await emu.wait_status(name, "SCAN_QR_CODE")
    for name, phone in (
        ("chip_linked", "5511911110000"),
        ("chip_stopped", "5511922220000"),
        ("chip_loggedout", "5511933330000"),
        ("chip_failed", "5511944440000"),
        ("chip_deleted", "5511955550000"),
    ):
        await control(emu, name, "scan", {"phone": phone})
    await call(emu, "stop_session", "chip_stopped")
    await call(emu, "logout_session", "chip_loggedout")  # running: back to a fresh QR
    await emu.wait_status("chip_loggedout", "SCAN_QR_CODE")
    await control(emu, "chip_failed", "fail")
    await call(emu, "delete_session", "chip_deleted")


async def check_second_life(emu: Emu, receiver) -> None:
    async with WahaClient(emu.url, API_KEY) as waha:
        names = {s.name for s in await waha.list_sessions(all=True)}
    assert names == {"chip_linked", "chip_qr", "chip_stopped", "chip_loggedout", "chip_failed"}

    # linked and running: STARTING -> WORKING, same number, no QR shown, webhooks delivered signed
    await emu.wait_status("chip_linked", "WORKING")
    assert statuses(emu, "chip_linked") == ["STARTING", "WORKING"]
    assert emu.state.sessions["chip_linked"].qr_count == 0
    info = await call(emu, "get_session", "chip_linked")
    assert info.me is not None
    assert info.me.id == "5511911110000@c.us"
    assert info.config.metadata == {"user_id": "u1", "chip_id": "chip_linked"}
    hooks = await eventually(
        lambda: (lambda d: d if len(d) >= 2 else None)(delivered(receiver, emu, "chip_linked")), what="restart webhooks"
    )
    assert [status for status, _ in hooks] == ["STARTING", "WORKING"]
    assert hooks[0][1] is None
    assert hooks[1][1]["id"] == "5511911110000@c.us"

    # a FAILED session with its link kept was running: it reconnects too
    await emu.wait_status("chip_failed", "WORKING")
    assert statuses(emu, "chip_failed") == ["STARTING", "WORKING"]

    # unlinked and running: back to a QR
    for name in ("chip_qr", "chip_loggedout"):
        await emu.wait_status(name, "SCAN_QR_CODE")
        assert statuses(emu, name) == ["STARTING", "SCAN_QR_CODE"]
        assert emu.state.sessions[name].auth is None

    # stopped by a user: stays stopped (WHATSAPP_RESTART_ALL_SESSIONS is off), keeps its link
    assert emu.status("chip_stopped") == "STOPPED"
    assert statuses(emu, "chip_stopped") == []
    await call(emu, "start_session", "chip_stopped")
    await emu.wait_status("chip_stopped", "WORKING")
    assert (await call(emu, "get_session", "chip_stopped")).me.id == "5511922220000@c.us"

    with pytest.raises(WahaNotFound):
        await call(emu, "get_session", "chip_deleted")


async def test_memory_store_restarts_running_sessions(receiver_factory) -> None:
    receiver, hook = receiver_factory()
    store = MemorySessionStore()
    with served(store) as emu:
        await first_life(emu, hook)
        assert {s.name for s in store.load(WORKER)} == {
            "chip_linked",
            "chip_qr",
            "chip_stopped",
            "chip_loggedout",
            "chip_failed",
        }
    with served(store) as emu:
        await check_second_life(emu, receiver)


async def test_file_store_restarts_running_sessions_and_keeps_secrets_private(receiver_factory, tmp_path) -> None:
    receiver, hook = receiver_factory()
    store = FileSessionStore(tmp_path)
    with served(store) as emu:
        await first_life(emu, hook)
    folder = tmp_path / WORKER
    files = {p.name for p in folder.iterdir()}
    assert files == {f"{n}.json" for n in ("chip_linked", "chip_qr", "chip_stopped", "chip_loggedout", "chip_failed")}
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # holds the HMAC key, like WAHA's storage
    linked = msgspec.json.decode((folder / "chip_linked.json").read_bytes(), type=StoredSession)
    assert linked.running
    assert linked.auth["id"] == "5511911110000@c.us"
    assert linked.config["webhooks"][0]["hmac"] == {"key": HMAC_KEY}
    stopped = msgspec.json.decode((folder / "chip_stopped.json").read_bytes(), type=StoredSession)
    assert not stopped.running
    assert stopped.auth is not None
    logged_out = msgspec.json.decode((folder / "chip_loggedout.json").read_bytes(), type=StoredSession)
    assert logged_out.running
    assert logged_out.auth is None
    with served(FileSessionStore(tmp_path)) as emu:  # a fresh store object: only the files carry over
        await check_second_life(emu, receiver)


async def test_store_is_per_worker_and_reset_wipes_it(tmp_path) -> None:
    store = FileSessionStore(tmp_path)
    with served(store, worker_id="worker-a") as emu:
        await create(emu, "chip_a", "http://127.0.0.1:9/hook")
        await emu.wait_status("chip_a", "SCAN_QR_CODE")
    with served(store, worker_id="worker-b") as emu:
        assert emu.state.sessions == {}  # another worker's sessions are not ours to start
    with served(store, worker_id="worker-a") as emu:
        await emu.wait_status("chip_a", "SCAN_QR_CODE")
        async with httpx.AsyncClient(base_url=emu.url, headers={"X-Api-Key": API_KEY}) as http:
            assert (await http.post("/_emulator/reset")).status_code == 200
    assert not (tmp_path / "worker-a").exists() or not any((tmp_path / "worker-a").iterdir())
    with served(store, worker_id="worker-a") as emu:
        assert emu.state.sessions == {}


async def test_without_a_store_a_restart_forgets_everything() -> None:
    with served(None) as emu:
        await create(emu, "chip_gone", "http://127.0.0.1:9/hook")
        await emu.wait_status("chip_gone", "SCAN_QR_CODE")
        await control(emu, "chip_gone", "scan")
    with served(None) as emu:
        assert emu.state.sessions == {}


async def test_restart_sessions_off_keeps_everything_stopped() -> None:
    store = MemorySessionStore()
    with served(store) as emu:
        await create(emu, "chip_x", "http://127.0.0.1:9/hook")
        await emu.wait_status("chip_x", "SCAN_QR_CODE")
        await control(emu, "chip_x", "scan")
    with served(store, restart_sessions=False) as emu:  # WAHA_WORKER_RESTART_SESSIONS=False
        assert emu.status("chip_x") == "STOPPED"
        assert emu.events("chip_x") == []
        await call(emu, "start_session", "chip_x")
        await emu.wait_status("chip_x", "WORKING")  # the link was kept all the same


async def test_unlink_and_update_are_stored() -> None:
    store = MemorySessionStore()
    with served(store) as emu:
        await create(emu, "chip_u", "http://127.0.0.1:9/hook")
        await emu.wait_status("chip_u", "SCAN_QR_CODE")
        await control(emu, "chip_u", "scan")
        assert store.load(WORKER)[0].auth is not None
        await control(emu, "chip_u", "disconnect", {"status": "STOPPED"})  # the phone unlinked it
        record = store.load(WORKER)[0]
        assert record.auth is None
        assert record.running is False
        async with WahaClient(emu.url, API_KEY) as waha:
            await waha.update_session("chip_u", {"metadata": {"user_id": "u2"}})
        assert store.load(WORKER)[0].config["metadata"] == {"user_id": "u2"}


def test_store_rejects_unsafe_names(tmp_path) -> None:
    store = FileSessionStore(tmp_path)
    for bad in ("../etc", "", "a/b", ".hidden"):
        with pytest.raises(ValueError):
            store.save(bad, StoredSession(name="chip_x", config={}))
    with pytest.raises(ValueError):
        store.save("worker", StoredSession(name="../x", config={}))
    store.clear("never-existed")  # idempotent
    store.remove("never-existed", "chip_x")
    assert store.load("never-existed") == []
