"""wrk-driven benchmarks of the hottest routes, each against GET /health/live in the same run.

Run: .venv/bin/python -m tests.bench.bench_wrk {status,ack,chips,all} [--duration 5] [--repeat 3]
     [--connections 64] [--profile DIR]

One single-process ``whago serve`` per scenario, 100 tenants, 64 connections, wrk with 2 threads
(wrk is native: it leaves the server more CPU than a Python load generator on a 2-core machine).
Each repetition measures /health/live, then the route, back to back; the report gives the median
over the repetitions of the throughput ratio and of the route's p50/p99.

- ``status``: signed ``session.status`` events on the per-tenant route (tenant-derived keys), 100
  tenants x 1 chip, unique ids, per-chip increasing timestamps, statuses cycling with period 5, in
  bursts of 3 per chip so events of one chip are in flight together (reordering happens, stale
  ones must be ignored). At most 4 events of a chip are in flight (see ``_status_lines``), so
  applied + stale history rows == events processed per chip, but for the seams between runs'
  pools (see ``verify_status``).
- ``ack``: signed ``message.ack`` events (SERVER, DEVICE, READ per message) on the per-tenant route
  for messages inserted in SQL; every message must end at the highest status acknowledged.
- ``chips``: ``GET /api/v1/chips`` for 100 tenants with 10 chips each, tokens in rotation.

The pool of requests is written to files beforehand (bodies and signatures computed here); wrk's
Lua script (wrk_requests.lua) replays it. ``--profile DIR`` records the server with py-spy during
the first repetition of the route (a flame graph SVG and a raw "top" dump in DIR).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

from tests.bench import server as bench_server
from tests.bench.live import envelope, webhook_keys
from tests.bench.server import BENCH_ENV, whago_server
from tests.support.webhooks import MAPPING, tenant_hook

HERE = Path(__file__).parent
LUA = HERE / "wrk_requests.lua"
THREADS = 2
TENANTS = 100
CYCLE = ["STARTING", "SCAN_QR_CODE", "WORKING", "STOPPED", "FAILED"]
BURST = 3  # consecutive events of one chip in the pool (see the module docstring)
POOL_PER_RUN = 30_000  # requests written per run; the script reports if it had to wrap around


def wrk(url: str, lines_file: Path, duration: float, connections: int) -> dict:
    out = subprocess.run(
        ["wrk", f"-t{THREADS}", f"-c{connections}", f"-d{int(duration)}s", "-s", str(LUA), url, "--", str(lines_file)],
        env={**os.environ, "WRK_THREADS": str(THREADS)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["rps"] = (result["requests"] - result["non2xx"]) / (result["duration_us"] / 1e6)
    return result


def write_lines(path: Path, lines: list[tuple[str, str, str, str, bytes]]) -> Path:
    with path.open("wb") as f:
        for method, target, header, value, body in lines:
            f.write(f"{method}\t{target}\t{header}\t{value}\t".encode() + body + b"\n")
    return path


class Profiler:
    """py-spy attached to the server process for one measured run."""

    def __init__(self, directory: str | None, name: str) -> None:
        self.directory = directory
        self.name = name
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Profiler:
        if self.directory:
            Path(self.directory).mkdir(parents=True, exist_ok=True)
            pid = str(bench_server.last_pid)
            spy = str(Path(sys.executable).parent / "py-spy")
            base = Path(self.directory) / re.sub(r"[^A-Za-z0-9.]+", "-", self.name).strip("-")
            for fmt, suffix in (("flamegraph", ".svg"), ("raw", ".txt")):
                self.procs.append(
                    subprocess.Popen(
                        [spy, "record", "-p", pid, "-r", "200", "-f", fmt, "-o", str(base) + suffix, "-d", "4"],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            time.sleep(0.5)
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.wait(30)


def measure(url: str, name: str, files: list[Path], args, cyclic: bool = False) -> dict:
    """``files``: one pool per run (warm-up first); ``cyclic``: replaying the pool is intended."""
    live = write_lines(Path(args.tmp) / "live.tsv", [("GET", "/health/live", "", "", b"")])
    wrk(url, live, 1, args.connections)
    ratios, p50s, p99s, rows = [], [], [], [wrk(url, files[0], 1, args.connections)]
    for i, pool in enumerate(files[1:]):
        trivial = wrk(url, live, args.duration, args.connections)
        with Profiler(args.profile if i == 0 else None, name):
            route = wrk(url, pool, args.duration, args.connections)
        if route["wrapped"] and cyclic is False:
            print(f"  note: {name} run {i + 1} replayed its pool ({route['wrapped']} wraps): duplicates were sent")
        ratio = route["rps"] / trivial["rps"]
        ratios.append(ratio)
        p50s.append(route["p50_us"] / 1000)
        p99s.append(route["p99_us"] / 1000)
        rows.append(route)
        print(
            f"  run {i + 1}: /health/live {trivial['rps']:7.0f} req/s p99 {trivial['p99_us'] / 1000:6.1f} ms | "
            f"{name} {route['rps']:7.0f} req/s p50 {route['p50_us'] / 1000:6.1f} ms "
            f"p99 {route['p99_us'] / 1000:6.1f} ms "
            f"non-2xx {route['non2xx']} socket errors {route['socket_errors']} | ratio {ratio:.2f}"
        )
    print(
        f"{name}: median ratio {statistics.median(ratios):.2f}, p50 {statistics.median(p50s):.1f} ms, "
        f"p99 {statistics.median(p99s):.1f} ms (loadavg {os.getloadavg()[0]:.2f})"
    )
    return {"runs": rows, "ok": sum(r["requests"] - r["non2xx"] for r in rows), "bad": sum(r["non2xx"] for r in rows)}


async def register_tenants(url: str, database_url: str, chips_each: int) -> list[dict]:
    tenants: list[dict] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        conn = await asyncpg.connect(database_url)
        try:
            for t in range(TENANTS):
                registered = await http.post(
                    "/api/v1/auth/register", json={"email": f"bench-{t}@example.com", "password": "benchmark-pw"}
                )
                assert registered.status_code == 201, registered.text
                body = registered.json()
                await conn.execute("UPDATE users SET plan = 'enterprise' WHERE id = $1", uuid.UUID(body["user"]["id"]))
                headers = {"Authorization": f"Bearer {body['access_token']}"}
                chips = []
                for i in range(chips_each):
                    created = await http.post("/api/v1/chips", json={"alias": f"chip-{i}"}, headers=headers)
                    assert created.status_code == 202, created.text
                    chips.append(created.json())
                tenants.append({"user_id": body["user"]["id"], "token": body["access_token"], "chips": chips})
        finally:
            await conn.close()
    return tenants


def _signed(user_id: str, body: bytes, keys: dict[str, bytes]) -> tuple[str, str, str, str, bytes]:
    signature = hmac.new(keys[user_id], body, hashlib.sha512).hexdigest()
    return ("POST", tenant_hook(user_id), "X-Webhook-Hmac", signature, body)


def _scoped_id(user_id: str, body: bytes) -> str:
    event_id = json.loads(body)["id"]
    return "t:" + hashlib.sha256(f"{uuid.UUID(user_id)}/{event_id}".encode()).hexdigest()[:62]


def _status_lines(tenants: list[dict], keys: dict[str, bytes], seq: list[int], base_ms: int, sent: dict) -> list:
    """Bursts of BURST events per chip, chips in rotation. wrk's thread t takes lines t, t+2, ...:
    a burst splits over both threads (at most 2 lines each), and a chip's next burst comes
    TENANTS*BURST/2 = 150 lines later in each thread, more than a thread's 32 connections: at most
    2 + 2 = 4 events of a chip are in flight, fewer than the cycle's 5."""
    lines = []
    rounds = -(-POOL_PER_RUN // (TENANTS * BURST))
    for _ in range(rounds):
        for index, tenant in enumerate(tenants):
            chip, user_id = tenant["chips"][0], tenant["user_id"]
            for _ in range(BURST):
                n = seq[index]
                seq[index] += 1
                status = CYCLE[n % len(CYCLE)]
                me = {"id": "5511900000000@c.us", "pushName": "bench"} if status == "WORKING" else None
                at = base_ms + n
                body = envelope(
                    "session.status",
                    chip,
                    user_id,
                    at,
                    {"name": chip["session_name"], "status": status, "statuses": [], "data": None},
                    me,
                )
                sent[_scoped_id(user_id, body)] = (chip["id"], at, status)
                lines.append(_signed(user_id, body, keys))
    return lines


async def settle(conn: asyncpg.Connection) -> None:
    """Requests still in flight when wrk stopped are applied after it: wait until nothing moves."""
    last = -1
    while (count := await conn.fetchval("SELECT count(*) FROM webhook_events")) != last:
        last = count
        await asyncio.sleep(0.5)


async def verify_status(database_url: str, sent: dict, ok: int, files_of_run: list) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        await settle(conn)
        processed = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM webhook_events")}
        rows = await conn.fetch(
            """
            SELECT c.id::text, c.status,
                   count(e.id) FILTER (WHERE e.detail NOT LIKE 'ignored%') AS applied,
                   count(e.id) FILTER (WHERE e.detail LIKE 'ignored: older%') AS stale,
                   count(e.id) FILTER (WHERE e.detail LIKE 'ignored%' AND e.detail NOT LIKE 'ignored: older%') AS other
            FROM chips c LEFT JOIN chip_events e ON e.chip_id = c.id AND e.source = 'webhook'
            GROUP BY c.id, c.status
            """
        )
    finally:
        await conn.close()
    problems = []
    per_chip: dict[str, list[tuple[int, str]]] = {}
    for event_id, (chip_id, at, status) in sent.items():
        if event_id in processed:
            per_chip.setdefault(chip_id, []).append((at, status))
    total = sum(len(v) for v in per_chip.values())
    if len(processed) != total:
        problems.append(f"webhook_events holds {len(processed)} ids, {total} are known events")
    if not ok <= total <= ok + 64 * 4:  # requests in flight when wrk stops are applied, not counted
        problems.append(f"{ok} acknowledged by wrk, {total} applied")
    for r in rows:
        events = per_chip.get(r["id"], [])
        # each run's pool starts where the previous pool ended, not where wrk stopped in it: at
        # each of those seams the next applied status may equal the last one ("same", no row)
        seams = len(files_of_run)
        if not 0 <= len(events) - (r["applied"] + r["stale"]) <= seams or r["other"]:
            problems.append(f"chip {r['id']}: {r['applied']} applied + {r['stale']} stale != {len(events)} events")
        expected = MAPPING[max(events)[1]] if events else "provisioning"
        if r["status"] != expected:
            problems.append(f"chip {r['id']}: final status {r['status']}, newest event says {expected}")
    print(f"verified: {total} events applied exactly once, {sum(r['stale'] for r in rows)} stale (reordered) ignored")
    return problems


async def scenario_status(args) -> list[str]:
    with whago_server(args=("--workers", "1")) as (url, _port, env):
        tenants = await register_tenants(url, env["WHAGO_DATABASE_URL"], 1)
        keys = webhook_keys(tenants, BENCH_ENV["WHAGO_WEBHOOK_HMAC_KEY"])
        # from SCAN_QR_CODE: STARTING on a provisioning chip is a no-op ("same"), with no history row
        seq = [1] * len(tenants)
        sent: dict = {}
        base_ms = int(time.time() * 1000) - 3_600_000
        files = [
            write_lines(Path(args.tmp) / f"status-{i}.tsv", _status_lines(tenants, keys, seq, base_ms, sent))
            for i in range(args.repeat + 1)
        ]
        result = measure(url, "POST webhook session.status", files, args)
        return await verify_status(env["WHAGO_DATABASE_URL"], sent, result["ok"], files)


async def scenario_ack(args) -> list[str]:
    with whago_server(args=("--workers", "1")) as (url, _port, env):
        tenants = await register_tenants(url, env["WHAGO_DATABASE_URL"], 1)
        keys = webhook_keys(tenants, BENCH_ENV["WHAGO_WEBHOOK_HMAC_KEY"])
        per_run_messages = POOL_PER_RUN // 3 // TENANTS + 1
        total_messages = per_run_messages * (args.repeat + 1)
        conn = await asyncpg.connect(env["WHAGO_DATABASE_URL"])
        try:
            for t in tenants:
                chip = t["chips"][0]
                await conn.execute(
                    """INSERT INTO messages (chip_id, user_id, recipient, kind, body, waha_ref, waha_message_id, status)
                       SELECT $1, $2, '5511900000001@c.us', 'text', 'hi', 'ref-' || $3 || '-' || g,
                              'true_5511900000001@c.us_' || $3 || 'M' || g, 'pending'
                       FROM generate_series(0, $4 - 1) g""",
                    uuid.UUID(chip["id"]),
                    uuid.UUID(t["user_id"]),
                    chip["id"][:8],
                    total_messages,
                )
        finally:
            await conn.close()
        base_ms = int(time.time() * 1000) - 3_600_000
        expected: dict[str, tuple[str, int]] = {}
        files = []
        for run in range(args.repeat + 1):
            lines = []
            for m in range(run * per_run_messages, (run + 1) * per_run_messages):
                for ack in (1, 2, 3):  # one message's acks are 2 x 100 tenants = 200 lines apart per thread
                    for t in tenants:
                        chip = t["chips"][0]
                        waha_id = f"true_5511900000001@c.us_{chip['id'][:8]}M{m}"
                        body = envelope(
                            "message.ack",
                            chip,
                            t["user_id"],
                            base_ms + m * 3 + ack,
                            {"id": waha_id, "from": "5511900000001@c.us", "ack": ack, "ackName": "x"},
                        )
                        expected[_scoped_id(t["user_id"], body)] = (waha_id, ack)
                        lines.append(_signed(t["user_id"], body, keys))
            files.append(write_lines(Path(args.tmp) / f"ack-{run}.tsv", lines))
        result = measure(url, "POST webhook message.ack", files, args)
        conn = await asyncpg.connect(env["WHAGO_DATABASE_URL"])
        try:
            await settle(conn)
            processed = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM webhook_events")}
            statuses = {
                r["waha_message_id"]: r["status"]
                for r in await conn.fetch("SELECT waha_message_id, status FROM messages")
            }
        finally:
            await conn.close()
        highest: dict[str, int] = {}
        for event_id, (message, ack) in expected.items():
            if event_id in processed:
                highest[message] = max(highest.get(message, 0), ack)
        names = {0: "pending", 1: "sent", 2: "delivered", 3: "read"}
        problems = [
            f"message {m}: {status}, highest ack {names[highest.get(m, 0)]}"
            for m, status in statuses.items()
            if status != names[highest.get(m, 0)]
        ]
        if not result["ok"] <= len(processed) <= result["ok"] + 64 * 4:
            problems.append(f"{result['ok']} acknowledged by wrk, {len(processed)} applied")
        print(f"verified: {len(processed)} acks applied, {len(statuses)} messages at their highest acknowledged status")
        return problems


async def scenario_chips(args) -> list[str]:
    with whago_server(args=("--workers", "1")) as (url, _port, env):
        tenants = await register_tenants(url, env["WHAGO_DATABASE_URL"], 10)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            listing = await http.get("/api/v1/chips", headers={"Authorization": f"Bearer {tenants[0]['token']}"})
            assert listing.json()["total"] == 10
        lines = [("GET", "/api/v1/chips", "Authorization", f"Bearer {t['token']}", b"") for t in tenants]
        files = [write_lines(Path(args.tmp) / "chips.tsv", lines)] * (args.repeat + 1)
        result = measure(url, "GET /api/v1/chips (10)", files, args, cyclic=True)
        return [f"{result['bad']} non-2xx responses"] if result["bad"] else []


SCENARIOS = {"status": scenario_status, "ack": scenario_ack, "chips": scenario_chips}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--profile", default=None, help="directory for py-spy flame graphs of the first run")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, loadavg {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        for name in SCENARIOS if args.scenario == "all" else [args.scenario]:
            problems = asyncio.run(SCENARIOS[name](args))
            for problem in problems[:20]:
                print("PROBLEM:", problem)
            print(f"{name}: " + ("all guarantees held" if not problems else f"{len(problems)} problems"))
            failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
