"""Metrics around any scheduler adapter: ``whago_scheduler_requests_total`` and
``whago_scheduler_request_seconds`` by operation (the interface's method names) and outcome."""

from __future__ import annotations

from typing import Any

from app.core import metrics
from app.core.errors import DependencyUnavailable
from app.scheduler.base import InstanceState, Scheduler, TenantRef
from app.scheduler.errors import PlacementFailed


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, PlacementFailed):
        return "placement_failed"
    if isinstance(exc, DependencyUnavailable):
        return "unavailable"
    return "error"


def _timed(operation: str):
    return metrics.timed(metrics.SCHEDULER_SECONDS, metrics.SCHEDULER_REQUESTS, operation, _outcome)


OPERATIONS = (
    "ensure_instance",
    "get_instance",
    "restart_instance",
    "stop_instance",
    "remove_instance",
    "list_instances",
    "ping",
)
for _operation in OPERATIONS:  # series exist (at 0) before the first failure
    for _result in ("ok", "unavailable", "error"):
        metrics.SCHEDULER_REQUESTS.labels(_operation, _result)
metrics.SCHEDULER_REQUESTS.labels("ensure_instance", "placement_failed")


class InstrumentedScheduler:
    """Delegates every call to ``inner``; anything else (adapter specifics) passes through."""

    def __init__(self, inner: Scheduler) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def ensure_instance(self, tenant: TenantRef) -> InstanceState:
        with _timed("ensure_instance"):
            return await self.inner.ensure_instance(tenant)

    async def get_instance(self, user_id: str) -> InstanceState | None:
        with _timed("get_instance"):
            return await self.inner.get_instance(user_id)

    async def restart_instance(self, user_id: str) -> None:
        with _timed("restart_instance"):
            await self.inner.restart_instance(user_id)

    async def stop_instance(self, user_id: str) -> None:
        with _timed("stop_instance"):
            await self.inner.stop_instance(user_id)

    async def remove_instance(self, user_id: str) -> None:
        with _timed("remove_instance"):
            await self.inner.remove_instance(user_id)

    async def list_instances(self) -> list[InstanceState]:
        with _timed("list_instances"):
            return await self.inner.list_instances()

    async def ping(self) -> None:
        with _timed("ping"):
            await self.inner.ping()

    async def invalidate(self, user_id: str) -> None:
        await self.inner.invalidate(user_id)

    async def close(self) -> None:
        await self.inner.close()
