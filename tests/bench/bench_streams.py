"""Live events at scale: webhook -> stream delivery latency with 1,000 open SSE streams, while
signed ``session.status`` webhooks arrive at half the measured ingest capacity.

Run: .venv/bin/python -m tests.bench.bench_streams [--streams 1000] [--per-user 1] [--duration 60]
     [--capacity-seconds 10] [--fraction 0.5] [--profile DIR]

One single-process ``whago serve``, in one run:

1. capacity: wrk (as bench_wrk) on ``GET /health/live`` then on signed ``session.status`` for 100
   other tenants (registered through the API): the ingest capacity and its ratio to /health/live.
2. streams: ``--streams`` streams (``--per-user`` per tenant; the per-user bound
   WHAGO_MAX_STREAMS_PER_USER is raised to match when above its default) for tenants seeded in
   SQL with one chip each, held by a separate process (tests/bench/stream_clients.py, raw sockets).
   Memory per open stream = (API VmRSS with the streams open - VmRSS just before) / streams; the
   API's CPU with every stream open and no traffic (each stream re-checks its token and refreshes
   its slot every 2 s) is reported too.
3. paced ingest: signed ``session.status`` at ``--fraction`` x capacity, fixed rate (open loop, see
   tests/bench/live.py), round robin over the streamed tenants' chips, each event a new status
   with a later timestamp (so each one is applied and published exactly once). Delivery latency =
   receipt of the matching ``chip.status`` (chip id, status, at) on a stream - the moment the
   webhook request was written; p50/p99/max over every (event, stream) pair.
4. verification: every applied event reached every stream of its tenant, or it is reported as
   lost (with whether the database has the transition: lost in publishing/fan-out vs never applied).

``--profile DIR`` records the server with py-spy with the streams idle and during the paced ingest
(flame graphs + raw dumps).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import asyncpg

from tests.bench import server as bench_server
from tests.bench.bench_wrk import _status_lines, register_tenants, settle, write_lines, wrk
from tests.bench.live import (
    CYCLE,
    PacedSender,
    StreamClients,
    pct,
    process_cpu_seconds,
    process_rss_kib,
    seed_tenants,
    signed_post,
    status_body,
    webhook_keys,
)
from tests.bench.server import BENCH_ENV, whago_server
from tests.support.webhooks import MAPPING

DEFAULT_MAX_STREAMS_PER_USER = 5


def raise_nofile() -> None:
    """1,000 streams are 1,000 sockets in the server (which inherits this limit) and the client."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def at_ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def spy(directory: str | None, name: str, pid: int, seconds: int) -> list[subprocess.Popen]:
    if not directory:
        return []
    Path(directory).mkdir(parents=True, exist_ok=True)
    exe = str(Path(sys.executable).parent / "py-spy")
    base = str(Path(directory) / re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-"))
    return [
        subprocess.Popen(
            [exe, "record", "-p", str(pid), "-r", "200", "-f", fmt, "-o", base + suffix, "-d", str(seconds)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fmt, suffix in (("flamegraph", ".svg"), ("raw", ".txt"))
    ]


async def measure_capacity(url: str, env: dict[str, str], args, tmp: str) -> tuple[float, float]:
    """(ingest capacity in events/s, /health/live in req/s), wrk as bench_wrk, same server."""
    tenants = await register_tenants(url, env["WHAGO_DATABASE_URL"], 1)
    keys = webhook_keys(tenants, BENCH_ENV["WHAGO_WEBHOOK_HMAC_KEY"])
    seq, sent = [1] * len(tenants), {}  # type: ignore[var-annotated]
    base_ms = int(time.time() * 1000) - 3_600_000
    warm = write_lines(Path(tmp) / "cap-warm.tsv", _status_lines(tenants, keys, seq, base_ms, sent))
    pool = write_lines(Path(tmp) / "cap.tsv", _status_lines(tenants, keys, seq, base_ms, sent))
    live = write_lines(Path(tmp) / "live.tsv", [("GET", "/health/live", "", "", b"")])
    wrk(url, live, 1, 64)
    wrk(url, warm, 1, 64)
    trivial = wrk(url, live, args.capacity_seconds, 64)
    route = wrk(url, pool, args.capacity_seconds, 64)
    if route["wrapped"]:
        print(f"  note: the capacity pool was replayed ({route['wrapped']} wraps): duplicates were sent")
    print(
        f"capacity: /health/live {trivial['rps']:.0f} req/s | signed session.status {route['rps']:.0f} events/s "
        f"(p50 {route['p50_us'] / 1000:.1f} ms, p99 {route['p99_us'] / 1000:.1f} ms, non-2xx {route['non2xx']}) "
        f"| ratio {route['rps'] / trivial['rps']:.2f}"
    )
    return route["rps"], trivial["rps"]


WAHA_OF = {chip_status: waha for waha, chip_status in MAPPING.items()}


async def stale_events(database_url: str, sends: list) -> tuple[list, list]:
    """Split undelivered sends into (stale, applied): a ``session.status`` that reached the server
    after a newer one of its chip is recorded as ``ignored: older ...`` and rightly never published
    (a reordering in flight); any other undelivered event was applied and then lost."""
    chips = list({uuid.UUID(s.meta[1]) for s in sends})
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT chip_id::text AS chip, detail FROM chip_events"
            " WHERE chip_id = ANY($1) AND source = 'webhook' AND detail LIKE 'ignored: older%'",
            chips,
        )
    finally:
        await conn.close()
    ignored: dict[tuple[str, str], int] = {}
    for r in rows:
        waha = r["detail"].rsplit("(WAHA ", 1)[-1].rstrip(")")
        ignored[(r["chip"], waha)] = ignored.get((r["chip"], waha), 0) + 1
    stale, applied = [], []
    for s in sends:
        k = (s.meta[1], WAHA_OF[s.meta[2]])
        if ignored.get(k):
            ignored[k] -= 1
            stale.append(s)
        else:
            applied.append(s)
    return stale, applied


async def run(args) -> list[str]:
    raise_nofile()
    problems: list[str] = []
    per_user_bound = max(DEFAULT_MAX_STREAMS_PER_USER, args.per_user)
    extra = {"WHAGO_MAX_STREAMS_PER_USER": str(per_user_bound)}
    server = whago_server(extra, ("--workers", "1"), args.server_log)
    with tempfile.TemporaryDirectory() as tmp, server as (url, port, env):
        pid = bench_server.last_pid
        assert pid is not None
        database_url = env["WHAGO_DATABASE_URL"]
        print(f"API process {pid}: VmRSS {process_rss_kib(pid)['VmRSS'] / 1024:.1f} MiB after start")
        capacity, live_rps = await measure_capacity(url, env, args, tmp)

        users = args.streams // args.per_user
        tenants = await seed_tenants(database_url, env, users, 1, prefix=f"stream-{uuid.uuid4().hex[:6]}")
        keys = webhook_keys(tenants, BENCH_ENV["WHAGO_WEBHOOK_HMAC_KEY"])
        conn = await asyncpg.connect(database_url)
        try:
            await settle(conn)  # the capacity run's last requests are done
        finally:
            await conn.close()

        rss_before = process_rss_kib(pid)
        clients = StreamClients(url, tenants, args.per_user, tmp)
        try:
            started = time.monotonic()
            opened, failed = await clients.open()
            print(f"streams: {opened} open, {failed} failed, in {time.monotonic() - started:.1f} s")
            if failed:
                problems.append(f"{failed} streams did not open")
            # idle: every stream open, no traffic (the streams' own periodic checks only)
            profilers = spy(args.profile, "streams-idle", pid, max(1, int(args.idle_seconds) - 1))
            cpu0, t0 = process_cpu_seconds(pid), time.monotonic()
            await asyncio.sleep(args.idle_seconds)
            idle_cpu = (process_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
            for p in profilers:
                p.wait(60)
            rss_open = process_rss_kib(pid)
            per_stream = (rss_open["VmRSS"] - rss_before["VmRSS"]) / max(1, opened)
            per_stream_anon = (rss_open["RssAnon"] - rss_before["RssAnon"]) / max(1, opened)
            print(
                f"memory: VmRSS {rss_before['VmRSS'] / 1024:.1f} MiB before the streams, "
                f"{rss_open['VmRSS'] / 1024:.1f} MiB with {opened} open: {per_stream:.1f} KiB per stream "
                f"(heap RssAnon {per_stream_anon:.1f} KiB per stream)"
            )
            print(f"idle with {opened} streams open: API process CPU {idle_cpu * 100:.1f} % of one core")

            # paced ingest over the streamed tenants' chips
            rate = capacity * args.fraction
            chips = [(t["user_id"], chip) for t in tenants for chip in t["chips"]]
            base_ms = int(time.time() * 1000) - 600_000

            def make(i: int) -> tuple[bytes, tuple[str, str, str, int]]:
                user_id, chip = chips[i % len(chips)]
                n = i // len(chips)
                status = CYCLE[(n + 1) % len(CYCLE)]  # from provisioning: SCAN_QR_CODE first
                at = base_ms + i
                body = status_body(chip, user_id, at, status)
                return signed_post(user_id, body, keys[user_id]), (user_id, chip["id"], MAPPING[status], at)

            sender = PacedSender("127.0.0.1", port, connections=args.connections)
            profilers = spy(args.profile, "streams-paced-ingest", pid, int(min(args.duration, 20)))
            cpu0, t0 = process_cpu_seconds(pid), time.monotonic()
            sent = await sender.run(make, rate, args.duration)
            busy_cpu = (process_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
            for p in profilers:
                p.wait(60)
            applied = [s for s in sent if s.status == 200 and b'"ok"' in s.body]
            late = [s.written - s.due for s in sent if s.written]
            webhook_ms = [(s.done - s.written) * 1000 for s in sent if s.status == 200]
            print(
                f"paced ingest: {len(sent)} events at {rate:.0f}/s ({args.fraction:.2f} x capacity, "
                f"{rate / live_rps:.2f} x /health/live) for {args.duration:.0f} s: {len(applied)} answered ok, "
                f"{sum(1 for s in sent if s.status != 200)} not 200 | webhook p50 {pct(webhook_ms, 50):.1f} ms "
                f"p99 {pct(webhook_ms, 99):.1f} ms | generator late p99 {pct(late, 99) * 1000:.1f} ms "
                f"max {max(late, default=0) * 1000:.1f} ms | API CPU {busy_cpu * 100:.0f} % of one core"
            )
            # wait for the deliveries: until every one arrived, or nothing moved for 5 s
            want = len(applied) * args.per_user
            last, still, deadline = -1, time.monotonic(), time.monotonic() + 120
            while time.monotonic() < deadline:
                received, still_open = await clients.count()
                if received >= want:
                    break
                if received != last:
                    last, still = received, time.monotonic()
                elif time.monotonic() - still > 5:
                    break
                await asyncio.sleep(0.2)
            if still_open != opened:
                problems.append(f"{opened - still_open} streams ended during the run")
            rss_end = process_rss_kib(pid)
            events = await clients.stop()
        finally:
            clients.kill()

    # match deliveries to sends
    streams_of: dict[str, set[int]] = {}
    for t_index, tenant in enumerate(tenants):
        streams_of[tenant["user_id"]] = {t_index * args.per_user + j for j in range(args.per_user)}
    received: dict[tuple[str, str, int], dict[int, float]] = {}
    unmatched = 0
    for index, _user_id, at, event, data in events:
        if event != "chip.status":
            continue
        body = json.loads(data)
        received.setdefault((body["chip_id"], body["status"], at_ms(body["at"])), {})[index] = at
    latencies, after_response, lost = [], [], []
    for s in applied:
        user_id, chip_id, status, at = s.meta
        got = received.pop((chip_id, status, at), {})
        for index in streams_of[user_id]:
            if index in got:
                latencies.append((got[index] - s.written) * 1000)
                after_response.append((got[index] - s.done) * 1000)
            else:
                lost.append((s, index))
    unmatched = sum(len(v) for v in received.values())
    undelivered = list({id(s): s for s, _ in lost}.values())
    stale, lost_events = await stale_events(database_url, undelivered) if undelivered else ([], [])
    if stale:
        print(
            f"note: {len(stale)} events arrived after a newer one of their chip (reordered in flight) and were "
            "recorded as stale, not published: correct, and excluded from the latencies"
        )
    print(
        f"delivery webhook -> stream ({len(latencies)} deliveries): p50 {pct(latencies, 50):.1f} ms, "
        f"p99 {pct(latencies, 99):.1f} ms, max {max(latencies, default=float('nan')):.1f} ms "
        f"(goal p99 < 100 ms: {'met' if pct(latencies, 99) < 100 else 'MISSED'}); from the webhook's response "
        f"to the stream (publish, Redis, fan-out): p50 {pct(after_response, 50):.1f} ms, "
        f"p99 {pct(after_response, 99):.1f} ms"
    )
    print(f"memory at the end: VmRSS {rss_end['VmRSS'] / 1024:.1f} MiB (peak VmHWM {rss_end['VmHWM'] / 1024:.1f} MiB)")
    if lost_events:
        t0 = sent[0].written if sent else 0.0
        offsets = sorted(s.written - t0 for s in lost_events)
        problems.append(
            f"{len(lost_events)} applied events did not reach every stream of their tenant (sent between "
            f"{offsets[0]:.1f} s and {offsets[-1]:.1f} s into the ingest), e.g. {[s.meta for s in lost_events[:3]]}"
        )
    if unmatched:
        problems.append(f"{unmatched} chip.status deliveries match no applied webhook")
    if not lost_events:
        delivered = len(applied) - len(stale)
        print(f"verified: each of the {delivered} applied events reached its tenant's {args.per_user} stream(s)")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--per-user", type=int, default=1, help="streams per tenant")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of paced ingest")
    parser.add_argument("--capacity-seconds", type=float, default=10.0)
    parser.add_argument("--fraction", type=float, default=0.5, help="paced rate as a fraction of capacity")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="streams open, no traffic")
    parser.add_argument("--connections", type=int, default=64, help="the paced generator's keep-alive pool")
    parser.add_argument("--profile", default=None, help="directory for py-spy output (idle streams, paced ingest)")
    parser.add_argument("--server-log", default="/tmp/whago-bench-streams.log", help="the API's output")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, loadavg {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    problems = asyncio.run(run(args))
    for problem in problems[:20]:
        print("PROBLEM:", problem)
    print("streams: " + ("all guarantees held" if not problems else f"{len(problems)} problems"))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
