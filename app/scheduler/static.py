"""Small deployments: every tenant shares one WAHA (``WHAGO_WAHA_URL``).

There is no per-tenant process to create, stop or restart, so those operations are no-ops; the
shared WAHA is operated outside WHAGO. Tenants stay apart by session name (``chip_<id>``) and the
session metadata, not by process.
"""

from __future__ import annotations

from typing import Any

from app.core.errors import ValidationFailed
from app.scheduler.base import InstanceState, TenantRef, job_id_for, normalize_user_id
from app.settings import Settings


class StaticScheduler:
    def __init__(self, settings: Settings, redis: Any | None = None) -> None:
        url = (settings.waha_url or "").strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValidationFailed("WHAGO_WAHA_URL: an http(s) URL is required when WHAGO_SCHEDULER=static")
        self.base_url = url

    def _instance(self, user_id: str) -> InstanceState:
        user_id = normalize_user_id(user_id)
        return InstanceState(user_id=user_id, job_id=job_id_for(user_id), status="running", base_url=self.base_url)

    async def ensure_instance(self, tenant: TenantRef) -> InstanceState:
        # No health probe here: reachability of the shared WAHA surfaces in the WAHA client.
        return self._instance(tenant.id)

    async def get_instance(self, user_id: str) -> InstanceState | None:
        return self._instance(user_id)

    async def restart_instance(self, user_id: str) -> None:
        normalize_user_id(user_id)  # validates; restarting the shared WAHA would hit every tenant

    async def stop_instance(self, user_id: str) -> None:
        normalize_user_id(user_id)

    async def remove_instance(self, user_id: str) -> None:
        normalize_user_id(user_id)

    async def list_instances(self) -> list[InstanceState]:
        return []  # no per-tenant instances exist; the shared one belongs to nobody

    async def ping(self) -> None:
        """Nothing remote to ask: the configuration is the whole scheduler."""

    async def invalidate(self, user_id: str) -> None:
        return None

    async def close(self) -> None:
        return None
