"""The shared Redis client (queue, rate limits, caches, pub/sub): short timeouts, lazy connections."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.settings import Settings

REDIS_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)


def create_redis(settings: Settings, **overrides) -> aioredis.Redis:
    options = {
        "socket_timeout": settings.redis_timeout_seconds,
        "socket_connect_timeout": settings.redis_timeout_seconds,
        "health_check_interval": 30,
        "max_connections": 200,
        "decode_responses": False,
    }
    options.update(overrides)
    return aioredis.from_url(settings.redis_url, **options)


def key(*parts: object) -> str:
    """Every Redis key WHAGO writes starts with ``whago:``."""
    return "whago:" + ":".join(str(p) for p in parts)
