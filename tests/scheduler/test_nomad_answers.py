"""The adapter against the double answering as Nomad and Consul do: validation errors as 500 +
text, Consul's ACL filtering, leader endpoints without auth, plan-based updates with
check-and-set, blocking queries."""

from __future__ import annotations

import time
import uuid

import httpx
import msgspec
import pytest

from app.scheduler import JobRejected, SchedulerUnavailable, TenantRef
from app.scheduler.errors import JobModifyConflict, SchedulerMisconfigured
from app.scheduler.nomad import NomadScheduler
from app.scheduler.nomad_job import build_job
from tests.doubles import serve_double

pytestmark = pytest.mark.anyio


def tenant(plan: str = "business") -> TenantRef:
    return TenantRef(id=str(uuid.uuid4()), plan=plan, email="a@example.com")


# ---------------------------------------------------------------------------- errors with meaning
async def test_nomad_validation_error_is_permanent_with_nomads_text(make_nomad, double):
    scheduler = make_nomad(nomad_node_pool="gpu")
    with pytest.raises(JobRejected) as info:
        await scheduler.ensure_instance(tenant())
    assert info.value.permanent
    assert 'nonexistent node pool "gpu"' in info.value.detail
    assert not isinstance(info.value, SchedulerUnavailable)  # not an outage: not retried
    assert not double.jobs


async def test_nomad_without_leader_is_retryable(make_nomad, double):
    scheduler = make_nomad()
    double.nomad_status = 500  # the double's outage text: "rpc error: No cluster leader"
    with pytest.raises(SchedulerUnavailable) as info:
        await scheduler.ensure_instance(tenant())
    assert not getattr(info.value, "permanent", False)
    assert "No cluster leader" in info.value.detail  # operators see Nomad's text


def test_transient_500_texts():
    from app.scheduler.nomad.transport import is_transient_500

    assert is_transient_500("No cluster leader")
    assert is_transient_500("rpc error: EOF".removeprefix("rpc error: "))
    assert is_transient_500("")
    assert not is_transient_500("1 error occurred: * Task group waha validation failed: ...")


# ---------------------------------------------------------------------------- ACLs
async def test_consul_filtering_is_a_configuration_error(base_settings, redis):
    with serve_double(consul_token="c-token", consul_policy=frozenset({"service:read"}), check_interval=0.02) as d:
        scheduler = NomadScheduler(
            msgspec.structs.replace(
                base_settings,
                nomad_addr=d.nomad_url,
                consul_addr=d.consul_url,
                consul_token="c-token",
                instance_ready_timeout_seconds=10,
            ),
            redis,
        )
        try:
            with pytest.raises(SchedulerMisconfigured, match="node:read"):
                await scheduler.ping()
            started = time.monotonic()
            with pytest.raises(SchedulerMisconfigured, match='node_prefix ""') as info:
                await scheduler.ensure_instance(tenant())
            assert time.monotonic() - started < 5  # said at once, not after the readiness timeout
            assert "c-token" not in info.value.detail
            assert info.value.status_code == 503
        finally:
            await scheduler.close()


async def test_anonymous_consul_access_is_filtered_not_refused(base_settings, redis):
    with serve_double(consul_token="c-token", check_interval=0.02) as d:
        async with httpx.AsyncClient(base_url=d.consul_url, timeout=5) as consul:
            resp = await consul.get("/v1/catalog/nodes")
            assert resp.status_code == 200
            assert resp.json() == []
            assert resp.headers["X-Consul-Results-Filtered-By-ACLs"] == "true"
            assert (await consul.get("/v1/catalog/nodes", headers={"X-Consul-Token": "x"})).status_code == 403
        settings = msgspec.structs.replace(base_settings, nomad_addr=d.nomad_url, consul_addr=d.consul_url)
        scheduler = NomadScheduler(settings, redis)
        try:
            with pytest.raises(SchedulerMisconfigured):
                await scheduler.ping()
        finally:
            await scheduler.close()


async def test_ping_makes_an_authenticated_nomad_call(base_settings, redis):
    with serve_double(nomad_token="n-token", check_interval=0.02) as d:
        # the leader endpoint answers anyone, so it alone proves nothing about the token
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(f"{d.nomad_url}/v1/status/leader")).status_code == 200

        def make(token: str) -> NomadScheduler:
            settings = msgspec.structs.replace(
                base_settings, nomad_addr=d.nomad_url, consul_addr=d.consul_url, nomad_token=token
            )
            return NomadScheduler(settings, redis)

        wrong, right = make("wrong"), make("n-token")
        try:
            with pytest.raises(SchedulerMisconfigured, match="ACL token rejected"):
                await wrong.ping()
            await right.ping()
            d.leader = ""  # an election in progress
            with pytest.raises(SchedulerUnavailable, match="no cluster leader"):
                await right.ping()
        finally:
            await wrong.close()
            await right.close()


