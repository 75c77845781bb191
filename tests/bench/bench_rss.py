"""RSS over time: does one API process's memory stay flat under a sustained, mixed load?

Run: .venv/bin/python -m tests.bench.bench_rss [--duration 300] [--fraction 0.5] [--sample-seconds 5]
     (a smoke run: --duration 60)

One single-process ``whago serve``:

1. seeding: 1,000 tenants with 10 chips each (10,000 chips) bulk-inserted in SQL, plus the
   messages the acknowledgements below refer to; 100 more tenants registered through the API for
   the capacity measurement.
2. capacity: wrk (as bench_wrk) on ``GET /health/live`` then on signed ``session.status`` (the
   same-run ratio every row reports).
3. load for ``--duration`` seconds, at ``--fraction`` x capacity, fixed rate (tests/bench/live.py):
   signed webhooks on the per-tenant routes, 70 % ``session.status`` (round robin over the 10,000
   chips, statuses cycling) and 30 % ``message.ack`` (SERVER, DEVICE, READ per message, each
   message's acks 1,000 acks apart); meanwhile 5 open live-event streams (a separate process)
   and ``GET /api/v1/chips`` polled 10 times a second with the 1,000 tenants' tokens in rotation.
4. the API process's VmRSS every ``--sample-seconds``: reported at start (before any request), after
   seeding and the capacity run, after the warm-up (the first fifth of the load, at most 60 s), at
   the end, and the least-squares slope over the last 2 minutes (the last half for shorter runs).

Verdict: flat when the growth the slope implies over that window is below max(2 MiB, 1 % of the
RSS after warm-up). Why that tolerance: RSS moves in steps even without a leak (glibc malloc
arenas grow and trim, CPython's allocator takes memory in arenas, bounded caches fill up to their
bound); a real leak of 100 bytes per request at ~500 requests/s is ~6 MiB over 2 minutes: above it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid

import asyncpg

from tests.bench import server as bench_server
from tests.bench.bench_streams import measure_capacity, raise_nofile
from tests.bench.bench_wrk import settle
from tests.bench.live import (
    CYCLE,
    PacedSender,
    StreamClients,
    envelope,
    pct,
    process_cpu_seconds,
    process_rss_kib,
    seed_tenants,
    signed_post,
    status_body,
    webhook_keys,
)
from tests.bench.loadgen import get_request, read_response
from tests.bench.server import BENCH_ENV, whago_server

TENANTS = 1000
CHIPS_EACH = 10
ACK_SHARE = 3  # of every 10 webhooks
ACK_WINDOW = 1000  # a message's next ack comes this many acks later
STREAMS = 5
POLLS_PER_SECOND = 10


def slope_mib_per_min(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, KiB) samples, in MiB per minute."""
    n = len(samples)
    if n < 2:
        return float("nan")
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    cov = sum((t - mt) * (r - mr) for t, r in samples)
    return cov / var / 1024 * 60 if var else float("nan")


