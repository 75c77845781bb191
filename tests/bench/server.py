"""Start a real ``whago serve`` process for a benchmark, on its own database."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import httpx

from tests.support.asgi_server import free_port

BENCH_DATABASE_URL = os.environ.get("WHAGO_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/whago_bench")
BENCH_REDIS_URL = os.environ.get("WHAGO_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

last_pid: int | None = None  # the running server's pid (for a profiler to attach to)

BENCH_ENV = {
    "WHAGO_ENV": "test",  # cheap password hashing for the many sign-ups a benchmark makes
    "WHAGO_DATABASE_URL": BENCH_DATABASE_URL,
    "WHAGO_REDIS_URL": BENCH_REDIS_URL,
    "WHAGO_SECRET_KEY": "bench-secret-key-" + "b" * 32,
    "WHAGO_WEBHOOK_HMAC_KEY": "bench-webhook-key",
    "WHAGO_WAHA_API_KEY": "bench-waha-key",
    "WHAGO_ENCRYPTION_KEY": "YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmI=",
    "WHAGO_LOG_LEVEL": "WARNING",
    "WHAGO_AUTH_IP_LIMIT_PER_MINUTE": "100000",  # the benchmarks sign up 100 tenants from one address
}


@contextlib.contextmanager
def whago_server(extra_env: dict[str, str] | None = None, args: tuple[str, ...] = (), log: str | None = None):
    """``log``: a file for the server's output (discarded otherwise)."""
    env = {**os.environ, **BENCH_ENV, **(extra_env or {})}
    subprocess.run([sys.executable, "-m", "app.cli", "migrate"], env=env, check=True, capture_output=True)
    reset_state(env)
    port = free_port()
    output = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        env={**env, "UVICORN_ACCESS_LOG": "0"},
        stdout=output,
        stderr=output,
    )
    global last_pid
    last_pid = proc.pid
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_live(url)
        yield url, port, env
    finally:
        proc.terminate()
        proc.wait(15)
        if log:
            output.close()


def wait_until_live(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/health/live", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up")


def reset_state(env: dict[str, str]) -> None:
    """Empty the benchmark database and Redis db."""
    import redis

    sql = "TRUNCATE chip_events, webhook_events, instances, chips, proxies, users CASCADE"
    subprocess.run(["psql", "-q", env["WHAGO_DATABASE_URL"], "-c", sql], check=True, capture_output=True)
    redis.Redis.from_url(env["WHAGO_REDIS_URL"]).flushdb()
