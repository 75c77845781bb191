"""The process-wide dependencies: built once, completely, by ``Container.build`` (API, worker, CLI).

Services take the container as their constructor argument; controllers never see it, they receive
their service through Litestar DI (``app/<feature>/dependencies.py``).

Import rule: this module imports the kernel (``app.core``, ``app.settings``) and the adapters and
components it builds (scheduler, WAHA pool, event hub, activity tracker), never a feature service:
services import ``app.container``, so a service import here would be a cycle.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Protocol

import asyncpg
import redis.asyncio as aioredis
from litestar.datastructures import State
from litestar.di import NamedDependency

from app.core.queue import JobQueue, SaqJobQueue
from app.core.ratelimit import AttemptLimiter, SlidingWindowLimiter
from app.core.redis import create_redis
from app.core.security import PasswordHashing, TokenSigner
from app.core.stream_tokens import WatchedTokens
from app.events.bus import EventHub
from app.events.streams import StreamLease
from app.scheduler import build_scheduler
from app.scheduler.base import Scheduler
from app.scheduler.instrumented import InstrumentedScheduler
from app.settings import Settings
from app.users.activity import ActivityTracker
from app.waha.client import WahaClientPool


class StatementBatcher(Protocol):
    """Group commit of single-statement writes (``app.webhooks.batcher.GroupCommitter``).

    A protocol, not the class: the webhooks package imports this module for its service, so
    importing it back would make a cycle. The API's factory builds one and passes it to ``build``.
    """

    async def fetchrow(self, sql: str, args: tuple, sort_key: tuple) -> asyncpg.Record | None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Container:
    # frozen: every field is set by ``build``; nothing completes the container afterwards
    settings: Settings
    redis: aioredis.Redis
    queue: JobQueue
    limiter: SlidingWindowLimiter
    attempts: AttemptLimiter
    passwords: PasswordHashing
    tokens: TokenSigner
    # the tokens of this process's open event streams, re-checked together
    stream_tokens: WatchedTokens
    scheduler: Scheduler
    waha: WahaClientPool
    events: EventHub
    activity: ActivityTracker
    # None outside the API (workers and the CLI receive no webhooks): writes go straight to the database
    webhook_commits: StatementBatcher | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        scheduler: Scheduler | None = None,
        webhook_commits: StatementBatcher | None = None,
    ) -> Container:
        """Everything the process shares. Opens no connection: clients connect on first use."""
        redis = create_redis(settings)
        queue = SaqJobQueue(redis, settings)
        tokens = TokenSigner(settings)
        return cls(
            settings=settings,
            redis=redis,
            queue=queue,
            limiter=SlidingWindowLimiter(redis),
            attempts=AttemptLimiter(redis),
            passwords=PasswordHashing(settings),
            tokens=tokens,
            stream_tokens=WatchedTokens(tokens),
            scheduler=InstrumentedScheduler(scheduler or build_scheduler(settings, redis)),
            waha=WahaClientPool.from_settings(settings),
            events=EventHub(redis),
            activity=ActivityTracker(queue),
            webhook_commits=webhook_commits,
        )

    async def aclose(self) -> None:
        if self.webhook_commits is not None:
            await self.webhook_commits.stop()
        await self.events.stop()
        with contextlib.suppress(Exception):
            await self.scheduler.close()
        await self.waha.aclose()
        await self.redis.aclose()


# App-level providers (registered by app.factory). Feature services have their own providers in
# app/<feature>/dependencies.py, each depending on ``container``.


def provide_container(state: State) -> Container:
    return state.container


def provide_settings(container: NamedDependency[Container]) -> Settings:
    return container.settings


def provide_event_hub(container: NamedDependency[Container], stream_lease: NamedDependency[StreamLease]) -> EventHub:
    # After ``stream_lease``: the hub goes only to an authenticated stream, and the route's
    # dependencies stay one chain (container → stream_lease → event_hub) that Litestar resolves
    # in sequence, without a task group per request.
    return container.events
