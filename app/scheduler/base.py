"""The scheduler interface: "give me the WAHA instance of user X".

The API and the workers only see this module. Three adapters implement it (``nomad``, ``local``,
``static``); ``app.scheduler.build_scheduler`` picks one from ``WHAGO_SCHEDULER``.
"""

from __future__ import annotations

import re
import uuid
from typing import Literal, Protocol, runtime_checkable

import msgspec

JOB_PREFIX = "whago-waha-"
InstanceStatus = Literal["running", "pending", "stopped", "dead", "unknown"]

# Nomad service names must be RFC-1123 labels (< 64 chars); the job id doubles as the service name.
_PLAIN_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,51}")


class TenantRef(msgspec.Struct, frozen=True):
    id: str  # user id (uuid string)
    plan: str
    email: str = ""
    chip_count: int = 0


class InstanceState(msgspec.Struct):
    """What a scheduler reports about a tenant's WAHA instance right now. Not the ``instances``
    table (``app.instances.tables.Instance``), which records what the platform last observed."""

    user_id: str
    job_id: str
    status: str  # InstanceStatus
    base_url: str | None


def normalize_user_id(user_id: str) -> str:
    """Canonical form of a user id as used in job ids, service names and Redis keys.

    UUIDs are lower-cased and hyphenated; other ids must already be a safe lowercase label, since
    the id ends up in a Consul service name.
    """
    text = str(user_id).strip()
    try:
        return str(uuid.UUID(text))
    except ValueError:
        pass
    if _PLAIN_ID.fullmatch(text):
        return text
    raise ValueError(f"invalid user id {text!r}: expected a UUID")


def job_id_for(user_id: str) -> str:
    """``whago-waha-<user id>``: Nomad job id and Consul service name of a tenant's WAHA."""
    return JOB_PREFIX + normalize_user_id(user_id)


def user_id_from_job_id(job_id: str) -> str | None:
    return job_id[len(JOB_PREFIX) :] if job_id.startswith(JOB_PREFIX) else None


@runtime_checkable
class Scheduler(Protocol):
    async def ensure_instance(self, tenant: TenantRef) -> InstanceState:
        """Create or update the tenant's instance if missing or stopped, wait until healthy and
        return it running with its base URL."""
        ...

    async def get_instance(self, user_id: str) -> InstanceState | None:
        """Current state of the tenant's instance, or None if it has none. Never creates anything."""
        ...

    async def restart_instance(self, user_id: str) -> None: ...

    async def stop_instance(self, user_id: str) -> None:
        """Stop without purging (idle reaping): ``ensure_instance`` brings it back."""
        ...

    async def remove_instance(self, user_id: str) -> None:
        """Stop and forget the instance. Idempotent."""
        ...

    async def list_instances(self) -> list[InstanceState]: ...

    async def ping(self) -> None:
        """Raise SchedulerUnavailable unless the scheduler answers (for /health/ready)."""
        ...

    async def invalidate(self, user_id: str) -> None:
        """Drop any cached address (call after a connection failure to the instance)."""
        ...

    async def close(self) -> None: ...
