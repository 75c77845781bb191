"""Crash consistency of the webhook hot path: a real ``whago serve`` is SIGKILLed while it applies
a stream of signed webhooks and restarted on the same port.

The sender follows WAHA's delivery rule (each event sent on its own, concurrently with the others;
any non-2xx answer or transport error is retried with the same bytes and the same envelope id,
with a growing delay) except that it never gives up inside the test's deadline: WHAGO configures
8 exponential retries from 2 s, minutes of cover, far longer than a restart.

What must hold: every event acknowledged before the kill is already in the database while the
process is dead (no acknowledgement before commit); after the restart every event is applied
exactly once (one ``webhook_events`` row, one history row, whatever the number of deliveries);
and each chip ends at the status of its newest event.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.api import add_chip, register
from tests.support.asgi_server import free_port
from tests.support.waiting import eventually
from tests.support.webhooks import HOOK, MAPPING, envelope, sign

pytestmark = pytest.mark.anyio

CHIPS = 40
# every chip gets each WAHA status once, so every applied event writes exactly one history row
# (applied or stale), whatever order the concurrent deliveries land in
STATUSES = list(MAPPING)
CONCURRENCY = 12


@dataclass
class Event:
    event_id: str
    chip_id: uuid.UUID
    status: str
    at: int
    body: bytes
    attempts: int = 0
    acked: bool = False
    failures: list[str] = field(default_factory=list)


class Server:
    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log = port, log
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=dict(os.environ),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self) -> None:
        async def up() -> bool:
            assert self.process is not None
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                async with httpx.AsyncClient(timeout=1) as http:
                    return (await http.get(self.url + "/health/ready")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(up, timeout=30, what="whago serve ready", interval=0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


async def deliver_until_acked(http: httpx.AsyncClient, url: str, event: Event, deadline: float) -> None:
    """WAHA's rule: same bytes, same id, retried on anything but a 2xx, with a growing delay."""
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Hmac": sign(event.body),
        "X-Webhook-Hmac-Algorithm": "sha512",
    }
    delay = 0.05
    while time.monotonic() < deadline:
        event.attempts += 1
        try:
            response = await http.post(url + HOOK, content=event.body, headers=headers)
        except httpx.TransportError as exc:
            event.failures.append(type(exc).__name__)
        else:
            if response.status_code == 200:
                assert response.json()["status"] in ("ok", "duplicate"), response.text
                event.acked = True
                return
            # only the documented outage answer is acceptable while the process comes and goes
            assert response.status_code == 503, (response.status_code, response.text)
            event.failures.append("503")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.4)


async def test_sigkill_mid_stream_loses_nothing_and_applies_nothing_twice(client, migrated_db, tmp_path):
    user = await register(client)
    conn = await asyncpg.connect(migrated_db)
    try:
        chips = [await add_chip(conn, user["user"]["id"], "provisioning") for _ in range(CHIPS)]
        base = int(time.time() * 1000) - 60_000
        events: list[Event] = []
        for chip_id in chips:
            order = random.sample(STATUSES, len(STATUSES))
            for step, status in enumerate(order):
                body = envelope(
                    "chip_" + chip_id.hex,
                    status,
                    at=base + step * 10,
                    meta={"user_id": user["user"]["id"], "chip_id": str(chip_id)},
                )
                raw = json.dumps(body, separators=(",", ":")).encode()
                events.append(Event(body["id"], chip_id, status, body["timestamp"], raw))
        random.shuffle(events)

        server = Server(free_port(), tmp_path / "serve.log")
        server.start()
        try:
            await server.ready()
            queue: asyncio.Queue[Event] = asyncio.Queue()
            for event in events:
                queue.put_nowait(event)
            deadline = time.monotonic() + 45

            async with httpx.AsyncClient(timeout=5) as http:

                async def sender() -> None:
                    while not queue.empty():
                        await deliver_until_acked(http, server.url, queue.get_nowait(), deadline)

                senders = [asyncio.create_task(sender()) for _ in range(CONCURRENCY)]
                # kill while the stream is in full flow: a third acknowledged, the rest pending
                await eventually(
                    lambda: sum(e.acked for e in events) >= len(events) // 3, timeout=20, what="a third acked"
                )
                server.kill()
                acked_before_kill = {e.event_id for e in events if e.acked}
                assert len(acked_before_kill) < len(events), "the stream ended before the kill"

                # acknowledged means committed: every such event is in the database while the API is dead
                stored = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM webhook_events")}
                assert acked_before_kill <= stored, acked_before_kill - stored
                # some deliveries must be failing against the dead process, or the kill proved nothing
                await eventually(lambda: any(e.failures for e in events), timeout=5, what="a failed delivery")

                server.start()
                await server.ready()
                await asyncio.wait_for(asyncio.gather(*senders), timeout=40)
        finally:
            server.stop()

        assert all(e.acked for e in events), [e.event_id for e in events if not e.acked]
        redelivered = [e for e in events if e.attempts > 1]
        assert redelivered, "no event needed a retry: the kill did not hit the stream"

        # exactly once: one dedup row per event, one history row per event, nothing else
        rows = await conn.fetch("SELECT event_id FROM webhook_events")
        assert sorted(r["event_id"] for r in rows) == sorted(e.event_id for e in events)
        history = await conn.fetch(
            "SELECT chip_id, to_status FROM chip_events WHERE source = 'webhook' AND chip_id = ANY($1::uuid[])",
            chips,
        )
        per_chip: dict[uuid.UUID, list[str]] = {}
        for row in history:
            per_chip.setdefault(row["chip_id"], []).append(row["to_status"])
        expected = sorted(MAPPING.values())
        assert {c: sorted(s) for c, s in per_chip.items()} == {c: expected for c in chips}

        # order by event time, not by arrival: each chip ends at its newest event's status
        newest = {}
        for e in events:
            if e.chip_id not in newest or e.at > newest[e.chip_id].at:
                newest[e.chip_id] = e
        final = {
            r["id"]: r["status"] for r in await conn.fetch("SELECT id, status FROM chips WHERE id = ANY($1)", chips)
        }
        assert final == {c: MAPPING[newest[c].status] for c in chips}
    finally:
        await conn.close()
