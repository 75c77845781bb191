"""Benchmark: provisioning latency, POST /api/v1/chips -> chip.status waiting_qr.

Run: .venv/bin/python -m tests.bench.bench_provisioning [--tenants 10 --chips 10]

A real ``whago dev`` process (API + in-process worker + the local scheduler: one WAHA emulator per
tenant, zero boot delay). Each tenant's browser view is an SSE stream opened before its chips
are created; latency is from the POST's response to the ``waiting_qr`` event. ``--mode
sequential`` (default) creates one chip at a time (latency without queueing); ``--mode burst``
creates all 100 at once (a sign-up wave: latency includes queueing on one process). Baseline in
the same run: the round trip of the POST itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import asyncpg
import httpx

from tests.bench.server import BENCH_ENV, reset_state, wait_until_live
from tests.support.asgi_server import free_port


def pct(values: list[float], p: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, round(p / 100 * (len(data) - 1)))]


async def tenant_flow(
    http: httpx.AsyncClient, url: str, index: int, chips: int, db_url: str, sequential: bool
) -> tuple[list[float], list[float]]:
    body = (
        await http.post("/api/v1/auth/register", json={"email": f"bench{index}@example.com", "password": "bench-pass"})
    ).json()
    conn = await asyncpg.connect(db_url)
    await conn.execute("UPDATE users SET plan = 'enterprise' WHERE id = $1", body["user"]["id"])
    await conn.close()
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    token = (await http.post("/api/v1/auth/stream-token", headers=headers)).json()["token"]
    created_at: dict[str, float] = {}
    ready_at: dict[str, float] = {}
    post_times: list[float] = []
    done = asyncio.Event()
    connected = asyncio.Event()

    async def listen() -> None:
        async with httpx.AsyncClient(timeout=None) as stream_client:  # noqa: S113  (an event stream: no read timeout)
            async with stream_client.stream("GET", f"{url}/api/v1/events", params={"token": token}) as stream:
                event = None
                async for line in stream.aiter_lines():
                    if line.startswith(": connected"):
                        connected.set()
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and event == "chip.status":
                        data = json.loads(line[5:])
                        if data["status"] == "waiting_qr" and data["chip_id"] not in ready_at:
                            ready_at[data["chip_id"]] = time.perf_counter()
                            if len(ready_at) == chips:
                                done.set()
                                return

    listener = asyncio.create_task(listen())
    await asyncio.wait_for(connected.wait(), 10)

    async def create(i: int) -> None:
        started = time.perf_counter()
        response = await http.post("/api/v1/chips", json={"alias": f"c{i}"}, headers=headers)
        now = time.perf_counter()
        assert response.status_code == 202, response.text
        post_times.append((now - started) * 1000)
        created_at[response.json()["id"]] = now

    if sequential:
        for i in range(chips):  # the next chip once the previous one shows its QR
            await create(i)
            while len(ready_at) <= i:  # noqa: ASYNC110  (1 ms polling keeps the latency figures exact)
                await asyncio.sleep(0.001)
    else:
        await asyncio.gather(*(create(i) for i in range(chips)))
    await asyncio.wait_for(done.wait(), 120)
    listener.cancel()
    return [(ready_at[c] - created_at[c]) * 1000 for c in created_at], post_times


async def main(tenants: int, chips: int, mode: str) -> None:
    port = free_port()
    state = tempfile.mkdtemp(prefix="whago-bench-")
    env = {
        **os.environ,
        **BENCH_ENV,
        "WHAGO_LOCAL_EMULATOR_BOOT_DELAY_SECONDS": "0",
        "WHAGO_SCHEDULER": "local",
        "WHAGO_DEV_STATE_DIR": state,
        "WHAGO_LOG_LEVEL": "WARNING",
    }
    # setup, before anything else runs on the loop: blocking here delays nothing
    subprocess.run([sys.executable, "-m", "app.cli", "migrate"], env=env, check=True, capture_output=True)  # noqa: ASYNC221
    reset_state(env)
    proc = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "app.cli", "dev", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_live(url)
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            if mode == "sequential":
                results = [
                    await tenant_flow(http, url, i, chips, env["WHAGO_DATABASE_URL"], True) for i in range(tenants)
                ]
            else:
                results = await asyncio.gather(
                    *(tenant_flow(http, url, i, chips, env["WHAGO_DATABASE_URL"], False) for i in range(tenants))
                )
        latencies = [v for r in results for v in r[0]]
        posts = [v for r in results for v in r[1]]
        how = "one at a time" if mode == "sequential" else "all created at once"
        print(f"{len(latencies)} chips over {tenants} tenants, {how}")
        print(
            f"POST -> waiting_qr: p50 {pct(latencies, 50):.0f} ms, p95 {pct(latencies, 95):.0f} ms, "
            f"max {max(latencies):.0f} ms, mean {statistics.mean(latencies):.0f} ms"
        )
        print(f"baseline, the POST itself: p50 {pct(posts, 50):.0f} ms, p95 {pct(posts, 95):.0f} ms")
        print(f"p95 latency / p95 POST: {pct(latencies, 95) / pct(posts, 95):.2f}")
    finally:
        proc.terminate()
        proc.wait(20)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--chips", type=int, default=10)
    parser.add_argument("--mode", choices=["sequential", "burst"], default="sequential")
    args = parser.parse_args()
    asyncio.run(main(args.tenants, args.chips, args.mode))
