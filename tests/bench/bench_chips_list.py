"""Benchmark: GET /api/v1/chips (a user with 10 chips) vs a trivial endpoint, 64 connections.

Run: .venv/bin/python -m tests.bench.bench_chips_list [--duration 5]
Both endpoints are measured in the same run against the same single-process server, so the
ratio is meaningful on a shared, noisy machine. Goal: chips listing >= 50% of the trivial one.
"""

from __future__ import annotations

import argparse
import asyncio

import asyncpg
import httpx

from tests.bench import loadgen
from tests.bench.server import whago_server


async def main(duration: float, connections: int) -> None:
    with whago_server(args=("--workers", "1")) as (url, port, env):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            registered = await http.post(
                "/api/v1/auth/register", json={"email": "bench@example.com", "password": "benchmark-pw"}
            )
            body = registered.json()
            conn = await asyncpg.connect(env["WHAGO_DATABASE_URL"])
            await conn.execute("UPDATE users SET plan = 'enterprise' WHERE id = $1", body["user"]["id"])
            await conn.close()
            headers = {"Authorization": f"Bearer {body['access_token']}"}
            for i in range(10):
                created = await http.post("/api/v1/chips", json={"alias": f"chip-{i}"}, headers=headers)
                assert created.status_code == 202, created.text
            listing = (await http.get("/api/v1/chips", headers=headers)).json()
            assert listing["total"] == 10

        warm = loadgen.get_request("/health/live")
        await loadgen.run("warm-up", "127.0.0.1", port, lambda i: warm, connections=connections, duration=1)
        trivial = await loadgen.run(
            "trivial GET /health/live", "127.0.0.1", port, lambda i: warm, connections=connections, duration=duration
        )
        chips_request = loadgen.get_request("/api/v1/chips", headers)
        chips = await loadgen.run(
            "GET /api/v1/chips (10)",
            "127.0.0.1",
            port,
            lambda i: chips_request,
            connections=connections,
            duration=duration,
        )
        print(trivial.line())
        print(chips.line())
        print(loadgen.summary(chips, trivial))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(main(args.duration, args.connections))
