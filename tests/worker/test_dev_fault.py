"""POST /api/v1/dev/chips/{id}/fault: in development (emulated WAHA) the chip's session turns into a
zombie, or back; tenant-scoped; 409 unless connected; absent (404) anywhere else."""

from __future__ import annotations

import os

import httpx
import pytest

from app.dev import dev_app
from app.settings import load_settings
from tests.support.api import register
from tests.support.asgi_server import ServedApp, free_port
from tests.support.errors import assert_error
from tests.support.platform import FAST_JOBS
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio


async def test_fault_turns_the_emulated_session_into_a_zombie(tmp_path, clean_state):
    port = free_port()
    env = {
        **os.environ,
        **FAST_JOBS,
        "WHAGO_ENV": "development",
        "WHAGO_SCHEDULER": "local",
        "WHAGO_DEV_STATE_DIR": str(tmp_path),
        "WHAGO_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    app = dev_app(load_settings(env))
    served = ServedApp(app, port=port).start()
    try:
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
            tenant, other = await register(http), await register(http)
            chip = (await http.post("/api/v1/chips", json={"alias": "dev"}, headers=tenant["headers"])).json()

            async def status(wanted: str) -> dict | None:
                body = (await http.get(f"/api/v1/chips/{chip['id']}", headers=tenant["headers"])).json()
                return body if body["status"] == wanted else None

            await eventually(lambda: status("waiting_qr"), 20, "waiting_qr")
            fault = f"/api/v1/dev/chips/{chip['id']}/fault"
            zombie = {"fault": "zombie"}
            assert_error(await http.post(fault, json=zombie, headers=tenant["headers"]), 409, "chip_not_connected")
            scan = f"/api/v1/dev/chips/{chip['id']}/scan"
            assert (await http.post(scan, json={}, headers=tenant["headers"])).status_code == 202
            await eventually(lambda: status("connected"), 20, "connected")

            assert_error(await http.post(fault, json=zombie, headers=other["headers"]), 404, "not_found")
            bad = await http.post(fault, json={"fault": "dead"}, headers=tenant["headers"])
            assert_error(bad, 400, "validation_error")
            made = await http.post(fault, json={**zombie, "survive_restart": True}, headers=tenant["headers"])
            assert made.status_code == 202, made.text
            assert made.json()["status"] == "connected"  # a zombie still says connected
            emulator = _emulator_of(app, tenant["user"]["id"])
            session = emulator.sessions[chip["session_name"]]
            assert session.zombie
            assert session.zombie_survives
            cured = await http.post(fault, json={"fault": None}, headers=tenant["headers"])
            assert cured.status_code == 202, cured.text
            assert not session.zombie
    finally:
        served.stop()


def _emulator_of(app, user_id: str):
    """The tenant's in-process emulator (the local scheduler keeps them in this process)."""
    scheduler = app.state.container.scheduler
    scheduler = getattr(scheduler, "inner", scheduler)
    running = scheduler._running[user_id]
    return running.server.config.app.state.emulator


async def test_fault_is_absent_outside_development(client):
    user = await register(client)
    response = await client.post(
        "/api/v1/dev/chips/00000000-0000-0000-0000-000000000000/fault",
        json={"fault": "zombie"},
        headers=user["headers"],
    )
    assert_error(response, 404, "not_found")
