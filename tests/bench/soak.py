"""Soak with faults: the whole platform under sustained tenant load while things break.

Run (loopback only, bounded in time and requests; never collected by pytest):

    WHAGO_SOAK_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/whago_test_soak \\
    WHAGO_SOAK_REDIS_PORT=6393 \\
    .venv/bin/python -m tests.bench.soak --seconds 240

What runs: ``whago serve --workers 3`` (three API processes on one port) and two ``whago worker``
processes, over the Nomad/Consul double (its allocations run WAHA emulators, which deliver signed
webhooks to the API, with random delivery delays so events overtake each other). Tenants create,
link (scan), message, restart, log out and delete chips; extra acks are injected, lower ones after
higher ones (duplicates and reordering). Meanwhile the script restarts the Redis server (the one
on WHAGO_SOAK_REDIS_PORT, which must be a disposable server of the caller's own: it is shut down
with ``nosave``), SIGKILLs a worker (and starts a new one), makes the Nomad double answer 503 and
some tenants' WAHA refuse for a while, and loses an allocation.

At the end (after one reconcile) it checks: each chip's status equals its WAHA session's; no
tenant over its plan; no duplicate sessions or jobs, no orphan session or instance; every event the
emulators emitted for a live chip was recorded exactly once and status history has no more webhook
rows than recorded status events; every message's status equals the highest ack delivered; no 5xx
outside the fault windows and only 503 inside them. It prints throughput, p50/p99 per phase and
the time to converge after the last fault, and exits 1 when an invariant fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.support.env import environment

DATABASE_URL = os.environ.get("WHAGO_SOAK_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/whago_soak")
REDIS_PORT = int(os.environ.get("WHAGO_SOAK_REDIS_PORT", "6393"))
REDIS_DIR = os.environ.get("WHAGO_SOAK_REDIS_DIR", "/var/lib/redis-soak")
MAPPING = {"STARTING": "starting", "SCAN_QR_CODE": "waiting_qr", "WORKING": "connected", "STOPPED": "disconnected"}
MAPPING["FAILED"] = "failed"
RANK = {"pending": 0, "sent": 1, "failed": 2, "delivered": 3, "read": 4}
ACK_STATUS = {-1: "failed", 0: "pending", 1: "sent", 2: "delivered", 3: "read", 4: "read"}
REDIS_SERVER = ("redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
GRACE = 5.0  # seconds after a fault ends during which its effects (503s) still count as inside it


def pct(values: list[float], p: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, round(p / 100 * (len(data) - 1)))] if data else float("nan")


@dataclass
class Call:
    at: float
    phase: str
    name: str
    status: int  # 0: transport error
    seconds: float


@dataclass
class Soak:
    api: str
    env: dict[str, str]
    double: Any
    keys: Any
    max_requests: int
    phase: str = "warmup"
    calls: list[Call] = field(default_factory=list)
    faults: list[tuple[str, float, float]] = field(default_factory=list)  # (what, start, end)
    events: dict[str, tuple[str, dict]] = field(default_factory=dict)  # event id -> (user id, envelope)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def call(
        self, http: httpx.AsyncClient, method: str, path: str, name: str, **kw: Any
    ) -> httpx.Response | None:
        if len(self.calls) >= self.max_requests:
            self.stop.set()
            return None
        start = time.monotonic()
        try:
            response = await http.request(method, self.api + path, **kw)
        except httpx.TransportError:
            self.calls.append(Call(start, self.phase, name, 0, time.monotonic() - start))
            return None
        self.calls.append(Call(start, self.phase, name, response.status_code, time.monotonic() - start))
        return response

    def in_fault(self, at: float) -> bool:
        return any(start <= at <= end + GRACE for _, start, end in self.faults)

    def emulators(self) -> list[tuple[str, Any]]:
        with self.double._lock:
            return [
                (a.job_id, a.server.app.state.emulator) for a in self.double.allocs.values() if a.server is not None
            ]

    def snapshot_events(self) -> None:
        for job_id, emulator in self.emulators():
            for envelope in list(emulator.events):
                user_id = (envelope.get("metadata") or {}).get("user_id") or job_id
                self.events.setdefault(envelope["id"], (str(user_id), envelope))


class Tenant:
    def __init__(self, soak: Soak, body: dict, limit: int) -> None:
        self.soak, self.limit = soak, limit
        self.user_id = body["user"]["id"]
        self.headers = {"Authorization": f"Bearer {body['access_token']}"}
        self.messages: list[tuple[str, str]] = []  # (chip id, message id)

    def waha(self) -> str | None:
        from app.scheduler.base import job_id_for

        alloc = self.soak.double.current_alloc(job_id_for(self.user_id))
        return f"http://127.0.0.1:{alloc.port}" if alloc is not None and alloc.port else None

    async def chips(self, http: httpx.AsyncClient) -> list[dict]:
        response = await self.soak.call(http, "GET", "/api/v1/chips?limit=100", "list", headers=self.headers)
        return response.json()["items"] if response is not None and response.status_code == 200 else []

    async def step(self, http: httpx.AsyncClient) -> None:
        s, h = self.soak, self.headers
        chips = await self.chips(http)
        by_status = defaultdict(list)
        for chip in chips:
            by_status[chip["status"]].append(chip)
        roll = random.random()
        if roll < 0.2 and len(chips) <= self.limit:  # one over the limit now and then: must be refused
            await s.call(http, "POST", "/api/v1/chips", "create", json={"alias": f"c{uuid.uuid4().hex[:6]}"}, headers=h)
        elif roll < 0.35 and by_status["waiting_qr"]:
            chip = random.choice(by_status["waiting_qr"])
            waha = self.waha()
            if waha:
                phone = "55119" + str(random.randint(10_000_000, 99_999_999))
                with contextlib.suppress(httpx.HTTPError):
                    await http.post(
                        f"{waha}/_emulator/sessions/{chip['session_name']}/scan",
                        json={"phone": phone},
                        headers={"X-Api-Key": s.keys.api_key(self.user_id)},
                    )
        elif roll < 0.65 and by_status["connected"]:
            chip = random.choice(by_status["connected"])
            response = await s.call(
                http,
                "POST",
                f"/api/v1/chips/{chip['id']}/messages",
                "message",
                json={"to": "5511999990000", "text": "soak"},
                headers=h,
            )
            if response is not None and response.status_code == 202:
                self.messages.append((chip["id"], response.json()["id"]))
        elif roll < 0.75 and self.messages:
            await self.extra_ack(http)
        elif roll < 0.82 and chips:
            chip = random.choice(chips)
            await s.call(http, "POST", f"/api/v1/chips/{chip['id']}/restart", "restart", headers=h)
        elif roll < 0.88 and by_status["connected"]:
            chip = random.choice(by_status["connected"])
            await s.call(http, "POST", f"/api/v1/chips/{chip['id']}/logout", "logout", headers=h)
        elif roll < 0.93 and chips:
            chip = random.choice(chips)
            await s.call(http, "DELETE", f"/api/v1/chips/{chip['id']}", "delete", headers=h)
        elif chips:
            chip = random.choice(chips)
            await s.call(http, "GET", f"/api/v1/chips/{chip['id']}/events", "history", headers=h)

    async def extra_ack(self, http: httpx.AsyncClient) -> None:
        """A duplicate or out-of-order tick for a sent message, as WhatsApp sends them."""
        chip_id, message_id = random.choice(self.messages)
        response = await self.soak.call(
            http, "GET", f"/api/v1/chips/{chip_id}/messages/{message_id}", "get_message", headers=self.headers
        )
        waha = self.waha()
        if response is None or response.status_code != 200 or not waha or not response.json().get("waha_message_id"):
            return
        chip = await self.soak.call(http, "GET", f"/api/v1/chips/{chip_id}", "get_chip", headers=self.headers)
        if chip is None or chip.status_code != 200:
            return
        with contextlib.suppress(httpx.HTTPError):
            await http.post(
                f"{waha}/_emulator/sessions/{chip.json()['session_name']}/messages/"
                f"{response.json()['waha_message_id']}/ack",
                json={"ack": random.choice([1, 1, 2, 3])},
                headers={"X-Api-Key": self.soak.keys.api_key(self.user_id)},
            )

    async def run(self, http: httpx.AsyncClient) -> None:
        while not self.soak.stop.is_set():
            await self.step(http)
            await asyncio.sleep(random.uniform(0.05, 0.3))


# --- processes ---------------------------------------------------------------------------------


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "app.cli", *args], env=env, stdout=out, stderr=subprocess.STDOUT)


def redis_restart() -> None:
    subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "shutdown", "nosave"], capture_output=True, timeout=10)
    Path(REDIS_DIR).mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [*REDIS_SERVER, "--port", str(REDIS_PORT), "--dir", REDIS_DIR],
        check=True,
        capture_output=True,
        timeout=10,
    )


async def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url + "/health/ready")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise TimeoutError(url)


# --- invariants --------------------------------------------------------------------------------


async def chip_vs_waha(conn: asyncpg.Connection, soak: Soak) -> list[str]:
    from app.scheduler.base import job_id_for

    problems = []
    sessions: dict[str, str] = {}
    for _, emulator in soak.emulators():
        for name, session in list(emulator.sessions.items()):
            if name in sessions:
                problems.append(f"session {name} exists in two WAHA instances")
            sessions[name] = session.status
    chips = await conn.fetch("SELECT id, user_id, session_name, status FROM chips")
    names = {c["session_name"] for c in chips}
    for chip in chips:
        waha = sessions.get(chip["session_name"])
        expected = MAPPING.get(waha) if waha else None
        if chip["status"] != expected:
            problems.append(f"chip {chip['id']} is {chip['status']}, its WAHA session is {waha}")
        if soak.double.job(job_id_for(str(chip["user_id"]))) is None:
            problems.append(f"chip {chip['id']} has no Nomad job")
    problems += [f"orphan WAHA session {n}" for n in sessions if n not in names]
    return problems


async def check(conn: asyncpg.Connection, soak: Soak, limits: dict[str, int]) -> tuple[list[str], dict]:
    from app.scheduler.base import job_id_for

    problems = await chip_vs_waha(conn, soak)
    facts: dict[str, Any] = {}
    # plans
    for row in await conn.fetch(
        "SELECT u.id, u.plan, count(c.id) AS n FROM users u LEFT JOIN chips c ON c.user_id = u.id GROUP BY u.id"
    ):
        if row["n"] > limits[row["plan"]]:
            problems.append(f"tenant {row['id']} has {row['n']} chips, plan {row['plan']} allows {limits[row['plan']]}")
    # duplicate sessions / jobs, orphan instances
    for row in await conn.fetch("SELECT session_name, count(*) AS n FROM chips GROUP BY 1 HAVING count(*) > 1"):
        problems.append(f"session {row['session_name']} is used by {row['n']} chips")
    jobs = [j for (_, j), rec in soak.double.jobs.items() if not rec.stop]
    if len(jobs) != len(set(jobs)):
        problems.append("duplicate Nomad jobs")
    # an instance is per tenant and outlives its last chip until idle reaping (WHAGO_IDLE_DAYS): an
    # orphan is a running job of no WHAGO tenant, or one the instances table does not know
    users = {str(r["id"]) for r in await conn.fetch("SELECT id FROM users")}
    recorded_jobs = {r["job_id"] for r in await conn.fetch("SELECT job_id FROM instances")}
    wanted = {job_id_for(u) for u in users}
    problems += [f"orphan Nomad job {j}" for j in jobs if j not in wanted or j not in recorded_jobs]
    # events: every emitted event of a live chip recorded exactly once; history rows <= status events
    recorded = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM webhook_events")}
    live = {r["session_name"] for r in await conn.fetch("SELECT session_name FROM chips")}

    def stored_id(user_id: str, event_id: str) -> set[str]:
        scoped = "t:" + hashlib.sha256(f"{uuid.UUID(user_id)}/{event_id}".encode()).hexdigest()[:62]
        return {event_id, scoped}

    handled = ("session.status", "message", "message.ack")
    emitted = [(u, e) for u, e in soak.events.values() if e["event"] in handled and e["session"] in live]
    missing = [e for u, e in emitted if not (stored_id(u, e["id"]) & recorded)]
    facts["events_emitted_for_live_chips"] = len(emitted)
    facts["events_recorded_total"] = len(recorded)
    facts["events_missing"] = len(missing)
    if missing:
        problems.append(f"{len(missing)} emitted events never recorded, e.g. {missing[:3]}")
    for row in await conn.fetch(
        "SELECT c.session_name, (SELECT count(*) FROM chip_events h WHERE h.chip_id = c.id AND h.source = 'webhook')"
        " AS rows, (SELECT count(*) FROM webhook_events w WHERE w.session_name = c.session_name"
        " AND w.event = 'session.status') AS events FROM chips c"
    ):
        if row["rows"] > row["events"]:
            problems.append(f"{row['session_name']}: {row['rows']} webhook history rows for {row['events']} events")
    # messages: status == highest ack delivered (recorded)
    highest: dict[str, int] = {}
    for u, e in soak.events.values():
        if e["event"] == "message.ack" and stored_id(u, e["id"]) & recorded:
            status = ACK_STATUS.get(int(e["payload"]["ack"]))
            if status:
                key = e["payload"]["id"]
                highest[key] = max(highest.get(key, -1), RANK[status])
    checked = 0
    for row in await conn.fetch("SELECT id, waha_message_id, status FROM messages WHERE waha_message_id IS NOT NULL"):
        if row["waha_message_id"] in highest:
            checked += 1
            if RANK[row["status"]] != highest[row["waha_message_id"]]:
                problems.append(
                    f"message {row['id']} is {row['status']}, highest delivered ack's rank is "
                    f"{highest[row['waha_message_id']]}"
                )
    facts["messages_checked"] = checked
    facts["messages_with_delivered_acks"] = len(highest)
    # HTTP answers
    bad_outside = [c for c in soak.calls if c.status >= 500 and not soak.in_fault(c.at)]
    bad_inside = [c for c in soak.calls if c.status >= 500 and c.status != 503 and soak.in_fault(c.at)]
    transport = [c for c in soak.calls if c.status == 0]
    facts["503_inside_faults"] = sum(1 for c in soak.calls if c.status == 503 and soak.in_fault(c.at))
    facts["transport_errors"] = len(transport)
    if bad_outside:
        problems.append(f"{len(bad_outside)} 5xx outside fault windows, e.g. {bad_outside[:5]}")
    if bad_inside:
        problems.append(f"{len(bad_inside)} non-503 5xx inside fault windows, e.g. {bad_inside[:5]}")
    if transport:
        problems.append(f"{len(transport)} transport errors from the API, e.g. {transport[:5]}")
    return problems, facts


# --- the run -----------------------------------------------------------------------------------


async def run(seconds: float, tenants: int, max_requests: int, logs: Path) -> int:
    from app.core.tenant_keys import TenantKeys
    from app.settings import load_settings
    from tests.doubles import serve_double
    from tests.support.asgi_server import free_port
    from tests.support.platform import FAST_JOBS

    redis_url = f"redis://127.0.0.1:{REDIS_PORT}/0"
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    with serve_double(
        check_interval=0.05,
        registration_gap=0.1,
        emulator_options={"boot_delay_seconds": 0.2, "qr_first_seconds": 120, "ack_delay_seconds": 0.3},
    ) as double:
        env = {
            **os.environ,
            **environment(),
            **FAST_JOBS,
            "WHAGO_DATABASE_URL": DATABASE_URL,
            "WHAGO_REDIS_URL": redis_url,
            "WHAGO_PUBLIC_URL": api,
            "WHAGO_SCHEDULER": "nomad",
            "WHAGO_NOMAD_ADDR": double.nomad_url,
            "WHAGO_CONSUL_ADDR": double.consul_url,
            "WHAGO_RECONCILE_INTERVAL_SECONDS": "15",
            "WHAGO_LOG_LEVEL": "INFO",
            "UVICORN_ACCESS_LOG": "0",
        }
        os.environ.update(env)  # the in-process reconcile below reads its database from the environment
        settings = load_settings(env)
        migrate = [sys.executable, "-m", "app.cli", "migrate"]
        subprocess.run(migrate, env=env, check=True, capture_output=True)  # noqa: ASYNC221  (setup)
        conn = await asyncpg.connect(DATABASE_URL)
        await conn.execute(
            "TRUNCATE audit_log, messages, chip_events, webhook_events, instances, chips, proxies, users CASCADE"
        )
        flush = ["redis-cli", "-p", str(REDIS_PORT), "flushall"]
        subprocess.run(flush, check=True, capture_output=True)  # noqa: ASYNC221  (setup)
        server = start(["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "3"], env, logs / "api.log")
        workers = [start(["worker"], env, logs / f"worker{i}.log") for i in range(2)]
        soak = Soak(api, env, double, TenantKeys(settings), max_requests)
        try:
            await wait_ready(api)
            async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as http:
                limits = {p["name"]: p["max_chips"] for p in (await http.get(api + "/api/v1/plans")).json()}
                plans = sorted(limits, key=limits.get)
                people = []
                for i in range(tenants):
                    body = (
                        await http.post(
                            api + "/api/v1/auth/register",
                            json={"email": f"soak{i}-{uuid.uuid4().hex[:6]}@example.com", "password": "soak-pass-1"},
                        )
                    ).json()
                    plan = plans[i % min(2, len(plans))]  # the two smallest plans: their limits get hit
                    await conn.execute("UPDATE users SET plan = $2 WHERE id = $1", uuid.UUID(body["user"]["id"]), plan)
                    people.append(Tenant(soak, body, limits[plan]))
                t0 = time.monotonic()
                tasks = [asyncio.create_task(p.run(http)) for p in people]

                async def snapshots() -> None:
                    while True:
                        soak.snapshot_events()
                        await asyncio.sleep(0.5)

                snapper = asyncio.create_task(snapshots())

                async def at(fraction: float) -> None:
                    await asyncio.sleep(max(0.0, t0 + seconds * fraction - time.monotonic()))

                def window(what: str, start: float) -> None:
                    soak.faults.append((what, start, time.monotonic()))
                    print(f"[{time.monotonic() - t0:6.1f}s] fault over: {what}", flush=True)

                await at(0.15)
                soak.phase = "faults"
                for _, emulator in soak.emulators():
                    emulator.webhook_delay = (0.0, 0.5)  # events overtake each other from here on
                await at(0.2)
                begin = time.monotonic()
                redis_restart()
                window("redis restart", begin)
                await at(0.32)
                begin = time.monotonic()
                workers[0].send_signal(signal.SIGKILL)
                workers[0].wait(10)
                await asyncio.sleep(seconds * 0.05)
                workers[0] = start(["worker"], env, logs / "worker0b.log")
                window("worker SIGKILL (restarted after a pause)", begin)
                await at(0.45)
                begin = time.monotonic()
                double.nomad_status = 503
                await asyncio.sleep(seconds * 0.08)
                double.nomad_status = None
                window("Nomad unavailable", begin)
                await at(0.58)
                begin = time.monotonic()
                victims = soak.emulators()[:2]
                for _, emulator in victims:
                    emulator.fault = "refuse"
                await asyncio.sleep(seconds * 0.08)
                for _, emulator in victims:
                    emulator.fault = "none"
                window(f"{len(victims)} WAHA instances refusing", begin)
                await at(0.7)
                begin = time.monotonic()
                running = soak.emulators()
                lost = ""
                if running:
                    job_id = running[-1][0]
                    soak.snapshot_events()
                    lost = double.lose_allocation(job_id)
                window(f"allocation lost ({lost})", begin)
                for _, emulator in soak.emulators():
                    emulator.webhook_delay = (0.0, 0.5)
                last_fault_end = time.monotonic()
                await at(0.85)
                soak.phase = "calm"
                await at(1.0)
                soak.stop.set()
                await asyncio.gather(*tasks)
                soak.phase = "converge"
                load_end = time.monotonic()

                # convergence: every chip on its WAHA session's status, without help
                converged, left = None, []
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    soak.snapshot_events()
                    pending = await conn.fetchval(
                        "SELECT count(*) FROM chips WHERE status IN ('provisioning', 'deleting')"
                    )
                    left = await chip_vs_waha(conn, soak)
                    if not pending and not left:
                        converged = time.monotonic() - last_fault_end
                        print(f"converged {time.monotonic() - load_end:.1f} s after the load stopped", flush=True)
                        break
                    await asyncio.sleep(0.5)
                if converged is None:
                    print(f"not converged after 120 s; still different: {left[:10]}", flush=True)
                # one reconcile, as the invariant says, then every check
                from app.container import Container
                from app.core import db
                from app.reconciler.service import Reconciler

                await db.start_pool(settings)
                container = Container.build(settings)
                try:
                    report = await Reconciler(container).run()
                finally:
                    await container.aclose()
                    await db.close_pool()
                await asyncio.sleep(2)  # the reconcile's own follow-ups (webhooks it causes) land
                soak.snapshot_events()
                snapper.cancel()
                problems, facts = await check(conn, soak, limits)
                report_figures(
                    soak,
                    t0,
                    converged,
                    facts,
                    report,
                    conn_rows=await conn.fetchrow(
                        "SELECT (SELECT count(*) FROM chips) AS chips, (SELECT count(*) FROM messages) AS messages,"
                        " (SELECT count(*) FROM chip_events) AS history,"
                        " (SELECT count(*) FROM webhook_events) AS events"
                    ),
                )
        finally:
            soak.stop.set()
            for process in [server, *workers]:
                if process.poll() is None:
                    process.terminate()
            for process in [server, *workers]:
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
            await conn.close()
    if problems:
        print("\nINVARIANTS FAILED:")
        for problem in problems:
            print(" -", problem)
        return 1
    print("\nevery invariant holds")
    return 0


def report_figures(soak: Soak, t0: float, converged: float | None, facts: dict, report: Any, conn_rows: Any) -> None:
    total = time.monotonic() - t0
    print(f"\nrequests: {len(soak.calls)} in {total:.0f} s ({len(soak.calls) / total:.1f} req/s)")
    for phase in ("warmup", "faults", "calm"):
        times = [c.seconds * 1000 for c in soak.calls if c.phase == phase]
        codes: dict[int, int] = defaultdict(int)
        for c in soak.calls:
            if c.phase == phase:
                codes[c.status] += 1
        print(f"  {phase:8s} n={len(times):5d} p50={pct(times, 50):7.1f} ms p99={pct(times, 99):7.1f} ms {dict(codes)}")
    print("faults:")
    for what, start, end in soak.faults:
        print(f"  {start - t0:6.1f}s .. {end - t0:6.1f}s  {what}")
    print(
        f"time to converge after the last fault (checked once the load stops): {converged:.1f} s"
        if converged is not None
        else "did NOT converge"
    )
    print(f"reconcile after the run: drift {report.drift} errors {len(report.errors)}")
    print(f"rows: {dict(conn_rows)}")
    print(f"facts: {facts}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=240)
    parser.add_argument("--tenants", type=int, default=12)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--logs", type=Path, default=Path("/tmp/whago-soak"))
    args = parser.parse_args()
    args.logs.mkdir(parents=True, exist_ok=True)
    return asyncio.run(run(args.seconds, args.tenants, args.max_requests, args.logs))


if __name__ == "__main__":
    sys.exit(main())
