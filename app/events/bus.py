"""Live chip events over Redis pub/sub, so a change seen by any process reaches a browser
connected to any other. Publishing is best effort: the database already holds the change, and a
client that missed an event re-reads state when it reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import UUID

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from app.core.redis import REDIS_UNAVAILABLE_ERRORS, key

logger = logging.getLogger("whago.events")


def format_time(at: datetime) -> str:
    """RFC 3339 in UTC, as every REST response writes times (``…Z``)."""
    return msgspec.json.encode(at.astimezone(UTC)).decode()[1:-1]


class _Published(msgspec.Struct):
    event: str
    data: msgspec.Raw  # the payload's bytes as published: framed as they are, never re-encoded


_decode_published = msgspec.json.Decoder(_Published).decode


def sse_frame(message: bytes) -> bytes:
    """The server-sent event frame of a published event: ``event: <event>`` then ``data: <JSON>``,
    byte for byte what Litestar's ``ServerSentEventMessage(event=..., data=...)`` writes. Built once
    per process per event (``EventHub``), however many of the tenant's streams it goes to."""
    published = _decode_published(message)
    data = bytes(published.data)
    if b"\n" in data or b"\r" in data:
        # not msgspec's compact JSON (another publisher): one data line is what the streams send
        data = msgspec.json.encode(msgspec.json.decode(data))
    event = published.event.replace("\r", "").replace("\n", "").encode()
    return b"event: " + event + b"\r\ndata: " + data + b"\r\n\r\n"


def user_channel(user_id: UUID | str) -> str:
    return key("user", user_id, "events")


async def publish_chip_event(redis: aioredis.Redis, user_id: UUID | str, event: str, data: dict) -> None:
    message = msgspec.json.encode({"event": event, "data": data})
    try:
        await redis.publish(user_channel(user_id), message)
    except REDIS_UNAVAILABLE_ERRORS as exc:
        logger.warning("live event %s for user %s not published: %s", event, user_id, type(exc).__name__)


class EventHub:
    """The process's end of live events.

    Receiving: one pub/sub connection per process, subscribed only to the channels of users with
    an open stream in this process (so N API processes do not each parse every event), fanned
    out to those streams as ready SSE frames (``sse_frame``: framed once, not once per stream).
    Sending (``publish``): one FIFO per process, drained by a background task that sends whatever
    has queued up in one pipelined round trip. Callers (the webhook hot path) never wait on Redis,
    events leave in the order they were published, and a Redis outage costs only log lines; the
    queue is bounded so an outage cannot grow memory.
    """

    PUBLISH_BATCH = 512

    def __init__(self, redis: aioredis.Redis, queue_size: int = 256, max_pending: int = 10_000) -> None:
        self._redis = redis
        self._queue_size = queue_size
        self._listeners: dict[str, set[asyncio.Queue]] = defaultdict(set)
        self._task: asyncio.Task | None = None
        self.connected = asyncio.Event()
        self._pending: deque[tuple[str, bytes]] = deque()
        self._max_pending = max_pending
        self._dropped = 0
        self._wakeup: asyncio.Event | None = None
        self._sending = False
        self._publisher: asyncio.Task | None = None
        self._pubsub: PubSub | None = None  # the live PubSub while connected
        # keeps the connection in subscribed mode while no user is listening
        self._own_channel = key("hub", uuid.uuid4().hex)
        self._closing = False  # set once the process stops (close_streams)

    @property
    def closing(self) -> bool:
        return self._closing

    def close_streams(self) -> int:
        """The process is stopping: every open stream ends now (its listener gets ``None``), and
        no new one opens. Returns how many streams were told."""
        self._closing = True
        told = 0
        for queues in list(self._listeners.values()):
            for queue in list(queues):
                if queue.full():
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                queue.put_nowait(None)
                told += 1
        return told

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="whago-event-hub")
        self._wakeup = asyncio.Event()
        self._publisher = asyncio.create_task(self._publish_loop(), name="whago-event-publisher")

    async def stop(self, flush_timeout: float = 2.0) -> None:
        if self._publisher is not None:
            # hand over what is queued before going away (bounded: Redis may be the reason we stop)
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(self._drained(), flush_timeout)
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._publisher
            self._publisher = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    # --- sending ------------------------------------------------------------------------------

    async def publish(self, user_id: UUID | str, event: str, data: dict) -> None:
        """Queue a chip event for the user's channel; returns at once while the hub runs."""
        message = msgspec.json.encode({"event": event, "data": data})
        if self._publisher is None or self._publisher.done():
            # not started (a worker process, a script): publish directly, still best effort
            await publish_chip_event(self._redis, user_id, event, data)
            return
        if len(self._pending) >= self._max_pending:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                logger.warning("live event queue full (Redis slow or down): %d events dropped", self._dropped)
            return
        self._pending.append((user_channel(user_id), message))
        if self._wakeup is not None:
            self._wakeup.set()

    async def _drained(self) -> None:
        while self._pending or self._sending:  # noqa: ASYNC110 - bounded by stop()'s timeout
            await asyncio.sleep(0.01)

    async def _publish_loop(self) -> None:
        wakeup = self._wakeup
        if wakeup is None:
            return
        while True:
            await wakeup.wait()
            wakeup.clear()
            while self._pending:
                batch = [self._pending.popleft() for _ in range(min(len(self._pending), self.PUBLISH_BATCH))]
                self._sending = True
                try:
                    pipe = self._redis.pipeline(transaction=False)
                    for channel, message in batch:
                        pipe.publish(channel, message)
                    await pipe.execute()
                except asyncio.CancelledError:
                    raise
                except REDIS_UNAVAILABLE_ERRORS as exc:
                    logger.warning("%d live events not published: %s", len(batch), type(exc).__name__)
                except Exception:
                    logger.exception("%d live events not published", len(batch))
                finally:
                    self._sending = False

    # --- receiving ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def listen(self, user_id: UUID | str) -> AsyncIterator[asyncio.Queue]:
        """The user's events as SSE frames (bytes), ``None`` when the process stops."""
        queue: asyncio.Queue = asyncio.Queue(self._queue_size)
        channel = user_channel(user_id)
        first = not self._listeners.get(channel)
        self._listeners[channel].add(queue)
        try:
            if first and self._pubsub is not None:
                # (if not connected, the reconnect loop subscribes to every listened channel)
                await self._pubsub.subscribe(channel)
            yield queue
        finally:
            self._listeners[channel].discard(queue)
            if not self._listeners[channel]:
                del self._listeners[channel]
                if self._pubsub is not None:
                    with contextlib.suppress(Exception):
                        await self._pubsub.unsubscribe(channel)

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._own_channel, *self._listeners)
                self._pubsub = pubsub
                self.connected.set()
                backoff = 0.2
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None:
                        continue
                    channel = (
                        message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
                    )
                    queues = self._listeners.get(channel)
                    if not queues:
                        continue
                    try:
                        frame = sse_frame(message["data"])
                    except (msgspec.DecodeError, TypeError):
                        logger.warning("malformed live event on %s skipped", channel)
                        continue
                    for queue in list(queues):
                        if queue.full():
                            # a stuck client must not grow memory: it gets a resync hint instead
                            with contextlib.suppress(asyncio.QueueEmpty):
                                queue.get_nowait()
                        queue.put_nowait(frame)
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
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