async def insert_messages(database_url: str, tenants: list[dict], count: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        records = []
        for m in range(count):
            tenant = tenants[m % len(tenants)]
            chip = tenant["chips"][0]
            records.append(
                (
                    uuid.UUID(chip["id"]),
                    uuid.UUID(tenant["user_id"]),
                    "5511900000001@c.us",
                    "text",
                    "hi",
                    f"ref-rss-{m}",
                    f"true_5511900000001@c.us_RSS{m}",
                    "pending",
                )
            )
        await conn.copy_records_to_table(
            "messages",
            records=records,
            columns=["chip_id", "user_id", "recipient", "kind", "body", "waha_ref", "waha_message_id", "status"],
        )
        await conn.execute("ANALYZE messages")
    finally:
        await conn.close()


async def poll_chips(port: int, tenants: list[dict], stop: asyncio.Event, results: list[tuple[int, float]]) -> None:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    i = 0
    try:
        while not stop.is_set():
            tenant = tenants[i % len(tenants)]
            i += 1
            started = time.monotonic()
            writer.write(get_request("/api/v1/chips", {"Authorization": f"Bearer {tenant['token']}"}))
            status, _ = await asyncio.wait_for(read_response(reader), 30)
            results.append((status, (time.monotonic() - started) * 1000))
            await asyncio.sleep(max(0.0, 1 / POLLS_PER_SECOND - (time.monotonic() - started)))  # pacing
    finally:
        writer.close()


async def sample_rss(pid: int, every: float, stop: asyncio.Event, samples: list[tuple[float, int, float]]) -> None:
    while not stop.is_set():
        samples.append((time.monotonic(), process_rss_kib(pid)["VmRSS"], process_cpu_seconds(pid)))
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            pass


async def run(args) -> list[str]:
    raise_nofile()
    problems: list[str] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        whago_server(None, ("--workers", "1"), args.server_log) as (
            url,
            port,
            env,
        ),
    ):
        pid = bench_server.last_pid
        assert pid is not None
        database_url = env["WHAGO_DATABASE_URL"]
        rss_start = process_rss_kib(pid)["VmRSS"]
        tenants = await seed_tenants(database_url, env, TENANTS, CHIPS_EACH, prefix=f"rss-{uuid.uuid4().hex[:6]}")
        keys = webhook_keys(tenants, BENCH_ENV["WHAGO_WEBHOOK_HMAC_KEY"])
        capacity, live_rps = await measure_capacity(url, env, args, tmp)
        rate = capacity * args.fraction
        total = int(rate * args.duration)
        acks_needed = total * ACK_SHARE // 10 + 10
        messages = (acks_needed // (3 * ACK_WINDOW) + 1) * ACK_WINDOW
        await insert_messages(database_url, tenants, messages)
        conn = await asyncpg.connect(database_url)
        try:
            await settle(conn)
        finally:
            await conn.close()
        rss_seeded = process_rss_kib(pid)["VmRSS"]
        print(
            f"seeded {TENANTS} tenants, {TENANTS * CHIPS_EACH} chips, {messages} messages | VmRSS at start "
            f"{rss_start / 1024:.1f} MiB, after seeding and the capacity run {rss_seeded / 1024:.1f} MiB"
        )

        chips = [(t["user_id"], chip) for t in tenants for chip in t["chips"]]
        base_ms = int(time.time() * 1000) - 3_600_000
        counters = {"status": 0, "ack": 0}

        def make(i: int) -> tuple[bytes, str]:
            if i % 10 < ACK_SHARE:
                k = counters["ack"]
                counters["ack"] += 1
                rnd, position = divmod(k, ACK_WINDOW)
                m = (rnd // 3) * ACK_WINDOW + position
                ack = rnd % 3 + 1
                tenant = tenants[m % len(tenants)]
                user_id, chip = tenant["user_id"], tenant["chips"][0]
                payload = {"id": f"true_5511900000001@c.us_RSS{m}", "from": "5511900000001@c.us", "ack": ack}
                body = envelope("message.ack", chip, user_id, base_ms + i, {**payload, "ackName": "x"})
                return signed_post(user_id, body, keys[user_id]), "ack"
            k = counters["status"]
            counters["status"] += 1
            user_id, chip = chips[k % len(chips)]
            status = CYCLE[(k // len(chips) + 1) % len(CYCLE)]
            return signed_post(user_id, status_body(chip, user_id, base_ms + i, status), keys[user_id]), "status"

        clients = StreamClients(url, tenants[:STREAMS], 1, tmp)
        stop = asyncio.Event()
        samples: list[tuple[float, int, float]] = []
        polls: list[tuple[int, float]] = []
        try:
            opened, failed = await clients.open()
            if failed:
                problems.append(f"{failed} streams did not open")
            t0 = time.monotonic()
            sampler = asyncio.create_task(sample_rss(pid, args.sample_seconds, stop, samples))
            poller = asyncio.create_task(poll_chips(port, tenants, stop, polls))
            sender = PacedSender("127.0.0.1", port, connections=args.connections)
            sent = await sender.run(make, rate, args.duration)
            elapsed = time.monotonic() - t0
            stop.set()
            await asyncio.gather(sampler, poller)
            received, still_open = await clients.count()
            if still_open != opened:
                problems.append(f"{opened - still_open} streams ended during the run")
            await clients.stop()
        finally:
            clients.kill()
        rss_end = process_rss_kib(pid)

    # report
    warm = min(60.0, args.duration / 5)
    window = min(120.0, args.duration / 2)
    after_warm = next((r for t, r, _ in samples if t - t0 >= warm), samples[-1][1])
    last = [(t - t0, r) for t, r, _ in samples if t - t0 >= elapsed - window]
    slope = slope_mib_per_min(last)
    growth = slope * window / 60
    tolerance = max(2.0, after_warm / 1024 * 0.01)
    cpu = (samples[-1][2] - samples[0][2]) / (samples[-1][0] - samples[0][0]) if len(samples) > 1 else float("nan")
    bad = [s for s in sent if s.status != 200]
    late = [s.written - s.due for s in sent if s.written]
    ms = [(s.done - s.written) * 1000 for s in sent if s.status == 200]
    poll_ms = [t for status, t in polls if status == 200]
    print(
        f"load: {len(sent)} webhooks ({counters['status']} session.status, {counters['ack']} message.ack) at "
        f"{rate:.0f}/s ({args.fraction:.2f} x capacity, {rate / live_rps:.2f} x /health/live) for {elapsed:.0f} s, "
        f"{len(bad)} not 200 | webhook p50 {pct(ms, 50):.1f} ms p99 {pct(ms, 99):.1f} ms | generator late p99 "
        f"{pct(late, 99) * 1000:.0f} ms | API CPU {cpu * 100:.0f} % of one core"
    )
    print(
        f"polling GET /api/v1/chips: {len(polls)} requests, {len(polls) - len(poll_ms)} not 200, "
        f"p50 {pct(poll_ms, 50):.1f} ms p99 {pct(poll_ms, 99):.1f} ms | {opened} streams received {received} "
        "chip.status events"
    )
    print(
        "VmRSS samples (s: MiB): "
        + ", ".join(f"{t - t0:.0f}: {r / 1024:.1f}" for t, r, _ in samples[:: max(1, len(samples) // 20)])
    )
    print(
        f"VmRSS: start {rss_start / 1024:.1f} MiB | after seeding + capacity run {rss_seeded / 1024:.1f} MiB | after "
        f"warm-up ({warm:.0f} s) {after_warm / 1024:.1f} MiB | end {rss_end['VmRSS'] / 1024:.1f} MiB | peak "
        f"{rss_end['VmHWM'] / 1024:.1f} MiB"
    )
    verdict = "flat" if growth < tolerance else "GROWING"
    print(
        f"last {window:.0f} s: slope {slope:+.3f} MiB/min, {growth:+.2f} MiB over the window "
        f"(tolerance {tolerance:.1f} MiB): {verdict}"
    )
    if bad:
        problems.append(f"{len(bad)} webhooks not answered 200, e.g. {[(s.status, s.body[:80]) for s in bad[:3]]}")
    if len(poll_ms) != len(polls):
        problems.append(f"{len(polls) - len(poll_ms)} chip listings not answered 200")
    if verdict != "flat":
        problems.append(f"RSS grew {growth:.2f} MiB over the last {window:.0f} s")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--fraction", type=float, default=0.5, help="webhook rate as a fraction of capacity")
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--capacity-seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64, help="the paced generator's keep-alive pool")
    parser.add_argument("--server-log", default="/tmp/whago-bench-rss.log", help="the API's output")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, loadavg {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    problems = asyncio.run(run(args))
    for problem in problems[:20]:
        print("PROBLEM:", problem)
    print("rss: " + ("all guarantees held" if not problems else f"{len(problems)} problems"))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
