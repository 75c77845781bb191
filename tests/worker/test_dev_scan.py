"""POST /api/v1/dev/chips/{id}/scan: in development (emulated WAHA) it links the chip as a phone
scan would; tenant-scoped; 409 unless waiting for a QR; absent (404) anywhere else."""

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


async def test_scan_connects_the_chip_in_development(tmp_path, clean_state):
    # as `whago dev` runs: API, worker and emulators in one process, sharing one local scheduler
    port = free_port()
    env = {
        **os.environ,
        **FAST_JOBS,
        "WHAGO_ENV": "development",
        "WHAGO_SCHEDULER": "local",
        "WHAGO_DEV_STATE_DIR": str(tmp_path),
        "WHAGO_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    served = ServedApp(dev_app(load_settings(env)), port=port).start()
    try:
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
            tenant, other = await register(http), await register(http)
            created = await http.post("/api/v1/chips", json={"alias": "dev"}, headers=tenant["headers"])
            chip = created.json()

            async def status(wanted: str) -> dict | None:
                body = (await http.get(f"/api/v1/chips/{chip['id']}", headers=tenant["headers"])).json()
                return body if body["status"] == wanted else None

            await eventually(lambda: status("waiting_qr"), 20, "waiting_qr")
            scan = f"/api/v1/dev/chips/{chip['id']}/scan"
            assert_error(await http.post(scan, json={}, headers=other["headers"]), 404, "not_found")
            bad = await http.post(scan, json={"phone_number": "12"}, headers=tenant["headers"])
            assert_error(bad, 400, "validation_error")
            scanned = await http.post(scan, json={"phone_number": "5511977776666"}, headers=tenant["headers"])
            assert scanned.status_code == 202, scanned.text
            assert scanned.json()["id"] == chip["id"]
            connected = await eventually(lambda: status("connected"), 20, "connected")
            assert connected["phone_number"] == "5511977776666"
            assert_error(await http.post(scan, headers=tenant["headers"]), 409, "chip_not_waiting_qr")
    finally:
        served.stop()


async def test_scan_is_absent_outside_development(client):
    user = await register(client)
    response = await client.post(
        "/api/v1/dev/chips/00000000-0000-0000-0000-000000000000/scan", json={}, headers=user["headers"]
    )
    assert_error(response, 404, "not_found")
