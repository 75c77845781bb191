"""Benchmark: one reconcile pass over 1,000 tenants / 5,000 chips with no drift.

Run: .venv/bin/python -m tests.bench.bench_reconcile [--tenants 1000 --chips-per-tenant 5]

Real pieces: PostgreSQL, Redis, the nomad scheduler adapter against the Nomad/Consul double (one
paged listing), the WAHA client. WAHA itself is a light fake serving each tenant's session list
under its own base URL (1,000 emulators would measure the emulators, not the reconciler).
Baseline in the same run: the same 1,000 session listings made with bare httpx, plus one
``SELECT`` of every chip — the unavoidable I/O of a pass.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import asyncpg
import httpx
import msgspec

from tests.bench.server import BENCH_ENV
from tests.doubles import serve_double
from tests.support.asgi_server import serve


def fake_waha(sessions_by_tenant: dict[str, bytes], api_key: str):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        headers = dict(scope["headers"])
        parts = scope["path"].split("/")  # /t/<tenant>/api/sessions
        body = sessions_by_tenant.get(parts[2]) if len(parts) == 5 and parts[3:] == ["api", "sessions"] else None
        status = 401 if headers.get(b"x-api-key", b"").decode() != api_key else (200 if body is not None else 404)
        payload = body if status == 200 else b"{}"
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": payload})

    return app


async def main(tenants: int, per_tenant: int, runs: int) -> None:
    os.environ.update(BENCH_ENV)
    from app.container import Container
    from app.core import db
    from app.reconciler.service import Reconciler
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
        chips, sessions_by_tenant = [], {}
        for u in user_ids:
            listing = []
            for i in range(per_tenant):
                chip_id = uuid.uuid4()
                name = "chip_" + chip_id.hex
                phone = f"55119{len(chips):08d}"
                chips.append((chip_id, uuid.UUID(u), f"c{i}", name, phone))
                listing.append(
                    {
                        "name": name,
                        "status": "WORKING",
                        "config": {"metadata": {"user_id": u, "chip_id": str(chip_id)}},
                        "me": {"id": f"{phone}@c.us", "pushName": "bench"},
                        "timestamps": {"activity": None},
                    }
                )
            sessions_by_tenant[u] = msgspec.json.encode(listing)
        await conn.copy_records_to_table(
            "chips",
            records=[(c[0], c[1], c[2], "connected", c[3], c[4]) for c in chips],
            columns=["id", "user_id", "alias", "status", "session_name", "phone_number"],
        )
        await conn.execute(
            "UPDATE chips SET status_changed_at = now() - interval '1 hour', provision_enqueued_at = now()"
        )

        with serve(fake_waha(sessions_by_tenant, settings.waha_api_key)) as waha:
            await db.start_pool(settings)
            container = Container.build(settings)
            await container.redis.flushdb()
            cache = AddressCache(container.redis, 3600)
            for u, j in zip(user_ids, job_ids, strict=True):
                await cache.set(u, j, f"{waha.url}/t/{u}")

            # baseline: the unavoidable I/O of one pass, done bare
            started = time.perf_counter()
            await conn.fetch("SELECT * FROM chips")
            async with httpx.AsyncClient(headers={"X-Api-Key": settings.waha_api_key}) as http:
                sem = asyncio.Semaphore(32)

                async def get(u):
                    async with sem:
                        return await http.get(f"{waha.url}/t/{u}/api/sessions", params={"all": "true"})

                await asyncio.gather(*(get(u) for u in user_ids))
            baseline = time.perf_counter() - started

            timings = []
            for _ in range(runs):
                double.reset_counts()
                started = time.perf_counter()
                report = await Reconciler(container).run()
                timings.append(time.perf_counter() - started)
                assert report.ran, report.as_dict()
                assert not report.errors, report.as_dict()
                assert not report.drift, report.as_dict()
            print(f"tenants {tenants}, chips {len(chips)}, sessions seen {report.sessions}")
            print(f"Nomad requests per pass: {double.count('nomad')} (listing), Consul: {double.count('consul')}")
            print(
                f"reconcile, no drift: best {min(timings):.2f} s, "
                f"median {sorted(timings)[len(timings) // 2]:.2f} s over {runs} runs"
            )
            print(f"baseline (bare SELECT + {tenants} bare session listings): {baseline:.2f} s")
            print(f"reconcile / baseline: {min(timings) / baseline:.2f}")
            await container.aclose()
            await db.close_pool()
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--chips-per-tenant", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.tenants, args.chips_per_tenant, args.runs))
