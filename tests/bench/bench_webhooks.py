"""Benchmark: signed WAHA session.status webhooks vs a trivial endpoint, 64 connections.

Run: .venv/bin/python -m tests.bench.bench_webhooks [--duration 5] [--connections 64]

100 chips (10 tenants x 10, enterprise plan set in SQL) receive session.status events with unique
ids, per-chip increasing timestamps and cycling statuses. Several events of one chip are in flight
at once (bursts of 3, at most 4 concurrently), so the server really sees reordering and has to
ignore stale ones. GET /health/live is measured in the same run against the same single-process
server. Goal: webhooks >= 35% of the trivial endpoint's throughput.

Afterwards every chip is checked: applied history rows + stale-ignored rows == events accepted for
it, and its final status is the mapping of its newest accepted event. This accounting is exact
because statuses cycle with period 5 and at most 4 events per chip are in flight: an event can
then never be applied right after another with the same status (the one outcome, "same", that
writes no history row).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections import defaultdict

import asyncpg
import httpx

from tests.bench import loadgen
from tests.bench.server import BENCH_ENV, whago_server
from tests.support.webhooks import HOOK, MAPPING

TENANTS = 10
CHIPS_PER_TENANT = 10
CYCLE = ["STARTING", "SCAN_QR_CODE", "WORKING", "STOPPED", "FAILED"]
BURST = 3
MAX_IN_FLIGHT_PER_CHIP = 4  # < len(CYCLE): see the module docstring


class WebhookLoad:
    def __init__(self, chips: list[dict], key: str) -> None:
        self.chips = chips
        self.key = key.encode()
        self.base_ms = int(time.time() * 1000)
        self.seq = [0] * len(chips)  # next per-chip sequence number
        self.in_flight = [0] * len(chips)
        self.accepted: dict[int, list[tuple[int, str]]] = defaultdict(list)  # chip -> [(timestamp, status)]
        self.unexpected: list[tuple[int, bytes]] = []
        self.cursor = 0

    def _pick(self) -> int:
        n = len(self.chips)
        for _ in range(n * BURST):
            index = (self.cursor // BURST) % n
            self.cursor += 1
            if self.in_flight[index] < MAX_IN_FLIGHT_PER_CHIP:
                return index
        raise RuntimeError("every chip at its in-flight cap")  # impossible with 64 connections, 100 chips

    def next_request(self) -> tuple[int, int, str, bytes]:
        index = self._pick()
        chip = self.chips[index]
        seq = self.seq[index]
        self.seq[index] += 1
        self.in_flight[index] += 1
        status = CYCLE[seq % len(CYCLE)]
        at = self.base_ms + seq  # increasing per chip, in send order
        body = json.dumps(
            {
                "id": "evt_" + uuid.uuid4().hex[:26],
                "timestamp": at,
                "event": "session.status",
                "session": chip["session_name"],
                "metadata": {"user_id": chip["user_id"], "chip_id": chip["id"]},
                "me": {"id": "5511900000000@c.us", "pushName": "bench"} if status == "WORKING" else None,
                "payload": {"name": chip["session_name"], "status": status, "statuses": [], "data": None},
                "engine": "GOWS",
                "environment": {"version": "2026.7.1", "engine": "GOWS", "tier": "CORE", "worker": {"id": "bench"}},
            },
            separators=(",", ":"),
        ).encode()
        signature = hmac.new(self.key, body, hashlib.sha512).hexdigest()
        request = loadgen.post_request(HOOK, body, {"X-Webhook-Hmac": signature, "X-Webhook-Hmac-Algorithm": "sha512"})
        return index, at, status, request

    async def run(self, name: str, port: int, connections: int, duration: float) -> loadgen.Result:
        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal errors
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                while time.perf_counter() < deadline:
                    index, at, status, request = self.next_request()
                    started = time.perf_counter()
                    try:
                        writer.write(request)
                        code, body = await loadgen.read_response(reader)
                    finally:
                        self.in_flight[index] -= 1
                    if code == 200 and body == b'{"status":"ok"}':
                        latencies.append((time.perf_counter() - started) * 1000)
                        self.accepted[index].append((at, status))
                    else:
                        errors += 1
                        self.unexpected.append((code, body[:200]))
            finally:
                writer.close()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return loadgen.Result(name, len(latencies), errors, time.perf_counter() - started, latencies)


async def setup(url: str, database_url: str) -> list[dict]:
    chips: list[dict] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        conn = await asyncpg.connect(database_url)
        try:
            for t in range(TENANTS):
                registered = await http.post(
                    "/api/v1/auth/register", json={"email": f"bench-{t}@example.com", "password": "benchmark-pw"}
                )
                body = registered.json()
                await conn.execute("UPDATE users SET plan = 'enterprise' WHERE id = $1", uuid.UUID(body["user"]["id"]))
                headers = {"Authorization": f"Bearer {body['access_token']}"}
                for i in range(CHIPS_PER_TENANT):
                    created = await http.post("/api/v1/chips", json={"alias": f"chip-{i}"}, headers=headers)
                    assert created.status_code == 202, created.text
                    chips.append({**created.json(), "user_id": body["user"]["id"]})
        finally:
            await conn.close()
    return chips


async def verify(database_url: str, chips: list[dict], load: WebhookLoad) -> list[str]:
    problems: list[str] = []
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """
            SELECT c.id, c.status,
                   count(e.id) FILTER (WHERE e.detail NOT LIKE 'ignored%') AS applied,
                   count(e.id) FILTER (WHERE e.detail LIKE 'ignored: older%') AS stale,
                   count(e.id) FILTER (WHERE e.detail LIKE 'ignored%' AND e.detail NOT LIKE 'ignored: older%') AS other
            FROM chips c LEFT JOIN chip_events e ON e.chip_id = c.id AND e.source = 'webhook'
            GROUP BY c.id, c.status
            """
        )
        processed = await conn.fetchval("SELECT count(*) FROM webhook_events")
    finally:
        await conn.close()
    by_id = {str(r["id"]): r for r in rows}
    total_accepted = sum(len(v) for v in load.accepted.values())
    total_stale = 0
    for index, chip in enumerate(chips):
        row = by_id[chip["id"]]
        accepted = load.accepted.get(index, [])
        total_stale += row["stale"]
        if row["applied"] + row["stale"] != len(accepted):
            problems.append(
                f"chip {chip['alias']}/{chip['id']}: {row['applied']} applied + {row['stale']} stale "
                f"!= {len(accepted)} accepted"
            )
        if row["other"]:
            problems.append(f"chip {chip['id']}: {row['other']} unexpected ignored rows")
        expected = MAPPING[max(accepted)[1]] if accepted else "provisioning"
        if row["status"] != expected:
            problems.append(f"chip {chip['id']}: final status {row['status']}, newest event says {expected}")
    if processed != total_accepted:
        problems.append(f"webhook_events holds {processed} ids, {total_accepted} events were accepted")
    print(f"verified {len(chips)} chips: {total_accepted} accepted events, {total_stale} stale (reordered) ones")
    return problems


async def main(duration: float, connections: int) -> int:
    with whago_server(args=("--workers", "1")) as (url, port, env):
        chips = await setup(url, env["WHAGO_DATABASE_URL"])
        load = WebhookLoad(chips, BENCH_ENV["WHAGO_WEBHOOK_HMAC_KEY"])

        warm = loadgen.get_request("/health/live")
        await loadgen.run("warm-up", "127.0.0.1", port, lambda i: warm, connections=connections, duration=1)
        await load.run("warm-up webhooks", port, connections, 1)
        trivial = await loadgen.run(
            "trivial GET /health/live", "127.0.0.1", port, lambda i: warm, connections=connections, duration=duration
        )
        webhooks = await load.run("POST webhook session.status", port, connections, duration)
        print(trivial.line())
        print(webhooks.line())
        print(loadgen.summary(webhooks, trivial))
        if load.unexpected:
            print(f"{len(load.unexpected)} unexpected responses, e.g. {load.unexpected[:3]}")
        problems = await verify(env["WHAGO_DATABASE_URL"], chips, load)
    for problem in problems[:20]:
        print("PROBLEM:", problem)
    print("zero lost or doubled updates" if not problems and not load.unexpected else f"{len(problems)} problems")
    return 1 if problems or load.unexpected else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.duration, args.connections)))
