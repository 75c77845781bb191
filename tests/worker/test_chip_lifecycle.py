"""Where a chip's status changes: every change publishes one live event with an RFC 3339 ``Z``
time, deletion included; and the instance bookkeeping around chips (idle reaping, operator
removal, session counts) behaves."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest

from app.chips import provisioning as provisioning_module
from app.chips import queries as chip_queries
from app.chips.provisioning import ProvisioningService
from app.core import db
from app.events.bus import user_channel
from app.instances.service import InstanceService
from app.reconciler import service as reconciler_module
from app.reconciler.service import Reconciler
from app.scheduler.errors import SchedulerUnavailable
from app.waha import client as client_module
from tests.support.platform import platform

pytestmark = pytest.mark.anyio

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture(autouse=True)
def no_settle_delay(monkeypatch):
    monkeypatch.setattr(reconciler_module, "SETTLE_SECONDS", 0)


def local_env(tmp_path) -> dict[str, str]:
    return {"WHAGO_SCHEDULER": "local", "WHAGO_DEV_STATE_DIR": str(tmp_path)}


@contextlib.asynccontextmanager
async def live_events(p, user_id: uuid.UUID) -> AsyncIterator[list[dict]]:
    """Every live event published for the user while the block runs, in order."""
    received: list[dict] = []
    pubsub = p.container.redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(user_channel(user_id))

    async def pump() -> None:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None:
                received.append(msgspec.json.decode(message["data"]))

    task = asyncio.create_task(pump())
    try:
        yield received
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pubsub.aclose()


async def until(check, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await check() if asyncio.iscoroutinefunction(check) else check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def make_admin(p) -> dict:
    admin = await p.tenant()
    await db.fetch("UPDATE users SET is_admin = true WHERE id = $1", uuid.UUID(admin["user"]["id"]))
    return admin


async def test_every_change_publishes_one_event_with_a_z_time_deletion_included(clean_state, tmp_path):
    async with platform(local_env(tmp_path)) as p:
        tenant = await p.tenant()
        user_id = uuid.UUID(tenant["user"]["id"])
        async with live_events(p, user_id) as events:
            chip = await p.create_chip(tenant)
            await p.wait_status(tenant, chip["id"], "waiting_qr")
            deleted = await p.http.delete(f"/api/v1/chips/{chip['id']}", headers=tenant["headers"])
            assert deleted.status_code == 202
            await until(lambda: any(e["event"] == "chip.deleted" for e in events), "chip.deleted")

        statuses = [(e["data"]["previous"], e["data"]["status"]) for e in events if e["event"] == "chip.status"]
        assert statuses[0] == (None, "provisioning")
        assert statuses[-1][1] == "deleting"
        # WAHA's events travel independently: STARTING may land after SCAN_QR_CODE (then it is stale)
        assert "waiting_qr" in [status for _, status in statuses]
        assert events[-1] == {"event": "chip.deleted", "data": {"chip_id": chip["id"], "at": events[-1]["data"]["at"]}}
        for event in events:
            assert RFC3339_Z.match(event["data"]["at"]), event
        # one history row per status change, and the row is gone with the chip
        assert await chip_queries.get(uuid.UUID(chip["id"])) is None


async def test_worker_reconciler_and_operator_changes_publish_events_too(clean_state, tmp_path):
    async with platform(local_env(tmp_path)) as p:
        tenant, chip = await p.waiting_chip()
        user_id = uuid.UUID(tenant["user"]["id"])
        chip_id = uuid.UUID(chip["id"])
        admin = await make_admin(p)
        async with live_events(p, user_id) as events:
            removed = await p.http.delete(f"/api/v1/admin/instances/{user_id}", headers=admin["headers"])
            assert removed.json()["chips_disconnected"] == 1
            await ProvisioningService(p.container).mark_failed(
                chip_id, "Provisioning failed after 4 attempts: Nomad 500 on node 10.0.0.7: boom"
            )
            await until(lambda: len(events) >= 2, "two events")

        assert [(e["data"]["previous"], e["data"]["status"]) for e in events] == [
            ("waiting_qr", "disconnected"),
            ("disconnected", "failed"),
        ]
        for event in events:
            assert RFC3339_Z.match(event["data"]["at"]), event
        history = (await p.http.get(f"/api/v1/chips/{chip_id}/events", headers=tenant["headers"])).json()["items"]
        assert [(h["to_status"], h["source"]) for h in history[:2]] == [("failed", "worker"), ("disconnected", "admin")]
        # the tenant sees the summary, never the remote error text; the operator view keeps it
        tenant_error = "Provisioning failed after 4 attempts. Details are with the operators."
        assert (await p.chip(tenant, chip["id"]))["error"] == tenant_error
        assert history[0]["detail"] == tenant_error
        operator = await p.http.get(f"/api/v1/admin/chips?user_id={user_id}", headers=admin["headers"])
        assert "10.0.0.7: boom" in operator.json()["items"][0]["error"]


async def test_a_removed_instance_is_never_reaped_to_idle_nor_woken(clean_state, tmp_path):
    async with platform(local_env(tmp_path)) as p:
        tenant, _chip = await p.waiting_chip()
        user_id = uuid.UUID(tenant["user"]["id"])
        admin = await make_admin(p)
        assert (await p.http.delete(f"/api/v1/admin/instances/{user_id}", headers=admin["headers"])).status_code == 202
        await db.fetch("UPDATE users SET last_active_at = now() - interval '40 days' WHERE id = $1", user_id)

        assert await InstanceService(p.container).reap_idle() == []
        # the tenant's next activity does not re-create what an operator removed
        assert await ProvisioningService(p.container).wake_tenant(user_id) is False
        row = await db.fetchrow("SELECT status FROM instances WHERE user_id = $1", user_id)
        assert row["status"] == "removed"


async def test_one_tenants_scheduler_error_does_not_stop_reaping_the_others(clean_state, tmp_path, monkeypatch):
    async with platform(local_env(tmp_path)) as p:
        tenants = [(await p.waiting_chip())[0] for _ in range(2)]
        ids = sorted(uuid.UUID(t["user"]["id"]) for t in tenants)
        await db.fetch("UPDATE users SET last_active_at = now() - interval '40 days' WHERE id = ANY($1::uuid[])", ids)
        stop = p.container.scheduler.stop_instance

        async def failing_for_the_first(user_id: str) -> None:
            if user_id == str(ids[0]):
                raise SchedulerUnavailable("Nomad is down")
            await stop(user_id)

        monkeypatch.setattr(p.container.scheduler, "stop_instance", failing_for_the_first)
        assert await InstanceService(p.container).reap_idle() == [str(ids[1])]
        statuses = {
            r["user_id"]: r["status"]
            for r in await db.fetch("SELECT user_id, status FROM instances WHERE user_id = ANY($1::uuid[])", ids)
        }
        assert statuses[ids[1]] == "idle"
        assert statuses[ids[0]] != "idle"  # retried on the next run


async def test_provisioning_builds_the_session_config_once(clean_state, tmp_path, monkeypatch):
    calls = []
    real = provisioning_module.build_session_config

    def counting(**kwargs):
        calls.append(kwargs["metadata"]["chip_id"])
        return real(**kwargs)

    monkeypatch.setattr(provisioning_module, "build_session_config", counting)
    monkeypatch.setattr(client_module, "build_session_config", counting)
    async with platform(local_env(tmp_path)) as p:
        _tenant, chip = await p.waiting_chip()
    assert calls == [chip["id"]]


async def test_admin_instances_count_sessions_without_waiting_for_a_reconcile(clean_state, tmp_path):
    async with platform(local_env(tmp_path)) as p:
        tenant, chip = await p.waiting_chip()
        admin = await make_admin(p)

        async def sessions() -> int:
            listed = (await p.http.get("/api/v1/admin/instances", headers=admin["headers"])).json()
            return next(i["sessions"] for i in listed if i["user_id"] == tenant["user"]["id"])

        assert await sessions() == 1
        assert (await p.http.delete(f"/api/v1/chips/{chip['id']}", headers=tenant["headers"])).status_code == 202
        await until(_gone(chip["id"]), "teardown")
        assert await sessions() == 0


def _gone(chip_id: str):
    async def check() -> bool:
        return await chip_queries.get(uuid.UUID(chip_id)) is None

    return check


async def test_a_chip_created_during_a_reconcile_pass_keeps_its_session(static_emulator, monkeypatch):
    served, _emulator = static_emulator
    # one WAHA for every tenant: the other tenant's listing shows the new chip's session
    async with platform({"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url}) as p:
        tenant, chip = await p.waiting_chip()
        await p.waiting_chip()
        real = chip_queries.for_reconcile

        async def snapshot_before_the_chip_existed(*args):
            return [c for c in await real(*args) if str(c.id) != chip["id"]]

        monkeypatch.setattr(chip_queries, "for_reconcile", snapshot_before_the_chip_existed)
        report = await Reconciler(p.container).run()
        assert not report.drift.get("session_orphan_deleted"), report.as_dict()
        assert (await p.chip(tenant, chip["id"]))["status"] == "waiting_qr"
        instance = await p.container.scheduler.get_instance(tenant["user"]["id"])
        names = [s.name for s in await p.container.waha.get(instance.base_url).list_sessions(all=True)]
        assert chip["session_name"] in names
