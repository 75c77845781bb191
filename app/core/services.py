"""The process-wide service container, built once in the app's lifespan (and by workers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from app.core.queue import JobQueue, SaqJobQueue
from app.core.ratelimit import SlidingWindowLimiter
from app.core.redis import create_redis
from app.core.security import PasswordHashing, TokenSigner
from app.settings import Settings


@dataclass
class Services:
    settings: Settings
    redis: aioredis.Redis
    queue: JobQueue
    limiter: SlidingWindowLimiter
    passwords: PasswordHashing
    tokens: TokenSigner
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        redis = create_redis(settings)
        return cls(
            settings=settings,
            redis=redis,
            queue=SaqJobQueue(redis),
            limiter=SlidingWindowLimiter(redis),
            passwords=PasswordHashing(settings),
            tokens=TokenSigner(settings),
        )

    async def aclose(self) -> None:
        await self.redis.aclose()
