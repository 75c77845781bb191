"""``local`` adapter (real in-process emulators on loopback ports) and ``static`` adapter."""

from __future__ import annotations

import socket
import uuid

import httpx
import msgspec
import pytest

from app.core.errors import ValidationFailed
from app.core.tenant_keys import TenantKeys
from app.scheduler import InstanceNotFound, Scheduler, TenantRef, build_scheduler, job_id_for
from app.scheduler.local import LocalScheduler
from app.scheduler.nomad import NomadScheduler
from app.scheduler.static import StaticScheduler

pytestmark = pytest.mark.anyio


def tenant(plan: str = "free") -> TenantRef:
    return TenantRef(id=str(uuid.uuid4()), plan=plan)


def port_open(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
async def local(base_settings, tmp_path):
    scheduler = LocalScheduler(
        msgspec.structs.replace(
            base_settings, scheduler="local", instance_ready_timeout_seconds=10, dev_state_dir=str(tmp_path)
        )
    )
    yield scheduler
    await scheduler.close()


async def test_local_gives_each_tenant_its_own_emulator(local, base_settings):
    a, b = tenant(), tenant()
    ia = await local.ensure_instance(a)
    ib = await local.ensure_instance(b)
    assert ia.base_url != ib.base_url
    assert ia.status == ib.status == "running"
    async with httpx.AsyncClient(timeout=2) as client:
        for inst in (ia, ib):
            assert (await client.get(inst.base_url + "/ping")).json() == {"message": "pong"}
            assert (await client.get(inst.base_url + "/api/sessions")).status_code == 401
            version = await client.get(
                inst.base_url + "/api/server/version",
                headers={"X-Api-Key": TenantKeys(local.settings).api_key(inst.user_id)},
            )
            assert version.status_code == 200
            assert version.json()["worker"]["id"] == inst.job_id  # WAHA_WORKER_ID = job id
        # isolation: each emulator takes its own tenant's key only, and a session created on A
        # does not exist on B
        key_a = {"X-Api-Key": TenantKeys(local.settings).api_key(a.id)}
        key_b = {"X-Api-Key": TenantKeys(local.settings).api_key(b.id)}
        platform_key = {"X-Api-Key": base_settings.waha_api_key}
        assert (await client.get(ib.base_url + "/api/sessions", headers=key_a)).status_code == 401
        assert (await client.get(ia.base_url + "/api/sessions", headers=key_b)).status_code == 401
        assert (await client.get(ia.base_url + "/api/sessions", headers=platform_key)).status_code == 401
        created = await client.post(
            ia.base_url + "/api/sessions", json={"name": "chip_abc", "start": False}, headers=key_a
        )
        assert created.status_code in (200, 201), created.text
        assert (await client.get(ib.base_url + "/api/sessions/chip_abc", headers=key_b)).status_code == 404
    assert await local.ensure_instance(a) == ia  # idempotent
    assert {i.user_id for i in await local.list_instances()} == {a.id, b.id}


async def test_local_stop_restart_remove(local):
    t = tenant()
    first = await local.ensure_instance(t)
    await local.stop_instance(t.id)
    assert not port_open(first.base_url)
    stopped = await local.get_instance(t.id)
    assert stopped is not None
    assert stopped.status == "stopped"
    assert stopped.base_url is None

    back = await local.ensure_instance(t)
    assert back.status == "running"
    assert port_open(back.base_url)

    await local.restart_instance(t.id)
    restarted = await local.get_instance(t.id)
    assert restarted is not None
    assert restarted.status == "running"
    assert port_open(restarted.base_url)

    await local.remove_instance(t.id)
    await local.remove_instance(t.id)  # idempotent
    assert await local.get_instance(t.id) is None
    assert not port_open(restarted.base_url)
    with pytest.raises(InstanceNotFound):
        await local.restart_instance(t.id)


async def test_local_close_stops_every_emulator(base_settings, tmp_path):
    scheduler = LocalScheduler(msgspec.structs.replace(base_settings, dev_state_dir=str(tmp_path)))
    urls = [(await scheduler.ensure_instance(tenant())).base_url for _ in range(3)]
    assert all(port_open(u) for u in urls)
    await scheduler.close()
    assert not any(port_open(u) for u in urls)


async def test_static_uses_the_one_url(base_settings):
    settings = msgspec.structs.replace(base_settings, scheduler="static", waha_url="http://waha.internal:3000/")
    scheduler = StaticScheduler(settings)
    t = tenant()
    inst = await scheduler.ensure_instance(t)
    assert inst.base_url == "http://waha.internal:3000"
    assert inst.status == "running"
    assert inst.job_id == job_id_for(t.id)
    assert await scheduler.get_instance(t.id) == inst
    for op in (scheduler.restart_instance, scheduler.stop_instance, scheduler.remove_instance, scheduler.invalidate):
        await op(t.id)
    assert await scheduler.list_instances() == []
    await scheduler.close()
    with pytest.raises(ValidationFailed):
        StaticScheduler(msgspec.structs.replace(base_settings, waha_url="waha:3000"))


async def test_build_scheduler_picks_the_adapter(base_settings):
    kinds = {"static": StaticScheduler, "local": LocalScheduler, "nomad": NomadScheduler}
    for kind, cls in kinds.items():
        scheduler = build_scheduler(msgspec.structs.replace(base_settings, scheduler=kind), redis=None)
        assert isinstance(scheduler, cls)
        assert isinstance(scheduler, Scheduler)
        await scheduler.close()
