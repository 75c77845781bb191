"""Production adapter: one Nomad ``service`` job per tenant, healthy address found through Consul.

The pieces: ``transport`` (python-nomad in a thread pool, typed errors), ``consul`` (health
lookups over httpx) and ``diagnostics`` (pure readings of their answers). This module only
orchestrates them:

* Readiness = a running allocation whose ``http`` port is registered in Consul with *our* check
  passing; after a reschedule the old instance may linger for a moment, hence the port match.
* Every failure becomes a typed error from ``app.scheduler.errors``; nothing is cached unless the
  instance was seen healthy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from app.scheduler.base import (
    JOB_PREFIX,
    InstanceState,
    TenantRef,
    job_id_for,
    normalize_user_id,
    user_id_from_job_id,
)
from app.scheduler.cache import AddressCache
from app.scheduler.errors import InstanceNotFound, InstanceNotReady, PlacementFailed
from app.scheduler.locks import KeyedLocks
from app.scheduler.nomad import diagnostics
from app.scheduler.nomad.consul import ConsulDiscovery
from app.scheduler.nomad.transport import NomadTransport
from app.scheduler.nomad_job import SPEC_HASH_META, build_job
from app.settings import Settings

logger = logging.getLogger("whago.scheduler.nomad")

_BACKOFF_START = 0.05
_BACKOFF_MAX = 2.0
# allocation id -> its http port (host IP, port), or None if it has none; read once per wait
PortMemo = dict[str, tuple[str, int] | None]


class NomadScheduler:
    def __init__(self, settings: Settings, redis: Any | None) -> None:
        self.settings = settings
        self.ready_timeout = float(settings.instance_ready_timeout_seconds)
        self.page_size = settings.nomad_list_page_size
        self.cache = AddressCache(redis, settings.instance_address_cache_seconds, settings.redis_timeout_seconds)
        self.nomad = NomadTransport(settings)
        self.consul = ConsulDiscovery(settings)
        # Coalesces concurrent ensures of one tenant within this process (saves Nomad calls).
        # Not what keeps one job per tenant: that is Nomad's (registration is idempotent by id).
        self._flights = KeyedLocks()

    # ------------------------------------------------------------------ Nomad reads and writes
    async def _read_job(self, job_id: str) -> dict[str, Any] | None:
        return await self.nomad.read(f"reading job {job_id}", "job", job_id)

    async def _allocations(self, job_id: str) -> list[dict[str, Any]]:
        return list(await self.nomad.read(f"listing allocations of {job_id}", "job", job_id, "allocations") or [])

    async def _register(self, body: dict[str, Any]) -> None:
        job_id = body["Job"]["ID"]
        await self.nomad.request(f"registering job {job_id}", "jobs", method="post", body=body)

    async def _deregister(self, job_id: str, purge: bool) -> None:
        await self.nomad.request(
            f"deregistering job {job_id}",
            "job",
            job_id,
            method="delete",
            params={"purge": "true"} if purge else None,
            missing_ok=True,
        )

    # ------------------------------------------------------------------ readiness
    async def _probe(self, job_id: str, user_id: str, ports: PortMemo) -> tuple[str | None, diagnostics.AllocationView]:
        """One readiness look: (base_url or None, the job's allocations)."""
        view = diagnostics.allocation_view(await self._allocations(job_id))
        if not view.running:
            return None, view
        healthy = await self.consul.healthy_endpoints(job_id, user_id)
        if not healthy:
            return None, view
        for alloc in view.running:
            alloc_id = alloc["ID"]
            if alloc_id not in ports:
                # The list stub has no ports; the detail has AllocatedResources.Shared.Ports.
                detail = await self.nomad.read(f"reading allocation {alloc_id}", "allocation", alloc_id)
                ports[alloc_id] = diagnostics.alloc_endpoint(detail) if detail else None
            endpoint = ports[alloc_id]
            url = diagnostics.matching_url(endpoint, healthy) if endpoint else None
            if url:
                return url, view
        return None, view

    async def _placement_failure(self, job_id: str) -> str | None:
        evals = await self.nomad.read(f"listing evaluations of {job_id}", "job", job_id, "evaluations")
        return diagnostics.placement_failure(list(evals or []))

    async def _wait_ready(self, job_id: str, user_id: str) -> str:
        started = time.monotonic()
        deadline = started + self.ready_timeout
        delay = _BACKOFF_START
        ports: PortMemo = {}
        while True:
            url, view = await self._probe(job_id, user_id, ports)
            if url:
                return url
            if not view.live:  # nothing pending or running: ask Nomad whether it gave up
                reason = await self._placement_failure(job_id)
                if reason:
                    raise PlacementFailed(job_id, reason)
            now = time.monotonic()
            if now >= deadline:
                raise InstanceNotReady(job_id, view.last_status, self.ready_timeout)
            await asyncio.sleep(min(delay, deadline - now))
            delay = min(delay * 2, _BACKOFF_MAX)

    # ------------------------------------------------------------------ interface
    async def ping(self) -> None:
        """Readiness: Nomad and Consul both answer (their leader endpoints)."""
        await self.nomad.request("reading the Nomad leader", "status.leader")
        await self.consul.ping()

    async def ensure_instance(self, tenant: TenantRef) -> InstanceState:
        user_id = normalize_user_id(tenant.id)
        job_id = job_id_for(user_id)
        cached = await self.cache.get(user_id)
        if cached:
            return InstanceState(user_id=user_id, job_id=job_id, status="running", base_url=cached)
        body = build_job(self.settings, tenant)  # bad plan -> ValidationFailed before any call
        async with self._flights.hold(user_id):
            cached = await self.cache.get(user_id)
            if cached:
                return InstanceState(user_id=user_id, job_id=job_id, status="running", base_url=cached)
            job = await self._read_job(job_id)
            wanted_hash = body["Job"]["Meta"][SPEC_HASH_META]
            if (
                job is None
                or job.get("Stop")
                or job.get("Status") == "dead"
                or (job.get("Meta") or {}).get(SPEC_HASH_META) != wanted_hash
            ):
                await self._register(body)
                logger.info("registered Nomad job %s", job_id)
            url = await self._wait_ready(job_id, user_id)
            await self.cache.set(user_id, job_id, url)
            return InstanceState(user_id=user_id, job_id=job_id, status="running", base_url=url)

    async def get_instance(self, user_id: str) -> InstanceState | None:
        user_id = normalize_user_id(user_id)
        job_id = job_id_for(user_id)
        cached = await self.cache.get(user_id)
        if cached:
            return InstanceState(user_id=user_id, job_id=job_id, status="running", base_url=cached)
        job = await self._read_job(job_id)
        if job is None:
            return None
        if job.get("Stop"):
            return InstanceState(user_id=user_id, job_id=job_id, status="stopped", base_url=None)
        status = job.get("Status")
        if status == "running":
            url, _ = await self._probe(job_id, user_id, {})
            if url:
                await self.cache.set(user_id, job_id, url)
                return InstanceState(user_id=user_id, job_id=job_id, status="running", base_url=url)
            return InstanceState(user_id=user_id, job_id=job_id, status="pending", base_url=None)
        if status in ("pending", "dead"):
            return InstanceState(user_id=user_id, job_id=job_id, status=status, base_url=None)
        return InstanceState(user_id=user_id, job_id=job_id, status="unknown", base_url=None)

    async def restart_instance(self, user_id: str) -> None:
        """Replace the running allocation(s) (Nomad places a fresh one, maybe on another node and
        port); a stopped job is started again from its stored definition."""
        user_id = normalize_user_id(user_id)
        job_id = job_id_for(user_id)
        job = await self._read_job(job_id)
        if job is None:
            raise InstanceNotFound(f"tenant has no Nomad job {job_id}")
        await self.cache.delete(user_id)
        if job.get("Stop") or job.get("Status") == "dead":
            job["Stop"] = False
            await self._register({"Job": job})
            return
        for alloc in await self._allocations(job_id):
            if alloc.get("DesiredStatus") == "run" and alloc.get("ClientStatus") in ("pending", "running"):
                alloc_id = alloc["ID"]
                await self.nomad.request(
                    f"stopping allocation {alloc_id} of {job_id}",
                    "allocation",
                    alloc_id,
                    "stop",
                    method="post",
                    missing_ok=True,
                )
        await self.cache.delete(user_id)

    async def stop_instance(self, user_id: str) -> None:
        user_id = normalize_user_id(user_id)
        await self._deregister(job_id_for(user_id), purge=False)
        await self.cache.delete(user_id)

    async def remove_instance(self, user_id: str) -> None:
        user_id = normalize_user_id(user_id)
        await self._deregister(job_id_for(user_id), purge=True)
        await self.cache.delete(user_id)

    async def invalidate(self, user_id: str) -> None:
        await self.cache.delete(normalize_user_id(user_id))

    async def list_instances(self) -> list[InstanceState]:
        """All tenant jobs, one Nomad request per page (prefix listing), plus one Redis MGET per page
        for addresses already known. Does not ask Consul per job: a running job without a cached
        address comes back with ``base_url=None``."""
        instances: list[InstanceState] = []
        token: str | None = None
        while True:
            params: dict[str, str | int] = {"prefix": JOB_PREFIX, "per_page": self.page_size}
            if token:
                params["next_token"] = token
            page = await self.nomad.request("listing tenant jobs", "jobs", params=params)
            token = page.next_token
            batch = [_listed(stub) for stub in page.data or []]
            found = [i for i in batch if i is not None]
            urls = await self.cache.get_many([i.user_id for i in found if i.status == "running"])
            for inst in found:
                inst.base_url = urls.get(inst.user_id)
            instances.extend(found)
            if not token:
                return instances

    async def close(self) -> None:
        await self.consul.aclose()
        await self.nomad.close()


def _listed(stub: dict[str, Any]) -> InstanceState | None:
    """A job-list stub as an instance (address unknown), or None if it is not a tenant job."""
    job_id = stub.get("ID") or ""
    user_id = user_id_from_job_id(job_id)
    if not user_id:
        return None
    if stub.get("Stop"):
        status = "stopped"
    else:
        status = stub.get("Status") or "unknown"
        if status not in ("running", "pending", "dead"):
            status = "unknown"
    return InstanceState(user_id=user_id, job_id=job_id, status=status, base_url=None)
