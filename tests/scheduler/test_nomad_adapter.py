"""The ``nomad`` adapter against the Nomad+Consul double, over real loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from app.core.errors import DependencyUnavailable, ValidationFailed
from app.scheduler import (
    InstanceNotFound,
    InstanceNotReady,
    PlacementFailed,
    SchedulerUnavailable,
    TenantRef,
    job_id_for,
)
from app.scheduler.cache import cache_key
from app.scheduler.nomad_job import build_job
from tests.support.asgi_server import free_port

pytestmark = pytest.mark.anyio


def tenant(plan: str = "business", **kw) -> TenantRef:
    return TenantRef(id=str(uuid.uuid4()), plan=plan, email="owner@example.com", **kw)


async def pings(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            resp = await client.get(url + "/ping")
    except httpx.HTTPError:
        return False
    return resp.status_code == 200 and resp.json() == {"message": "pong"}


# ---------------------------------------------------------------------------- happy paths
async def test_ensure_creates_job_waits_for_health_and_caches(make_nomad, double, redis, base_settings):
    scheduler = make_nomad()
    t = tenant()
    inst = await scheduler.ensure_instance(t)

    assert inst.status == "running"
    assert inst.job_id == job_id_for(t.id) == f"whago-waha-{t.id}"
    assert inst.base_url
    assert await pings(inst.base_url)
    # exactly the body the builder produces was submitted, as a check-and-set "only if new"
    assert double.submitted == [{**build_job(scheduler.settings, t), "EnforceIndex": True, "JobModifyIndex": 0}]
    alloc = double.current_alloc(inst.job_id)
    assert alloc is not None
    assert inst.base_url.endswith(f":{alloc.port}")
    # the address is cached with a short TTL
    ttl = await redis.ttl(cache_key(t.id))
    assert 0 < ttl <= base_settings.instance_address_cache_seconds
    assert json.loads(await redis.get(cache_key(t.id)))["base_url"] == inst.base_url


async def test_ensure_is_idempotent_and_cache_hit_makes_no_request(make_nomad, double):
    scheduler = make_nomad()
    t = tenant()
    first = await scheduler.ensure_instance(t)
    double.reset_counts()
    again = await scheduler.ensure_instance(t)
    assert again == first
    assert double.count() == 0

    await scheduler.invalidate(t.id)
    third = await scheduler.ensure_instance(t)
    assert third.base_url == first.base_url
    assert len(double.submitted) == 1  # unchanged spec (Nomad's plan says so): never re-registered
    assert double.count("nomad", "POST /v1/jobs") == 0
    assert double.plans == 1


async def test_concurrent_ensures_register_once(make_nomad, double):
    scheduler = make_nomad()
    t = tenant()
    results = await asyncio.gather(*(scheduler.ensure_instance(t) for _ in range(5)))
    assert len({r.base_url for r in results}) == 1
    assert len(double.submitted) == 1


async def test_plan_change_updates_the_job(make_nomad, double):
    scheduler = make_nomad()
    t = tenant("free")
    await scheduler.ensure_instance(t)
    await scheduler.invalidate(t.id)
    upgraded = TenantRef(id=t.id, plan="enterprise", email=t.email)
    inst = await scheduler.ensure_instance(upgraded)
    assert len(double.submitted) == 2
    job = double.job(inst.job_id).job
    assert job["Meta"]["whago_plan"] == "enterprise"
    assert (
        job["TaskGroups"][0]["Tasks"][0]["Resources"]
        == build_job(scheduler.settings, upgraded)["Job"]["TaskGroups"][0]["Tasks"][0]["Resources"]
    )
    assert await pings(inst.base_url)


async def test_get_instance_has_no_side_effects(make_nomad, double):
    scheduler = make_nomad()
    assert await scheduler.get_instance(str(uuid.uuid4())) is None
    assert double.count("nomad", "POST") == 0
    assert not double.jobs

    t = tenant()
    inst = await scheduler.ensure_instance(t)
    await scheduler.invalidate(t.id)
    seen = await scheduler.get_instance(t.id)
    assert seen is not None
    assert seen.status == "running"
    assert seen.base_url == inst.base_url


async def test_stop_then_ensure_brings_it_back(make_nomad, double, redis):
    scheduler = make_nomad()
    t = tenant()
    first = await scheduler.ensure_instance(t)
    await scheduler.stop_instance(t.id)

    assert await redis.get(cache_key(t.id)) is None
    stopped = await scheduler.get_instance(t.id)
    assert stopped is not None
    assert stopped.status == "stopped"
    assert stopped.base_url is None
    assert double.job(first.job_id) is not None  # not purged
    await asyncio.sleep(0.2)
    assert not await pings(first.base_url)

    back = await scheduler.ensure_instance(t)
    assert back.status == "running"
    assert await pings(back.base_url)


async def test_remove_purges_and_is_idempotent(make_nomad, double):
    scheduler = make_nomad()
    t = tenant()
    inst = await scheduler.ensure_instance(t)
    await scheduler.remove_instance(t.id)
    assert double.job(inst.job_id) is None
    assert await scheduler.get_instance(t.id) is None
    await scheduler.remove_instance(t.id)  # again: no error
    await scheduler.stop_instance(t.id)  # stopping a missing job is fine too


async def test_restart_replaces_the_allocation(make_nomad, double):
    scheduler = make_nomad()
    t = tenant()
    first = await scheduler.ensure_instance(t)
    old_alloc = double.current_alloc(first.job_id).id
    await scheduler.restart_instance(t.id)
    second = await scheduler.ensure_instance(t)
    assert double.current_alloc(first.job_id).id != old_alloc
    assert await pings(second.base_url)
    with pytest.raises(InstanceNotFound):
        await scheduler.restart_instance(str(uuid.uuid4()))


async def test_restart_of_a_stopped_job_starts_it(make_nomad, double):
    scheduler = make_nomad()
    t = tenant()
    await scheduler.ensure_instance(t)
    await scheduler.stop_instance(t.id)
    await scheduler.restart_instance(t.id)  # re-registers the stored job (strictly validated)
    inst = await scheduler.ensure_instance(t)
    assert inst.status == "running"
    assert await pings(inst.base_url)
    assert not double.rejected


async def test_rescheduled_allocation_is_found_after_invalidation(make_nomad, double):
    scheduler = make_nomad()
    t = tenant()
    first = await scheduler.ensure_instance(t)
    double.lose_allocation(first.job_id)
    await asyncio.sleep(0.2)
    assert not await pings(first.base_url)

    stale = await scheduler.ensure_instance(t)  # still cached: the caller finds out on connect
    assert stale.base_url == first.base_url
    await scheduler.invalidate(t.id)  # what the WAHA client does after a connection failure
    fresh = await scheduler.ensure_instance(t)
    assert fresh.base_url != first.base_url
    assert await pings(fresh.base_url)


async def test_list_is_paged_by_prefix_one_request_per_page(make_nomad, double, redis):
    scheduler = make_nomad()
    scheduler.page_size = 10
    ids = double.seed_jobs(25)
    double.seed_jobs(3, prefix="other-")
    double.seed_jobs(2, prefix="whago-waha-", status="dead")
    t = tenant()
    running = await scheduler.ensure_instance(t)
    double.reset_counts()

    listed = await scheduler.list_instances()
    assert double.count("nomad", "GET /v1/jobs") == 3  # 28 jobs / 10 per page
    assert double.count() == 3  # and nothing else: no request per job
    assert len(listed) == 28
    assert {i.job_id for i in listed} >= set(ids) | {running.job_id}
    assert all(i.job_id.startswith("whago-waha-") for i in listed)
    mine = next(i for i in listed if i.user_id == t.id)
    assert mine.status == "running"
    assert mine.base_url == running.base_url
    assert sum(1 for i in listed if i.status == "dead") == 2


# ---------------------------------------------------------------------------- failures
async def test_placement_failure_is_reported_quickly(make_nomad, double):
    scheduler = make_nomad(instance_ready_timeout_seconds=30)
    double.placement_failure = "memory"
    t = tenant()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(PlacementFailed) as info:
        await scheduler.ensure_instance(t)
    assert loop.time() - started < 5
    message = str(info.value)
    assert job_id_for(t.id) in message
    assert "memory" in message
    assert isinstance(info.value, DependencyUnavailable)


async def test_check_never_passing_raises_not_ready_naming_job_and_alloc_status(make_nomad, double, redis):
    scheduler = make_nomad(instance_ready_timeout_seconds=0.6)
    double.check_failing = True
    t = tenant()
    with pytest.raises(InstanceNotReady) as info:
        await scheduler.ensure_instance(t)
    assert job_id_for(t.id) in str(info.value)
    assert "running" in str(info.value)
    assert await redis.get(cache_key(t.id)) is None  # nothing cached


async def test_serf_health_only_instance_is_not_ready(make_nomad, double):
    # Right after registration Consul can list the instance with only the node's serfHealth check
    # and "?passing" then returns it: that must not count as healthy.
    scheduler = make_nomad(instance_ready_timeout_seconds=0.6)
    double.checks_missing = True
    with pytest.raises(InstanceNotReady):
        await scheduler.ensure_instance(tenant())


async def test_failed_allocation_reports_driver_error(make_nomad, double):
    scheduler = make_nomad(instance_ready_timeout_seconds=0.5)
    double.alloc_start_fails = True
    with pytest.raises(InstanceNotReady) as info:
        await scheduler.ensure_instance(tenant())
    assert "failed" in str(info.value)
    assert "manifest unknown" in str(info.value)


@pytest.mark.parametrize("status", [500, 503])
async def test_nomad_5xx_is_typed_and_changes_nothing(make_nomad, double, status):
    scheduler = make_nomad()
    double.nomad_status = status
    with pytest.raises(SchedulerUnavailable) as info:
        await scheduler.ensure_instance(tenant())
    assert str(status) in str(info.value)
    assert info.value.status_code == 503
    assert not double.jobs
    with pytest.raises(SchedulerUnavailable):
        await scheduler.list_instances()
    double.nomad_status = None  # retryable: the same call now works
    assert (await scheduler.ensure_instance(tenant())).status == "running"


async def test_nomad_unreachable_is_typed(make_nomad):
    scheduler = make_nomad(nomad_addr=f"http://127.0.0.1:{free_port()}", nomad_token="s3cret-nomad-token")
    with pytest.raises(SchedulerUnavailable) as info:
        await scheduler.ensure_instance(tenant())
    assert "unreachable" in str(info.value)
    assert "s3cret" not in str(info.value)
    with pytest.raises(SchedulerUnavailable):
        await scheduler.get_instance(str(uuid.uuid4()))
    with pytest.raises(SchedulerUnavailable):
        await scheduler.remove_instance(str(uuid.uuid4()))


async def test_nomad_timeout_is_typed(make_nomad, double):
    scheduler = make_nomad(nomad_timeout_seconds=0.2)
    double.nomad_delay = 1.0
    with pytest.raises(SchedulerUnavailable) as info:
        await scheduler.get_instance(str(uuid.uuid4()))
    assert "timed out" in str(info.value)


async def test_bad_nomad_token_is_reported_without_leaking_it(base_settings, redis):
    import msgspec

    from app.scheduler.nomad import NomadScheduler
    from tests.doubles import serve_double

    with serve_double(nomad_token="right-nomad-token", consul_token="right-consul-token", check_interval=0.02) as d:

        def make(**kw):
            return NomadScheduler(
                msgspec.structs.replace(
                    base_settings,
                    nomad_addr=d.nomad_url,
                    consul_addr=d.consul_url,
                    instance_ready_timeout_seconds=10,
                    **kw,
                ),
                redis,
            )

        wrong = make(nomad_token="wrong-nomad-token", consul_token="right-consul-token")
        try:
            with pytest.raises(SchedulerUnavailable) as info:
                await wrong.ensure_instance(tenant())
            assert "ACL token rejected" in str(info.value)
            assert "wrong-nomad-token" not in str(info.value)
            assert not d.jobs
        finally:
            await wrong.close()

        bad_consul = make(nomad_token="right-nomad-token", consul_token="nope")
        try:
            with pytest.raises(SchedulerUnavailable) as info:
                await bad_consul.ensure_instance(tenant())
            assert "Consul ACL token rejected" in str(info.value)
            assert "nope" not in str(info.value)
        finally:
            await bad_consul.close()

        right = make(nomad_token="right-nomad-token", consul_token="right-consul-token")
        try:
            assert (await right.ensure_instance(tenant())).status == "running"
        finally:
            await right.close()


async def test_consul_failures_are_typed(make_nomad, double):
    scheduler = make_nomad()
    double.consul_status = 500
    with pytest.raises(SchedulerUnavailable) as info:
        await scheduler.ensure_instance(tenant())
    assert "Consul answered HTTP 500" in str(info.value)

    double.consul_status = None
    unreachable = make_nomad(consul_addr=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SchedulerUnavailable) as info:
        await unreachable.ensure_instance(tenant())
    assert "Consul unreachable" in str(info.value)

    slow = make_nomad(nomad_timeout_seconds=0.3)
    double.consul_delay = 1.0
    with pytest.raises(SchedulerUnavailable) as info:
        await slow.ensure_instance(tenant())
    assert "timed out" in str(info.value)


async def test_unknown_plan_fails_before_any_request(make_nomad, double):
    scheduler = make_nomad()
    with pytest.raises(ValidationFailed):
        await scheduler.ensure_instance(tenant("platinum"))
    assert double.count() == 0


async def test_redis_down_only_disables_the_cache(make_nomad, double):
    import redis.asyncio as aioredis

    broken = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/15", socket_connect_timeout=0.2)
    try:
        scheduler = make_nomad(redis_client=broken)
        inst = await scheduler.ensure_instance(tenant())
        assert inst.status == "running"
        assert await pings(inst.base_url)
        await scheduler.invalidate(inst.user_id)
    finally:
        await broken.aclose()


async def test_close_leaves_no_threads(make_nomad):
    import threading

    scheduler = make_nomad()
    await scheduler.get_instance(str(uuid.uuid4()))
    await scheduler.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("whago-nomad")]


# ---------------------------------------------------------------------------- bounded memory
async def test_tenant_locks_are_dropped_when_unused(make_nomad, double):
    # One coalescing lock per tenant must not outlive its users: a long-running worker sees every
    # tenant eventually, and a dict that only grows is a leak.
    scheduler = make_nomad()
    tenants = [tenant() for _ in range(4)]
    await asyncio.gather(*(scheduler.ensure_instance(t) for t in tenants))
    assert len(scheduler._flights) == 0

    # concurrent ensures of one tenant still share one lock while they run, and drop it after
    same = tenant()
    await asyncio.gather(*(scheduler.ensure_instance(same) for _ in range(3)))
    assert len(double.submitted) == 5
    assert len(scheduler._flights) == 0

    # a failed ensure and a cancelled waiter leave nothing behind either
    double.placement_failure = "memory"
    with pytest.raises(PlacementFailed):
        await scheduler.ensure_instance(tenant())
    double.placement_failure = None
    slow = tenant()
    first = asyncio.create_task(scheduler.ensure_instance(slow))
    await asyncio.sleep(0.05)
    waiter = asyncio.create_task(scheduler.ensure_instance(slow))
    await asyncio.sleep(0.01)
    waiter.cancel()
    await first
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert len(scheduler._flights) == 0
