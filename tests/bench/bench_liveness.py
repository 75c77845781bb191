"""Benchmark: one liveness pass over 1,000 connected chips where 990 send events (not a probe storm).

Run: .venv/bin/python -m tests.bench.bench_liveness [--tenants 100 --chips-per-tenant 10 --quiet 10]

Real pieces: PostgreSQL, Redis, the nomad scheduler adapter against the Nomad/Consul double (the
instances' addresses), the WAHA client, the liveness service. WAHA is a light fake serving each
tenant's session status and check-exists under its own base URL and counting, per tenant, the
probes it gets and how many ran at once. Checks: only the quiet chips are probed, at most
WHAGO_LIVENESS_MAX_PER_INSTANCE per instance per pass and two at a time, each once however many
passes run within the period, and the pass finishes well within the period.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from collections import Counter

import asyncpg
import msgspec

from tests.bench.server import BENCH_ENV
from tests.doubles import serve_double
from tests.support.asgi_server import serve


class FakeWaha:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.probes: Counter[str] = Counter()
        self.sessions_probed: Counter[str] = Counter()
        self.running: Counter[str] = Counter()
        self.max_running: Counter[str] = Counter()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        headers = dict(scope["headers"])
        parts = scope["path"].split("/")  # /t/<tenant>/api/...
        tenant = parts[2]
        status, body = 404, b"{}"
        if headers.get(b"x-api-key", b"").decode() != self.api_key:
            status = 401
        elif parts[3:5] == ["api", "sessions"] and len(parts) == 6:
            status, body = 200, msgspec.json.encode({"name": parts[5], "status": "WORKING", "config": None})
        elif parts[3:] == ["api", "contacts", "check-exists"]:
            query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&"))
            self.running[tenant] += 1
            self.max_running[tenant] = max(self.max_running[tenant], self.running[tenant])
            await asyncio.sleep(0.02)  # WhatsApp's round trip
            self.running[tenant] -= 1
            self.probes[tenant] += 1
            self.sessions_probed[query["session"]] += 1
            status, body = 200, msgspec.json.encode({"numberExists": True, "chatId": query["phone"] + "@c.us"})
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": body})


async def main(tenants: int, per_tenant: int, quiet_count: int, bound: int) -> None:
    os.environ.update(BENCH_ENV)
    from app.container import Container
    from app.core import db
    from app.liveness.service import LivenessService
    from app.scheduler.cache import AddressCache
    from app.settings import load_settings

    with serve_double() as double:
        job_ids = double.seed_jobs(tenants)
        user_ids = [j.removeprefix("whago-waha-") for j in job_ids]
        settings = load_settings(
            {
                **os.environ,
                "WHAGO_SCHEDULER": "nomad",
                "WHAGO_NOMAD_ADDR": double.nomad_url,
                "WHAGO_CONSUL_ADDR": double.consul_url,
                "WHAGO_INSTANCE_ADDRESS_CACHE_SECONDS": "3600",
                "WHAGO_LIVENESS_PROBE_SECONDS": "300",
                "WHAGO_LIVENESS_QUIET_SECONDS": "900",
                "WHAGO_LIVENESS_MAX_PER_INSTANCE": str(bound),
            }
        )
        from app.core.db import migrate

        await migrate(settings)
        conn = await asyncpg.connect(settings.database_url)
        await conn.execute("TRUNCATE chip_events, webhook_events, instances, chips, proxies, users CASCADE")
        await conn.executemany(
            "INSERT INTO users (id, email, password_hash, plan) VALUES ($1, $2, 'x', 'enterprise')",
            [(uuid.UUID(u), f"{u}@bench.example") for u in user_ids],
        )
        chips = []
        for u in user_ids:
            for i in range(per_tenant):
                chip_id = uuid.uuid4()
                chips.append(
                    (chip_id, uuid.UUID(u), f"c{i}", "connected", "chip_" + chip_id.hex, f"55119{len(chips):08d}")
                )
        quiet = {c[4] for c in random.sample(chips, quiet_count)}
        await conn.copy_records_to_table(
            "chips", records=chips, columns=["id", "user_id", "alias", "status", "session_name", "phone_number"]
        )
        # everyone connected an hour ago; the busy ones had an event just now (the webhooks' last_seen_at)
        await conn.execute("UPDATE chips SET status_changed_at = now() - interval '1 hour'")
        await conn.execute(
            "UPDATE chips SET last_seen_at = CASE WHEN session_name = ANY($1::text[]) THEN now() - interval '1 hour'"
            " ELSE now() END",
            list(quiet),
        )
        fake = FakeWaha(settings.waha_api_key)
        with serve(fake) as waha:
            await db.start_pool(settings)
            container = Container.build(settings)
            await container.redis.flushdb()
            cache = AddressCache(container.redis, 3600)
            for u, j in zip(user_ids, job_ids, strict=True):
                await cache.set(u, j, f"{waha.url}/t/{u}")
            if container.waha._tenant_keys is not None:  # the fake checks one key for every tenant
                container.waha._tenant_keys = None
            workers = [LivenessService(container) for _ in range(2)]
            timings, claimed = [], 0
            for _ in range(3):  # three passes within one period, two workers each
                started = time.perf_counter()
                results = await asyncio.gather(*(w.run_pass() for w in workers))
                timings.append(time.perf_counter() - started)
                claimed += sum(r["claimed"] for r in results)
            probed = set(fake.sessions_probed)
            print(f"chips {len(chips)} over {tenants} instances, quiet {len(quiet)}, busy {len(chips) - len(quiet)}")
            print(f"claimed {claimed}, probed sessions {len(probed)}, probes {sum(fake.probes.values())}")
            print(f"only quiet probed: {probed <= quiet}; each once: {set(fake.sessions_probed.values()) <= {1}}")
            print(f"max probes per instance, all passes: {max(fake.probes.values(), default=0)} (per pass: {bound})")
            print(f"max concurrent probes per instance: {max(fake.max_running.values(), default=0)}")
            print("pass (two workers at once): " + ", ".join(f"{t * 1000:.0f} ms" for t in timings) + " (period 300 s)")
            assert probed == quiet, (len(probed), len(quiet))
            assert set(fake.sessions_probed.values()) == {1}
            await container.aclose()
            await db.close_pool()
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--chips-per-tenant", type=int, default=10)
    parser.add_argument("--quiet", type=int, default=10)
    parser.add_argument("--bound", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.tenants, args.chips_per_tenant, args.quiet, args.bound))
