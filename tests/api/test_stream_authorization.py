"""An open event stream's authorization re-check, at scale: the streams of one API process re-read
their tokens' revocation state together, in one statement per REVOCATION_CACHE_SECONDS, not one
each (1,000 idle streams cost 250 queries/s that way: tests/bench/bench_streams.py, issue 17).
A disabled user's streams still end within the same bound, and only theirs."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from app.core import db, security
from app.events import controller as events_controller
from tests.support.api import register
from tests.support.sse import open_stream

pytestmark = pytest.mark.anyio

CHECK = 0.05
INTERVAL = 0.25


@pytest.fixture
def fast_checks(monkeypatch):
    """Streams check every CHECK seconds, states are trusted for INTERVAL: seconds become tenths."""
    monkeypatch.setattr(events_controller, "CHECK_SECONDS", CHECK)
    monkeypatch.setattr(security, "REVOCATION_CACHE_SECONDS", INTERVAL)


@pytest.fixture
def revocation_reads(monkeypatch) -> list[int]:
    """Every revocation-state statement the server runs (through app.core.db), with its row count."""
    reads: list[int] = []
    fetch = db.fetch

    async def counted(sql: str, *args: object):
        rows = await fetch(sql, *args)
        if "FROM revoked_tokens r WHERE r.jti" in sql:
            reads.append(len(rows))
        return rows

    monkeypatch.setattr(db, "fetch", counted)
    return reads


async def test_open_streams_are_rechecked_in_one_query_per_interval(client, fast_checks, revocation_reads):
    users = [await register(client) for _ in range(4)]
    async with contextlib.AsyncExitStack() as stack:
        for user in users:
            for _ in range(2):
                await stack.enter_async_context(open_stream(client, user))
        streams = 2 * len(users)
        await asyncio.sleep(2 * INTERVAL)  # every stream has checked (and joined the shared read)
        revocation_reads.clear()
        started = time.monotonic()
        await asyncio.sleep(1.5)
        elapsed = time.monotonic() - started
        reads = list(revocation_reads)
    # one read per interval for all the streams (per stream, it would be streams x as many)
    assert len(reads) <= elapsed / INTERVAL + 2, f"{len(reads)} reads for {streams} streams in {elapsed:.2f} s"
    assert reads, "the streams stopped re-checking their tokens"
    assert max(reads) == streams  # each read covers every open stream


async def test_disabling_a_user_ends_their_streams_only(client, admin, fast_checks, revocation_reads):
    disabled, other = await register(client), await register(client)
    async with open_stream(client, other) as kept:
        async with open_stream(client, disabled) as first, open_stream(client, disabled) as second:
            await asyncio.sleep(2 * INTERVAL)
            response = await client.patch(
                f"/api/v1/admin/users/{disabled['user']['id']}", json={"disabled": True}, headers=admin["headers"]
            )
            assert response.status_code == 200, response.text
            # ended by the server (the stream's own bound: a state read + a check, tenths here)
            await asyncio.wait_for(asyncio.gather(first._task, second._task), 5)
        await asyncio.sleep(4 * INTERVAL)
        assert not kept._task.done(), "another user's stream ended"
    assert max(revocation_reads) >= 2  # the ends came from the shared read
