"""The whole chip flow with the production (nomad) scheduler, through the Nomad/Consul double:
job registered and validated against Nomad's schema, instance found through Consul, session in
the tenant's own WAHA, webhooks, QR, scan, message, logout, delete; and healing a purged job."""

from __future__ import annotations

import io
import uuid

import httpx
import pytest
import zxingcpp
from PIL import Image

from app.core import db
from app.core.tenant_keys import TenantKeys
from app.reconciler import service as reconciler_module
from app.reconciler.service import Reconciler
from app.scheduler.base import job_id_for
from tests.doubles import serve_double
from tests.support.platform import nomad_env, platform
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio


@pytest.fixture()
def double(clean_state):
    with serve_double(check_interval=0.02, registration_gap=0.05) as served:
        yield served


def emulator_url(double, user_id: str) -> str:
    alloc = double.current_alloc(job_id_for(user_id))
    assert alloc is not None, "no allocation"
    assert alloc.port, "the allocation has no port yet"
    return f"http://127.0.0.1:{alloc.port}"


async def test_end_to_end_through_nomad_and_consul(double):
    async with platform(nomad_env(double)) as p:
        tenant = await p.tenant("business")
        user_id = tenant["user"]["id"]
        chip = await p.create_chip(tenant, "sales-1")
        await p.wait_status(tenant, chip["id"], "waiting_qr", timeout=30)

        job = double.job(job_id_for(user_id)).job
        assert job["Meta"]["whago_user_id"] == user_id
        assert job["Meta"]["whago_plan"] == "business"
        waha = emulator_url(double, user_id)
        instances = await p.container.scheduler.list_instances()
        assert [(i.user_id, i.status) for i in instances] == [(user_id, "running")]

        qr = await p.http.get(f"/api/v1/chips/{chip['id']}/qr", headers={**tenant["headers"], "Accept": "image/png"})
        assert qr.status_code == 200
        assert qr.headers["content-type"].startswith("image/png")
        decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.content)))
        async with httpx.AsyncClient(
            base_url=waha, headers={"X-Api-Key": TenantKeys(p.settings).api_key(user_id)}
        ) as raw:
            value = (await raw.get(f"/api/{chip['session_name']}/auth/qr", params={"format": "raw"})).json()["value"]
            assert decoded
            assert decoded[0].text == value
            scanned = await raw.post(
                f"/_emulator/sessions/{chip['session_name']}/scan", json={"phone": "5511912345678"}
            )
            assert scanned.status_code in (200, 201)
        connected = await p.wait_status(tenant, chip["id"], "connected")
        assert connected["phone_number"] == "5511912345678"

        sent = await p.http.post(
            f"/api/v1/chips/{chip['id']}/messages",
            json={"to": "5511999999999", "text": "hello"},
            headers=tenant["headers"],
        )
        assert sent.status_code == 202, sent.text
        assert sent.json()["chip_id"] == chip["id"]
        assert sent.json()["to"] == "5511999999999"

        # the send reaches the tenant's own WAHA (with the tenant's derived key) and its acks come back
        async def acked():
            got = await p.http.get(
                f"/api/v1/chips/{chip['id']}/messages/{sent.json()['id']}", headers=tenant["headers"]
            )
            return got.json() if got.json()["status"] in ("delivered", "read") else None

        try:
            await eventually(acked, timeout=15, what="the message to be delivered", interval=0.1)
        except AssertionError:
            message = await p.http.get(
                f"/api/v1/chips/{chip['id']}/messages/{sent.json()['id']}", headers=tenant["headers"]
            )
            raise AssertionError(message.json()) from None

        logout = await p.http.post(f"/api/v1/chips/{chip['id']}/logout", headers=tenant["headers"])
        assert logout.status_code == 202
        await p.wait_status(tenant, chip["id"], "disconnected")

        assert (await p.http.delete(f"/api/v1/chips/{chip['id']}", headers=tenant["headers"])).status_code == 202

        async def gone() -> bool:
            response = await p.http.get(f"/api/v1/chips/{chip['id']}", headers=tenant["headers"])
            return response.status_code == 404

        await eventually(gone, timeout=20, what="the chip to be deleted")
        async with httpx.AsyncClient(
            base_url=waha, headers={"X-Api-Key": TenantKeys(p.settings).api_key(user_id)}
        ) as raw:
            assert (await raw.get("/api/sessions", params={"all": "true"})).json() == []


