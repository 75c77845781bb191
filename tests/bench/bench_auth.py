"""Benchmark: memory of one API process while 100 concurrent logins with random (unknown) emails
hit it — the anonymous flood that used to cost 64 MiB of argon2 memory per request.

Run: .venv/bin/python -m tests.bench.bench_auth [--logins 100] [--concurrency 2]

The server runs with production hashing (argon2id, m=19 MiB, t=2, p=1) and
WHAGO_PASSWORD_HASH_CONCURRENCY=<concurrency>; the 100 clients come through a trusted proxy
(X-Forwarded-For, one address each), so the per-IP limits let every login reach the hash. RSS
(VmRSS of the server process) is sampled every 10 ms: before, peak during, and after. Run it a
second time with --concurrency 100 to see what the cap saves.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid

import httpx
from cryptography.fernet import Fernet

from tests.bench.server import BENCH_ENV, reset_state, wait_until_live
from tests.support.asgi_server import free_port


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def flood(url: str, logins: int) -> tuple[dict[int, int], float]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def one(n: int) -> int:
            body = {"email": f"nobody-{uuid.uuid4().hex[:12]}@example.com", "password": "not-the-password"}
            response = await client.post(
                "/api/v1/auth/login", json=body, headers={"X-Forwarded-For": f"10.1.{n // 250}.{n % 250}"}
            )
            return response.status_code

        started = time.perf_counter()
        codes = await asyncio.gather(*(one(n) for n in range(logins)))
        elapsed = time.perf_counter() - started
    counts: dict[int, int] = {}
    for code in codes:
        counts[code] = counts.get(code, 0) + 1
    return counts, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logins", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=2, help="WHAGO_PASSWORD_HASH_CONCURRENCY")
    args = parser.parse_args()

    env = {
        **os.environ,
        **BENCH_ENV,
        # production: real argon2 parameters and the production start-up checks
        "WHAGO_ENV": "production",
        "WHAGO_SECRET_KEY": "bench-secret-key-" + "s" * 32,
        "WHAGO_WEBHOOK_HMAC_KEY": "bench-webhook-key-" + "h" * 32,
        "WHAGO_WAHA_API_KEY": "bench-waha-api-key-" + "k" * 32,
        "WHAGO_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "WHAGO_SCHEDULER": "static",
        "WHAGO_WAHA_URL": "http://127.0.0.1:9",
        "WHAGO_TRUSTED_PROXIES": "127.0.0.1",
        "WHAGO_PASSWORD_HASH_CONCURRENCY": str(args.concurrency),
    }
    subprocess.run([sys.executable, "-m", "app.cli", "migrate"], env=env, check=True, capture_output=True)
    reset_state(env)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_live(url)
        httpx.post(url + "/api/v1/auth/login", json={"email": "warm@example.com", "password": "warm-up-pw"}, timeout=30)
        before = rss_mib(proc.pid)
        peak = before
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_mib(proc.pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        counts, elapsed = asyncio.run(flood(url, args.logins))
        done.set()
        sampler.join()
        after = rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(15)
    print(
        f"{args.logins} concurrent logins, unknown emails, hash concurrency {args.concurrency}: "
        f"answers {counts}, {elapsed:.2f} s ({args.logins / elapsed:.0f}/s); "
        f"RSS before {before:.0f} MiB, peak {peak:.0f} MiB (+{peak - before:.0f}), after {after:.0f} MiB"
    )


if __name__ == "__main__":
    main()
