"""Operator actions on instances, idle reaping and waking, with the local scheduler."""

from __future__ import annotations

import uuid

import pytest

from app.core import db
from app.instances.service import InstanceService
from app.reconciler import service as reconciler_module
from app.reconciler.service import Reconciler
from tests.doubles import serve_double
from tests.support.platform import nomad_env, platform
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def no_settle_delay(monkeypatch):
    monkeypatch.setattr(reconciler_module, "SETTLE_SECONDS", 0)


async def test_an_instance_removed_by_an_operator_stays_removed_until_the_tenant_restarts(clean_state):
    # the nomad scheduler (through the double): the API process and the worker share its state,
    # as they do in production
    with serve_double(check_interval=0.02, registration_gap=0.05) as double:
        async with platform(nomad_env(double)) as p:
            await _removed_then_restarted(p)


async def _removed_then_restarted(p) -> None:
    tenant = await p.tenant()
    user_id = uuid.UUID(tenant["user"]["id"])
    chip = await p.create_chip(tenant)
    await p.wait_status(tenant, chip["id"], "waiting_qr")
    admin = await p.tenant()
    await db.fetch("UPDATE users SET is_admin = true WHERE id = $1", uuid.UUID(admin["user"]["id"]))

    removed = await p.http.delete(f"/api/v1/admin/instances/{user_id}", headers=admin["headers"])
    assert removed.status_code == 202
    assert (await p.chip(tenant, chip["id"]))["status"] == "disconnected"
    assert await p.container.scheduler.get_instance(str(user_id)) is None

    report = await Reconciler(p.container).run()  # not drift: an operator decided it
    assert not report.drift.get("instance_missing"), report.as_dict()
    assert await p.container.scheduler.get_instance(str(user_id)) is None
    listed = (await p.http.get("/api/v1/admin/instances", headers=admin["headers"])).json()
    assert [(i["user_id"], i["status"]) for i in listed if i["user_id"] == str(user_id)] == [(str(user_id), "removed")]

    restarted = await p.http.post(f"/api/v1/chips/{chip['id']}/restart", headers=tenant["headers"])
    assert restarted.status_code == 202
    assert restarted.json()["status"] == "provisioning"
    await p.wait_status(tenant, chip["id"], "waiting_qr")
    instance = await p.container.scheduler.get_instance(str(user_id))
    assert instance is not None
    assert instance.status == "running"


async def test_idle_tenants_are_reaped_and_woken_by_their_next_activity(clean_state, tmp_path):
    async with platform({"WHAGO_SCHEDULER": "local", "WHAGO_DEV_STATE_DIR": str(tmp_path)}) as p:
        tenant = await p.tenant()
        user_id = uuid.UUID(tenant["user"]["id"])
        chip = await p.create_chip(tenant)
        await p.wait_status(tenant, chip["id"], "waiting_qr")
        await db.fetch("UPDATE users SET last_active_at = now() - interval '40 days' WHERE id = $1", user_id)
        assert await InstanceService(p.container).reap_idle() == [str(user_id)]
        instance = await p.container.scheduler.get_instance(str(user_id))
        assert instance is None or instance.status != "running"
        report = await Reconciler(p.container).run()
        assert not report.drift.get("instance_missing"), report.as_dict()  # idle is not drift

        # the tenant comes back: their next API request wakes the instance (the API process
        # records activity at most every `interval` seconds; 0 here so this request counts, and
        # enqueues `wake_instance`, which the platform's worker runs)
        p.api.app.state.container.activity.interval = 0
        assert (await p.http.get("/api/v1/chips", headers=tenant["headers"])).status_code == 200

        async def running() -> bool:
            instance = await p.container.scheduler.get_instance(str(user_id))
            return instance is not None and instance.status == "running"

        await eventually(running, timeout=20, what="the instance to come back")
        await p.wait_status(tenant, chip["id"], "waiting_qr")
