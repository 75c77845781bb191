"""The job queue adapter: services enqueue named jobs; SAQ on Redis runs them (see app.worker)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from saq.queue.redis import RedisQueue

from app.core import context
from app.core.errors import DependencyUnavailable
from app.core.redis import REDIS_UNAVAILABLE_ERRORS
from app.settings import Settings

logger = logging.getLogger("whago.queue")

QUEUE_NAME = "whago"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job's name and the limits every enqueue of it carries (SAQ's 10 s default is too short).

    Attempts and the exponential backoff between them come from settings
    (``WHAGO_JOB_ATTEMPTS``, ``WHAGO_JOB_RETRY_DELAY_SECONDS``, ``WHAGO_JOB_RETRY_MAX_DELAY_SECONDS``).
    """

    name: str
    key_prefix: str
    timeout: int
    ttl: int = 3600

    def key(self, subject: object) -> str:
        return f"{self.key_prefix}:{subject}"


# provisioning may wait for Nomad to place and Consul to pass a new instance (ready timeout 120 s)
PROVISION_CHIP = JobSpec("provision_chip", "provision", timeout=300)
TEARDOWN_CHIP = JobSpec("teardown_chip", "teardown", timeout=120)
ROTATE_PROXY = JobSpec("rotate_proxy", "rotate", timeout=300)
# an idle tenant is back (app.users.activity): one pending wake-up per tenant
WAKE_INSTANCE = JobSpec("wake_instance", "wake", timeout=60)


class JobQueue(Protocol):
    async def enqueue(self, spec: JobSpec, subject: object, **kwargs: Any) -> bool: ...


class SaqJobQueue:
    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.saq = RedisQueue(redis, name=QUEUE_NAME)
        # SAQ's `retries` counts attempts; the delay doubles per attempt (with jitter) up to the cap
        self._retries = max(1, settings.job_attempts)
        self._retry_delay = settings.job_retry_delay_seconds
        self._retry_backoff = settings.job_retry_max_delay_seconds
        self._heartbeat = settings.job_heartbeat_seconds

    async def enqueue(self, spec: JobSpec, subject: object, **kwargs: Any) -> bool:
        """Enqueue once per subject (dedup key). Returns False when an identical job is pending.

        Raises DependencyUnavailable when Redis is down, so callers can fall back to the outbox.
        """
        request_id = context.current_request_id()
        if request_id and "meta" not in kwargs:
            # the worker runs the job under the same request id (app.worker.runner)
            kwargs["meta"] = {"request_id": request_id}
        try:
            job = await self.saq.enqueue(
                spec.name,
                key=spec.key(subject),
                timeout=spec.timeout,
                retries=self._retries,
                retry_delay=self._retry_delay,
                retry_backoff=self._retry_backoff,
                ttl=spec.ttl,
                # touched by the running job (app.worker.jobs): a worker killed mid-job is swept
                # by another worker within ~heartbeat seconds, not after the whole timeout
                heartbeat=self._heartbeat,
                **kwargs,
            )
        except REDIS_UNAVAILABLE_ERRORS as exc:
            logger.warning("enqueue %s for %s failed: Redis unavailable (%s)", spec.name, subject, type(exc).__name__)
            raise DependencyUnavailable("Job queue unavailable (Redis).") from None
        return job is not None
