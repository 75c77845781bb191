"""Session liveness over real HTTP with the WAHA emulator: a zombie (WORKING, nothing flowing) is
detected, restarted and ok again with no new QR; a permanently dead one ends failed with the
alert; busy chips are never probed; instance outages produce no verdicts; a pass claims each chip
once, bounded per instance, even with two workers."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter

import httpx
import msgspec
import pytest

from app.core import db, metrics
from app.events.bus import user_channel
from app.liveness.service import GIVE_UP_ERROR, LivenessService
from app.reconciler import service as reconciler_module
from app.reconciler.service import Reconciler
from app.worker.runner import cron_jobs
from tests.support.platform import platform
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio

FAST = {
    "WHAGO_LIVENESS_PROBE_SECONDS": "1",
    "WHAGO_LIVENESS_QUIET_SECONDS": "0",
    "WHAGO_LIVENESS_FAILURES": "2",
    "WHAGO_LIVENESS_PROBE_TIMEOUT_SECONDS": "0.3",
}


def env(served, **extra: str) -> dict[str, str]:
    return {"WHAGO_SCHEDULER": "static", "WHAGO_WAHA_URL": served.url, **FAST, **extra}


async def control(p, served, path: str, body: dict) -> dict:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{served.url}/_emulator/{path}", json=body, headers={"X-Api-Key": p.settings.waha_api_key}
        )
    assert response.status_code == 200, response.text
    return response.json()


async def connected_chip(p, served, phone: str = "5511988887777") -> tuple[dict, dict]:
    tenant, chip = await p.waiting_chip()
    await control(p, served, f"sessions/{chip['session_name']}/scan", {"phone": phone})
    return tenant, await p.wait_status(tenant, chip["id"], "connected")


async def history(chip_id: str) -> list[dict]:
    rows = await db.fetch(
        "SELECT source, detail FROM chip_events WHERE chip_id = $1 AND source = 'liveness' ORDER BY id",
        uuid.UUID(chip_id),
    )
    return [dict(r) for r in rows]


def heals(step: str, outcome: str) -> float:
    return metrics.SESSION_HEALS.labels(step, outcome)._value.get()


def probes(outcome: str) -> float:
    return metrics.LIVENESS_PROBES.labels(outcome)._value.get()


@contextlib.asynccontextmanager
async def health_events(p, user_id: str):
    """The chip.health live events published for the tenant while the block runs."""
    received: list[dict] = []
    pubsub = p.container.redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(user_channel(uuid.UUID(user_id)))

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


async def until_health(p, tenant: dict, chip_id: str, health: str, timeout: float = 30.0) -> dict:
    """Run passes (as the job would, once per period) until the chip shows ``health``."""
    service = LivenessService(p.container)

    async def check() -> dict | None:
        await service.run_pass()
        chip = await p.chip(tenant, chip_id)
        return chip if chip["health"] == health else None

    return await eventually(check, timeout, f"health {health}", interval=0.1)


def test_the_pass_runs_on_the_probe_period(settings):
    from app.settings import load_settings

    jobs = {job.function.__name__: job for job in cron_jobs(load_settings({"WHAGO_LIVENESS_PROBE_SECONDS": "5"}))}
    assert jobs["liveness"].cron == "*/5 * * * * *"


async def test_webhook_events_touch_last_seen(static_emulator):
    served, _emulator = static_emulator
    async with platform(env(served, WHAGO_LIVENESS_QUIET_SECONDS="900")) as p:
        _tenant, chip = await connected_chip(p, served)
        chip_id = uuid.UUID(chip["id"])
        seen = await db.fetchrow("SELECT last_seen_at FROM chips WHERE id = $1", chip_id)
        assert seen["last_seen_at"] is not None  # the WORKING status event
        await db.fetch("UPDATE chips SET last_seen_at = now() - interval '1 hour' WHERE id = $1", chip_id)
        await control(p, served, f"sessions/{chip['session_name']}/message", {"text": "hi"})

        async def touched() -> bool:
            row = await db.fetchrow(
                "SELECT last_seen_at > now() - interval '1 minute' AS fresh FROM chips WHERE id = $1", chip_id
            )
            return row["fresh"]

        await eventually(touched, 10, "last_seen_at from the message event")
        # busy (quiet for 900 s): never claimed
        assert (await LivenessService(p.container).run_pass())["claimed"] == 0


async def test_zombie_is_detected_and_healed_without_a_new_qr(static_emulator):
    served, emulator = static_emulator
    async with platform(env(served)) as p:
        tenant, chip = await connected_chip(p, served)
        session = emulator.sessions[chip["session_name"]]
        qr_count, auth = session.qr_count, session.auth
        async with health_events(p, tenant["user"]["id"]) as events:
            ok = await until_health(p, tenant, chip["id"], "ok")
            assert ok["health_checked_at"] is not None
            await eventually(lambda: [e for e in events if e["event"] == "chip.health"], 5, "a chip.health event")
        health = next(e["data"] for e in events if e["event"] == "chip.health")
        assert health["chip_id"] == chip["id"]
        assert health["health"] == "ok"
        assert health["at"].endswith("Z")

        healed_before = heals("session", "ok")
        await control(p, served, f"sessions/{chip['session_name']}/fault", {"fault": "zombie"})
        assert session.zombie
        degraded = await until_health(p, tenant, chip["id"], "degraded")
        assert degraded["status"] in ("connected", "starting")  # health never replaces status
        healed = await until_health(p, tenant, chip["id"], "ok")
        assert healed["status"] == "connected"
        assert healed["phone_number"] == "5511988887777"
        # WAHA kept the pairing: no QR was shown again
        assert session.qr_count == qr_count
        assert session.auth == auth
        assert not session.zombie
        assert heals("session", "ok") == healed_before + 1
        details = [row["detail"] for row in await history(chip["id"])]
        assert any("probe failed" in d for d in details)
        assert any("restarting the session" in d for d in details)
        assert details[-1] == "liveness probe passed"


async def test_permanently_dead_chip_ends_failed_with_the_alert(static_emulator, monkeypatch, caplog):
    monkeypatch.setattr(reconciler_module, "SETTLE_SECONDS", 0)
    served, emulator = static_emulator
    async with platform(env(served, WHAGO_LIVENESS_HEALS_PER_HOUR="2")) as p:
        tenant, chip = await connected_chip(p, served)
        await control(p, served, f"sessions/{chip['session_name']}/fault", {"fault": "zombie", "survive_restart": True})
        gave_up = heals("give_up", "failed")
        service = LivenessService(p.container)

        async def failed() -> dict | None:
            await service.run_pass()
            body = await p.chip(tenant, chip["id"])
            return body if body["status"] == "failed" else None

        body = await eventually(failed, 40, "chip failed", interval=0.1)
        assert body["error"] == GIVE_UP_ERROR
        assert body["health"] == "unknown"
        assert heals("give_up", "failed") == gave_up + 1
        assert any("marked failed" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
        details = [row["detail"] for row in await history(chip["id"])]
        assert sum("liveness heal" in d for d in details) == 2
        assert emulator.sessions[chip["session_name"]].status == "WORKING"
        # the reconciler sees WORKING but leaves the given-up chip failed
        await Reconciler(p.container).run()
        assert (await p.chip(tenant, chip["id"]))["status"] == "failed"
        # nothing more is probed for it
        checks = len(emulator.checks)
        await service.run_pass()
        assert len(emulator.checks) == checks


async def test_instance_outage_is_no_verdict(static_emulator):
    served, emulator = static_emulator
    async with platform(env(served, WHAGO_LIVENESS_FAILURES="1")) as p:
        _tenant, chip = await connected_chip(p, served)
        unreachable = probes("unreachable")
        emulator.fault = "refuse"  # 503 on every WAHA route
        service = LivenessService(p.container)
        try:
            for _ in range(3):
                await db.fetch("UPDATE chips SET next_probe_at = NULL")
                result = await service.run_pass()
                assert result.get("unreachable") == 1, result
        finally:
            emulator.fault = "none"
        assert probes("unreachable") == unreachable + 3
        row = await db.fetchrow("SELECT health, probe_failures FROM chips WHERE id = $1", uuid.UUID(chip["id"]))
        assert row["health"] == "unknown"
        assert row["probe_failures"] == 0
        assert await history(chip["id"]) == []


async def test_only_quiet_chips_are_probed_bounded_per_instance_once_with_two_workers(static_emulator):
    """200 connected chips over 5 tenants, 180 busy (events in the quiet window): only the 20 quiet
    ones are probed, at most WHAGO_LIVENESS_MAX_PER_INSTANCE per tenant per pass, each once even
    with two workers passing at the same time. Chips deleting, disconnected or logged out are never
    probed. (tests/bench/bench_liveness.py runs the 1,000-chip version.)"""
    served, emulator = static_emulator
    bound = 3
    extra = {"WHAGO_LIVENESS_QUIET_SECONDS": "600", "WHAGO_LIVENESS_PROBE_SECONDS": "300"}
    async with platform(env(served, WHAGO_LIVENESS_MAX_PER_INSTANCE=str(bound), **extra), worker=False) as p:
        quiet: dict[str, uuid.UUID] = {}  # session -> tenant
        busy = 0
        for t in range(5):
            tenant = await p.tenant("enterprise")
            user_id = uuid.UUID(tenant["user"]["id"])
            client = p.container.waha.for_tenant(served.url, user_id)
            for n in range(40):
                chip_id = uuid.uuid4()
                name = f"chip_{chip_id.hex}"
                is_quiet = n < 4
                await db.fetch(
                    "INSERT INTO chips (id, user_id, alias, status, session_name, phone_number, status_changed_at,"
                    " last_seen_at) VALUES ($1, $2, $3, 'connected', $4, $5, now() - interval '1 hour',"
                    " CASE WHEN $6 THEN now() - interval '1 hour' ELSE now() END)",
                    chip_id,
                    user_id,
                    f"c{n}",
                    name,
                    f"55119{t:02d}{n:05d}",
                    is_quiet,
                )
                if is_quiet:
                    quiet[name] = user_id
                    # no webhooks: the emulated sessions of this test only answer probes
                    await client.create_session_with_config(name, {}, start=True)
                else:
                    busy += 1
            # never probed, however quiet: being deleted, stopped, logged out (intent: not running)
            for status, running in (("deleting", True), ("disconnected", True), ("connected", False)):
                await db.fetch(
                    "INSERT INTO chips (id, user_id, alias, status, session_name, phone_number, status_changed_at,"
                    " desired_running) VALUES ($1, $2, 'x', $3, $4, '5511900000000', now() - interval '1 hour', $5)",
                    uuid.uuid4(),
                    user_id,
                    status,
                    f"chip_{uuid.uuid4().hex}",
                    running,
                )
        assert busy == 180
        for name in quiet:
            await eventually(lambda name=name: emulator.sessions[name].status == "SCAN_QR_CODE", 10, "QR")
            await control(p, served, f"sessions/{name}/scan", {})

        first, second = (LivenessService(p.container) for _ in range(2))
        result = await first.run_pass()
        per_tenant = Counter(quiet[name] for name in emulator.checks)
        assert result["claimed"] == 5 * bound
        assert set(per_tenant.values()) == {bound}  # 4 quiet per tenant, 3 taken: the bound holds
        assert set(emulator.checks) <= set(quiet)
        # the rest on the next passes: two workers at once claim each remaining chip once
        results = await asyncio.gather(first.run_pass(), second.run_pass())
        assert sum(r["claimed"] for r in results) == 5
        # then nothing until a period has passed (once per period per chip)
        assert (await second.run_pass())["claimed"] == 0
        assert Counter(emulator.checks) == Counter(dict.fromkeys(quiet, 1))
        assert (await db.fetchrow("SELECT count(*) AS n FROM chips WHERE health = 'ok'"))["n"] == 20
