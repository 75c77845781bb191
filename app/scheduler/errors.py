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
    """Nomad refused the job: a 400 (the body does not decode) or a 500 whose text is a validation
    message (Nomad answers semantic job errors, e.g. a bad constraint or an unknown node pool, with
    HTTP 500 and a plain-text body). A configuration or code bug: retrying will not help, so it is
    ``permanent`` and carries Nomad's text for operators."""

    status_code = 500
    code = "scheduler_job_rejected"
    default_detail = "The scheduler rejected the instance definition."
    permanent = True


class JobModifyConflict(SchedulerUnavailable):
    """Another writer changed the tenant's job between our read and our check-and-set register
    (``EnforceIndex``). Re-read and decide again; nothing was changed by the refused call."""

    code = "scheduler_conflict"
    default_detail = "The instance definition changed concurrently; try again."


class SchedulerMisconfigured(SchedulerUnavailable):
    """Nomad or Consul answers, but WHAGO's token cannot see what it needs (e.g. Consul filtered
    the answer by ACL). Retrying will not help until an operator fixes the policy; the detail
    names the missing permission. Still a 503: the platform is not ready."""

    code = "scheduler_misconfigured"
    default_detail = "The scheduler's ACL token lacks a permission."


class InstanceNotFound(SchedulerError, NotFound):
    """An operation needs an existing instance (e.g. restart) and there is none."""

    code = "instance_not_found"
    default_detail = "The tenant has no instance."
