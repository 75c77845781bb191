"""Typed scheduler errors. All are ``WhagoError`` subclasses so the HTTP layer maps them without
knowing which adapter raised them. Messages never contain tokens or other secrets."""

from __future__ import annotations

from app.core.errors import DependencyUnavailable, NotFound, WhagoError


class SchedulerError(WhagoError):
    """Marker base for everything the scheduler adapters raise."""

    code = "scheduler_error"


class SchedulerUnavailable(SchedulerError, DependencyUnavailable):
    """Nomad or Consul unreachable, timing out, answering 5xx, or rejecting our ACL token.
    Nothing was changed by the failing call; the caller may retry."""

    code = "scheduler_unavailable"
    default_detail = "The scheduler is unavailable; try again shortly."


class PlacementFailed(SchedulerError, DependencyUnavailable):
    """Nomad accepted the job but cannot place it (no capacity, constraints, ...)."""

    code = "placement_failed"
    default_detail = "The scheduler could not place the instance."

    def __init__(self, job_id: str, reason: str) -> None:
        self.job_id = job_id
        self.reason = reason
        super().__init__(f"Nomad could not place job {job_id}: {reason}")


class InstanceNotReady(SchedulerError, DependencyUnavailable):
    """The instance did not become healthy before the deadline."""

    code = "instance_not_ready"
    default_detail = "The instance did not become ready in time."

    def __init__(self, job_id: str, last_status: str, waited_seconds: float) -> None:
        self.job_id = job_id
        self.last_status = last_status
        super().__init__(
            f"job {job_id} did not become healthy within {waited_seconds:.0f}s (last allocation status: {last_status})"
        )


class JobRejected(SchedulerError):
    """Nomad refused the job body (400). A configuration or code bug: retrying will not help."""

    status_code = 500
    code = "scheduler_job_rejected"
    default_detail = "The scheduler rejected the instance definition."


class InstanceNotFound(SchedulerError, NotFound):
    """An operation needs an existing instance (e.g. restart) and there is none."""

    code = "instance_not_found"
    default_detail = "The tenant has no instance."
