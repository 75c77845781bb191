"""The process-wide service container, built once in the app's lifespan (and by workers)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import redis.asyncio as aioredis

from app.core.queue import JobQueue, SaqJobQueue
from app.core.ratelimit import SlidingWindowLimiter
from app.core.redis import create_redis
from app.core.security import PasswordHashing, TokenSigner
from app.events.bus import EventHub
from app.scheduler import build_scheduler
from app.scheduler.base import Scheduler
from app.settings import Settings
from app.users.activity import ActivityTracker
from app.waha.client import WahaClientPool
from app.webhooks.batcher import GroupCommitter


@dataclass
class Services:
    settings: Settings
    redis: aioredis.Redis
    queue: JobQueue
    limiter: SlidingWindowLimiter
    passwords: PasswordHashing
    tokens: TokenSigner
    scheduler: Scheduler
    waha: WahaClientPool
    events: EventHub
    activity: ActivityTracker
    webhook_commits: GroupCommitter | None = None  # set by the API's lifespan

    @classmethod
    def build(cls, settings: Settings, *, scheduler: Scheduler | None = None) -> Services:
        redis = create_redis(settings)
        queue = SaqJobQueue(redis, settings)
        services = cls(
            settings=settings,
            redis=redis,
            queue=queue,
            limiter=SlidingWindowLimiter(redis),
            passwords=PasswordHashing(settings),
            tokens=TokenSigner(settings),
            scheduler=scheduler or build_scheduler(settings, redis),
            waha=WahaClientPool.from_settings(settings),
            events=EventHub(redis),
            activity=ActivityTracker(queue),
        )
        return services

    async def aclose(self) -> None:
        if self.webhook_commits is not None:
            await self.webhook_commits.stop()
        await self.events.stop()
        with contextlib.suppress(Exception):
            await self.scheduler.close()
        await self.waha.aclose()
        await self.redis.aclose()
