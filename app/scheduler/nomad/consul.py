"""Consul discovery: where a tenant's WAHA answers, according to its own health check.

Only two endpoints are needed (service health and the leader), so this is a thin
``httpx.AsyncClient`` wrapper; the reading of the answer is ``diagnostics.passing_endpoints``.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
import msgspec

from app.scheduler.errors import SchedulerMisconfigured, SchedulerUnavailable
from app.scheduler.nomad.diagnostics import Endpoint, passing_endpoints, safe_origin
from app.settings import Settings

FILTERED_HEADER = "X-Consul-Results-Filtered-By-ACLs"
_POLICY_HINT = (
    'the Consul policy needs service_prefix "whago-waha-" { policy = "read" } and '
    'node_prefix "" { policy = "read" } (see nomad/README.md)'
)


class HealthAnswer(msgspec.Struct, frozen=True):
    endpoints: list[Endpoint]
    index: int  # X-Consul-Index, for the next blocking query


class ConsulDiscovery:
    def __init__(self, settings: Settings) -> None:
        self.timeout = float(settings.nomad_timeout_seconds)  # one budget for both control planes
        self.origin = safe_origin(settings.consul_addr)
        headers = {"X-Consul-Token": settings.consul_token} if settings.consul_token else {}
        self._http = httpx.AsyncClient(base_url=settings.consul_addr.rstrip("/"), headers=headers, timeout=self.timeout)

    async def healthy_endpoints(self, job_id: str, user_id: str) -> list[Endpoint]:
        """(address, port) of Consul instances of the tenant's service whose own check passes."""
        return (await self.health(job_id, user_id)).endpoints

    async def health(self, job_id: str, user_id: str, index: int = 0, wait: float = 0.0) -> HealthAnswer:
        """The tenant's healthy endpoints; with ``index`` > 0 a blocking query that returns when
        Consul's answer changes after ``index`` or after ``wait`` seconds."""
        path = f"/v1/health/service/{quote(job_id, safe='')}"
        what = f"reading Consul health of {job_id}"
        params = {"passing": "true"}
        timeout = self.timeout
        if index > 0 and wait > 0:
            params.update(index=str(index), wait=f"{max(1, int(wait * 1000))}ms")
            timeout += wait * (1 + 1 / 16)  # Consul adds up to wait/16 of jitter
        try:
            resp = await self._http.get(path, params=params, timeout=timeout)
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
        if resp.headers.get(FILTERED_HEADER, "").lower() == "true":
            # Consul hid entries our token may not read: a configuration error, never "not
            # ready yet" (the tenant would otherwise wait for a registration it cannot see).
            raise SchedulerMisconfigured(f"Consul filtered its answer by ACL while {what}: {_POLICY_HINT}")
        try:
            entries = msgspec.json.decode(resp.content)
        except msgspec.DecodeError:
            raise SchedulerUnavailable(f"Consul returned an unreadable response while {what}") from None
        try:
            index = max(0, int(resp.headers.get("X-Consul-Index") or 0))
        except ValueError:
            index = 0
        return HealthAnswer(endpoints=passing_endpoints(entries or [], user_id), index=index)

    async def ping(self) -> None:
        """Raise unless Consul has a leader and WHAGO's token can read nodes (what the health
        endpoint needs besides service:read). The leader endpoint ignores tokens, so it only
        shows that Consul answers; the node list is the authenticated call."""
        try:
            leader = await self._http.get("/v1/status/leader", timeout=self.timeout)
            nodes = await self._http.get("/v1/catalog/nodes", timeout=self.timeout)
        except httpx.HTTPError:
            raise SchedulerUnavailable(f"Consul unreachable at {self.origin}") from None
        if leader.status_code != 200:
            raise SchedulerUnavailable(f"Consul answered HTTP {leader.status_code} to a leader check")
        if not leader.content.strip(b'" \n'):
            raise SchedulerUnavailable("Consul has no leader")
        if nodes.status_code == 403:
            raise SchedulerMisconfigured("Consul ACL token rejected (403); check WHAGO_CONSUL_TOKEN")
        if nodes.status_code != 200:
            raise SchedulerUnavailable(f"Consul answered HTTP {nodes.status_code} to a node listing")
        if nodes.headers.get(FILTERED_HEADER, "").lower() == "true":
            raise SchedulerMisconfigured(f"Consul token lacks node:read (answer filtered by ACL): {_POLICY_HINT}")

    async def aclose(self) -> None:
        await self._http.aclose()
