"""The reconciler heals drift in both directions, one run at a time, without fighting the main path."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from app.core import db
from app.reconciler import service as reconciler_module
from app.reconciler.service import Reconciler
from tests.support.env import WAHA_API_KEY
from tests.support.platform import platform
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def no_settle_delay(monkeypatch):
    # production leaves chips changed in the last 30 s alone; tests cannot wait that long
    monkeypatch.setattr(reconciler_module, "SETTLE_SECONDS", 0)


async def _scan(url: str, name: str) -> None:
    """The phone scans the QR; the session must already show one (SCAN_QR_CODE) in the emulator."""
    async with httpx.AsyncClient(headers={"X-Api-Key": WAHA_API_KEY}) as http:
        response = await http.post(f"{url}/_emulator/sessions/{name}/scan", json={"phone": "5511988887777"})
        assert response.status_code in (200, 201), response.text


async def test_a_lost_webhook_is_fixed_within_one_cycle(static_emulator, caplog):
    served, emulator = static_emulator
    async with platform({"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url}) as p:
        tenant, chip = await p.waiting_chip()
        emulator.deliver_webhooks = False  # WAHA's WORKING webhook never arrives
        await _scan(served.url, chip["session_name"])
        assert emulator.sessions[chip["session_name"]].status == "WORKING"
        assert (await p.chip(tenant, chip["id"]))["status"] == "waiting_qr"
        caplog.set_level("INFO", logger="whago.reconciler")
        owner = uuid.UUID(tenant["user"]["id"])
        await db.fetch("UPDATE instances SET sessions = 7 WHERE user_id = $1", owner)  # a stale count
        report = await Reconciler(p.container).run()
        assert report.drift["status_fixed"] == 1, report.as_dict()
        # what the pass saw, as the worker's job result and `whago-ops reconcile` print it
        summary = report.as_dict()
        assert (summary["tenants"], summary["sessions"]) == (1, len(emulator.sessions)), summary
        assert summary["drift"] == {"status_fixed": 1}
        assert summary["ran"] is True
        assert [r for r in caplog.records if r.getMessage().startswith("reconcile: ")]  # drift is logged
        # the instance's record counts the tenant's sessions that WAHA has
        record = await db.fetchrow("SELECT sessions FROM instances WHERE user_id = $1", owner)
        assert record["sessions"] == 1  # corrected from what WAHA has
        fixed = await p.chip(tenant, chip["id"])
        assert fixed["status"] == "connected"
        assert fixed["phone_number"] == "5511988887777"
        events = (await p.http.get(f"/api/v1/chips/{chip['id']}/events", headers=tenant["headers"])).json()["items"]
        assert events[0]["source"] == "reconciler"
        assert events[0]["to_status"] == "connected"
        # a second run finds nothing to do
        caplog.clear()
        # a linked chip's provisioning is long past: its old enqueue mark is not a stalled job
        await db.fetch(
            "UPDATE chips SET created_at = now() - interval '1 day', provision_enqueued_at = now() - interval '1 day'"
            " WHERE id = $1",
            uuid.UUID(chip["id"]),
        )
        again = await Reconciler(p.container).run()
        assert not again.drift, again.as_dict()
        assert not again.errors, again.as_dict()
        assert not [r for r in caplog.records if r.getMessage().startswith("reconcile: ")]  # quiet when clean


async def test_recently_changed_chips_are_left_to_the_main_path(static_emulator, monkeypatch):
    served, emulator = static_emulator
    monkeypatch.setattr(reconciler_module, "SETTLE_SECONDS", 3600)
    async with platform({"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url}) as p:
        tenant, chip = await p.waiting_chip()
        emulator.deliver_webhooks = False
        await _scan(served.url, chip["session_name"])
        report = await Reconciler(p.container).run()
        assert not report.drift.get("status_fixed")
        assert (await p.chip(tenant, chip["id"]))["status"] == "waiting_qr"


async def test_two_reconcilers_at_once_one_does_the_work(static_emulator):
    served, emulator = static_emulator
    async with platform({"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url}) as p:
        tenant, chip = await p.waiting_chip()
        emulator.deliver_webhooks = False
        await _scan(served.url, chip["session_name"])
        reports = await asyncio.gather(*(Reconciler(p.container).run() for _ in range(5)))
        assert sum(r.ran for r in reports) == 1
        assert sum(r.drift.get("status_fixed", 0) for r in reports) == 1
        events = (await p.http.get(f"/api/v1/chips/{chip['id']}/events", headers=tenant["headers"])).json()["items"]
        assert sum(e["source"] == "reconciler" for e in events) == 1


async def test_session_without_chip_is_deleted_and_chip_without_session_is_provisioned(static_emulator):
    served, emulator = static_emulator
    async with platform({"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url}) as p:
        tenant = await p.tenant("business")
        kept = await p.create_chip(tenant, "kept")
        lost = await p.create_chip(tenant, "lost")
        await p.wait_status(tenant, kept["id"], "waiting_qr")
        await p.wait_status(tenant, lost["id"], "waiting_qr")
        headers = {"X-Api-Key": p.settings.waha_api_key}
        async with httpx.AsyncClient(base_url=served.url, headers=headers) as waha:
            # a session behind our back (a chip row gone without teardown), and one deleted in WAHA
            stray = "chip_" + uuid.uuid4().hex
            await waha.post("/api/sessions", json={"name": stray, "start": False})
            foreign = "someone_elses_session"
            await waha.post("/api/sessions", json={"name": foreign, "start": False})
            await waha.delete(f"/api/sessions/{lost['session_name']}")
        report = await Reconciler(p.container).run()
        assert report.drift["session_orphan_deleted"] == 1, report.as_dict()
        assert report.drift["session_missing"] == 1
        assert stray not in emulator.sessions  # only WHAGO's own sessions are deleted
        assert foreign in emulator.sessions
        await eventually(
            lambda: lost["session_name"] in emulator.sessions, timeout=10, what="the lost session re-provisioned"
        )


async def test_durable_to_dos_are_requeued(static_emulator):
    """Chips recorded while Redis was down, or deleted with a lost teardown job, are re-driven."""
    served, _ = static_emulator
    async with platform({"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url}, worker=False) as p:
        tenant = await p.tenant("enterprise")
        chip = await p.create_chip(tenant, "pending")
        doomed = await p.create_chip(tenant, "doomed")
        rotating = await p.create_chip(tenant, "rotating")
        await p.container.redis.flushdb()  # every queued job is lost
        await db.fetch("UPDATE chips SET provision_enqueued_at = NULL WHERE id = $1", uuid.UUID(chip["id"]))
        await db.fetch(
            "UPDATE chips SET status = 'deleting', status_changed_at = now() - interval '1 hour' WHERE id = $1",
            uuid.UUID(doomed["id"]),
        )
        # a proxy change the rotation job never applied, on a chip past provisioning
        await db.fetch(
            "UPDATE chips SET status = 'disconnected', proxy_dirty = true WHERE id = $1", uuid.UUID(rotating["id"])
        )
        report = await Reconciler(p.container).run()
        assert report.drift["provision_requeued"] == 1, report.as_dict()
        assert report.drift["teardown_requeued"] == 1, report.as_dict()
        assert report.drift["proxy_rotation_requeued"] == 1, report.as_dict()
        assert await p.container.redis.exists(f"saq:job:whago:provision:{chip['id']}")
        assert await p.container.redis.exists(f"saq:job:whago:teardown:{doomed['id']}")
        assert await p.container.redis.exists(f"saq:job:whago:rotate:{rotating['id']}")


async def test_a_queue_outage_is_reported_and_nothing_is_marked(static_emulator, monkeypatch):
    from app.core.errors import DependencyUnavailable

    served, _ = static_emulator
    async with platform({"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url}, worker=False) as p:
        tenant = await p.tenant()
        chip = await p.create_chip(tenant)
        await db.fetch("UPDATE chips SET provision_enqueued_at = NULL WHERE id = $1", uuid.UUID(chip["id"]))

        async def down(*args, **kwargs):
            raise DependencyUnavailable("Queue unavailable (Redis).")

        monkeypatch.setattr(p.container.queue, "enqueue", down)
        report = await Reconciler(p.container).run()
        assert report.errors == [f"queue unavailable for provision_chip {chip['id']}"], report.as_dict()
        assert not report.drift.get("provision_requeued")
        row = await db.fetchrow("SELECT provision_enqueued_at FROM chips WHERE id = $1", uuid.UUID(chip["id"]))
        assert row["provision_enqueued_at"] is None  # still a to-do for the next pass


async def test_the_lock_outlives_a_slow_pass_and_is_released_after(static_emulator, monkeypatch):
    """A pass holds the lock for 5 intervals (at least 5 minutes): a crashed worker's lock expires."""
    served, _ = static_emulator
    async with platform({"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url}, worker=False) as p:
        seen = []

        async def slow_pass(self):
            seen.append(await p.container.redis.pttl(reconciler_module.LOCK_KEY))
            return reconciler_module.ReconcileReport()

        monkeypatch.setattr(Reconciler, "_run", slow_pass)
        await Reconciler(p.container).run()
        interval = max(p.settings.reconcile_interval_seconds, 60)
        assert 5 * interval * 1000 - 5_000 < seen[0] <= 5 * interval * 1000
        assert not await p.container.redis.exists(reconciler_module.LOCK_KEY)


def test_every_drift_kind_counted_is_a_series_from_the_start():
    """Alerts and dashboards read whago_reconcile_drift_total{kind}: every kind the reconciler can
    count exists (at 0) before it first happens, so a rate() over it is defined from the start."""
    import ast
    import inspect

    from prometheus_client import REGISTRY

    tree = ast.parse(inspect.getsource(reconciler_module))
    counted = set()
    for node in ast.walk(tree):
        # report.drift["kind"] += 1, and _enqueue(spec, chip_id, report, "kind")
        drift = isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
        if drift and node.value.attr == "drift" and isinstance(node.slice, ast.Constant):
            counted.add(node.slice.value)
        enqueue = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and len(node.args) == 4
        if enqueue and node.func.attr == "_enqueue" and isinstance(node.args[3], ast.Constant):
            counted.add(node.args[3].value)
    assert len(counted) >= 10
    assert counted == set(reconciler_module.DRIFT_KINDS)
    for kind in counted:
        assert REGISTRY.get_sample_value("whago_reconcile_drift_total", {"kind": kind}) is not None, kind


async def test_webhook_key_rotation_moves_every_session_to_the_new_key(static_emulator):
    """WHAGO_WEBHOOK_HMAC_KEY=new,old: events signed with either verify; the reconciler moves
    sessions still configured with the old key (on the platform route, as sessions configured
    before per-tenant keys are) to the tenant's route and its key derived from the new one, and
    reports how many remain on the old route."""
    served, emulator = static_emulator
    env = {
        "WHAGO_SCHEDULER": "static",
        "WHAGO_WAHA_URL": served.url,
        "WHAGO_WEBHOOK_HMAC_KEY": "new-webhook-key-2,old-webhook-key-1",
    }
    async with platform(env, worker=False) as p:
        tenant = await p.tenant()
        chip = await p.create_chip(tenant)
        # provisioned before the rotation: the session signs with the old key
        from app.waha import WahaClient
        from app.waha.sessions import chip_metadata

        async with WahaClient(served.url, p.settings.waha_api_key) as waha:
            await waha.create_session(
                chip["session_name"],
                start=True,
                metadata=chip_metadata(tenant["user"]["id"], chip["id"]),
                proxy=None,
                webhook_url=p.settings.webhook_url,
                hmac_key="old-webhook-key-1",
            )
        await p.wait_status(tenant, chip["id"], "waiting_qr")  # old-key webhooks still verify
        report = await Reconciler(p.container).run()
        assert report.drift["session_config_stale"] == 1, report.as_dict()
        assert report.legacy_webhook_sessions == 1
        assert report.as_dict()["legacy_webhook_sessions"] == 1
        from app.chips.provisioning import ProvisioningService
        from app.core.tenant_keys import derive

        assert await ProvisioningService(p.container).provision(uuid.UUID(chip["id"])) == "updated"
        session = emulator.sessions[chip["session_name"]]
        hook = session.config["webhooks"][0]
        assert hook["url"] == f"{p.settings.webhook_url}/{tenant['user']['id']}"
        assert hook["hmac"]["key"] == derive("new-webhook-key-2", "whago/webhook-hmac/v1", tenant["user"]["id"])
        # the new config restarted the session (STARTING): only a fresh QR can be scanned
        await eventually(lambda: session.status == "SCAN_QR_CODE", what="a QR after the config update")
        await _scan(served.url, chip["session_name"])
        connected = await p.wait_status(tenant, chip["id"], "connected")  # new-key webhooks verify
        assert connected["phone_number"] == "5511988887777"
        again = await Reconciler(p.container).run()
        assert not again.drift.get("session_config_stale"), again.as_dict()
        assert again.legacy_webhook_sessions == 0
        # edited behind our back on the tenant's own route: stale, but not a legacy session
        session.config["webhooks"][0]["hmac"]["key"] = "edited-behind-our-back"
        edited = await Reconciler(p.container).run()
        assert edited.drift["session_config_stale"] == 1, edited.as_dict()
        assert edited.legacy_webhook_sessions == 0


async def test_a_logged_out_chip_is_not_restarted_by_a_config_fix(static_emulator):
    served, emulator = static_emulator
    async with platform({"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url}) as p:
        tenant, chip = await p.waiting_chip()
        await p.http.post(f"/api/v1/chips/{chip['id']}/logout", headers=tenant["headers"])
        await p.wait_status(tenant, chip["id"], "disconnected")
        await db.fetch("UPDATE chips SET proxy_dirty = true WHERE id = $1", uuid.UUID(chip["id"]))
        from app.chips.provisioning import ProvisioningService

        assert await ProvisioningService(p.container).provision(uuid.UUID(chip["id"])) == "updated"
        # provisioning updates (and would start) the session before it returns, and the emulator
        # applies both before answering: the state here is final, no need to wait
        assert emulator.sessions[chip["session_name"]].status == "STOPPED"
        assert (await p.chip(tenant, chip["id"]))["status"] == "disconnected"
