"""WAHA as its source behaves on instance restarts and FAILED sessions (issue 12): a graceful
shutdown stops every session (a STOPPED webhook each), and a worker that comes back under another
id or without its storage does not restart them. Chips the tenant did not stop must not stay down."""

from __future__ import annotations

import uuid

import httpx
import pytest

from app.chips.provisioning import ProvisioningService
from app.core import db
from app.reconciler import service as reconciler_module
from app.reconciler.service import Reconciler
from app.waha.emulator import MemorySessionStore, create_emulator_app
from tests.support.asgi_server import ServedApp
from tests.support.env import WAHA_API_KEY
from tests.support.platform import emulator_config, platform
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def no_settle_delay(monkeypatch):
    monkeypatch.setattr(reconciler_module, "SETTLE_SECONDS", 0)


async def _control(url: str, path: str, body: dict | None = None) -> dict:
    async with httpx.AsyncClient(base_url=url, headers={"X-Api-Key": WAHA_API_KEY}) as http:
        response = await http.post(path, json=body or {})
        assert response.status_code == 200, response.text
        return response.json()


@pytest.mark.parametrize("comes_back", ["without_its_sessions", "with_its_sessions_stopped"])
async def test_an_instance_restart_does_not_leave_chips_down(clean_state, settings, comes_back):
    store = MemorySessionStore()
    first = ServedApp(create_emulator_app(emulator_config(settings, store=store))).start()
    port = first.port
    second = None
    try:
        async with platform({"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": first.url}) as p:
            tenant, chip = await p.waiting_chip(plan="business")
            await _control(first.url, f"/_emulator/sessions/{chip['session_name']}/scan", {"phone": "5511955554444"})
            await p.wait_status(tenant, chip["id"], "connected")
            # a second chip the tenant logged out: it must stay down
            quiet = await p.create_chip(tenant, alias="quiet")
            await p.wait_status(tenant, quiet["id"], "waiting_qr")
            assert (
                await p.http.post(f"/api/v1/chips/{quiet['id']}/logout", headers=tenant["headers"])
            ).status_code == 202

            first.stop()  # graceful: WAHA stops every running session, a STOPPED webhook each
            await p.wait_status(tenant, chip["id"], "disconnected")

            if comes_back == "without_its_sessions":  # new storage (or another worker id)
                config = emulator_config(settings)
            else:  # its storage, but WAHA_WORKER_RESTART_SESSIONS off: the sessions stay STOPPED
                config = emulator_config(settings, store=store, restart_sessions=False)
            second = ServedApp(create_emulator_app(config), port=port).start()
            emulator = second.app.state.emulator

            report = await Reconciler(p.container).run()
            assert not report.errors, report.as_dict()
            if comes_back == "with_its_sessions_stopped":  # one chip the tenant wants running
                assert report.drift["session_stopped"] == 1, report.as_dict()
            # linked again from storage (no QR), or a new pairing when the link was lost
            expected = "waiting_qr" if comes_back == "without_its_sessions" else "connected"
            await p.wait_status(tenant, chip["id"], expected)
            assert (await p.chip(tenant, quiet["id"]))["status"] == "disconnected"
            assert emulator.sessions[quiet["session_name"]].status == "STOPPED"
    finally:
        for served in (first, second):
            if served is not None:
                served.stop()


async def test_proxy_rotation_of_a_failed_linked_chip_reconnects_it(static_emulator):
    """WAHA counts FAILED as running: the PUT that carries the new proxy restarts the session
    (STOPPED through the old config, then STARTING), and a linked one reconnects without a QR."""
    served, emulator = static_emulator
    async with platform({"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url}) as p:
        tenant, chip = await p.waiting_chip()
        await _control(served.url, f"/_emulator/sessions/{chip['session_name']}/scan", {"phone": "5511933332222"})
        await p.wait_status(tenant, chip["id"], "connected")
        await _control(served.url, f"/_emulator/sessions/{chip['session_name']}/fail")
        await p.wait_status(tenant, chip["id"], "failed")
        await db.fetch("UPDATE chips SET proxy_dirty = true WHERE id = $1", uuid.UUID(chip["id"]))
        assert await ProvisioningService(p.container).rotate_proxy(uuid.UUID(chip["id"])) == "updated"
        got = await p.wait_status(tenant, chip["id"], "connected")
        assert got["phone_number"] == "5511933332222"
        assert got["error"] is None
        statuses = [e["payload"]["status"] for e in list(emulator.events) if e["session"] == chip["session_name"]]
        assert statuses[-4:] == ["FAILED", "STOPPED", "STARTING", "WORKING"]  # no /start on FAILED


async def test_a_logged_out_chip_whose_session_runs_again_is_stopped_not_followed(static_emulator):
    """The tenant's intent wins: a session running for a logged-out chip (its logout's stop never
    happened, or something started it) is stopped; the chip does not follow it to waiting_qr."""
    served, emulator = static_emulator
    async with platform({"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url}) as p:
        tenant, chip = await p.waiting_chip()
        assert (await p.http.post(f"/api/v1/chips/{chip['id']}/logout", headers=tenant["headers"])).status_code == 202
        await p.wait_status(tenant, chip["id"], "disconnected")
        emulator.deliver_webhooks = False  # its webhooks are lost: only the reconciler sees it run
        await p.container.waha.get(served.url).start_session(chip["session_name"])
        session = emulator.sessions[chip["session_name"]]
        await eventually(lambda: session.status == "SCAN_QR_CODE", what="the session running again")
        report = await Reconciler(p.container).run()
        assert report.drift["session_stopped_as_intended"] == 1, report.as_dict()
        assert session.status == "STOPPED"
        assert (await p.chip(tenant, chip["id"]))["status"] == "disconnected"


async def test_a_tenant_request_never_waits_on_waha_past_its_budget(clean_state, settings):
    """Real WAHA takes 3 s per stop (4 s per logout): the request gives up at its budget with a
    503, and the reconciler finishes the job later."""
    import time

    served = ServedApp(create_emulator_app(emulator_config(settings, stop_wait_seconds=2.0))).start()
    try:
        env = {"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url, "WHAGO_WAHA_REQUEST_BUDGET_SECONDS": "0.5"}
        async with platform(env) as p:
            tenant, chip = await p.waiting_chip()
            started = time.monotonic()
            answer = await p.http.post(f"/api/v1/chips/{chip['id']}/logout", headers=tenant["headers"])
            assert answer.status_code == 503, answer.text
            assert time.monotonic() - started < 1.5
    finally:
        served.stop()
