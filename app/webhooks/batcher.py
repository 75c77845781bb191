"""Group commit for webhook events.

Every event is still applied by its own statement, with the same dedup, lock and ordering
rules, but events that arrive together share one transaction, so one WAL flush (the dominant
cost of a small write) serves many of them. Nothing is acknowledged before its batch commits.
Within a batch, statements run in (chip session, event time) order: concurrent batches take
chip row locks in the same order, which rules out lock cycles between them; a deadlock or any
failure still re-runs the batch's events one per transaction, so one bad event never fails
the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.core import db
from app.core.errors import DependencyUnavailable

logger = logging.getLogger("whago.webhooks")


def _fail(item: _Item) -> None:
    if not item.future.done():
        item.future.set_exception(DependencyUnavailable("Webhook not applied (shutting down); retry."))


@dataclass(order=True)
class _Item:
    sort_key: tuple
    sql: str = field(compare=False)
    args: tuple = field(compare=False)
    future: asyncio.Future = field(compare=False)


class GroupCommitter:
    def __init__(self, *, max_batch: int = 32, max_wait_seconds: float = 0.002, concurrency: int = 4) -> None:
        self.max_batch = max_batch
        self.max_wait = max_wait_seconds
        self.concurrency = concurrency
        self._queue: asyncio.Queue[_Item] | None = None
        self._workers: list[asyncio.Task] = []

    def _ensure_started(self) -> asyncio.Queue:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._workers = [
                asyncio.create_task(self._work(), name=f"whago-webhook-commit-{i}") for i in range(self.concurrency)
            ]
        return self._queue

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # whatever was still waiting is answered 503 (WAHA retries it), never left hanging
        while self._queue is not None and not self._queue.empty():
            _fail(self._queue.get_nowait())
        self._workers, self._queue = [], None

    async def fetchrow(self, sql: str, args: tuple, sort_key: tuple) -> asyncpg.Record | None:
        future = asyncio.get_running_loop().create_future()
        self._ensure_started().put_nowait(_Item(sort_key, sql, args, future))
        return await future

    async def _collect(self) -> list[_Item]:
        queue = self._ensure_started()
        batch = [await queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while len(batch) < self.max_batch:
            try:
                batch.append(queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return sorted(batch)

    async def _work(self) -> None:
        while True:
            batch = await self._collect()
            try:
                try:
                    results = await self._run(batch)
                except Exception:
                    await self._run_each(batch)
                    continue
                for item, row in zip(batch, results, strict=True):
                    if not item.future.done():
                        item.future.set_result(row)
            finally:
                for item in batch:  # stopped mid-batch: nobody waits forever
                    _fail(item)

    @staticmethod
    async def _run(batch: list[_Item]) -> list[Any]:
        async with db.transaction():
            return [await db.fetchrow(item.sql, *item.args) for item in batch]

    @staticmethod
    async def _run_each(batch: list[_Item]) -> None:
        for item in batch:
            try:
                row = await db.fetchrow(item.sql, *item.args)
            except Exception as exc:
                if not item.future.done():
                    item.future.set_exception(exc)
            else:
                if not item.future.done():
                    item.future.set_result(row)
