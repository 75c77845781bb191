"""Scheduler adapters: "the WAHA instance of user X", whatever runs it.

``build_scheduler(settings, redis)`` returns the adapter named by ``WHAGO_SCHEDULER``:
``nomad`` (production), ``local`` (``whago dev``: in-process emulators) or ``static`` (one shared
WAHA at ``WHAGO_WAHA_URL``).
"""

from __future__ import annotations

from typing import Any

from app.scheduler.base import JOB_PREFIX, InstanceState, Scheduler, TenantRef, job_id_for, normalize_user_id
from app.scheduler.errors import (
    InstanceNotFound,
    InstanceNotReady,
    JobRejected,
    PlacementFailed,
    SchedulerError,
    SchedulerUnavailable,
)
from app.settings import Settings


def build_scheduler(settings: Settings, redis: Any) -> Scheduler:
    kind = settings.scheduler
    if kind == "nomad":
        from app.scheduler.nomad import NomadScheduler

        return NomadScheduler(settings, redis)
    if kind == "local":
        from app.scheduler.local import LocalScheduler

        return LocalScheduler(settings, redis)
    if kind == "static":
        from app.scheduler.static import StaticScheduler

        return StaticScheduler(settings, redis)
    raise ValueError(f"WHAGO_SCHEDULER: unknown scheduler {kind!r}")


__all__ = [
    "JOB_PREFIX",
    "InstanceNotFound",
    "InstanceNotReady",
    "InstanceState",
    "JobRejected",
    "PlacementFailed",
    "Scheduler",
    "SchedulerError",
    "SchedulerUnavailable",
    "TenantRef",
    "build_scheduler",
    "job_id_for",
    "normalize_user_id",
]
