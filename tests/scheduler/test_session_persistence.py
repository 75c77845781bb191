"""Sessions survive instance restarts the way WAHA's storage makes them (waha.md §1.5), through
both adapters that run emulators: ``local`` (file store under the dev state dir) and ``nomad``
(the double's shared in-memory store, kept across a purge)."""

from __future__ import annotations

import time
import uuid

import anyio
import httpx
import msgspec
import pytest

from app.core.tenant_keys import TenantKeys
from app.scheduler import TenantRef, job_id_for
from app.scheduler.local import LocalScheduler
from app.waha import WahaClient, WahaNotFound

pytestmark = pytest.mark.anyio

SESSION = "chip_" + uuid.uuid4().hex


def tenant() -> TenantRef:
    return TenantRef(id=str(uuid.uuid4()), plan="free")


async def wait_session(base_url: str, api_key: str, status: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    last = None
    async with WahaClient(base_url, api_key, timeout=2.0) as waha:
        while time.monotonic() < deadline:
            try:
                last = await waha.get_session(SESSION)
                if last.status == status:
                    return last
            except WahaNotFound:
                last = None
            await anyio.sleep(0.02)
    raise AssertionError(f"{SESSION} never became {status} on {base_url} (last: {last and last.status})")


async def link_a_session(base_url: str, api_key: str) -> str:
    """Create + start a session, wait for its QR, scan it; returns the linked number."""
    async with WahaClient(base_url, api_key, timeout=2.0) as waha:
        await waha.create_session(
            SESSION,
            start=True,
            metadata={"user_id": "u", "chip_id": "c"},
            proxy=None,
            webhook_url="http://127.0.0.1:9/hook",
            hmac_key=None,
            retry_attempts=1,
        )
    await wait_session(base_url, api_key, "SCAN_QR_CODE")
    async with httpx.AsyncClient(base_url=base_url, headers={"X-Api-Key": api_key}) as http:
        scanned = await http.post(f"/_emulator/sessions/{SESSION}/scan", json={"phone": "5511977776666"})
        assert scanned.status_code == 200, scanned.text
    return "5511977776666@c.us"


async def came_back_linked(base_url: str, api_key: str, me_id: str) -> None:
    info = await wait_session(base_url, api_key, "WORKING")
    assert info.me is not None
    assert info.me.id == me_id
    async with httpx.AsyncClient(base_url=base_url, headers={"X-Api-Key": api_key}) as http:
        dump = (await http.get("/_emulator/sessions")).json()
    assert [(s["name"], s["qr_count"]) for s in dump] == [(SESSION, 0)]  # no new QR was shown


# ---------------------------------------------------------------------------- local
async def test_local_instances_keep_sessions_across_stop_restart_and_a_new_process(base_settings, tmp_path):
    settings = msgspec.structs.replace(
        base_settings, scheduler="local", dev_state_dir=str(tmp_path), instance_ready_timeout_seconds=10
    )
    t = tenant()
    key = TenantKeys(settings).api_key(t.id)
    first = LocalScheduler(settings)
    try:
        inst = await first.ensure_instance(t)
        me = await link_a_session(inst.base_url, key)
        stored = tmp_path / "emulators" / job_id_for(t.id) / f"{SESSION}.json"
        assert stored.exists()
        assert me in stored.read_text()

        await first.stop_instance(t.id)  # idle reaping
        again = await first.ensure_instance(t)
        await came_back_linked(again.base_url, key, me)

        await first.restart_instance(t.id)
        restarted = await first.get_instance(t.id)
        await came_back_linked(restarted.base_url, key, me)
    finally:
        await first.close()  # `whago dev` exits

    second = LocalScheduler(settings)  # `whago dev` starts again: nothing in memory, files remain
    try:
        inst = await second.ensure_instance(t)
        await came_back_linked(inst.base_url, key, me)

        await second.remove_instance(t.id)  # the tenant's storage goes with the instance
        assert not stored.parent.exists()
        fresh = await second.ensure_instance(t)
        async with WahaClient(fresh.base_url, key) as waha:
            assert await waha.list_sessions(all=True) == []
    finally:
        await second.close()


async def test_local_store_can_be_turned_off(base_settings, tmp_path):
    settings = msgspec.structs.replace(base_settings, dev_state_dir=str(tmp_path), instance_ready_timeout_seconds=10)
    scheduler = LocalScheduler(settings, emulator_config={"store": None})
    try:
        t = tenant()
        key = TenantKeys(settings).api_key(t.id)
        inst = await scheduler.ensure_instance(t)
        await link_a_session(inst.base_url, key)
        await scheduler.stop_instance(t.id)
        back = await scheduler.ensure_instance(t)
        async with WahaClient(back.base_url, key) as waha:
            assert await waha.list_sessions(all=True) == []
        assert not (tmp_path / "emulators").exists()
    finally:
        await scheduler.close()


# ---------------------------------------------------------------------------- nomad double
async def test_nomad_reschedule_stop_and_purge_keep_sessions(make_nomad, double):
    scheduler = make_nomad()
    t = tenant()
    key = TenantKeys(scheduler.settings).api_key(t.id)
    job_id = job_id_for(t.id)
    first = await scheduler.ensure_instance(t)
    me = await link_a_session(first.base_url, key)

    double.lose_allocation(job_id)  # node lost: a new allocation on a new port, same storage
    await scheduler.invalidate(t.id)
    moved = await scheduler.ensure_instance(t)
    assert moved.base_url != first.base_url
    await came_back_linked(moved.base_url, key, me)

    await scheduler.stop_instance(t.id)  # idle reaping: job stopped, not purged
    woken = await scheduler.ensure_instance(t)
    await came_back_linked(woken.base_url, key, me)

    await scheduler.remove_instance(t.id)  # purge: Nomad forgets the job, WAHA's database stays
    assert double.job(job_id) is None
    recreated = await scheduler.ensure_instance(t)
    await came_back_linked(recreated.base_url, key, me)

    double.forget_sessions(job_id)  # an operator drops the tenant's WAHA databases
    await scheduler.remove_instance(t.id)
    bare = await scheduler.ensure_instance(t)
    async with WahaClient(bare.base_url, key) as waha:
        assert await waha.list_sessions(all=True) == []
