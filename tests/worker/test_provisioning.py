"""Provisioning, teardown and their faults, with a real worker, the API and WAHA emulators."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid

import httpx
import pytest

from app.chips.provisioning import ProvisioningService
from app.core import db
from app.core.tenant_keys import TenantKeys
from app.worker.runner import running_worker
from tests.support.asgi_server import free_port
from tests.support.platform import platform
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio


async def retried(p, chip: dict, attempts: int = 2) -> None:
    """Wait until the chip's provisioning job has been tried ``attempts`` times (it failed before)."""

    async def tried() -> bool:
        job = await p.container.queue.saq.job(f"provision:{chip['id']}")
        return job is not None and job.attempts >= attempts

    await eventually(tried, timeout=15, what=f"provisioning attempt {attempts}")


async def test_chip_reaches_waiting_qr_by_itself_with_metadata_and_webhook(static_emulator):
    served, emulator = static_emulator
    async with platform({"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url}) as p:
        tenant, chip = await p.waiting_chip()
        session = emulator.sessions[chip["session_name"]]
        assert session.config["metadata"] == {"user_id": tenant["user"]["id"], "chip_id": chip["id"]}
        hook = session.config["webhooks"][0]
        # the tenant's own route and derived key (not the platform's)
        user_id = tenant["user"]["id"]
        assert hook["url"] == f"{p.settings.webhook_url}/{user_id}"
        assert hook["hmac"]["key"] == TenantKeys(p.settings).webhook_key(user_id)
        assert hook["hmac"]["key"] != p.settings.webhook_hmac_key
        assert hook["retries"]["policy"] == "exponential"
        assert set(hook["events"]) == {"session.status", "message", "message.ack"}
        history = (await p.http.get(f"/api/v1/chips/{chip['id']}/events", headers=tenant["headers"])).json()["items"]
        assert [e["to_status"] for e in reversed(history)][:3] == ["provisioning", "starting", "waiting_qr"]
        # the instance record the admin endpoint serves
        row = await db.fetchrow(
            "SELECT status, base_url FROM instances WHERE user_id = $1", uuid.UUID(tenant["user"]["id"])
        )
        assert row["status"] == "running"
        assert row["base_url"] == served.url


async def test_provisioning_is_idempotent(static_emulator):
    served, emulator = static_emulator
    async with platform({"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url}, worker=False) as p:
        tenant = await p.tenant()
        chip = await p.create_chip(tenant)
        service = ProvisioningService(p.container)
        assert await service.provision(uuid.UUID(chip["id"])) == "created"
        await p.wait_status(tenant, chip["id"], "waiting_qr")
        first_qr = emulator.sessions[chip["session_name"]].qr_value
        # a re-run (worker crashed after creating the session) changes nothing
        assert await service.provision(uuid.UUID(chip["id"])) == "unchanged"
        assert await service.provision(uuid.UUID(chip["id"])) == "unchanged"
        assert list(emulator.sessions) == [chip["session_name"]]
        assert emulator.sessions[chip["session_name"]].qr_value == first_qr


async def test_waha_down_then_back_retries_until_waiting_qr(static_emulator):
    served, emulator = static_emulator
    emulator.fault = "error500"
    async with platform({"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url, "WHAGO_JOB_ATTEMPTS": "30"}) as p:
        tenant = await p.tenant()
        chip = await p.create_chip(tenant)
        await retried(p, chip)
        assert (await p.chip(tenant, chip["id"]))["status"] == "provisioning"
        emulator.fault = "none"  # WAHA is back: no manual action needed
        ready = await p.wait_status(tenant, chip["id"], "waiting_qr", timeout=30)
        assert ready["error"] is None


async def test_waha_down_past_the_last_retry_fails_the_chip_with_a_reason(clean_state):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    async with platform({"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": dead, "WHAGO_JOB_ATTEMPTS": "2"}) as p:
        tenant = await p.tenant()
        chip = await p.create_chip(tenant)
        failed = await p.wait_status(tenant, chip["id"], "failed", timeout=30)
        assert "Provisioning failed after 2 attempts" in failed["error"]
        assert "api key" not in failed["error"].lower()
        assert p.settings.waha_api_key not in failed["error"]
        history = (await p.http.get(f"/api/v1/chips/{chip['id']}/events", headers=tenant["headers"])).json()["items"]
        assert history[0]["to_status"] == "failed"
        assert history[0]["source"] == "worker"


async def test_teardown_deletes_session_releases_proxy_and_limits(static_emulator):
    served, emulator = static_emulator
    async with platform({"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url}) as p:
        proxy = await db.fetchrow(
            "INSERT INTO proxies (scheme, host, port, max_chips) VALUES ('http', '127.0.0.1', 3128, 5) RETURNING id"
        )
        tenant, chip = await p.waiting_chip()
        assert emulator.sessions[chip["session_name"]].config["proxy"]["server"] == "127.0.0.1:3128"
        await p.container.redis.set(f"whago:ratelimit:pairing:{chip['id']}", "x")
        response = await p.http.delete(f"/api/v1/chips/{chip['id']}", headers=tenant["headers"])
        assert response.status_code == 202
        await eventually(lambda: _gone(p, tenant, chip), timeout=15, what="teardown to complete")
        assert chip["session_name"] not in emulator.sessions
        assert (await p.http.get("/api/v1/chips", headers=tenant["headers"])).json()["total"] == 0
        load = await db.fetchrow("SELECT count(*) AS n FROM chips WHERE proxy_id = $1", proxy["id"])
        assert load["n"] == 0
        assert not await p.container.redis.exists(f"whago:ratelimit:pairing:{chip['id']}")
        # the plan slot is free again
        again = await p.http.post("/api/v1/chips", json={"alias": "next"}, headers=tenant["headers"])
        assert again.status_code == 202


async def _gone(p, tenant: dict, chip: dict) -> bool:
    response = await p.http.get(f"/api/v1/chips/{chip['id']}", headers=tenant["headers"])
    return response.status_code == 404


async def test_teardown_of_a_session_already_gone_counts_as_done(static_emulator):
    served, _ = static_emulator
    async with platform({"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url}, worker=False) as p:
        tenant = await p.tenant()
        chip = await p.create_chip(tenant)
        service = ProvisioningService(p.container)
        await service.provision(uuid.UUID(chip["id"]))
        async with httpx.AsyncClient() as raw:
            await raw.delete(
                f"{served.url}/api/sessions/{chip['session_name']}", headers={"X-Api-Key": p.settings.waha_api_key}
            )
        await p.http.delete(f"/api/v1/chips/{chip['id']}", headers=tenant["headers"])
        assert await service.teardown(uuid.UUID(chip["id"])) == "deleted"
        assert await service.teardown(uuid.UUID(chip["id"])) == "gone"


async def test_a_worker_killed_mid_provisioning_is_finished_by_another(static_emulator, tmp_path):
    """Worker A (a real process) dies with SIGKILL mid-provisioning; worker B finishes the job."""
    served, emulator = static_emulator
    env = {"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url}
    async with platform(env, worker=False) as p:
        proxy = await db.fetchrow(
            "INSERT INTO proxies (scheme, host, port, max_chips) VALUES ('http', '127.0.0.1', 3128, 1) RETURNING id"
        )
        marker = tmp_path / "provisioned"
        log = (tmp_path / "doomed.log").open("w")
        # Popen returns at once; the test waits for the process's marker with eventually()
        doomed = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "tests.worker.doomed_worker", str(marker)], env=p.env, stdout=log, stderr=log
        )
        try:
            tenant = await p.tenant()
            chip = await p.create_chip(tenant)

            def provisioned() -> bool:
                # a worker that died before its marker fails here at once, with its log
                assert doomed.poll() is None, (tmp_path / "doomed.log").read_text()[-3000:]
                return marker.exists()

            await eventually(provisioned, timeout=45, what="worker A to reach its marker")
        finally:
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)
        job = await p.container.queue.saq.job(f"provision:{chip['id']}")
        assert job.status == "active"  # orphaned: nobody will finish it but another worker
        async with running_worker(p.settings, p.container, with_cron=False):

            async def finished():
                job = await p.container.queue.saq.job(f"provision:{chip['id']}")
                return job if job is not None and job.status == "complete" else None

            job = await eventually(finished, timeout=30, what="the swept job to be finished")
            assert job.attempts >= 2  # a slow sweep may re-run it once more: still one session
            await p.wait_status(tenant, chip["id"], "waiting_qr")
        assert list(emulator.sessions) == [chip["session_name"]]  # no duplicate session
        # the re-run kept the one assignment: no second proxy slot taken, nothing leaked
        load = await db.fetch("SELECT id, proxy_id FROM chips")
        assert [(str(r["id"]), r["proxy_id"]) for r in load] == [(chip["id"], proxy["id"])]
        assert emulator.sessions[chip["session_name"]].config["proxy"]["server"] == "127.0.0.1:3128"
