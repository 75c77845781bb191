"""The job queue adapter: services enqueue named jobs; SAQ on Redis runs them (see app.worker)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from saq.queue.redis import RedisQueue

from app.core.errors import DependencyUnavailable
from app.core.redis import REDIS_UNAVAILABLE_ERRORS

logger = logging.getLogger("whago.queue")

QUEUE_NAME = "whago"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job's name and the limits every enqueue of it carries (SAQ's 10 s default is too short).

    ``retries`` is SAQ's meaning: total attempts. ``retry_backoff`` caps the exponential delay.
    """

    name: str
    key_prefix: str
    timeout: int
    retries: int
    retry_delay: float
    retry_backoff: float | bool
    ttl: int = 3600
    # Jobs touch themselves this often while running (see app.worker): a worker killed mid-job
    # is noticed by another worker's sweep within ~heartbeat seconds, not after the timeout.
    heartbeat: int = 20

    def key(self, subject: object) -> str:
        return f"{self.key_prefix}:{subject}"


PROVISION_CHIP = JobSpec("provision_chip", "provision", timeout=300, retries=8, retry_delay=1.0, retry_backoff=60)
TEARDOWN_CHIP = JobSpec("teardown_chip", "teardown", timeout=120, retries=8, retry_delay=1.0, retry_backoff=60)
ROTATE_PROXY = JobSpec("rotate_proxy", "rotate", timeout=120, retries=5, retry_delay=2.0, retry_backoff=60)


class JobQueue(Protocol):
    async def enqueue(self, spec: JobSpec, subject: object, **kwargs: Any) -> bool: ...


class SaqJobQueue:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.saq = RedisQueue(redis, name=QUEUE_NAME)

    async def enqueue(self, spec: JobSpec, subject: object, **kwargs: Any) -> bool:
        """Enqueue once per subject (dedup key). Returns False when an identical job is pending.

        Raises DependencyUnavailable when Redis is down, so callers can fall back to the outbox.
        """
        try:
            job = await self.saq.enqueue(
                spec.name,
                key=spec.key(subject),
                timeout=spec.timeout,
                retries=spec.retries,
                retry_delay=spec.retry_delay,
                retry_backoff=spec.retry_backoff,
                ttl=spec.ttl,
                heartbeat=spec.heartbeat,
                **kwargs,
            )
        except REDIS_UNAVAILABLE_ERRORS as exc:
            logger.warning("enqueue %s for %s failed: Redis unavailable (%s)", spec.name, subject, type(exc).__name__)
            raise DependencyUnavailable("Job queue unavailable (Redis).") from None
        return job is not None
