"""Sliding-window limits kept in Redis, so they hold across every API process."""

from __future__ import annotations

import time
import uuid

import redis.asyncio as aioredis

from app.core.errors import DependencyUnavailable, RateLimited
from app.core.redis import REDIS_UNAVAILABLE_ERRORS, key

# Atomically: drop entries older than the window, and add this hit only if under the limit.
# Returns {allowed (1/0), retry_after_ms}.
_ACQUIRE = """
local k, now, window, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', k, '-inf', now - window)
local count = redis.call('ZCARD', k)
if count < limit then
  redis.call('ZADD', k, now, member)
  redis.call('PEXPIRE', k, window)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
return {0, math.max(1, tonumber(oldest[2]) + window - now)}
"""


class SlidingWindowLimiter:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._acquire = redis.register_script(_ACQUIRE)

    async def hit(self, name: str, subject: str, *, limit: int, window_seconds: float, detail: str) -> None:
        """Count one attempt; raise RateLimited (with Retry-After) when over the limit."""
        now_ms = int(time.time() * 1000)
        try:
            allowed, retry_ms = await self._acquire(
                keys=[key("ratelimit", name, subject)],
                args=[now_ms, int(window_seconds * 1000), limit, f"{now_ms}-{uuid.uuid4().hex[:8]}"],
            )
        except REDIS_UNAVAILABLE_ERRORS:
            raise DependencyUnavailable("Rate limiter unavailable (Redis).") from None
        if not allowed:
            raise RateLimited(detail, retry_after=-(-int(retry_ms) // 1000))

    async def retry_after(self, name: str, subject: str, *, limit: int, window_seconds: float) -> int:
        """Seconds until another attempt is allowed (0 = allowed now); does not count an attempt."""
        k = key("ratelimit", name, subject)
        now_ms = int(time.time() * 1000)
        try:
            pipe = self._redis.pipeline()
            pipe.zremrangebyscore(k, "-inf", now_ms - int(window_seconds * 1000))
            pipe.zrange(k, 0, 0, withscores=True)
            pipe.zcard(k)
            _, oldest, count = await pipe.execute()
        except REDIS_UNAVAILABLE_ERRORS:
            raise DependencyUnavailable("Rate limiter unavailable (Redis).") from None
        if count < limit or not oldest:
            return 0
        return max(1, -(-(int(oldest[0][1]) + int(window_seconds * 1000) - now_ms) // 1000))

    async def record(self, name: str, subject: str, *, window_seconds: float) -> None:
        k = key("ratelimit", name, subject)
        now_ms = int(time.time() * 1000)
        try:
            pipe = self._redis.pipeline()
            pipe.zadd(k, {f"{now_ms}-{uuid.uuid4().hex[:8]}": now_ms})
            pipe.pexpire(k, int(window_seconds * 1000))
            await pipe.execute()
        except REDIS_UNAVAILABLE_ERRORS:
            raise DependencyUnavailable("Rate limiter unavailable (Redis).") from None

    async def reset(self, name: str, subject: str) -> None:
        try:
            await self._redis.delete(key("ratelimit", name, subject))
        except REDIS_UNAVAILABLE_ERRORS:
            pass  # a stale failure counter only expires later; not worth failing a good login