async def test_a_purged_job_is_brought_back_by_the_reconciler(double, monkeypatch):
    monkeypatch.setattr(reconciler_module, "SETTLE_SECONDS", 0)
    async with platform(nomad_env(double)) as p:
        tenant = await p.tenant("business")
        user_id = tenant["user"]["id"]
        chips = [await p.create_chip(tenant, f"c{i}") for i in range(2)]
        for chip in chips:
            await p.wait_status(tenant, chip["id"], "waiting_qr", timeout=30)
        old_port = double.current_alloc(job_id_for(user_id)).port

        async with httpx.AsyncClient(base_url=double.nomad_url) as nomad:  # an operator, behind our back
            assert (await nomad.delete(f"/v1/job/{job_id_for(user_id)}", params={"purge": "true"})).status_code == 200
        await p.container.scheduler.invalidate(user_id)

        report = await Reconciler(p.container).run()
        assert report.drift["instance_missing"] == 1, report.as_dict()

        async def sessions_back():
            alloc = double.current_alloc(job_id_for(user_id))
            if alloc is None or not alloc.port or alloc.client_status != "running":
                return None
            async with httpx.AsyncClient(headers={"X-Api-Key": TenantKeys(p.settings).api_key(user_id)}) as raw:
                listed = await raw.get(f"http://127.0.0.1:{alloc.port}/api/sessions", params={"all": "true"})
            names = {s["name"] for s in listed.json()} if listed.status_code == 200 else set()
            return alloc if names == {c["session_name"] for c in chips} else None

        alloc = await eventually(sessions_back, timeout=30, what="the sessions to come back", interval=0.1)
        assert alloc.port != old_port

        # The old allocation's shutdown STOPPED may carry a later time than the new one's first
        # events (both run at once in the double, and deliveries retry): reconcile passes, as the
        # cron runs them, put each chip on WAHA's own status.
        async def healed() -> bool:
            await Reconciler(p.container).run()
            statuses = {(await p.chip(tenant, c["id"]))["status"] for c in chips}
            return statuses == {"waiting_qr"}

        await eventually(healed, timeout=30, what="the chips back on waiting_qr", interval=0.2)

        # and a run soon sees no drift (the re-provisioning settles at its own pace)
        async def settled():
            report = await Reconciler(p.container).run()
            return report if not report.drift else None

        report = await eventually(settled, timeout=10, what="a reconciler run without drift", interval=0.2)
        assert not report.errors, report.as_dict()


async def test_nomad_down_during_provisioning_then_back(double):
    double.nomad_status = 503  # Nomad answers nothing useful
    async with platform({**nomad_env(double), "WHAGO_JOB_ATTEMPTS": "40"}) as p:
        tenant = await p.tenant()
        chip = await p.create_chip(tenant)

        async def retried() -> bool:  # the first attempt failed on Nomad and a retry has started
            job = await p.container.queue.saq.job(f"provision:{chip['id']}")
            return job is not None and job.attempts >= 2

        await eventually(retried, timeout=15, what="a second provisioning attempt")
        assert (await p.chip(tenant, chip["id"]))["status"] == "provisioning"
        assert double.job(job_id_for(tenant["user"]["id"])) is None  # nothing half-made
        ready = await p.http.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["extra"]["scheduler"] != "ok"
        double.nomad_status = None  # back: no manual action needed
        await p.wait_status(tenant, chip["id"], "waiting_qr", timeout=40)
        assert (await p.http.get("/health/ready")).json()["checks"]["scheduler"] == "ok"


async def test_nomad_refusing_the_job_fails_the_chip_at_once(double):
    """Nomad answers a semantic job error with 500 + text (here: a node pool that does not exist).
    That is no outage: the chip fails on the first attempt and says what Nomad said."""
    env = {**nomad_env(double), "WHAGO_NOMAD_NODE_POOL": "gpu", "WHAGO_JOB_ATTEMPTS": "40"}
    async with platform(env) as p:
        tenant = await p.tenant()
        chip = await p.create_chip(tenant)
        await p.wait_status(tenant, chip["id"], "failed", timeout=20)
        # the tenant reads a short summary; operators get Nomad's own words
        assert (await p.chip(tenant, chip["id"]))["error"] == "Provisioning failed. Details are with the operators."
        admin = await p.tenant()
        await db.fetch("UPDATE users SET is_admin = true WHERE id = $1", uuid.UUID(admin["user"]["id"]))
        listed = await p.http.get(f"/api/v1/admin/chips?user_id={tenant['user']['id']}", headers=admin["headers"])
        [row] = listed.json()["items"]
        assert 'nonexistent node pool "gpu"' in row["error"], row
        job = await p.container.queue.saq.job(f"provision:{chip['id']}")
        assert job is not None
        assert job.attempts == 1  # not retried
        assert double.job(job_id_for(tenant["user"]["id"])) is None


async def test_a_logged_out_chip_running_again_is_stopped_on_the_tenants_own_waha(double, monkeypatch):
    """The reconciler's stop of a session that runs for a logged-out chip goes to the tenant's own
    instance with the tenant's key (the platform key is refused there)."""
    monkeypatch.setattr(reconciler_module, "SETTLE_SECONDS", 0)
    async with platform(nomad_env(double)) as p:
        tenant = await p.tenant("business")
        user_id = tenant["user"]["id"]
        chip = await p.create_chip(tenant, "sales-1")
        await p.wait_status(tenant, chip["id"], "waiting_qr", timeout=30)
        assert (await p.http.post(f"/api/v1/chips/{chip['id']}/logout", headers=tenant["headers"])).status_code == 202
        await p.wait_status(tenant, chip["id"], "disconnected")
        emulator = double.emulator_of(job_id_for(user_id))
        emulator.deliver_webhooks = False  # its webhooks are lost: only the reconciler sees it run
        await p.container.waha.for_tenant(emulator_url(double, user_id), user_id).start_session(chip["session_name"])
        session = emulator.sessions[chip["session_name"]]
        await eventually(lambda: session.status == "SCAN_QR_CODE", what="the session running again")
        report = await Reconciler(p.container).run()
        assert report.drift["session_stopped_as_intended"] == 1, report.as_dict()
        assert not report.errors, report.as_dict()
        await eventually(lambda: session.status == "STOPPED", what="the session stopped")
