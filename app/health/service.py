"""Readiness: each dependency the API needs, probed in parallel, each within its own timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from app.container import Container
from app.core import db


async def _check(probe: Callable[[], Awaitable[object]], timeout: float) -> str:
    try:
        await asyncio.wait_for(probe(), timeout=timeout)
    except Exception as exc:  # any failure of a probe means "not ready", reported by name
        if getattr(exc, "code", "") == "scheduler_misconfigured":
            # an operator must fix a policy: say which permission (the detail holds no secret)
            return f"misconfigured ({getattr(exc, 'detail', '')})"
        return f"unavailable ({type(exc).__name__})"
    return "ok"


class HealthService:
    def __init__(self, container: Container) -> None:
        self.c = container

    async def _redis_ping(self) -> None:
        await self.c.redis.ping()  # type: ignore[misc]  # redis-py types ping as sync-or-async

    async def checks(self) -> dict[str, str]:
        """``{name: "ok" | "unavailable (Error)"}`` for the database, Redis and the scheduler."""
        settings = self.c.settings
        probes: dict[str, tuple[Callable[[], Awaitable[object]], float]] = {
            "database": (lambda: db.ping(settings.database_timeout_seconds), settings.database_timeout_seconds),
            "redis": (self._redis_ping, settings.redis_timeout_seconds),
            "scheduler": (self.c.scheduler.ping, settings.nomad_timeout_seconds),
        }
        results = await asyncio.gather(*(_check(probe, timeout + 0.5) for probe, timeout in probes.values()))
        return dict(zip(probes, results, strict=True))
