"""Shared pieces of the live-events and RSS benchmarks (bench_streams, bench_rss).

- ``seed_tenants``: tenants and chips bulk-inserted in SQL (thousands in a second), with access
  tokens minted with the benchmark server's own secret (as ``POST /auth/register`` would issue).
- ``status_body``: a signed ``session.status`` envelope for the per-tenant webhook route.
- ``PacedSender``: an open-loop, fixed-rate HTTP/1.1 generator over raw keep-alive sockets (wrk
  cannot rate-limit): request i is due at ``t0 + i / rate``; it records when each request was due,
  when it was written and when its response came back, so lateness of the generator itself is
  reported instead of silently lowering the rate.
- ``process_rss_kib`` / ``process_cpu_seconds``: the server's figures from /proc.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from tests.bench.loadgen import post_request, read_response
from tests.support.webhooks import tenant_hook, tenant_key

CYCLE = ["STARTING", "SCAN_QR_CODE", "WORKING", "STOPPED", "FAILED"]
PHONE_ME = {"id": "5511900000000@c.us", "pushName": "bench"}


# --- /proc ---------------------------------------------------------------------------------------


def process_rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and its anonymous part (RssAnon: the heap; the rest is mapped files) in KiB."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[name] = int(value.split()[0])
    return out


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- seeding -------------------------------------------------------------------------------------


async def seed_tenants(
    database_url: str, env: dict[str, str], users: int, chips_each: int, prefix: str = "seed"
) -> list[dict]:
    """``users`` enterprise tenants with ``chips_each`` chips (status ``provisioning``, already
    enqueued so nothing tries to provision them) and an access token each."""
    from app.core.security import ACCESS, TokenSigner
    from app.settings import load_settings
    from app.waha.sessions import session_name

    signer = TokenSigner(load_settings(env))
    tenants = []
    user_rows, chip_rows = [], []
    for u in range(users):
        user_id = uuid.uuid4()
        chips = []
        for c in range(chips_each):
            chip_id = uuid.uuid4()
            chips.append({"id": str(chip_id), "session_name": session_name(chip_id)})
            chip_rows.append((chip_id, user_id, f"chip-{c}", session_name(chip_id), "provisioning"))
        # the hash is never checked (the benchmark never logs in: tokens are minted below)
        user_rows.append((user_id, f"{prefix}-{u}@example.com", "bench-not-a-hash", "enterprise"))
        token, _ = signer.issue(user_id, 0, ACCESS)
        tenants.append({"user_id": str(user_id), "token": token, "chips": chips})
    conn = await asyncpg.connect(database_url)
    try:
        await conn.copy_records_to_table("users", records=user_rows, columns=["id", "email", "password_hash", "plan"])
        await conn.copy_records_to_table(
            "chips", records=chip_rows, columns=["id", "user_id", "alias", "session_name", "status"]
        )
        await conn.execute("UPDATE chips SET provision_enqueued_at = now() WHERE provision_enqueued_at IS NULL")
        await conn.execute("ANALYZE users; ANALYZE chips")
    finally:
        await conn.close()
    return tenants


def webhook_keys(tenants: list[dict], platform_key: str) -> dict[str, bytes]:
    return {t["user_id"]: tenant_key(t["user_id"], platform_key).encode() for t in tenants}


# --- signed webhooks -----------------------------------------------------------------------------


def envelope(event: str, chip: dict, user_id: str, at: int, payload: dict, me: dict | None = None) -> bytes:
    return json.dumps(
        {
            "id": "evt_" + uuid.uuid4().hex[:26],
            "timestamp": at,
            "event": event,
            "session": chip["session_name"],
            "metadata": {"user_id": user_id, "chip_id": chip["id"]},
            "me": me,
            "payload": payload,
            "engine": "GOWS",
            "environment": {"version": "2026.7.1", "engine": "GOWS", "tier": "CORE", "worker": {"id": "bench"}},
        },
        separators=(",", ":"),
    ).encode()


def status_body(chip: dict, user_id: str, at: int, status: str) -> bytes:
    payload = {"name": chip["session_name"], "status": status, "statuses": [], "data": None}
    return envelope("session.status", chip, user_id, at, payload, PHONE_ME if status == "WORKING" else None)


def signed_post(user_id: str, body: bytes, key: bytes) -> bytes:
    signature = hmac.new(key, body, hashlib.sha512).hexdigest()
    return post_request(tenant_hook(user_id), body, {"X-Webhook-Hmac": signature})


# --- fixed-rate generator ------------------------------------------------------------------------


@dataclass
class Sent:
    meta: Any
    due: float  # time.monotonic() at which the request was due
    written: float = 0.0
    done: float = 0.0
    status: int = 0  # 0: transport error
    body: bytes = b""


@dataclass
class PacedSender:
    """Open loop: the pacer puts each request on a FIFO when it is due; ``connections`` workers,
    one per keep-alive connection, take them in order (so requests are written in the order they
    were due, even when the server falls behind: events of one chip never overtake each other in
    the generator). A request that waits for a free connection shows as lateness (``written - due``),
    reported by the caller."""

    host: str
    port: int
    connections: int = 64
    results: list[Sent] = field(default_factory=list)

    async def run(
        self,
        make: Callable[[int], tuple[bytes, Any]],
        rate: float,
        duration: float,
        stop: asyncio.Event | None = None,
    ) -> list[Sent]:
        due_requests: asyncio.Queue = asyncio.Queue()
        workers = [asyncio.create_task(self._worker(due_requests)) for _ in range(self.connections)]
        t0 = time.monotonic()
        i = 0
        total = int(rate * duration)
        try:
            while i < total and not (stop is not None and stop.is_set()):
                due = t0 + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing
                request, meta = make(i)
                sent = Sent(meta, due)
                self.results.append(sent)
                due_requests.put_nowait((request, sent))
                i += 1
            for _ in workers:
                due_requests.put_nowait(None)
            await asyncio.wait_for(asyncio.gather(*workers), 120)
        finally:
            for worker in workers:
                worker.cancel()
        return self.results

    async def _worker(self, due_requests: asyncio.Queue) -> None:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 10)
        try:
            while (item := await due_requests.get()) is not None:
                request, sent = item
                sent.written = time.monotonic()
                writer.write(request)
                try:
                    sent.status, sent.body = await asyncio.wait_for(read_response(reader), 30)
                    sent.done = time.monotonic()
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, IndexError):
                    sent.status, sent.done = 0, time.monotonic()
                    writer.close()
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 10)
        finally:
            writer.close()


def pct(values: list[float], p: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, round(p / 100 * (len(data) - 1)))] if data else float("nan")


# --- the stream clients' process -----------------------------------------------------------------


class StreamClients:
    """Drives ``python -m tests.bench.stream_clients`` (a separate process) over its stdin/stdout."""

    def __init__(self, url: str, tenants: list[dict], per_user: int, tmp: str) -> None:
        self.url, self.tenants, self.per_user = url, tenants, per_user
        self.tenants_file = os.path.join(tmp, f"stream-tenants-{uuid.uuid4().hex[:6]}.json")
        self.out_file = self.tenants_file.replace(".json", ".events")
        self.proc: asyncio.subprocess.Process | None = None

    async def _line(self, timeout: float) -> str:
        assert self.proc is not None
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("stream clients' process ended")
        return line.decode().strip()

    async def open(self, timeout: float = 300) -> tuple[int, int]:
        """Start the process and wait until every stream is connected: (open, failed)."""
        tenants = [{"user_id": t["user_id"], "token": t["token"]} for t in self.tenants]
        Path(self.tenants_file).write_text(json.dumps(tenants))  # noqa: ASYNC240  (setup, small)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.bench.stream_clients",
            "--url",
            self.url,
            "--tenants",
            self.tenants_file,
            "--per-user",
            str(self.per_user),
            "--out",
            self.out_file,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        _, opened, failed = (await self._line(timeout)).split()
        return int(opened), int(failed)

    async def count(self) -> tuple[int, int]:
        """(chip.status events received so far, streams still open)."""
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"count\n")
        _, received, still_open = (await self._line(30)).split()
        return int(received), int(still_open)

    async def stop(self) -> list[tuple[int, str, float, str, str]]:
        """Every event received: (stream index, user id, receipt time, event, data)."""
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"stop\n")
        await self._line(120)
        await asyncio.wait_for(self.proc.wait(), 30)
        text = Path(self.out_file).read_text()  # noqa: ASYNC240  (after the run)
        return [tuple(json.loads(line)) for line in text.splitlines()]  # type: ignore[misc]

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
