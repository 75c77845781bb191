"""Live chip events over Redis pub/sub, so a change seen by any process reaches a browser
connected to any other. Publishing is best effort: the database already holds the change, and a
client that missed an event re-reads state when it reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from uuid import UUID

import msgspec
import redis.asyncio as aioredis

from app.core.redis import REDIS_UNAVAILABLE_ERRORS, key

logger = logging.getLogger("whago.events")

CHANNEL_PATTERN = key("user", "*", "events")


def user_channel(user_id: UUID | str) -> str:
    return key("user", user_id, "events")


async def publish_chip_event(redis: aioredis.Redis, user_id: UUID | str, event: str, data: dict) -> None:
    message = msgspec.json.encode({"event": event, "data": data})
    try:
        await redis.publish(user_channel(user_id), message)
    except REDIS_UNAVAILABLE_ERRORS as exc:
        logger.warning("live event %s for user %s not published: %s", event, user_id, type(exc).__name__)


class EventHub:
    """One pattern subscription per process, fanned out to the SSE streams of that process."""

    def __init__(self, redis: aioredis.Redis, queue_size: int = 256) -> None:
        self._redis = redis
        self._queue_size = queue_size
        self._listeners: dict[str, set[asyncio.Queue]] = defaultdict(set)
        self._task: asyncio.Task | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="whago-event-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    @contextlib.asynccontextmanager
    async def listen(self, user_id: UUID | str) -> AsyncIterator[asyncio.Queue]:
        queue: asyncio.Queue = asyncio.Queue(self._queue_size)
        channel = user_channel(user_id)
        self._listeners[channel].add(queue)
        try:
            yield queue
        finally:
            self._listeners[channel].discard(queue)
            if not self._listeners[channel]:
                del self._listeners[channel]

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(CHANNEL_PATTERN)
                self.connected.set()
                backoff = 0.2
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None:
                        continue
                    channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
                    for queue in list(self._listeners.get(channel, ())):
                        if queue.full():
                            # a stuck client must not grow memory: it gets a resync hint instead
                            with contextlib.suppress(asyncio.QueueEmpty):
                                queue.get_nowait()
                        queue.put_nowait(message["data"])
            except asyncio.CancelledError:
                raise
            except REDIS_UNAVAILABLE_ERRORS as exc:
                self.connected.clear()
                logger.warning("event hub lost Redis (%s); retrying in %.1fs", type(exc).__name__, backoff)
            except Exception:
                # anything else (a malformed message, a client bug) must not end live events for
                # the life of the process: log it and resubscribe
                self.connected.clear()
                logger.exception("event hub failed; resubscribing in %.1fs", backoff)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
