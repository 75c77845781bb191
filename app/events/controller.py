from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.response import ServerSentEventMessage, Stream

from app.core import metrics
from app.core.errors import DependencyUnavailable
from app.events.bus import EventHub
from app.events.streams import StreamLease

KEEPALIVE_SECONDS = 15.0
# how often an open stream re-checks that its user may still listen (disabled, tokens revoked)
CHECK_SECONDS = 2.0
HUB_WAIT_SECONDS = 2.0


def _comment(text: str) -> bytes:
    # data=None: a comment-only frame. With Litestar's default (data="") the frame carries an empty
    # "data:" line, which EventSource dispatches as a spurious, empty "message" event.
    return ServerSentEventMessage(comment=text, data=None).encode()


# Frames are written as bytes (events come framed from the hub, once per process): Litestar's
# ServerSentEvent would re-frame every item, the stream's largest cost per event.
_CONNECTED = _comment("connected")
_KEEPALIVE = _comment("keep-alive")
# ask for a quick reconnect (to another process behind the load balancer)
_SHUTTING_DOWN = ServerSentEventMessage(comment="server shutting down; reconnect", retry=1000, data=None).encode()
# ServerSentEvent's own headers, for the plain Stream that carries the frames
_HEADERS = {"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no"}


class EventsController(Controller):
    path = "/api/v1/events"
    tags = ["Live events"]

    # (the description ServerSentEvent had: the document stays as it was)
    @get("/", operation_id="EventStream", response_description="Request fulfilled, document follows")
    async def stream(self, stream_lease: NamedDependency[StreamLease], event_hub: NamedDependency[EventHub]) -> Stream:
        """Server-sent events for the caller's chips; authenticate with a short-lived stream token
        (``?token=``, from POST /api/v1/auth/stream-token; single use). A user holds a bounded
        number of open streams (429 beyond); a stream ends when the user is disabled or their
        tokens are revoked.

        The first frame is the comment ``: connected``: from then on every change is delivered.
        """
        # Both come from app-level providers (registered by app.factory): the container holds this
        # package's hub, so a provider here importing the container would be an import cycle.
        if event_hub.closing:
            raise DependencyUnavailable("This server is shutting down; reconnect in a moment.")
        if not event_hub.connected.is_set():
            # Without the hub's Redis subscription the stream would stay silent: say so instead.
            try:
                await asyncio.wait_for(event_hub.connected.wait(), HUB_WAIT_SECONDS)
            except TimeoutError:
                await stream_lease.release()
                raise DependencyUnavailable("Live events unavailable (Redis); try again shortly.") from None

        async def events() -> AsyncIterator[bytes]:
            try:
                async with event_hub.listen(stream_lease.user_id) as queue:
                    metrics.EVENT_STREAMS.inc()
                    try:
                        yield _CONNECTED
                        quiet_since = next_check = time.monotonic()
                        next_refresh = quiet_since + stream_lease.refresh_seconds  # (just acquired)
                        while True:
                            got, frame = False, None
                            try:
                                # (asyncio.timeout: no task per wait, unlike wait_for on 3.11)
                                async with asyncio.timeout(CHECK_SECONDS):
                                    frame = await queue.get()
                                got = True
                            except TimeoutError:
                                pass
                            if got and frame is None:
                                # the server is stopping: say so and end the response
                                yield _SHUTTING_DOWN
                                return
                            now = time.monotonic()
                            if now >= next_check:
                                next_check = now + CHECK_SECONDS
                                if not await stream_lease.still_valid():
                                    return  # revoked or disabled: the stream ends
                                if now >= next_refresh:
                                    next_refresh = now + stream_lease.refresh_seconds
                                    await stream_lease.refresh()
                            if frame is None:
                                if now - quiet_since >= KEEPALIVE_SECONDS:
                                    quiet_since = now
                                    yield _KEEPALIVE
                                continue
                            quiet_since = now
                            yield frame
                    finally:
                        metrics.EVENT_STREAMS.dec()
            finally:
                await stream_lease.release()

        return Stream(events(), media_type="text/event-stream", headers=_HEADERS)
