from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.response import ServerSentEvent, ServerSentEventMessage

from app.core import metrics
from app.core.errors import DependencyUnavailable
from app.events.bus import EventHub
from app.events.streams import StreamLease

KEEPALIVE_SECONDS = 15.0
# how often an open stream re-checks that its user may still listen (disabled, tokens revoked)
CHECK_SECONDS = 2.0
HUB_WAIT_SECONDS = 2.0


def _comment(text: str) -> ServerSentEventMessage:
    # data=None: a comment-only frame. With Litestar's default (data="") the frame carries an empty
    # "data:" line, which EventSource dispatches as a spurious, empty "message" event.
    return ServerSentEventMessage(comment=text, data=None)


class EventsController(Controller):
    path = "/api/v1/events"
    tags = ["Live events"]

    @get("/", operation_id="EventStream")
    async def stream(
        self, stream_lease: NamedDependency[StreamLease], event_hub: NamedDependency[EventHub]
    ) -> ServerSentEvent:
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

        async def events() -> AsyncIterator[ServerSentEventMessage]:
            try:
                async with event_hub.listen(stream_lease.user_id) as queue:
                    metrics.EVENT_STREAMS.inc()
                    try:
                        yield _comment("connected")
                        quiet_since = next_check = time.monotonic()
                        next_refresh = quiet_since + stream_lease.refresh_seconds  # (just acquired)
                        while True:
                            got, raw = False, None
                            try:
                                raw = await asyncio.wait_for(queue.get(), CHECK_SECONDS)
                                got = True
                            except TimeoutError:
                                pass
                            if got and raw is None:
                                # the server is stopping: say so, ask for a quick reconnect (to
                                # another process behind the load balancer), and end the response
                                yield ServerSentEventMessage(
                                    comment="server shutting down; reconnect", retry=1000, data=None
                                )
                                return
                            now = time.monotonic()
                            if now >= next_check:
                                next_check = now + CHECK_SECONDS
                                if not await stream_lease.still_valid():
                                    return  # revoked or disabled: the stream ends
                                if now >= next_refresh:
                                    next_refresh = now + stream_lease.refresh_seconds
                                    await stream_lease.refresh()
                            if not got or raw is None:
                                if now - quiet_since >= KEEPALIVE_SECONDS:
                                    quiet_since = now
                                    yield _comment("keep-alive")
                                continue
                            quiet_since = now
                            message = msgspec.json.decode(raw)
                            yield ServerSentEventMessage(
                                event=message["event"], data=msgspec.json.encode(message["data"]).decode()
                            )
                    finally:
                        metrics.EVENT_STREAMS.dec()
            finally:
                await stream_lease.release()

        return ServerSentEvent(events(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
