from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.response import ServerSentEvent, ServerSentEventMessage

from app.core import metrics
from app.core.errors import DependencyUnavailable
from app.events.bus import EventHub

KEEPALIVE_SECONDS = 15.0
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
        self, stream_user_id: NamedDependency[UUID], event_hub: NamedDependency[EventHub]
    ) -> ServerSentEvent:
        """Server-sent events for the caller's chips; authenticate with a short-lived stream token
        (``?token=``, from POST /api/v1/auth/stream-token).

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
                raise DependencyUnavailable("Live events unavailable (Redis); try again shortly.") from None

        async def events() -> AsyncIterator[ServerSentEventMessage]:
            async with event_hub.listen(stream_user_id) as queue:
                metrics.EVENT_STREAMS.inc()
                try:
                    yield _comment("connected")
                    while True:
                        try:
                            raw = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                        except TimeoutError:
                            yield _comment("keep-alive")
                            continue
                        if raw is None:
                            # the server is stopping: say so, ask for a quick reconnect (to another
                            # process behind the load balancer), and end the response
                            yield ServerSentEventMessage(
                                comment="server shutting down; reconnect", retry=1000, data=None
                            )
                            return
                        message = msgspec.json.decode(raw)
                        yield ServerSentEventMessage(
                            event=message["event"], data=msgspec.json.encode(message["data"]).decode()
                        )
                finally:
                    metrics.EVENT_STREAMS.dec()

        return ServerSentEvent(events(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
