"""Redis cache of discovered instance addresses (``whago:instance:<user id>``).

The cache is an optimisation only: a Redis failure is logged and treated as a miss, never as a
scheduler failure.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec

logger = logging.getLogger("whago.scheduler.cache")


def cache_key(user_id: str) -> str:
    return f"whago:instance:{user_id}"


class _Entry(msgspec.Struct):
    base_url: str
    job_id: str


class AddressCache:
    def __init__(self, redis: Any | None, ttl_seconds: int, timeout_seconds: float = 2.0) -> None:
        self.redis = redis
        self.ttl = max(1, int(ttl_seconds))
        self.timeout = timeout_seconds

    async def get(self, user_id: str) -> str | None:
        if self.redis is None:
            return None
        try:
            raw = await asyncio.wait_for(self.redis.get(cache_key(user_id)), self.timeout)
        except Exception as exc:  # Redis down: fall back to discovery
            logger.warning("instance cache read failed for %s: %s", user_id, type(exc).__name__)
            return None
        return self._decode(raw)

    async def get_many(self, user_ids: list[str]) -> dict[str, str]:
        if self.redis is None or not user_ids:
            return {}
        try:
            raws = await asyncio.wait_for(self.redis.mget([cache_key(u) for u in user_ids]), self.timeout)
        except Exception as exc:
            logger.warning("instance cache read failed: %s", type(exc).__name__)
            return {}
        found = {}
        for user_id, raw in zip(user_ids, raws, strict=True):
            url = self._decode(raw)
            if url:
                found[user_id] = url
        return found

    async def set(self, user_id: str, job_id: str, base_url: str) -> None:
        if self.redis is None:
            return
        payload = msgspec.json.encode(_Entry(base_url=base_url, job_id=job_id))
        try:
            await asyncio.wait_for(self.redis.set(cache_key(user_id), payload, ex=self.ttl), self.timeout)
        except Exception as exc:
            logger.warning("instance cache write failed for %s: %s", user_id, type(exc).__name__)

    async def delete(self, user_id: str) -> None:
        if self.redis is None:
            return
        try:
            await asyncio.wait_for(self.redis.delete(cache_key(user_id)), self.timeout)
        except Exception as exc:
            logger.warning("instance cache delete failed for %s: %s", user_id, type(exc).__name__)

    @staticmethod
    def _decode(raw: Any) -> str | None:
        if not raw:
            return None
        try:
            return msgspec.json.decode(raw, type=_Entry).base_url
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None  # foreign or stale format: rediscover