# ---------------------------------------------------------------------------- stable updates
async def test_two_whago_versions_never_flip_a_job(make_nomad, double):
    """A rolling deploy: the old and the new WHAGO ensure the same tenant in turns. The newer
    generation's spec wins once; the old one never writes it back."""
    old = make_nomad()
    new = make_nomad(waha_image="devlikeapro/waha:gows-2026.8.1")
    new.generation = old.generation + 1
    t = tenant()
    await old.ensure_instance(t)
    await new.invalidate(t.id)
    await new.ensure_instance(t)
    record = double.job(f"whago-waha-{t.id}")
    assert record is not None
    version = record.version
    for scheduler in (old, new, old, new):
        await scheduler.invalidate(t.id)
        await scheduler.ensure_instance(t)
    assert record.version == version
    assert record.job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "devlikeapro/waha:gows-2026.8.1"
    assert len(double.submitted) == 2


async def test_same_version_updates_through_plan_and_check_and_set(make_nomad, double):
    scheduler = make_nomad()
    t = tenant("free")
    await scheduler.ensure_instance(t)
    await scheduler.invalidate(t.id)
    up = TenantRef(id=t.id, plan="enterprise", email=t.email)
    await scheduler.ensure_instance(up)
    first, second = double.submitted
    assert second["EnforceIndex"] is True
    assert second["JobModifyIndex"] == first_modify_index(double, first)


def first_modify_index(double, first_body) -> int:
    # the update was made against the index the first registration produced
    record = double.job(first_body["Job"]["ID"])
    assert record is not None
    return record.create_index


async def test_check_and_set_conflict_is_retried_with_a_fresh_read(make_nomad, double):
    scheduler = make_nomad()
    t = tenant()
    body = build_job(scheduler.settings, t)
    httpx_register(double, body)  # another writer, between our read and our register
    with pytest.raises(JobModifyConflict):
        await scheduler._register(body, modify_index=0)  # "only if new": it exists now
    # ensure reads again and plans instead of failing
    assert (await scheduler.ensure_instance(t)).status == "running"


def httpx_register(double, body) -> None:
    assert httpx.post(f"{double.nomad_url}/v1/jobs", json=body, timeout=5).status_code == 200


async def test_revert_loop_cannot_happen(make_nomad, double):
    scheduler = make_nomad()
    assert build_job(scheduler.settings, tenant())["Job"]["Update"]["AutoRevert"] is False


# ---------------------------------------------------------------------------- double behaviour
async def test_readiness_uses_blocking_queries(make_nomad, double):
    scheduler = make_nomad()
    double.reset_counts()
    await scheduler.ensure_instance(tenant())
    assert double.blocking_queries >= 1
    # a bounded number of rounds, not a 50 ms poll over the whole start
    assert double.count("consul", "/v1/health/service") <= 20


def test_blocking_query_waits_for_a_change(double):
    index = int(httpx.get(f"{double.consul_url}/v1/health/service/nothing", timeout=5).headers["X-Consul-Index"])
    started = time.monotonic()
    resp = httpx.get(
        f"{double.consul_url}/v1/health/service/nothing", params={"index": index, "wait": "300ms"}, timeout=5
    )
    assert resp.status_code == 200
    assert time.monotonic() - started >= 0.25


def test_group_services_are_registered_before_the_task_runs(double, base_settings):
    body = build_job(base_settings, tenant())
    group = body["Job"]["TaskGroups"][0]
    group["Services"] = group["Tasks"][0].pop("Services")
    double.task_start_delay = 1.0  # a slow image pull
    job_id = body["Job"]["ID"]
    assert httpx.post(f"{double.nomad_url}/v1/jobs", json=body, timeout=5).status_code == 200
    # synchronously with placement, before the task (the emulator) answers: critical
    entries = httpx.get(f"{double.consul_url}/v1/health/service/{job_id}", timeout=5).json()
    assert len(entries) == 1
    own = [c for c in entries[0]["Checks"] if c["ServiceID"] == entries[0]["Service"]["ID"]]
    assert all(c["Status"] == "critical" for c in own)
    assert "-group-waha-" in entries[0]["Service"]["ID"]
    # once Consul shows the check (the second registration step), it is critical: nothing answers
    index = 0
    while not own:
        resp = httpx.get(
            f"{double.consul_url}/v1/health/service/{job_id}", params={"index": index, "wait": "1s"}, timeout=5
        )
        index = int(resp.headers["X-Consul-Index"])
        own = [c for c in resp.json()[0]["Checks"] if c["ServiceID"] == resp.json()[0]["Service"]["ID"]]
    assert [c["Status"] for c in own] == ["critical"]
    assert double.current_alloc(job_id).client_status == "pending"


def test_job_list_tokens_name_namespace_and_id(double):
    ids = sorted(double.seed_jobs(3))
    page = httpx.get(f"{double.nomad_url}/v1/jobs", params={"prefix": "whago-waha-", "per_page": 2}, timeout=5)
    assert page.headers["X-Nomad-NextToken"] == f"default.{ids[2]}"
    rest = httpx.get(
        f"{double.nomad_url}/v1/jobs",
        params={"prefix": "whago-waha-", "per_page": 2, "next_token": page.headers["X-Nomad-NextToken"]},
        timeout=5,
    )
    assert [j["ID"] for j in rest.json()] == [ids[2]]


async def test_readiness_report_names_the_missing_permission():
    from app.health.service import _check

    async def probe() -> None:
        raise SchedulerMisconfigured("Consul token lacks node:read (answer filtered by ACL)")

    assert await _check(probe, 1.0) == "misconfigured (Consul token lacks node:read (answer filtered by ACL))"
