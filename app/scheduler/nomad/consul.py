"""Consul discovery: where a tenant's WAHA answers, according to its own health check.

Only two endpoints are needed (service health and the leader), so this is a thin
``httpx.AsyncClient`` wrapper; the reading of the answer is ``diagnostics.passing_endpoints``.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
import msgspec

from app.scheduler.errors import SchedulerUnavailable
from app.scheduler.nomad.diagnostics import Endpoint, passing_endpoints, safe_origin
from app.settings import Settings


class ConsulDiscovery:
    def __init__(self, settings: Settings) -> None:
        self.timeout = float(settings.nomad_timeout_seconds)  # one budget for both control planes
        self.origin = safe_origin(settings.consul_addr)
        headers = {"X-Consul-Token": settings.consul_token} if settings.consul_token else {}
        self._http = httpx.AsyncClient(base_url=settings.consul_addr.rstrip("/"), headers=headers, timeout=self.timeout)

    async def healthy_endpoints(self, job_id: str, user_id: str) -> list[Endpoint]:
        """(address, port) of Consul instances of the tenant's service whose own check passes."""
        path = f"/v1/health/service/{quote(job_id, safe='')}"
        what = f"reading Consul health of {job_id}"
        try:
            resp = await self._http.get(path, params={"passing": "true"}, timeout=self.timeout)
        except httpx.TimeoutException:
            raise SchedulerUnavailable(
                f"Consul at {self.origin} timed out after {self.timeout:g}s while {what}"
            ) from None
        except httpx.HTTPError:
            raise SchedulerUnavailable(f"Consul unreachable at {self.origin} while {what}") from None
        if resp.status_code == 403:
            raise SchedulerUnavailable(f"Consul ACL token rejected (403) while {what}; check WHAGO_CONSUL_TOKEN")
        if resp.status_code != 200:
            raise SchedulerUnavailable(f"Consul answered HTTP {resp.status_code} while {what}")
        try:
            entries = msgspec.json.decode(resp.content)
        except msgspec.DecodeError:
            raise SchedulerUnavailable(f"Consul returned an unreadable response while {what}") from None
        return passing_endpoints(entries or [], user_id)

    async def ping(self) -> None:
        """Raise SchedulerUnavailable unless Consul answers its leader endpoint."""
        try:
            resp = await self._http.get("/v1/status/leader", timeout=self.timeout)
        except httpx.HTTPError:
            raise SchedulerUnavailable(f"Consul unreachable at {self.origin}") from None
        if resp.status_code != 200:
            raise SchedulerUnavailable(f"Consul answered HTTP {resp.status_code} to a leader check")

    async def aclose(self) -> None:
        await self._http.aclose()
